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
 * The plugin is `deno run -A main.ts`; `hostnic_nm` is the same with `--node-modules-dir=manual`
 * (what a plugin shim should pass, see the `spawn` module). To split a call's time, each round
 * also times the plugin's start-up alone (`CNI_COMMAND=VERSION`, same argv, same namespace) and
 * reads the daemon's own time per request from its `hostnic_cni_request_duration_seconds`
 * histogram: plugin call ≈ start-up + request, where the request is the daemon's own time plus
 * the plugin's work around it (stdin, config, the RPC over the unix socket, the result).
 */
import { inNetns } from "../lib/linux/exec.ts";
import { addDelLatency, bridgeConf, CNI_BIN_DIR, cniEnv, timeCniCall } from "./baseline_cni.ts";
import type { BenchContext, Benchmark } from "./lib/context.ts";
import { type Figure, figure } from "./lib/figure.ts";
import { addNamespaces, removeNamespaces } from "./lib/netns.ts";
import { mapLimit } from "./lib/parallel.ts";
import { histogramMeanBetween } from "./lib/prom.ts";
import { summarize } from "./lib/stats.ts";
import {
  type ClusterNode,
  countersDelta,
  formatCounts,
  hostnicCall,
  mustSucceed,
  noIpCooldown,
  PLUGIN,
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
const CNI_HIST = "hostnic_cni_request_duration_seconds";

type Side = "bridge" | "hostnic" | "hostnic_nm";
/** Pod namespace names: `<prefix>-w<tag><i>`. */
const TAG: Record<Side, string> = { bridge: "b", hostnic: "h", hostnic_nm: "m" };

interface Samples {
  add: number[];
  del: number[];
  version: number[];
  daemonAdd: number[];
  daemonDel: number[];
  iaas: Record<string, number>;
}

function emptySamples(): Samples {
  return { add: [], del: [], version: [], daemonAdd: [], daemonDel: [], iaas: {} };
}

/** Times of the plugin's start-up alone: `CNI_COMMAND=VERSION` with the same argv. */
async function versionTimes(argv: readonly string[], runs: number): Promise<number[]> {
  const out: number[] = [];
  const env = cniEnv({ command: "VERSION" });
  for (let i = 0; i < runs; i++) {
    const r = await timeCniCall(argv, env, "");
    if (r.code !== 0) throw new Error(`hostnic VERSION exited ${r.code}: ${r.stdout}${r.stderr}`);
    out.push(r.ms);
  }
  return out;
}

/**
 * Grows the pool to `n` NICs an ADD can take: `n` pods ADDed at once (8 plugin processes at a
 * time) and DELed again, untimed. With poolHigh 63 nothing is trimmed afterwards.
 */
async function prewarm(ctx: BenchContext, node: ClusterNode, n: number): Promise<void> {
  const pods = Array.from({ length: n }, (_, i) => `${ctx.prefix}-wpre${i}`);
  await addNamespaces(ctx.runner, pods, { lo: false });
  try {
    await mapLimit(pods, 8, async (p) =>
      mustSucceed(
        "pre-warm ADD",
        await hostnicCall(node, { command: "ADD", containerId: p, podNetns: p, variant: PLUGIN }),
      ));
    await mapLimit(pods, 8, async (p) =>
      mustSucceed(
        "pre-warm DEL",
        await hostnicCall(node, { command: "DEL", containerId: p, podNetns: p, variant: PLUGIN }),
      ));
  } finally {
    await removeNamespaces(ctx.runner, pods);
  }
}

async function hostnicRound(
  ctx: BenchContext,
  o: { node: ClusterNode; variant: PluginVariant; pods: string[]; into: Samples },
): Promise<void> {
  const { node, pods, into } = o;
  // Untimed: the pool must hold a NIC for every ADD of the round (warm-up included).
  await waitPool(
    ctx,
    node,
    (p) => p.ready && p.pending === 0 && p.waiters === 0 && readyNics(p) >= pods.length,
  );
  const argv = pluginArgv(node, o.variant);
  into.version.push(...await versionTimes(argv, 8));
  const before = await scrapeMetrics(ctx, node);
  const k0 = await node.cluster.counters();
  const conf = JSON.stringify(node.netConf());
  const { add, del } = await addDelLatency(ctx, {
    label: `hostnic (${o.variant})`,
    argv,
    conf,
    pods,
  });
  const k1 = await node.cluster.counters();
  const after = await scrapeMetrics(ctx, node);
  into.add.push(...add);
  into.del.push(...del);
  const dAdd = histogramMeanBetween(before, after, CNI_HIST, { command: "ADD" });
  const dDel = histogramMeanBetween(before, after, CNI_HIST, { command: "DEL" });
  if (dAdd !== undefined) into.daemonAdd.push(dAdd * 1000);
  if (dDel !== undefined) into.daemonDel.push(dDel * 1000);
  for (const [a, n] of Object.entries(countersDelta(k0, k1).by)) {
    into.iaas[a] = (into.iaas[a] ?? 0) + n;
  }
}

const avg = (xs: number[]) => xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;

function hostnicFigures(
  side: "hostnic" | "hostnic_nm",
  s: Samples,
  bridge: { add: number; del: number },
  runs: number,
): Figure[] {
  const a = summarize(s.add);
  const d = summarize(s.del);
  const v = summarize(s.version);
  const dAdd = avg(s.daemonAdd);
  const dDel = avg(s.daemonDel);
  const argv = side === "hostnic"
    ? "deno run -A main.ts"
    : "deno run -A --node-modules-dir=manual main.ts";
  // The daemon's share is a mean (all its histogram gives); start-up is VERSION's p50.
  const split = (p50: number, daemon: number) =>
    `p50 = start-up ${v.p50.toFixed(0)} (VERSION p50) + request ${
      (p50 - v.p50).toFixed(0)
    }, of which the daemon's own ≈ ${daemon.toFixed(0)} (mean)`;
  return [
    figure({
      name: `warm.${side}.add.p50`,
      value: a.p50,
      unit: "ms",
      baseline: { name: "warm.bridge.add.p50", value: bridge.add },
      target: { op: "<=", value: 1.5, of: "ratio" },
      note: `${argv}, n=${runs}; ${split(a.p50, dAdd)}; IaaS calls in the timed rounds: ${
        formatCounts(s.iaas)
      }`,
    }),
    figure({ name: `warm.${side}.add.p99`, value: a.p99, unit: "ms" }),
    figure({
      name: `warm.${side}.del.p50`,
      value: d.p50,
      unit: "ms",
      baseline: { name: "warm.bridge.del.p50", value: bridge.del },
      target: { op: "<=", value: 1.5, of: "ratio" },
      note: split(d.p50, dDel),
    }),
    figure({ name: `warm.${side}.del.p99`, value: d.p99, unit: "ms" }),
    figure({
      name: `warm.${side}.startup.p50`,
      value: v.p50,
      unit: "ms",
      note: `CNI_COMMAND=VERSION, same argv and namespace, n=${s.version.length}`,
    }),
    figure({
      name: `warm.${side}.daemon_add.mean`,
      value: dAdd,
      unit: "ms",
      note: "daemon-side time per ADD (its request histogram)",
    }),
    figure({ name: `warm.${side}.daemon_del.mean`, value: dDel, unit: "ms" }),
  ];
}

export const hostnicCni: Benchmark = {
  name: "hostnic_cni",
  description: "warm-pool ADD/DEL latency of hostnic vs bridge + host-local, interleaved rounds",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const size = ctx.mode === "full" ? ROUND : QUICK_ROUND;
    const rounds = ctx.mode === "full" ? 8 : 2;
    const sides: Side[] = ["bridge", "hostnic", "hostnic_nm"];
    for (const f of ["bridge", "host-local"]) {
      await Deno.stat(`${CNI_BIN_DIR}/${f}`).catch(() => {
        throw new Error(`${CNI_BIN_DIR}/${f} not found; install containernetworking-plugins`);
      });
    }
    const bridgeNode = `${ctx.prefix}-wbnode`;
    const dataDir = await ctx.resources.makeTempDir("hbn-host-local-");
    const samples: Record<Side, Samples> = {
      bridge: emptySamples(),
      hostnic: emptySamples(),
      hostnic_nm: emptySamples(),
    };
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
      await prewarm(ctx, node, size + 1);
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
                variant: side === "hostnic" ? "default" : "nm_manual",
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
      ...hostnicFigures("hostnic", samples.hostnic, base, samples.hostnic.add.length),
      ...hostnicFigures("hostnic_nm", samples.hostnic_nm, base, samples.hostnic_nm.add.length),
    ];
  },
};
