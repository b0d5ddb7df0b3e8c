/**
 * `rss_profile`: where the daemon's resident memory comes from.
 *
 * 1. Static cost: a bare `deno run` importing, one at a time, each npm package the daemon uses
 *    (and @kubernetes/client-node, which it does not load today), all of them together, and the
 *    daemon's whole module graph (`cmd/daemon.ts`, imported, not started) — `bench/rss_probe.ts`
 *    as a child process, RSS from /proc split into anonymous memory (heaps) and file-backed pages
 *    (the deno executable's code and data).
 * 2. (full) Process spawning: the same probe after running `ip -batch` 2000 times the way the
 *    daemon runs its commands (about what it runs for 300 pods: ~4 commands per ADD, 2–3 per DEL),
 *    with the script on a piped stdin (what lib/linux/exec.ts does for every `ip -batch -`) or in
 *    a file with stdin "null", each also with `MALLOC_MMAP_THRESHOLD_=65536`: glibc then serves
 *    buffers of 64 KiB and more from mmap, which returns them to the kernel when freed, instead of
 *    from the brk heap, which fragments and does not shrink.
 * 3. (full) Live cost: a fresh daemon on the simulator, idle and with 60 pods ADDed (4 at a time),
 *    as is, with `MALLOC_MMAP_THRESHOLD_=65536`, and with that plus
 *    `DENO_V8_FLAGS=--max-semi-space-size=1` (V8's young generation kept small) in its environment.
 */
import type { BenchContext, Benchmark } from "./lib/context.ts";
import { type Figure, figure } from "./lib/figure.ts";
import { addNamespaces, removeNamespaces } from "./lib/netns.ts";
import { mapLimit } from "./lib/parallel.ts";
import { MiB, readRss, type Rss } from "./lib/procfs.ts";
import { median } from "./lib/stats.ts";
import {
  type Cluster,
  daemonPid,
  envText,
  hostnicCall,
  installPlugin,
  MMAP_64K,
  mustSucceed,
  type PluginVariant,
  startCluster,
  TUNED_MEMORY,
} from "./lib/testbed.ts";

const PROBE = new URL("./rss_probe.ts", import.meta.url).pathname;
const PODS = 60;
/** Commands run by the spawn probes: about what the daemon runs for 300 pods (ADD + DEL). */
const SPAWNS = 2000;

/** What is imported, and the figure's name; `quick` ones also run in the quick mode. */
const PROBES: {
  name: string;
  specs: string[];
  what: string;
  quick?: boolean;
  /** Added to the probe's environment. */
  env?: Record<string, string>;
  /** One run even in the full mode (a long probe). */
  once?: boolean;
}[] = [
  { name: "deno", specs: [], what: "deno run of an empty script", quick: true },
  {
    name: "node_compat",
    specs: ["node:fs"],
    what: "+ Deno's Node compatibility layer",
    quick: true,
  },
  { name: "level", specs: ["level"], what: "import level" },
  { name: "zod", specs: ["zod"], what: "import zod" },
  { name: "commander", specs: ["commander"], what: "import commander" },
  { name: "yaml", specs: ["yaml"], what: "import yaml" },
  {
    name: "k8s_client",
    specs: ["@kubernetes/client-node"],
    what: "import @kubernetes/client-node (not loaded by the daemon today)",
  },
  {
    name: "daemon_npm",
    specs: ["level", "zod", "commander", "yaml"],
    what: "the npm packages of the daemon together",
    quick: true,
  },
  {
    name: "daemon_graph",
    specs: ["../cmd/daemon.ts"],
    what: "the daemon's module graph (cmd/daemon.ts imported, not started)",
    quick: true,
  },
  {
    name: "spawn_piped",
    specs: ["--spawn", String(SPAWNS), "--stdin", "piped"],
    what:
      `deno after ${SPAWNS} \`ip -batch -\` runs, script on a piped stdin (as lib/linux/exec.ts)`,
    once: true,
  },
  {
    name: "spawn_null",
    specs: ["--spawn", String(SPAWNS), "--stdin", "null"],
    what: `deno after ${SPAWNS} \`ip -batch <file>\` runs, stdin "null"`,
    once: true,
  },
  {
    name: "spawn_piped_mmap64k",
    specs: ["--spawn", String(SPAWNS), "--stdin", "piped"],
    what: `spawn_piped with MALLOC_MMAP_THRESHOLD_=65536`,
    env: MMAP_64K,
    once: true,
  },
  {
    name: "spawn_null_mmap64k",
    specs: ["--spawn", String(SPAWNS), "--stdin", "null"],
    what: `spawn_null with MALLOC_MMAP_THRESHOLD_=65536`,
    env: MMAP_64K,
    once: true,
  },
];

interface ProbeResult {
  rss: number;
  anon: number;
  file: number;
  heapTotal: number;
  heapUsed: number;
}

async function probe(
  ctx: BenchContext,
  specs: string[],
  env: Record<string, string> = {},
): Promise<ProbeResult> {
  const { stdout } = await ctx.runner.run([
    "env",
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Deno.execPath(),
    "run",
    "-A",
    "--quiet",
    PROBE,
    ...specs,
  ]);
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as ProbeResult;
}

const mib = (b: number) => b / MiB;
const f1 = (b: number) => mib(b).toFixed(1);

/** A fresh daemon: RSS idle, then with `PODS` pods. `env` is added to the daemon's environment. */
async function liveDaemon(
  ctx: BenchContext,
  o: { tag: string; env?: Record<string, string>; variant: PluginVariant },
): Promise<{ idle: Rss; loaded: Rss }> {
  const { variant } = o;
  const pods = Array.from({ length: PODS }, (_, i) => `${ctx.prefix}-${o.tag}p${i}`);
  let cluster: Cluster | undefined;
  try {
    cluster = await startCluster(ctx, o.tag, { jobLatencyMs: 200, poolSize: 3, env: o.env });
    const node = cluster.nodes[0];
    await node.waitReady({ free: 3 });
    const pid = await daemonPid(node);
    await new Promise((r) => setTimeout(r, 500));
    const idle = await readRss(pid);
    await addNamespaces(ctx.runner, pods, { lo: false });
    await mapLimit(pods, 4, async (p) =>
      mustSucceed(
        "ADD",
        await hostnicCall(node, { command: "ADD", containerId: p, podNetns: p, variant }),
      ));
    await new Promise((r) => setTimeout(r, 1000));
    const loaded = await readRss(pid);
    await mapLimit(
      pods,
      4,
      (p) => hostnicCall(node, { command: "DEL", containerId: p, podNetns: p, variant }),
    );
    return { idle, loaded };
  } finally {
    await cluster?.close();
    await removeNamespaces(ctx.runner, pods);
  }
}

export const rssProfile: Benchmark = {
  name: "rss_profile",
  description: "resident memory of deno + each npm module of the daemon, and of a live daemon",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const full = ctx.mode === "full";
    const reps = full ? 3 : 1;
    const probes = PROBES.filter((p) => full || p.quick);
    ctx.log(`rss_profile: ${probes.length} import probes × ${reps}`);
    const figures: Figure[] = [];
    let bare: ProbeResult | undefined;
    for (const p of probes) {
      ctx.signal.throwIfAborted();
      const runs: ProbeResult[] = [];
      for (let i = 0; i < (p.once ? 1 : reps); i++) runs.push(await probe(ctx, p.specs, p.env));
      const med = (k: keyof ProbeResult) => median(runs.map((r) => r[k]));
      const r: ProbeResult = {
        rss: med("rss"),
        anon: med("anon"),
        file: med("file"),
        heapTotal: med("heapTotal"),
        heapUsed: med("heapUsed"),
      };
      bare ??= r;
      const delta = p.name === "deno" ? "" : ` (+${f1(r.rss - bare.rss)} over deno)`;
      figures.push(figure({
        name: `rss.import.${p.name}`,
        value: mib(r.rss),
        unit: "MiB",
        note: `${p.what}${delta}; anon ${f1(r.anon)}, file ${f1(r.file)}, V8 heap ${
          f1(r.heapUsed)
        } used of ${f1(r.heapTotal)}`,
      }));
    }
    if (!full) return figures; // the churn module reports the live daemon in the quick mode
    ctx.log(`rss_profile: a fresh daemon, idle and with ${PODS} pods, with 3 memory settings`);
    const split = (r: Rss) => `anon ${f1(r.anon)}, file ${f1(r.file)}`;
    const plugin = await installPlugin(ctx);
    const variants = [
      { tag: "r", name: "daemon", env: {} },
      { tag: "t", name: "daemon_mmap64k", env: MMAP_64K },
      { tag: "v", name: "daemon_tuned", env: TUNED_MEMORY },
    ];
    for (const v of variants) {
      const live = await liveDaemon(ctx, { tag: v.tag, env: v.env, variant: plugin });
      const how = Object.keys(v.env).length ? `${envText(v.env)}; ` : "";
      figures.push(
        figure({
          name: `rss.${v.name}.idle`,
          value: mib(live.idle.rss),
          unit: "MiB",
          note: `fresh daemon, ready, 3 free NICs; ${how}${split(live.idle)}`,
        }),
        figure({
          name: `rss.${v.name}.60pods`,
          value: mib(live.loaded.rss),
          unit: "MiB",
          target: { op: "<=", value: 120, of: "value" },
          note: `fresh daemon after ${PODS} ADDs; ${how}${split(live.loaded)}; peak ${
            f1(live.loaded.hwm)
          }`,
        }),
      );
    }
    return figures;
  },
};
