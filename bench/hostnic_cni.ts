/**
 * `hostnic_cni`: warm-pool ADD and DEL latency of hostnic's plugin, against Debian's `bridge` +
 * `host-local` measured in the same benchmark, interleaved round by round.
 *
 * Both sides go through `addDelLatency` (bench/baseline_cni.ts): one process per call, timed from
 * spawn to exit, inside a node namespace via nsenter, one untimed warm-up ADD/DEL per round, then
 * k timed ADDs and k timed DELs on fresh pod namespaces (quick 2 rounds of 15, full 8 of 25).
 * Rounds alternate their order (bridge, hostnic, hostnic_nm / reversed) so load drifting during
 * the run weighs on every side alike.
 *
 * hostnic's node is a real daemon on the simulator, configured so that the timed region contains
 * no cloud work at all: poolLow 1, poolHigh 63 (no trimming), `ipCooldown` 0 when the daemon has
 * that key (a released NIC is ready again at once), and an untimed pre-warm (k+1 pods ADDed 8 at a
 * time and DELed) that grows the pool to k+1 free NICs. Each round waits, untimed, until k+1 NICs
 * are ready. The IaaS calls counted during the timed rounds are printed (expected: none).
 *
 * `hostnic` is the plugin as a node runs it: the shim `hostnic install` writes (bench/lib/
 * plugin.ts); `hostnic_nm` is `deno run -A --node-modules-dir=manual main.ts`, for comparison.
 * Each round also times, with `CNI_COMMAND=VERSION`, the plugin's start-up alone and the same shim
 * on an empty script, and reads from the daemon's `/metrics` its own time per request
 * (`hostnic_cni_request_duration_seconds`) and the processes it started per ADD and per DEL
 * (`hostnic_commands_total`, scraped before the ADDs, between ADDs and DELs, and after). Every
 * call's CPU comes from this process's reaped-children times (the calls run one at a time).
 *
 * Then 16 loops of ADD → DEL run at once (3 pods each) on the same node: DEL p50 there against
 * the single DEL above shows whether DELs of different pods wait for each other.
 */
import { inNetns } from "../lib/linux/exec.ts";
import {
  addDelLatency,
  bridgeConf,
  CNI_BIN_DIR,
  cniEnv,
  type CniLoopTimes,
  emptyLoopTimes,
  timeCniCall,
} from "./baseline_cni.ts";
import type { BenchContext, Benchmark } from "./lib/context.ts";
import { type Figure, figure } from "./lib/figure.ts";
import { addNamespaces, removeNamespaces } from "./lib/netns.ts";
import { parallelDels, phaseSplit } from "./hostnic_phases.ts";
import { mapLimit } from "./lib/parallel.ts";
import { startWaitServer } from "./lib/wait_floor.ts";
import { cpuBetween, readChildCpu } from "./lib/rusage.ts";
import { histogramMeanBetween, type Sample, sumOf } from "./lib/prom.ts";
import { mean, median, summarize } from "./lib/stats.ts";
import {
  type ClusterNode,
  countersDelta,
  formatCounts,
  hostnicCall,
  type InstalledPlugin,
  installPlugin,
  mustSucceed,
  noIpCooldown,
  pluginArgv,
  type PluginVariant,
  readyNics,
  scrapeMetrics,
  startCluster,
  waitPool,
} from "./lib/testbed.ts";

/** Timed ADDs (and DELs) per round: full 8 × 25 = 200 runs, quick 2 × 15 = 30. */
const ROUND = 25;
const QUICK_ROUND = 15;
/** VERSION calls (and empty-script calls) per round, for the start-up and CPU baselines. */
const VERSION_RUNS = 12;
const CNI_HIST = "hostnic_cni_request_duration_seconds";
const SPAWNS = "hostnic_commands_total";
/** The parallel DEL loops: 16 loops of ADD → DEL, `LOOP_PODS` pods each. */
const LOOPS = 16;
const LOOP_PODS = 3;

type Side = "bridge" | "hostnic" | "hostnic_nm";
/** Pod namespace names: `<prefix>-w<tag><i>`. */
const TAG: Record<Side, string> = { bridge: "b", hostnic: "h", hostnic_nm: "m" };

/** The timed calls (CPU exact and in ticks, as `addDelLatency` gives them) and the rest. */
interface Samples extends CniLoopTimes {
  version: number[];
  versionCpu: number[];
  versionTicks: number[];
  emptyCpu: number[];
  /** CPU of the wait-floor probe waiting the daemon's mean ADD / DEL time (bench/lib/wait_floor.ts). */
  floorAddCpu: number[];
  floorDelCpu: number[];
  /** VERSION of the installed shim on an empty script (installed side only). */
  empty: number[];
  daemonAdd: number[];
  daemonDel: number[];
  /** Processes the daemon started, summed over the timed ADDs / DELs, and their counts. */
  spawns: { add: number; del: number; adds: number; dels: number };
  iaas: Record<string, number>;
}

function emptySamples(): Samples {
  return {
    ...emptyLoopTimes(),
    version: [],
    versionCpu: [],
    versionTicks: [],
    emptyCpu: [],
    floorAddCpu: [],
    floorDelCpu: [],
    empty: [],
    daemonAdd: [],
    daemonDel: [],
    spawns: { add: 0, del: 0, adds: 0, dels: 0 },
    iaas: {},
  };
}

/** Times and CPU (ms) of `CNI_COMMAND=VERSION` calls with `argv`, one at a time. */
async function versionTimes(
  argv: readonly string[],
  runs: number,
  // The wait-floor probe reads its socket from stdin; CNI_COMMAND is what makes the shim run it.
  call: { env: Record<string, string>; stdin: string } = {
    env: cniEnv({ command: "VERSION" }),
    stdin: "",
  },
): Promise<{ ms: number[]; cpu: number[]; ticks: number[] }> {
  const ms: number[] = [];
  const cpu: number[] = [];
  const ticks: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = await readChildCpu();
    const r = await timeCniCall(argv, call.env, call.stdin);
    const c = cpuBetween(c0, await readChildCpu());
    cpu.push(c.exact);
    ticks.push(c.ticks);
    if (r.code !== 0) throw new Error(`${argv.at(-1)} exited ${r.code}: ${r.stdout}${r.stderr}`);
    ms.push(r.ms);
  }
  return { ms, cpu, ticks };
}

/**
 * Grows the pool to `n` NICs an ADD can take: `n` pods ADDed at once (8 plugin processes at a
 * time) and DELed again, untimed. With poolHigh 63 nothing is trimmed afterwards.
 */
async function prewarm(
  ctx: BenchContext,
  node: ClusterNode,
  o: { n: number; variant: PluginVariant },
): Promise<void> {
  const pods = Array.from({ length: o.n }, (_, i) => `${ctx.prefix}-wpre${i}`);
  await addNamespaces(ctx.runner, pods, { lo: false });
  try {
    await mapLimit(pods, 8, async (p) =>
      mustSucceed(
        "pre-warm ADD",
        await hostnicCall(node, {
          command: "ADD",
          containerId: p,
          podNetns: p,
          variant: o.variant,
        }),
      ));
    await mapLimit(pods, 8, async (p) =>
      mustSucceed(
        "pre-warm DEL",
        await hostnicCall(node, {
          command: "DEL",
          containerId: p,
          podNetns: p,
          variant: o.variant,
        }),
      ));
  } finally {
    await removeNamespaces(ctx.runner, pods);
  }
}

/** Waits (untimed) until `n` NICs are ready and nothing is in flight. */
async function waitReadyNics(ctx: BenchContext, node: ClusterNode, n: number): Promise<void> {
  await waitPool(
    ctx,
    node,
    (p) => p.ready && p.pending === 0 && p.waiters === 0 && readyNics(p) >= n,
  );
}

/** CPU (ms, exact) of `runs` wait-floor probes whose socket answers after `delayMs`. */
async function waitFloorCpu(
  ctx: BenchContext,
  argv: readonly string[],
  delayMs: number,
  runs: number,
): Promise<number[]> {
  const dir = await ctx.resources.makeTempDir("hbn-floor-");
  await using server = startWaitServer(`${dir}/wait.sock`);
  server.delayMs = delayMs;
  const { cpu } = await versionTimes(argv, runs, {
    env: cniEnv({ command: "ADD" }),
    stdin: server.path,
  });
  if (server.answered !== runs) {
    throw new Error(`wait floor: ${server.answered} of ${runs} answered`);
  }
  return cpu;
}

async function hostnicRound(
  ctx: BenchContext,
  o: {
    node: ClusterNode;
    variant: PluginVariant;
    plugin: InstalledPlugin;
    pods: string[];
    into: Samples;
  },
): Promise<void> {
  const { node, pods, into } = o;
  // Untimed: the pool must hold a NIC for every ADD of the round (warm-up included).
  await waitReadyNics(ctx, node, pods.length);
  const argv = pluginArgv(node, o.variant);
  // VERSION and the empty script, half before the ADDs and half after the DELs: load that drifts
  // during the round weighs on the CPU baseline as on the calls it is the baseline of.
  const baselines = async () => {
    const v = await versionTimes(argv, VERSION_RUNS / 2);
    into.version.push(...v.ms);
    into.versionCpu.push(...v.cpu);
    into.versionTicks.push(...v.ticks);
    if (typeof o.variant === "object") {
      const e = await versionTimes(inNetns([o.plugin.emptyShim], node.netns), VERSION_RUNS / 2);
      into.empty.push(...e.ms);
      into.emptyCpu.push(...e.cpu);
    }
  };
  await baselines();
  const k0 = await node.cluster.counters();
  const conf = JSON.stringify(node.netConf());
  let before: Sample[] = [];
  let mid: Sample[] = [];
  const r = await addDelLatency(ctx, {
    label: `hostnic (${typeof o.variant === "object" ? "installed" : o.variant})`,
    argv,
    conf,
    pods,
    beforeAdds: async () => {
      before = await scrapeMetrics(ctx, node);
    },
    beforeDels: async () => {
      mid = await scrapeMetrics(ctx, node);
    },
  });
  const after = await scrapeMetrics(ctx, node);
  const k1 = await node.cluster.counters();
  await baselines();
  into.add.push(...r.add);
  into.del.push(...r.del);
  into.addCpu.push(...r.addCpu);
  into.delCpu.push(...r.delCpu);
  into.addTicks.push(...r.addTicks);
  into.delTicks.push(...r.delTicks);
  const dAdd = histogramMeanBetween(before, mid, CNI_HIST, { command: "ADD" });
  const dDel = histogramMeanBetween(mid, after, CNI_HIST, { command: "DEL" });
  if (dAdd !== undefined) into.daemonAdd.push(dAdd * 1000);
  if (dDel !== undefined) into.daemonDel.push(dDel * 1000);
  if (typeof o.variant === "object" && dAdd !== undefined && dDel !== undefined) {
    const probe = inNetns([o.plugin.waitShim], node.netns);
    into.floorAddCpu.push(...await waitFloorCpu(ctx, probe, dAdd * 1000, VERSION_RUNS / 2));
    into.floorDelCpu.push(...await waitFloorCpu(ctx, probe, dDel * 1000, VERSION_RUNS / 2));
  }
  into.spawns.add += sumOf(mid, SPAWNS) - sumOf(before, SPAWNS);
  into.spawns.del += sumOf(after, SPAWNS) - sumOf(mid, SPAWNS);
  into.spawns.adds += r.add.length;
  into.spawns.dels += r.del.length;
  for (const [a, n] of Object.entries(countersDelta(k0, k1).by)) {
    into.iaas[a] = (into.iaas[a] ?? 0) + n;
  }
}

interface LoopSamples {
  add: number[];
  del: number[];
  daemonAdd?: number;
  daemonDel?: number;
}

/**
 * `LOOPS` loops at once, each ADDing and then DELing `LOOP_PODS` pods one after the other (fresh
 * container ids, one pod namespace per loop), with the installed plugin.
 */
async function parallelLoops(
  ctx: BenchContext,
  o: { node: ClusterNode; variant: PluginVariant },
): Promise<LoopSamples> {
  const { node } = o;
  await waitReadyNics(ctx, node, LOOPS);
  const nss = Array.from({ length: LOOPS }, (_, i) => `${ctx.prefix}-wl${i}`);
  await addNamespaces(ctx.runner, nss, { lo: false });
  const out: LoopSamples = { add: [], del: [] };
  try {
    const before = await scrapeMetrics(ctx, node);
    await Promise.all(nss.map(async (ns, i) => {
      for (let j = 0; j < LOOP_PODS; j++) {
        ctx.signal.throwIfAborted();
        const id = `${ns}-${j}`;
        const call = async (command: "ADD" | "DEL") =>
          mustSucceed(
            `loop ${i} ${command}`,
            await hostnicCall(node, { command, containerId: id, podNetns: ns, variant: o.variant }),
          ).ms;
        out.add.push(await call("ADD"));
        out.del.push(await call("DEL"));
      }
    }));
    const after = await scrapeMetrics(ctx, node);
    const a = histogramMeanBetween(before, after, CNI_HIST, { command: "ADD" });
    const d = histogramMeanBetween(before, after, CNI_HIST, { command: "DEL" });
    if (a !== undefined) out.daemonAdd = a * 1000;
    if (d !== undefined) out.daemonDel = d * 1000;
  } finally {
    await removeNamespaces(ctx.runner, nss);
  }
  return out;
}

const avg = (xs: number[]) => xs.length ? mean(xs) : NaN;

function installedFigures(
  s: Samples,
  bridge: { add: number; del: number },
  loops: LoopSamples,
  plugin: InstalledPlugin,
): Figure[] {
  const a = summarize(s.add);
  const d = summarize(s.del);
  const v = summarize(s.version);
  const e = summarize(s.empty);
  const dAdd = avg(s.daemonAdd);
  const dDel = avg(s.daemonDel);
  const cpuV = avg(s.versionCpu);
  const runs = s.add.length;
  const split = (p50: number, daemon: number) =>
    `p50 = start-up ${v.p50.toFixed(0)} (VERSION p50) + request ${
      (p50 - v.p50).toFixed(0)
    }, of which the daemon's own ≈ ${daemon.toFixed(0)} (mean)`;
  const l = { add: summarize(loops.add), del: summarize(loops.del) };
  return [
    figure({
      name: "warm.hostnic.add.p50",
      value: a.p50,
      unit: "ms",
      baseline: { name: "warm.empty.p50+warm.bridge.add.p50", value: e.p50 + bridge.add },
      target: { op: "<=", value: 1, of: "ratio" },
      note: `${plugin.runLine} (installed shim), n=${runs}; ${split(a.p50, dAdd)}; empty-script ` +
        `start-up ${e.p50.toFixed(1)}, bridge ADD ${bridge.add.toFixed(1)}; IaaS calls in the ` +
        `timed rounds: ${formatCounts(s.iaas)}`,
    }),
    figure({ name: "warm.hostnic.add.p99", value: a.p99, unit: "ms" }),
    figure({
      name: "warm.hostnic.del.p50",
      value: d.p50,
      unit: "ms",
      baseline: { name: "warm.bridge.del.p50", value: bridge.del },
      target: { op: "<=", value: 1.5, of: "ratio" },
      note: split(d.p50, dDel),
    }),
    figure({ name: "warm.hostnic.del.p99", value: d.p99, unit: "ms" }),
    figure({
      name: "warm.hostnic.startup.p50",
      value: v.p50,
      unit: "ms",
      baseline: { name: "warm.empty.p50", value: e.p50 },
      note: `CNI_COMMAND=VERSION through the installed shim, n=${s.version.length}; the empty ` +
        `script through the same shim p50 ${e.p50.toFixed(1)} ms`,
    }),
    figure({
      name: "warm.hostnic.cpu.version",
      value: cpuV,
      unit: "ms",
      note: `CPU (user + system) of one VERSION process, mean of ${s.versionCpu.length} (exact, ` +
        `getrusage; median ${median(s.versionCpu).toFixed(2)}; 10 ms ticks: ` +
        `${avg(s.versionTicks).toFixed(1)}); the empty script through the same shim ` +
        `${avg(s.emptyCpu).toFixed(2)}`,
    }),
    // Issue 16's target (1.2) and issue 22's (1.05) on the same figures: the plugin's CPU per
    // call beyond a bare start-up.
    ...(["add", "del"] as const).flatMap((verb) =>
      ([["warm.hostnic", 1.2, "issue 16"], ["i22", 1.05, "issue 22"]] as const).map((
        [prefix, max, issue],
      ) => {
        const cpu = verb === "add" ? s.addCpu : s.delCpu;
        const ticks = avg(verb === "add" ? s.addTicks : s.delTicks) / avg(s.versionTicks);
        return figure({
          name: `${prefix}.cpu.${verb}`,
          value: avg(cpu),
          unit: "ms",
          baseline: { name: "warm.hostnic.cpu.version", value: cpuV },
          target: { op: "<=", value: max, of: "ratio" },
          note: `CPU of one ${verb.toUpperCase()} plugin process against one VERSION process, ` +
            `mean of ${cpu.length} (exact, getrusage; ratio of medians ` +
            `${(median(cpu) / median(s.versionCpu)).toFixed(3)}; the old 10 ms-tick means: ` +
            `ratio ${ticks.toFixed(2)}; ${issue})`,
        });
      })
    ),
    // Issue 22: the same CPU against the floor of a call that waits as long for its daemon.
    ...(["add", "del"] as const).map((verb) => {
      const cpu = verb === "add" ? s.addCpu : s.delCpu;
      const floor = verb === "add" ? s.floorAddCpu : s.floorDelCpu;
      return figure({
        name: `i22.cpu.${verb}.floor`,
        value: avg(cpu),
        unit: "ms",
        baseline: { name: `wait_floor.cpu.${verb}`, value: avg(floor) },
        target: { op: "<=", value: 1.05, of: "ratio" },
        note:
          `${verb.toUpperCase()} CPU against a probe with no hostnic code that starts through ` +
          `the same shim, reads stdin, waits on a unix socket for the daemon's mean ` +
          `${verb.toUpperCase()} time (${(verb === "add" ? dAdd : dDel).toFixed(1)} ms) and ` +
          `writes one line (bench/lib/wait_floor.ts), mean of ${floor.length}; ratio of medians ` +
          `${(median(cpu) / median(floor)).toFixed(3)}; the floor over VERSION: ${
            (avg(floor) / cpuV).toFixed(3)
          }`,
      });
    }),
    // Issue 22: warm DEL against what a plugin that only starts and then does bridge's DEL takes.
    figure({
      name: "i22.warm.del.p50",
      value: d.p50,
      unit: "ms",
      baseline: { name: "warm.empty.p50+warm.bridge.del.p50", value: e.p50 + bridge.del },
      target: { op: "<=", value: 1, of: "ratio" },
      note: `warm DEL p50 against the empty-script start-up ${e.p50.toFixed(1)} + bridge DEL ${
        bridge.del.toFixed(1)
      } (issue 22)`,
    }),
    figure({
      name: "warm.hostnic.daemon_add.mean",
      value: dAdd,
      unit: "ms",
      baseline: { name: "warm.bridge.add.p50", value: bridge.add },
      target: { op: "<=", value: 1, of: "ratio" },
      note: "daemon-side time per ADD (its request histogram) against the whole bridge ADD",
    }),
    figure({
      name: "warm.hostnic.daemon_del.mean",
      value: dDel,
      unit: "ms",
      baseline: { name: "warm.bridge.del.p50", value: bridge.del },
    }),
    figure({
      name: "warm.hostnic.spawns.add",
      value: s.spawns.add / s.spawns.adds,
      unit: "procs",
      target: { op: "<=", value: 2, of: "value" },
      note:
        `processes the daemon started per ADD (hostnic_commands_total over ${s.spawns.adds} ADDs)`,
    }),
    figure({
      name: "warm.hostnic.spawns.del",
      value: s.spawns.del / s.spawns.dels,
      unit: "procs",
      target: { op: "<=", value: 2, of: "value" },
      note: `per DEL (over ${s.spawns.dels} DELs)`,
    }),
    figure({
      name: "warm.hostnic.del16.p50",
      value: l.del.p50,
      unit: "ms",
      baseline: { name: "warm.hostnic.del.p50", value: d.p50 },
      target: { op: "<=", value: 2, of: "ratio" },
      note: `${LOOPS} loops of ADD → DEL at once (${loops.del.length} DELs); ADD p50 in the ` +
        `same loops ${l.add.p50.toFixed(0)} ms; the daemon's own mean there: ADD ${
          loops.daemonAdd?.toFixed(0)
        }, DEL ${loops.daemonDel?.toFixed(0)} ms (single: ${dAdd.toFixed(0)}, ${dDel.toFixed(0)})`,
    }),
    figure({
      name: "warm.hostnic.del16.daemon_del.mean",
      value: loops.daemonDel ?? NaN,
      unit: "ms",
      baseline: { name: "warm.hostnic.daemon_del.mean", value: dDel },
      target: { op: "<=", value: 2, of: "ratio" },
      note: "the daemon's own DEL time in the 16 loops against a single DEL's",
    }),
  ];
}

function nmFigures(s: Samples, bridge: { add: number; del: number }): Figure[] {
  const a = summarize(s.add);
  const d = summarize(s.del);
  const v = summarize(s.version);
  return [
    figure({
      name: "warm.hostnic_nm.add.p50",
      value: a.p50,
      unit: "ms",
      baseline: { name: "warm.bridge.add.p50", value: bridge.add },
      note: `deno run -A --node-modules-dir=manual main.ts, n=${s.add.length}; start-up ${
        v.p50.toFixed(0)
      } (VERSION p50); daemon's own ≈ ${avg(s.daemonAdd).toFixed(0)} (mean)`,
    }),
    figure({
      name: "warm.hostnic_nm.del.p50",
      value: d.p50,
      unit: "ms",
      baseline: { name: "warm.bridge.del.p50", value: bridge.del },
    }),
    figure({ name: "warm.hostnic_nm.startup.p50", value: v.p50, unit: "ms" }),
  ];
}

export const hostnicCni: Benchmark = {
  name: "hostnic_cni",
  description: "warm-pool ADD/DEL of hostnic vs bridge + host-local; spawns, CPU, 16 DEL loops",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const size = ctx.mode === "full" ? ROUND : QUICK_ROUND;
    const rounds = ctx.mode === "full" ? 8 : 2;
    const sides: Side[] = ["bridge", "hostnic", "hostnic_nm"];
    for (const f of ["bridge", "host-local"]) {
      await Deno.stat(`${CNI_BIN_DIR}/${f}`).catch(() => {
        throw new Error(`${CNI_BIN_DIR}/${f} not found; install containernetworking-plugins`);
      });
    }
    const plugin = await installPlugin(ctx);
    const bridgeNode = `${ctx.prefix}-wbnode`;
    const dataDir = await ctx.resources.makeTempDir("hbn-host-local-");
    const samples: Record<Side, Samples> = {
      bridge: emptySamples(),
      hostnic: emptySamples(),
      hostnic_nm: emptySamples(),
    };
    let loops: LoopSamples = { add: [], del: [] };
    const extra: Figure[] = [];
    let cluster;
    let pods: string[] = [];
    try {
      await addNamespaces(ctx.runner, [bridgeNode], { lo: false });
      // poolLow 1, poolHigh 63: once warmed, the pool neither refills nor trims during the rounds.
      cluster = await startCluster(ctx, "w", {
        jobLatencyMs: 200,
        pool: { poolLow: 1, poolHigh: 63, sync: 1, ...noIpCooldown() },
      });
      const node = cluster.nodes[0];
      await prewarm(ctx, node, { n: Math.max(size + 1, LOOPS), variant: plugin });
      ctx.log(
        `hostnic_cni: ${rounds} rounds of ${size} ADDs + ${size} DELs each of ${sides.join(", ")}`,
      );
      for (let r = 0; r < rounds; r++) {
        const order = r % 2 === 0 ? sides : [...sides].reverse();
        for (const side of order) {
          ctx.signal.throwIfAborted();
          const t0 = performance.now();
          pods = Array.from({ length: size + 1 }, (_, i) => `${ctx.prefix}-w${TAG[side]}${i}`);
          await addNamespaces(ctx.runner, pods, { lo: false });
          try {
            if (side === "bridge") {
              const { add, del } = await addDelLatency(ctx, {
                label: "bridge",
                argv: inNetns([`${CNI_BIN_DIR}/bridge`], bridgeNode),
                conf: bridgeConf(dataDir),
                pods,
              });
              samples.bridge.add.push(...add);
              samples.bridge.del.push(...del);
            } else {
              await hostnicRound(ctx, {
                node,
                variant: side === "hostnic" ? plugin : "nm_manual",
                plugin,
                pods,
                into: samples[side],
              });
            }
          } finally {
            await removeNamespaces(ctx.runner, pods);
            pods = [];
          }
          ctx.log(
            `hostnic_cni: round ${r + 1} ${side}: ${
              ((performance.now() - t0) / 1000).toFixed(1)
            } s`,
          );
        }
      }
      ctx.log(`hostnic_cni: ${LOOPS} loops of ${LOOP_PODS} ADD → DEL at once`);
      loops = await parallelLoops(ctx, { node, variant: plugin });
      ctx.log("hostnic_cni: per-phase split (traced VERSION, ADD, DEL)");
      extra.push(...await phaseSplit(ctx, { node, plugin, n: ctx.mode === "full" ? 30 : 10 }));
      ctx.log("hostnic_cni: 16 DELs at once vs 48 VERSION processes at once");
      extra.push(
        await parallelDels(ctx, {
          node,
          plugin,
          rounds: ctx.mode === "full" ? 5 : 3,
          waitReady: (n) => waitReadyNics(ctx, node, n),
        }),
      );
    } finally {
      if (pods.length) await removeNamespaces(ctx.runner, pods);
      await cluster?.close();
      await removeNamespaces(ctx.runner, [bridgeNode]);
      await ctx.resources.removeDir(dataDir);
    }
    const n = samples.bridge.add.length;
    const b = { add: summarize(samples.bridge.add), del: summarize(samples.bridge.del) };
    const base = { add: b.add.p50, del: b.del.p50 };
    return [
      figure({
        name: "warm.bridge.add.p50",
        value: b.add.p50,
        unit: "ms",
        note: `n=${n}, interleaved with hostnic's rounds (the ratios' baseline)`,
      }),
      figure({ name: "warm.bridge.add.p99", value: b.add.p99, unit: "ms" }),
      figure({ name: "warm.bridge.del.p50", value: b.del.p50, unit: "ms" }),
      figure({ name: "warm.bridge.del.p99", value: b.del.p99, unit: "ms" }),
      ...installedFigures(samples.hostnic, base, loops, plugin),
      ...nmFigures(samples.hostnic_nm, base),
      ...extra,
    ];
  },
};
