/**
 * Where a plugin call's time goes (issue 22), measured inside `hostnic_cni` on its node: the
 * per-phase split of VERSION, ADD and DEL through the installed shim, and 16 DELs at once against
 * the CPU floor of 16 × 3 plugin start-ups at once.
 *
 * Per-phase split: each call runs with `HOSTNIC_CNI_TRACE=1`, so the plugin prints the wall clock
 * and its CPU (every thread's schedstat) at each phase mark (lib/cni/trace.ts); the probe shim
 * (bench/lib/plugin.ts) prints the same at the first statement of a script that does nothing.
 * With the spawn and exit times seen here (epoch ms), a call splits into:
 *
 *   runtime start    spawn → the probe's first statement (the probe's own run, same shim)
 *   module load      the rest of spawn → the plugin's `main` (loading and evaluating the bundle)
 *   read stdin       `main` → `read`
 *   parse + validate `read` → `parsed` → `rpc-start` (env, config, the request, the netns stat)
 *   socket round trip `rpc-start` → `rpc-done` (connect, request, the daemon's work, the reply)
 *   encode + write   `rpc-done` (VERSION: `read`) → `written`
 *   exit             `written` → the exit seen here
 *
 * CPU per phase is the difference of the marks' CPU (the probe's for runtime start); exit has no
 * CPU figure (nothing can be read after `written`). Tracing itself reads /proc at each mark, and
 * /proc brings a running thread's run time up to date only when it is switched out, so CPU lands
 * in the phase that first waits (the stdin read gets the tail of start-up).
 */
import { netnsPath } from "../lib/linux/exec.ts";
import { TRACE_PREFIX, type TraceMark } from "../lib/cni/trace.ts";
import { cniEnv } from "./baseline_cni.ts";
import type { BenchContext } from "./lib/context.ts";
import { type Figure, figure } from "./lib/figure.ts";
import { addNamespaces, removeNamespaces } from "./lib/netns.ts";
import { mapLimit } from "./lib/parallel.ts";
import { summarize } from "./lib/stats.ts";
import {
  type ClusterNode,
  hostnicCall,
  type InstalledPlugin,
  mustSucceed,
  pluginArgv,
} from "./lib/testbed.ts";
import { inNetns } from "../lib/linux/exec.ts";

const dec = new TextDecoder();
const enc = new TextEncoder();
const epoch = () => performance.timeOrigin + performance.now();

interface Traced {
  spawn: number;
  exit: number;
  marks: TraceMark[];
}

/** One call with tracing on; the marks from its stderr line. */
async function tracedCall(argv: readonly string[], env: Record<string, string>, stdin: string) {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: { ...env, HOSTNIC_CNI_TRACE: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const spawn = epoch();
  const p = child.spawn();
  const w = p.stdin.getWriter();
  await w.write(enc.encode(stdin)).catch(() => {});
  await w.close().catch(() => {});
  const out = await p.output();
  const exit = epoch();
  const stderr = dec.decode(out.stderr);
  const line = stderr.split("\n").find((l) => l.startsWith(TRACE_PREFIX));
  if (out.code !== 0 || !line) {
    throw new Error(`traced call exited ${out.code}: ${dec.decode(out.stdout)}${stderr}`);
  }
  const marks = (JSON.parse(line.slice(TRACE_PREFIX.length)) as { marks: TraceMark[] }).marks;
  return { spawn, exit, marks } satisfies Traced;
}

type Phase = { name: string; wall: number[]; cpu: number[] };

function at(t: Traced, phase: string): TraceMark {
  const m = t.marks.find((x) => x.phase === phase);
  if (!m) throw new Error(`no "${phase}" mark in ${JSON.stringify(t.marks)}`);
  return m;
}

/** The per-phase samples of one verb's traced calls, given the probe's runs. */
function phasesOf(calls: Traced[], probes: Traced[], verb: "VERSION" | "ADD" | "DEL"): Phase[] {
  const probeWall = summarize(probes.map((p) => at(p, "main").t - p.spawn)).p50;
  const probeCpu = summarize(probes.map((p) => at(p, "main").cpu)).p50;
  const seq = verb === "VERSION"
    ? [["read stdin", "main", "read"], ["encode + write", "read", "written"]]
    : [
      ["read stdin", "main", "read"],
      ["parse + validate", "read", "rpc-start"],
      ["socket round trip", "rpc-start", "rpc-done"],
      ["encode + write", "rpc-done", "written"],
    ];
  const phases: Phase[] = [
    { name: "runtime start", wall: [probeWall], cpu: [probeCpu] },
    {
      name: "module load",
      wall: calls.map((c) => at(c, "main").t - c.spawn - probeWall),
      cpu: calls.map((c) => at(c, "main").cpu - probeCpu),
    },
  ];
  for (const [name, from, to] of seq) {
    phases.push({
      name,
      wall: calls.map((c) => at(c, to).t - at(c, from).t),
      cpu: calls.map((c) => at(c, to).cpu - at(c, from).cpu),
    });
  }
  phases.push({
    name: "exit",
    wall: calls.map((c) => c.exit - at(c, "written").t),
    cpu: [],
  });
  return phases;
}

const med = (xs: number[]) => xs.length ? summarize(xs).p50 : NaN;

function phaseFigures(verb: string, phases: Phase[], total: number[], n: number): Figure[] {
  const wall = phases.map((p) => `${p.name} ${med(p.wall).toFixed(1)}`).join(", ");
  const cpu = phases.filter((p) => p.cpu.length).map((p) => `${p.name} ${med(p.cpu).toFixed(1)}`)
    .join(", ");
  const ours = phases.filter((p) => p.name !== "runtime start" && p.name !== "module load")
    .reduce((a, p) => a + (p.cpu.length ? med(p.cpu) : 0), 0);
  return [
    figure({
      name: `phases.${verb}.wall`,
      value: med(total),
      unit: "ms",
      note: `p50 of ${n} traced calls, per phase (ms, medians): ${wall}`,
    }),
    figure({
      name: `phases.${verb}.cpu`,
      value: phases.reduce((a, p) => a + (p.cpu.length ? med(p.cpu) : 0), 0),
      unit: "ms",
      note: `CPU by phase (ms, medians, all threads): ${cpu}; after module load ${ours.toFixed(1)}`,
    }),
  ];
}

/** The per-phase split of VERSION, ADD and DEL (`n` calls each) on `node`'s pods. */
export async function phaseSplit(
  ctx: BenchContext,
  o: { node: ClusterNode; plugin: InstalledPlugin; n: number },
): Promise<Figure[]> {
  const { node, plugin, n } = o;
  const argv = pluginArgv(node, plugin);
  const conf = JSON.stringify(node.netConf());
  const probes: Traced[] = [];
  const version: Traced[] = [];
  const add: Traced[] = [];
  const del: Traced[] = [];
  const pods = Array.from({ length: n }, (_, i) => `${ctx.prefix}-wq${i}`);
  await addNamespaces(ctx.runner, pods, { lo: false });
  try {
    for (let i = 0; i < n; i++) {
      ctx.signal.throwIfAborted();
      const env = cniEnv({ command: "VERSION" });
      probes.push(await tracedCall(inNetns([plugin.probeShim], node.netns), env, ""));
      version.push(await tracedCall(argv, env, ""));
      const podEnv = (command: "ADD" | "DEL") => ({
        ...cniEnv({ command, containerId: pods[i], netns: netnsPath(pods[i]), ifName: "eth0" }),
        CNI_ARGS: `K8S_POD_NAMESPACE=bench;K8S_POD_NAME=${pods[i]}`,
      });
      add.push(await tracedCall(argv, podEnv("ADD"), conf));
      del.push(await tracedCall(argv, podEnv("DEL"), conf));
    }
  } finally {
    await removeNamespaces(ctx.runner, pods);
  }
  const total = (xs: Traced[]) => xs.map((x) => x.exit - x.spawn);
  return [
    ...phaseFigures("version", phasesOf(version, probes, "VERSION"), total(version), n),
    ...phaseFigures("add", phasesOf(add, probes, "ADD"), total(add), n),
    ...phaseFigures("del", phasesOf(del, probes, "DEL"), total(del), n),
  ];
}

/** Wall time from the first spawn to the last exit of `calls` started at once. */
async function allAtOnce(calls: (() => Promise<unknown>)[]): Promise<number> {
  const t0 = performance.now();
  await Promise.all(calls.map((c) => c()));
  return performance.now() - t0;
}

/**
 * 16 DELs started at once (16 pods ADDed before, 8 at a time, untimed), `rounds` times, against
 * 16 × 3 VERSION processes started at once: the CPU floor of a DEL is about three process
 * start-ups (the plugin and the daemon's commands) on a machine whose cores are all busy.
 */
export async function parallelDels(
  ctx: BenchContext,
  o: {
    node: ClusterNode;
    plugin: InstalledPlugin;
    rounds: number;
    waitReady: (n: number) => Promise<void>;
  },
): Promise<Figure> {
  const { node, plugin } = o;
  const N = 16;
  const dels: number[] = [];
  const floors: number[] = [];
  for (let r = 0; r < o.rounds; r++) {
    ctx.signal.throwIfAborted();
    await o.waitReady(N);
    const pods = Array.from({ length: N }, (_, i) => `${ctx.prefix}-wd${i}`);
    await addNamespaces(ctx.runner, pods, { lo: false });
    try {
      const call = (command: "ADD" | "DEL", p: string) => async () =>
        mustSucceed(
          `parallel ${command}`,
          await hostnicCall(node, {
            command,
            containerId: `${p}-${r}`,
            podNetns: p,
            variant: plugin,
          }),
        );
      await mapLimit(pods, 8, (p) => call("ADD", p)());
      dels.push(await allAtOnce(pods.map((p) => call("DEL", p))));
    } finally {
      await removeNamespaces(ctx.runner, pods);
    }
    floors.push(
      await allAtOnce(
        Array.from(
          { length: N * 3 },
          () => async () =>
            mustSucceed(
              "VERSION",
              await hostnicCall(node, { command: "VERSION", variant: plugin }),
            ),
        ),
      ),
    );
  }
  const d = med(dels);
  const f = med(floors);
  return figure({
    name: "i22.del16.wall",
    value: d,
    unit: "ms",
    baseline: { name: "i22.version48.wall", value: f },
    target: { op: "<=", value: 1.2, of: "ratio" },
    note: `16 DELs started at once, first spawn → last exit, median of ${o.rounds} rounds (${
      dels.map((x) => x.toFixed(0)).join(" ")
    }); 48 VERSION processes at once: ${floors.map((x) => x.toFixed(0)).join(" ")} ms`,
  });
}
