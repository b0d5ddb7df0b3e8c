/**
 * `hostnic_churn`: sustained pod churn on one node, then the daemon's memory with 60 pods.
 *
 * Churn: `WORKERS` loops, each ADDing a pod and DELing it again as soon as the plugin answers
 * (every pod a fresh container id in the loop's own namespace). The node runs `PoolSize 3` with
 * the daemon's other defaults (its IP cooldown included) and L = 200 ms. The warm-up lasts at
 * least 5 s (full 10 s) and then until the pool has settled — its size unchanged with nothing
 * attaching for 5 s — or 30 s (full 90 s) have passed; then a measured window of 10 s (full
 * 60 s) between two snapshots. Figures over the window: pods per second (a pod = one ADD and its
 * DEL), IaaS calls per pod (the simulator's counters), and the CPU time per pod of each party —
 * the plugin processes (the benchmark's reaped children), the daemon, the commands the daemon
 * runs (ip, iptables, sysctl: its reaped children) and the simulator — which is what bounds the
 * rate on a machine with two cores.
 *
 * RSS: the daemon's resident memory from /proc (`VmRSS`, peak `VmHWM`) when idle before the
 * churn and with 60 pods ADDed (4 at a time) after it, plus V8's heap as its /metrics report it.
 * The full mode repeats the churn with `ipCooldown` 0, and with the daemon's memory settings
 * changed through its environment: `MALLOC_MMAP_THRESHOLD_=65536` (glibc), then that plus
 * `DENO_V8_FLAGS=--max-semi-space-size=1` (V8's young generation). The module-by-module attribution is the `rss_profile` module.
 */
import type { PoolView } from "../lib/rpc/api.ts";
import { RPC } from "../lib/rpc/protocol.ts";
import type { BenchContext, Benchmark } from "./lib/context.ts";
import { type Figure, figure, formatNumber } from "./lib/figure.ts";
import { addNamespaces, removeNamespaces } from "./lib/netns.ts";
import { mapLimit } from "./lib/parallel.ts";
import { childCpu, type CpuTimes, MiB, ownCpu, readCpu, readRss, type Rss } from "./lib/procfs.ts";
import { histogramMeanBetween, type Sample, valueOf } from "./lib/prom.ts";
import { rateIn, summarize } from "./lib/stats.ts";
import {
  type Cluster,
  type ClusterNode,
  type Counters,
  countersDelta,
  daemonPid,
  envText,
  formatCounts,
  hostnicCall,
  installPlugin,
  MMAP_64K,
  mustSucceed,
  nodeDaemonEnv,
  noIpCooldown,
  type PluginVariant,
  scrapeMetrics,
  simPid,
  startCluster,
  TUNED_MEMORY,
} from "./lib/testbed.ts";

const WORKERS = 8;
const RSS_PODS = 60;

interface PodDone {
  /** ms since the churn started, when the DEL returned. */
  at: number;
  add: number;
  del: number;
}

interface Snapshot {
  at: number;
  counters: Counters;
  self: CpuTimes;
  daemon: CpuTimes;
  sim: CpuTimes;
  metrics: Sample[];
}

async function snapshot(
  ctx: BenchContext,
  node: ClusterNode,
  pids: { daemon: number; sim: number },
  t0: number,
): Promise<Snapshot> {
  const [counters, self, daemon, sim, metrics] = await Promise.all([
    node.cluster.counters(),
    readCpu("self"),
    readCpu(pids.daemon),
    readCpu(pids.sim),
    scrapeMetrics(ctx, node),
  ]);
  return { at: performance.now() - t0, counters, self, daemon, sim, metrics };
}

/** The pool counts as settled once its size has not changed, with nothing attaching, for this long. */
const STABLE_MS = 5000;

/**
 * Runs the loops: a warm-up that lasts at least `minWarmMs` and then until the pool has settled
 * (or `maxWarmMs` passed), then a measured window of `windowMs` between two snapshots.
 */
async function churn(
  ctx: BenchContext,
  o: {
    node: ClusterNode;
    pids: { daemon: number; sim: number };
    minWarmMs: number;
    maxWarmMs: number;
    windowMs: number;
    variant: PluginVariant;
  },
): Promise<
  {
    done: PodDone[];
    start: Snapshot;
    end: Snapshot;
    first: Snapshot;
    settled: boolean;
    nics: number;
  }
> {
  const { node } = o;
  const spaces = Array.from({ length: WORKERS }, (_, i) => `${ctx.prefix}-hw${i}`);
  await addNamespaces(ctx.runner, spaces, { lo: false });
  const done: PodDone[] = [];
  const t0 = performance.now();
  const since = () => performance.now() - t0;
  let stop = false;
  try {
    const first = await snapshot(ctx, node, o.pids, t0);
    const control = (async () => {
      let total = -1;
      let stableSince = 0;
      let settled = false;
      for (;;) {
        await new Promise((r) => setTimeout(r, 500));
        if (stop) throw new Error("Churn stopped during the warm-up");
        const p = await node.client.call<PoolView>(RPC.adminPool);
        if (p.total !== total || p.pending > 0 || p.waiters > 0) {
          total = p.total;
          stableSince = since();
        }
        settled = since() - stableSince >= STABLE_MS;
        if (since() >= o.maxWarmMs || (since() >= o.minWarmMs && settled)) break;
      }
      const start = await snapshot(ctx, node, o.pids, t0);
      await new Promise((r) => setTimeout(r, o.windowMs));
      const end = await snapshot(ctx, node, o.pids, t0);
      const nics = (await node.client.call<PoolView>(RPC.adminPool)).total;
      return { start, end, settled, nics };
    })().finally(() => stop = true);
    control.catch(() => {}); // awaited below; a failing worker must not leave it unhandled
    await Promise.all(spaces.map(async (ns, w) => {
      try {
        for (let n = 0; !stop; n++) {
          ctx.signal.throwIfAborted();
          const id = `churn${w}x${n}`;
          const add = mustSucceed(
            "churn ADD",
            await hostnicCall(node, {
              command: "ADD",
              containerId: id,
              podNetns: ns,
              variant: o.variant,
            }),
          );
          const del = mustSucceed(
            "churn DEL",
            await hostnicCall(node, {
              command: "DEL",
              containerId: id,
              podNetns: ns,
              variant: o.variant,
            }),
          );
          done.push({ at: since(), add: add.ms, del: del.ms });
        }
      } catch (err) {
        stop = true;
        throw err;
      }
    }));
    return { done, first, ...await control };
  } finally {
    stop = true;
    await removeNamespaces(ctx.runner, spaces);
  }
}

/** CPU ms of one plugin start-up: `CNI_COMMAND=VERSION` processes, from our reaped children. */
async function startupCpu(
  node: ClusterNode,
  o: { runs: number; variant: PluginVariant },
): Promise<number> {
  const runs = o.runs;
  const before = await readCpu("self");
  for (let i = 0; i < runs; i++) {
    mustSucceed("VERSION", await hostnicCall(node, { command: "VERSION", variant: o.variant }));
  }
  const after = await readCpu("self");
  return ((childCpu(after) - childCpu(before)) * 1000) / runs;
}

/** CPU ms per pod of each party between two snapshots. */
function cpuPerPod(a: Snapshot, b: Snapshot, pods: number) {
  const per = (x: number) => (x * 1000) / pods;
  return {
    plugin: per(childCpu(b.self) - childCpu(a.self)),
    daemon: per(ownCpu(b.daemon) - ownCpu(a.daemon)),
    daemonChildren: per(childCpu(b.daemon) - childCpu(a.daemon)),
    // Clamped: float subtraction of equal tick counts can print as "-0".
    sim: Math.max(0, per(ownCpu(b.sim) + childCpu(b.sim) - ownCpu(a.sim) - childCpu(a.sim))),
  };
}

async function rssWith60Pods(
  ctx: BenchContext,
  node: ClusterNode,
  o: { pid: number; variant: PluginVariant },
): Promise<{ rss: Rss; heapUsed?: number; heapTotal?: number }> {
  const { pid, variant } = o;
  const pods = Array.from({ length: RSS_PODS }, (_, i) => `${ctx.prefix}-hr${i}`);
  await addNamespaces(ctx.runner, pods, { lo: false });
  try {
    await mapLimit(pods, 4, async (p) =>
      mustSucceed(
        "ADD",
        await hostnicCall(node, { command: "ADD", containerId: p, podNetns: p, variant }),
      ));
    const view = await node.waitPool((p) => p.inuse >= RSS_PODS);
    if (view.inuse < RSS_PODS) throw new Error(`Only ${view.inuse} pods in use`);
    await new Promise((r) => setTimeout(r, 1000));
    const rss = await readRss(pid);
    const m = await scrapeMetrics(ctx, node);
    const heapUsed = valueOf(m, "hostnic_nodejs_heap_size_used_bytes");
    const heapTotal = valueOf(m, "hostnic_nodejs_heap_size_total_bytes");
    await mapLimit(pods, 4, async (p) =>
      mustSucceed(
        "DEL",
        await hostnicCall(node, { command: "DEL", containerId: p, podNetns: p, variant }),
      ));
    return { rss, heapUsed, heapTotal };
  } finally {
    await removeNamespaces(ctx.runner, pods);
  }
}

const mib = (b: number) => b / MiB;

interface Phases {
  minWarmMs: number;
  maxWarmMs: number;
  windowMs: number;
}

interface ChurnOutcome {
  pods: number;
  rate: number;
  warmS: number;
  windowS: number;
  settled: boolean;
  nics: number;
  calls: { total: number; by: Counters };
  warmCalls: { total: number; by: Counters };
  cpu: ReturnType<typeof cpuPerPod>;
  add: ReturnType<typeof summarize>;
  del: ReturnType<typeof summarize>;
  /** The daemon's own mean time per ADD and DEL in the window (its request histogram), ms. */
  daemonAdd?: number;
  daemonDel?: number;
  idle: Rss;
  afterChurn: Rss;
  /** CPU ms of one plugin process doing nothing but start (VERSION), measured before the churn. */
  startupCpu: number;
  full?: { rss: Rss; heapUsed?: number; heapTotal?: number };
}

/**
 * One node: idle RSS, the churn, then (unless `rss: false`) RSS with 60 pods. `pool` adds config
 * keys; `env` goes to the daemon's (and simulator's) environment.
 */
async function churnNode(
  ctx: BenchContext,
  o: {
    tag: string;
    phases: Phases;
    pool?: Record<string, unknown>;
    env?: Record<string, string>;
    rss?: boolean;
    label: string;
    variant: PluginVariant;
  },
): Promise<ChurnOutcome> {
  let cluster: Cluster | undefined;
  try {
    cluster = await startCluster(ctx, o.tag, {
      jobLatencyMs: 200,
      env: o.env,
      pool: { poolLow: 3, poolHigh: 3, ...o.pool },
    });
    const node = cluster.nodes[0];
    await node.waitReady({ free: 3 });
    const pids = { daemon: await daemonPid(node), sim: simPid(cluster) };
    await new Promise((r) => setTimeout(r, 500));
    const idle = await readRss(pids.daemon);
    const startup = await startupCpu(node, { runs: 20, variant: o.variant });
    const p = o.phases;
    ctx.log(
      `hostnic_churn (${o.label}): ${WORKERS} ADD+DEL loops, warm-up ${p.minWarmMs / 1000}–${
        p.maxWarmMs / 1000
      } s until the pool settles, then ${p.windowMs / 1000} s measured`,
    );
    const r = await churn(ctx, { node, pids, ...p, variant: o.variant });
    const inWindow = r.done.filter((d) => d.at >= r.start.at && d.at < r.end.at);
    if (inWindow.length === 0) throw new Error("No pod completed in the measured window");
    const afterChurn = await readRss(pids.daemon);
    let full: ChurnOutcome["full"];
    if (o.rss !== false) {
      ctx.log(`hostnic_churn (${o.label}): ${RSS_PODS} pods for the RSS reading`);
      full = await rssWith60Pods(ctx, node, { pid: pids.daemon, variant: o.variant });
    }
    return {
      pods: inWindow.length,
      rate: rateIn(r.done, r.start.at, r.end.at),
      warmS: r.start.at / 1000,
      windowS: (r.end.at - r.start.at) / 1000,
      settled: r.settled,
      nics: r.nics,
      calls: countersDelta(r.start.counters, r.end.counters),
      warmCalls: countersDelta(r.first.counters, r.start.counters),
      cpu: cpuPerPod(r.start, r.end, inWindow.length),
      add: summarize(inWindow.map((d) => d.add)),
      del: summarize(inWindow.map((d) => d.del)),
      daemonAdd: daemonMean(r.start, r.end, "ADD"),
      daemonDel: daemonMean(r.start, r.end, "DEL"),
      idle,
      afterChurn,
      startupCpu: startup,
      full,
    };
  } finally {
    await cluster?.close();
  }
}

function daemonMean(a: Snapshot, b: Snapshot, command: string): number | undefined {
  const m = histogramMeanBetween(a.metrics, b.metrics, "hostnic_cni_request_duration_seconds", {
    command,
  });
  return m === undefined ? undefined : m * 1000;
}

const ms = (x: number | undefined) => x === undefined ? "?" : `${x.toFixed(0)} ms`;

function rssNote(full: NonNullable<ChurnOutcome["full"]>, pods: number): string {
  const heap = full.heapUsed === undefined || full.heapTotal === undefined
    ? "V8 heap unknown"
    : `V8 heap ${mib(full.heapUsed).toFixed(1)} used of ${mib(full.heapTotal).toFixed(1)} MiB`;
  return `VmRSS with ${RSS_PODS} pods after the churn (${pods} pods in the window alone); anon ${
    mib(full.rss.anon).toFixed(1)
  }, file ${mib(full.rss.file).toFixed(1)}; ${heap}; peak ${mib(full.rss.hwm).toFixed(1)}`;
}

function cpuTotal(o: ChurnOutcome): number {
  return o.cpu.plugin + o.cpu.daemon + o.cpu.daemonChildren + o.cpu.sim;
}

function warmNote(o: ChurnOutcome): string {
  return `warm-up ${o.warmS.toFixed(0)} s (${
    o.settled ? "pool settled" : "pool still growing at the limit"
  }, ${o.nics} NICs held at the end)`;
}

export const hostnicChurn: Benchmark = {
  name: "hostnic_churn",
  description: `ADD+DEL churn on one node (${WORKERS} loops), IaaS calls per pod, daemon RSS`,
  async run(ctx: BenchContext): Promise<Figure[]> {
    const phases: Phases = ctx.mode === "full"
      ? { minWarmMs: 10_000, maxWarmMs: 90_000, windowMs: 60_000 }
      : { minWarmMs: 5_000, maxWarmMs: 30_000, windowMs: 10_000 };
    const variant = await installPlugin(ctx);
    // The daemon's environment on a node: the DaemonSet's (deploy/hostnic.yaml) and the V8
    // flags compiled into the binary it runs (deno task build).
    const dsEnv = await nodeDaemonEnv();
    const o = await churnNode(ctx, {
      tag: "h",
      phases,
      env: dsEnv,
      label: "defaults, node environment",
      variant,
    });
    const cores = navigator.hardwareConcurrency;
    const figures = [
      figure({
        name: "churn.pods_per_s",
        value: o.rate,
        unit: "pods/s",
        target: { op: ">=", value: 10, of: "value" },
        note: `${o.pods} pods (ADD+DEL) in ${o.windowS.toFixed(1)} s after a ${
          warmNote(o)
        }, ${WORKERS} loops, PoolSize 3, daemon defaults (${envText(dsEnv)}); CPU per pod ${
          cpuTotal(o).toFixed(0)
        } ms → at most ${((cores * 1000) / cpuTotal(o)).toFixed(1)} pods/s on ${cores} cores`,
      }),
      figure({
        name: "churn.iaas_per_pod",
        value: o.calls.total / o.pods,
        unit: "calls",
        target: { op: "<=", value: 0.1, of: "value" },
        note: `steady state: ${formatCounts(o.calls.by)}; during the warm-up: ${
          formatCounts(o.warmCalls.by)
        }`,
      }),
      figure({
        name: "churn.cpu_per_pod",
        value: cpuTotal(o),
        unit: "ms",
        note: `plugin processes ${o.cpu.plugin.toFixed(0)}, daemon ${
          o.cpu.daemon.toFixed(0)
        }, daemon's commands ${o.cpu.daemonChildren.toFixed(0)}, simulator ${
          o.cpu.sim.toFixed(0)
        } (ms CPU per pod, ADD+DEL)`,
      }),
      figure({
        name: "churn.plugin_startup_cpu",
        value: o.startupCpu,
        unit: "ms",
        note: `CPU of one plugin process that only starts (VERSION, 20 in a row): two per pod → ` +
          `at most ${((cores * 1000) / (2 * o.startupCpu)).toFixed(1)} pods/s on ${cores} ` +
          `cores from plugin start-up alone`,
      }),
      figure({
        name: "churn.add.p50",
        value: o.add.p50,
        unit: "ms",
        note: `under churn; p99 ${formatNumber(o.add.p99)} ms; the daemon's own mean ${
          ms(o.daemonAdd)
        }`,
      }),
      figure({
        name: "churn.del.p50",
        value: o.del.p50,
        unit: "ms",
        note: `under churn; p99 ${formatNumber(o.del.p99)} ms; the daemon's own mean ${
          ms(o.daemonDel)
        }`,
      }),
      figure({
        name: "daemon.rss.idle",
        value: mib(o.idle.rss),
        unit: "MiB",
        target: { op: "<=", value: 80, of: "value" },
        note: `DaemonSet environment and the binary's V8 flags (${
          envText(dsEnv)
        }); ready, 3 free NICs, no pod; anon ${mib(o.idle.anon).toFixed(1)}, file ${
          mib(o.idle.file).toFixed(1)
        }; right after the churn ${mib(o.afterChurn.rss).toFixed(1)} MiB`,
      }),
      figure({
        name: "daemon.rss.60pods",
        value: mib(o.full!.rss.rss),
        unit: "MiB",
        target: { op: "<=", value: 120, of: "value" },
        note: rssNote(o.full!, o.pods),
      }),
    ];
    if (ctx.mode === "full") {
      const off = noIpCooldown();
      if (off.ipCooldown !== undefined) {
        // Released IPs reusable at once: what the pool does without the cooldown's extra NICs.
        const n = await churnNode(ctx, {
          variant,
          env: dsEnv,
          tag: "n",
          phases,
          pool: off,
          rss: false,
          label: "ipCooldown 0",
        });
        figures.push(
          figure({
            name: "churn_nocooldown.pods_per_s",
            value: n.rate,
            unit: "pods/s",
            target: { op: ">=", value: 10, of: "value" },
            note: `pool.ipCooldown 0; ${n.pods} pods in ${n.windowS.toFixed(1)} s after a ${
              warmNote(n)
            }; CPU per pod ${cpuTotal(n).toFixed(0)} ms (plugin processes ${
              n.cpu.plugin.toFixed(0)
            }); ADD p50 ${n.add.p50.toFixed(0)} ms (daemon ${ms(n.daemonAdd)}), DEL p50 ${
              n.del.p50.toFixed(0)
            } ms (daemon ${ms(n.daemonDel)})`,
          }),
          figure({
            name: "churn_nocooldown.iaas_per_pod",
            value: n.calls.total / n.pods,
            unit: "calls",
            target: { op: "<=", value: 0.1, of: "value" },
            note: `steady state: ${formatCounts(n.calls.by)}; warm-up: ${
              formatCounts(n.warmCalls.by)
            }`,
          }),
        );
      }
      // The same history with the daemon's memory settings changed (see rss_profile and the docs).
      for (
        const v of [{ tag: "t", name: "mmap64k", env: MMAP_64K }, {
          tag: "v",
          name: "tuned",
          env: TUNED_MEMORY,
        }]
      ) {
        const t = await churnNode(ctx, {
          tag: v.tag,
          phases,
          env: v.env,
          label: v.name,
          variant,
        });
        figures.push(
          figure({
            name: `daemon_${v.name}.rss.60pods`,
            value: mib(t.full!.rss.rss),
            unit: "MiB",
            target: { op: "<=", value: 120, of: "value" },
            note: `${envText(v.env)}: ${rssNote(t.full!, t.pods)}; idle ${
              mib(t.idle.rss).toFixed(1)
            }`,
          }),
          figure({
            name: `daemon_${v.name}.churn.pods_per_s`,
            value: t.rate,
            unit: "pods/s",
            note: `the same churn with these settings; IaaS calls per pod ${
              (t.calls.total / t.pods).toFixed(2)
            }`,
          }),
        );
      }
    }
    return figures;
  },
};
