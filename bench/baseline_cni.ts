/**
 * The CNI baselines, measured the way kubelet's runtimes call plugins: one process per call,
 * config on stdin, CNI_* in the environment (on top of the caller's own, as libcni does).
 *
 * - `baseline_cni`: ADD and DEL latency of Debian's reference `bridge` plugin with `host-local`
 *   IPAM (/usr/lib/cni), each call on a fresh pod namespace created before the timed region.
 *   The plugin runs inside a "node" namespace of ours (via nsenter, ~1 ms, paid by every plugin
 *   timed with `timeCniCall`) so its bridge and host veths never touch the machine's own
 *   namespace. One warm-up ADD/DEL creates the bridge first, like a node that already has pods.
 * - `spawn`: the fixed start-up cost of a plugin process, `deno run -A main.ts` vs the Go
 *   `bridge` binary, both with CNI_COMMAND=VERSION (hyperfine when installed, else our loop).
 *
 * `timeCniCall` is the one timer for every plugin and `addDelLatency` the one ADD/DEL loop: the
 * hostnic benchmarks call them with hostnic's argv (`hostnicPluginArgv()`, behind the same
 * nsenter) so both sides of a ratio are measured identically.
 */
import { inNetns, netnsPath } from "../lib/linux/exec.ts";
import type { BenchContext, Benchmark } from "./lib/context.ts";
import { type Figure, figure } from "./lib/figure.ts";
import { addNamespaces, removeNamespaces } from "./lib/netns.ts";
import { installPlugin } from "./lib/plugin.ts";
import { cpuBetween, readChildCpu } from "./lib/rusage.ts";
import { summarize } from "./lib/stats.ts";

export const CNI_BIN_DIR = "/usr/lib/cni";

export interface CniCallResult {
  /** Wall time of the plugin process: spawn → stdin written → exit and output read. */
  ms: number;
  code: number;
  stdout: string;
  stderr: string;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * Runs one plugin call and times the process. `argv` is the whole command (e.g.
 * `["/usr/lib/cni/bridge"]`, `["deno", "run", "-A", "main.ts"]`, or either behind `nsenter`);
 * `env` is added to this process's environment.
 */
export async function timeCniCall(
  argv: readonly string[],
  env: Record<string, string>,
  stdin: string,
): Promise<CniCallResult> {
  const cmd = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const input = encoder.encode(stdin);
  const t0 = performance.now();
  const child = cmd.spawn();
  const w = child.stdin.getWriter();
  await w.write(input).catch(() => {}); // a plugin may exit without reading; its status says why
  await w.close().catch(() => {});
  const out = await child.output();
  const ms = performance.now() - t0;
  return {
    ms,
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/** The CNI_* environment of one call. */
export function cniEnv(o: {
  command: "ADD" | "DEL" | "CHECK" | "VERSION";
  containerId?: string;
  netns?: string;
  ifName?: string;
  path?: string;
}): Record<string, string> {
  const env: Record<string, string> = { CNI_COMMAND: o.command, CNI_PATH: o.path ?? CNI_BIN_DIR };
  if (o.containerId !== undefined) env.CNI_CONTAINERID = o.containerId;
  if (o.netns !== undefined) env.CNI_NETNS = o.netns;
  if (o.ifName !== undefined) env.CNI_IFNAME = o.ifName;
  return env;
}

/** argv that runs hostnic's plugin: `deno run -A <repo>/main.ts`, or a compiled binary. */
export function hostnicPluginArgv(o: { binary?: string } = {}): string[] {
  if (o.binary) return [o.binary];
  return [Deno.execPath(), "run", "-A", new URL("../main.ts", import.meta.url).pathname];
}

/** Throws with the plugin's own CNI error when a call failed. */
function requireOk(what: string, r: CniCallResult): void {
  if (r.code === 0) return;
  throw new Error(
    `${what} exited ${r.code}: ${(r.stdout.trim() || r.stderr.trim()).slice(0, 300)}`,
  );
}

async function requireFile(path: string, hint: string): Promise<void> {
  try {
    await Deno.stat(path);
  } catch {
    throw new Error(`"${path}" not found; ${hint}`);
  }
}

const INSTALL_PLUGINS = "install Debian's containernetworking-plugins";

/** Wall times and CPU (ms) of the timed calls of `addDelLatency`. */
export interface CniLoopTimes {
  add: number[];
  del: number[];
  addCpu: number[];
  delCpu: number[];
  addTicks: number[];
  delTicks: number[];
}

export function emptyLoopTimes(): CniLoopTimes {
  return { add: [], del: [], addCpu: [], delCpu: [], addTicks: [], delTicks: [] };
}

/**
 * The ADD/DEL loop every plugin is measured with: one untimed warm-up ADD+DEL on `pods[0]`
 * (checked to return an IP), then a timed ADD on each of `pods[1..]` in turn, then a timed DEL
 * of each. `pods` are namespace names that exist already (created outside the timed region).
 * `beforeAdds`/`beforeDels` run (untimed) right before each timed phase, e.g. to scrape the
 * daemon's counters. Also returns each call's CPU (user + system of the process, from this
 * process's reaped-children times, the calls running one at a time): `addCpu`/`delCpu` exact
 * (getrusage, µs), `addTicks`/`delTicks` as /proc has them (10 ms ticks, the figures before).
 */
export async function addDelLatency(
  ctx: BenchContext,
  o: {
    label: string;
    argv: readonly string[];
    conf: string;
    pods: readonly string[];
    beforeAdds?: () => Promise<void>;
    beforeDels?: () => Promise<void>;
  },
): Promise<CniLoopTimes> {
  const call = async (command: "ADD" | "DEL", i: number) => {
    const env = cniEnv({
      command,
      containerId: `hbnbench${i}`,
      netns: netnsPath(o.pods[i]),
      ifName: "eth0",
    });
    const c0 = await readChildCpu();
    const r = await timeCniCall(o.argv, env, o.conf);
    const cpu = cpuBetween(c0, await readChildCpu());
    requireOk(`${o.label} ${command} for pod ${i}`, r);
    return { ...r, cpu };
  };
  const first = await call("ADD", 0);
  const result = JSON.parse(first.stdout) as { ips?: { address: string }[] };
  if (!result.ips?.[0]?.address) {
    throw new Error(`${o.label} ADD returned no IP: ${first.stdout.slice(0, 300)}`);
  }
  await call("DEL", 0);
  const out = emptyLoopTimes();
  await o.beforeAdds?.();
  for (let i = 1; i < o.pods.length; i++) {
    ctx.signal.throwIfAborted();
    const r = await call("ADD", i);
    out.add.push(r.ms);
    out.addCpu.push(r.cpu.exact);
    out.addTicks.push(r.cpu.ticks);
  }
  await o.beforeDels?.();
  for (let i = 1; i < o.pods.length; i++) {
    ctx.signal.throwIfAborted();
    const r = await call("DEL", i);
    out.del.push(r.ms);
    out.delCpu.push(r.cpu.exact);
    out.delTicks.push(r.cpu.ticks);
  }
  return out;
}

/** The reference network config: `bridge` with `host-local` IPAM, state under `dataDir`. */
export function bridgeConf(dataDir: string): string {
  return JSON.stringify({
    cniVersion: "1.0.0",
    name: "hbnbench",
    type: "bridge",
    bridge: "cni0",
    isGateway: true,
    ipMasq: false,
    ipam: {
      type: "host-local",
      ranges: [[{ subnet: "10.88.0.0/16" }]],
      routes: [{ dst: "0.0.0.0/0" }],
      dataDir,
    },
  });
}

export const baselineCni: Benchmark = {
  name: "baseline_cni",
  description: "ADD/DEL latency of bridge + host-local (/usr/lib/cni), one process per call",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const runs = ctx.mode === "full" ? 200 : 50;
    const plugin = `${CNI_BIN_DIR}/bridge`;
    await requireFile(plugin, INSTALL_PLUGINS);
    await requireFile(`${CNI_BIN_DIR}/host-local`, INSTALL_PLUGINS);
    const node = `${ctx.prefix}-cnode`;
    const pods = Array.from({ length: runs + 1 }, (_, i) => `${ctx.prefix}-cp${i}`);
    const dataDir = await ctx.resources.makeTempDir("hbn-host-local-");
    try {
      await addNamespaces(ctx.runner, [node, ...pods], { lo: false });
      const conf = bridgeConf(dataDir);
      ctx.log(`baseline_cni: ${runs} ADD then ${runs} DEL of bridge + host-local`);
      const { add, del } = await addDelLatency(ctx, {
        label: "bridge",
        argv: inNetns([plugin], node),
        conf,
        pods,
      });
      const a = summarize(add);
      const d = summarize(del);
      const note = `n=${runs}, fresh pod netns each, plugin in a node netns via nsenter`;
      return [
        figure({ name: "baseline.bridge.add.p50", value: a.p50, unit: "ms", note }),
        figure({ name: "baseline.bridge.add.p99", value: a.p99, unit: "ms" }),
        figure({ name: "baseline.bridge.del.p50", value: d.p50, unit: "ms" }),
        figure({ name: "baseline.bridge.del.p99", value: d.p99, unit: "ms" }),
      ];
    } finally {
      await removeNamespaces(ctx.runner, [...pods, node]);
      await ctx.resources.removeDir(dataDir);
    }
  },
};

// ------------------------------------------------------------------ spawn cost

interface SpawnTimes {
  tool: "hyperfine" | "loop";
  /** Seconds per run, per command label. */
  times: Record<string, number[]>;
}

async function hasHyperfine(ctx: BenchContext): Promise<boolean> {
  try {
    await ctx.runner.run(["hyperfine", "--version"]);
    return true;
  } catch {
    return false;
  }
}

/** `hyperfine -N --warmup 3 --export-json`, times per command in seconds. */
async function hyperfineTimes(
  ctx: BenchContext,
  o: { commands: Record<string, string[]>; runs: number; env: Record<string, string> },
): Promise<SpawnTimes> {
  const dir = await ctx.resources.makeTempDir("hbn-hyperfine-");
  try {
    const file = `${dir}/result.json`;
    const args = ["-N", "--warmup", "3", "--runs", String(o.runs), "--style", "none"];
    args.push("--export-json", file);
    for (const [label, argv] of Object.entries(o.commands)) {
      if (argv.some((a) => /\s/.test(a))) throw new Error(`hyperfine -N cannot quote "${argv}"`);
      args.push("--command-name", label, argv.join(" "));
    }
    const p = ctx.resources.spawn(["hyperfine", ...args], { env: o.env });
    const out = await p.output();
    if (out.code !== 0) {
      throw new Error(`hyperfine exited ${out.code}: ${decoder.decode(out.stderr).trim()}`);
    }
    const report = JSON.parse(await Deno.readTextFile(file)) as {
      results: { command: string; times: number[] }[];
    };
    return {
      tool: "hyperfine",
      times: Object.fromEntries(report.results.map((r) => [r.command, r.times])),
    };
  } finally {
    await ctx.resources.removeDir(dir);
  }
}

/** The fallback: 3 warm-ups each, then alternating timed runs. */
async function loopTimes(
  ctx: BenchContext,
  o: { commands: Record<string, string[]>; runs: number; env: Record<string, string> },
): Promise<SpawnTimes> {
  const times: Record<string, number[]> = {};
  const entries = Object.entries(o.commands);
  for (let i = -3; i < o.runs; i++) {
    ctx.signal.throwIfAborted();
    for (const [label, argv] of entries) {
      const r = await timeCniCall(argv, o.env, "");
      requireOk(`${label} VERSION`, r);
      if (i >= 0) (times[label] ??= []).push(r.ms / 1000);
    }
  }
  return { tool: "loop", times };
}

export const spawnCost: Benchmark = {
  name: "spawn",
  description: "plugin start-up (CNI_COMMAND=VERSION): the installed shim vs an empty script, Go",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const runs = ctx.mode === "full" ? 100 : 30;
    await requireFile(`${CNI_BIN_DIR}/bridge`, INSTALL_PLUGINS);
    const plugin = await installPlugin(ctx);
    const [deno, ...rest] = hostnicPluginArgv();
    const commands = {
      installed: [plugin.shim],
      empty: [plugin.emptyShim],
      hostnic: [deno, ...rest],
      hostnic_nm_manual: [deno, ...rest.slice(0, 2), "--node-modules-dir=manual", ...rest.slice(2)],
      bridge: [`${CNI_BIN_DIR}/bridge`],
    };
    const env = cniEnv({ command: "VERSION" });
    for (const [label, argv] of Object.entries(commands)) {
      requireOk(`${label} VERSION`, await timeCniCall(argv, env, ""));
    }
    ctx.log(`spawn: ${runs} VERSION calls each of ${Object.keys(commands).join(", ")}`);
    const measured = await hasHyperfine(ctx)
      ? await hyperfineTimes(ctx, { commands, runs, env })
      : await loopTimes(ctx, { commands, runs, env });
    const ms = (label: string) => summarize(measured.times[label].map((s) => s * 1000));
    const h = ms("hostnic");
    const b = ms("bridge");
    const e = ms("empty");
    const note = `${measured.tool}, n=${runs}, warm-up 3`;
    return [
      figure({ name: "spawn.bridge.version.p50", value: b.p50, unit: "ms", note }),
      figure({
        name: "spawn.empty.p50",
        value: e.p50,
        unit: "ms",
        note: "the installed shim with an empty script instead of the plugin: same flags, same env",
      }),
      figure({
        name: "spawn.hostnic.installed.p50",
        value: ms("installed").p50,
        unit: "ms",
        baseline: { name: "spawn.empty.p50", value: e.p50 },
        target: { op: "<=", value: 1.2, of: "ratio" },
        note: `the shim hostnic install writes: ${plugin.runLine}`,
      }),
      figure({
        name: "spawn.hostnic.version.p50",
        value: h.p50,
        unit: "ms",
        baseline: { name: "spawn.bridge.version.p50", value: b.p50 },
        note: "deno run -A main.ts: Deno start-up, deno.json node_modules check, module graph",
      }),
      figure({ name: "spawn.hostnic.version.p99", value: h.p99, unit: "ms" }),
      figure({
        name: "spawn.hostnic.nm_manual.p50",
        value: ms("hostnic_nm_manual").p50,
        unit: "ms",
        baseline: { name: "spawn.bridge.version.p50", value: b.p50 },
        note: "deno run -A --node-modules-dir=manual main.ts",
      }),
    ];
  },
};
