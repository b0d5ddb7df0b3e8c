/**
 * `scale` (issue 20): what each node costs the shared parts, measured on hollow nodes
 * (lib/testbed/hollow: the real daemon, its real Kubernetes and QingCloud clients, real IPAM and
 * pool, only the Linux datapath recorded) against one real control plane and the simulator.
 *
 * Per node count N (one child process per N, so each starts clean and gets its own V8 heap):
 * 1. The bed: control plane, hostnic installed, v-pool by the real controller, N Node objects,
 *    then the N daemons (shared mode, `Default` → the /18 pod vxnet, blocks of /26).
 * 2. Waves: `waves` rounds of Pod objects (kubectl, bound to their nodes) and their ADDs through
 *    each node's socket, `inFlight` per node at a time, until every node has `podsPerNode` pods.
 * 3. Rest: `restMs` with nothing happening — requests per node per minute (kube-apiserver's own
 *    `apiserver_request_total`), QingCloud calls per minute (the simulator's counters), watches
 *    (`apiserver_longrunning_requests{verb=WATCH}`), etcd objects and size.
 * 4. Churn: one ADD→DEL loop per node over pre-created pods for `churnMs`.
 * Figures against N: allocations/s cluster-wide (waves, churn), ADD p50/p99 (the plugin's call
 * to the daemon's socket, in process), requests per ADD, requests per node per minute at rest,
 * watches per node, CAS conflicts per allocation, borrowed blocks, etcd objects and bytes,
 * controller pass time, QingCloud calls per minute at rest; then the log-log slope of each.
 *
 * Then a nic-mode burst: `burst.pods` pods over `burst.nodes` hollow nodes at once, the
 * simulator's per-key rate limit on; a pod whose ADD fails with CNI code 11 is retried as the
 * kubelet retries a sandbox. Every pod must be networked, every address unique (the module fails
 * otherwise, in both parts).
 *
 *   deno task bench --only scale            quick: N = 3, 10; 10 pods per node; burst 100 pods
 *   deno task bench --full --only scale     full:  N = 10, 50, 100, 200; 30 pods; burst 1,000
 *   deno run -A bench/scale.ts --child shared|burst --sizes quick|full [--nodes N]   (one run)
 *
 * `HOSTNIC_SCALE_NODES=10,50` replaces the list of node counts (a partial run of the full sizes).
 */
import { HollowBed } from "../lib/testbed/hollow/bed.ts";
import { type HollowNode, type HollowPod } from "../lib/testbed/hollow/node.ts";
import { blockHolders } from "../lib/testbed/shared.ts";
import { jsonLogger } from "../lib/log.ts";
import type { BenchContext, Benchmark } from "./lib/context.ts";
import { type Figure, figure, formatFigure, formatNumber } from "./lib/figure.ts";
import { parseMetrics, type Sample, sumOf } from "./lib/prom.ts";
import { percentile } from "./lib/stats.ts";

export interface ScaleSizes {
  ns: number[];
  podsPerNode: number;
  waves: number;
  inFlight: number;
  restMs: number;
  churnMs: number;
  /** Heap of a child (MiB). */
  heapMiB: number;
  burst: { nodes: number; pods: number; perSecond: number; burst: number; deadlineMs: number };
}

export const QUICK: ScaleSizes = {
  ns: [3, 10],
  podsPerNode: 10,
  waves: 2,
  inFlight: 4,
  restMs: 20_000,
  churnMs: 15_000,
  heapMiB: 4096,
  burst: { nodes: 4, pods: 100, perSecond: 10, burst: 20, deadlineMs: 300_000 },
};
export const FULL: ScaleSizes = {
  ns: [10, 50, 100, 200],
  podsPerNode: 30,
  waves: 3,
  inFlight: 5,
  restMs: 60_000,
  churnMs: 60_000,
  heapMiB: 16384,
  burst: { nodes: 20, pods: 1000, perSecond: 10, burst: 20, deadlineMs: 1_200_000 },
};

/** The Kubernetes resources hostnic's daemons and controller read and write. */
const HOSTNIC_RESOURCES = new Set([
  "ipamblocks",
  "ipamhandles",
  "ippools",
  "vxnetpools",
  "configmaps",
  "pods",
  "nodes",
  "events",
  "leases",
]);

/** API requests of hostnic's components: the bench's own pod creates and deletes left out. */
function hostnicRequests(s: readonly Sample[]): number {
  let n = 0;
  for (const x of s) {
    if (x.name !== "apiserver_request_total" || !HOSTNIC_RESOURCES.has(x.labels.resource)) continue;
    if (x.labels.resource === "pods" && (x.labels.verb === "POST" || x.labels.verb === "DELETE")) {
      continue;
    }
    n += x.value;
  }
  return n;
}

/** `hostnicRequests` by "VERB resource" (the at-rest breakdown). */
function requestsByKind(s: readonly Sample[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of s) {
    if (x.name !== "apiserver_request_total" || !HOSTNIC_RESOURCES.has(x.labels.resource)) continue;
    const k = `${x.labels.verb} ${x.labels.resource}`;
    m.set(k, (m.get(k) ?? 0) + x.value);
  }
  return m;
}

const CNI_HIST = "hostnic_cni_request_duration_seconds";
const ADD_OK = { command: "ADD", result: "ok" };

const watches = (s: readonly Sample[]) =>
  sumOf(s, "apiserver_longrunning_requests", { verb: "WATCH" });
/**
 * Objects in etcd: the apiserver's own count (`apiserver_resource_objects`, before 1.34
 * `apiserver_storage_objects`) is refreshed once a minute; while it is still 0, the objects of
 * the resources that grow with the cluster are listed instead.
 */
async function etcdObjects(bed: HollowBed, s: readonly Sample[]): Promise<number> {
  const counted = Math.max(
    sumOf(s, "apiserver_resource_objects"),
    sumOf(s, "apiserver_storage_objects"),
  );
  if (counted > 0) return counted;
  const names = await bed.cp.kubectlOk([
    "get",
    "ipamblocks,ipamhandles,ippools,pods,nodes,events,configmaps,leases,serviceaccounts,secrets",
    "-A",
    "-o",
    "name",
  ]);
  return names.split("\n").filter((l) => l.trim() !== "").length;
}
const etcdBytes = (s: readonly Sample[]) => sumOf(s, "apiserver_storage_size_bytes");
const simCalls = (bed: HollowBed) =>
  Object.values(bed.sim.control.counters()).reduce((a, b) => a + b, 0);

async function daemonSamples(nodes: readonly HollowNode[]): Promise<Sample[]> {
  const all: Sample[] = [];
  for (const n of nodes) {
    const res = await fetch(`${n.manageUrl}/metrics`);
    all.push(...parseMetrics(await res.text()));
  }
  return all;
}

async function controllerSamples(bed: HollowBed): Promise<Sample[]> {
  const res = await fetch(`${bed.controllerUrl}/metrics`);
  return parseMetrics(await res.text());
}

/** Pod objects bound to their nodes, tolerating the hollow nodes' missing heartbeats. */
async function createPodObjects(bed: HollowBed, pods: { name: string; node: string }[]) {
  for (let i = 0; i < pods.length; i += 400) {
    await bed.cp.kubectlOk(["create", "-f", "-"], {
      stdin: JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: pods.slice(i, i + 400).map((p) => ({
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: p.name, namespace: "default" },
          spec: {
            nodeName: p.node,
            tolerations: [{ operator: "Exists" }],
            containers: [{ name: "main", image: "localhost/busybox:1" }],
          },
        })),
      }),
    });
  }
}

/**
 * The `q`-quantile (0..1) of a histogram's observations between two scrapes, from its cumulative
 * `_bucket{le}` samples summed over every label set matching `match` (linear inside a bucket, as
 * Prometheus' histogram_quantile does).
 */
export function histogramQuantile(
  before: readonly Sample[],
  after: readonly Sample[],
  name: string,
  q: number,
  match: Record<string, string> = {},
): number {
  const buckets = new Map<number, number>();
  for (const [s, sign] of [[after, 1], [before, -1]] as const) {
    for (const x of s) {
      if (x.name !== `${name}_bucket`) continue;
      if (!Object.entries(match).every(([k, v]) => x.labels[k] === v)) continue;
      const le = x.labels.le === "+Inf" ? Infinity : Number(x.labels.le);
      buckets.set(le, (buckets.get(le) ?? 0) + sign * x.value);
    }
  }
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total <= 0) return NaN;
  const rank = q * total;
  let [prevLe, prevCount] = [0, 0];
  for (const [le, count] of sorted) {
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + (le - prevLe) * ((rank - prevCount) / Math.max(count - prevCount, 1e-9));
    }
    [prevLe, prevCount] = [le, count];
  }
  return prevLe;
}

/** Every address live at most once: `claim` on ADD, `release` after DEL. */
class AddressBook {
  readonly live = new Map<string, string>();
  readonly duplicates: string[] = [];
  claim(ip: string, who: string) {
    const had = this.live.get(ip);
    if (had !== undefined || ip === "") this.duplicates.push(`${ip}: ${had} and ${who}`);
    this.live.set(ip, who);
  }
  release(ip: string) {
    this.live.delete(ip);
  }
}

export interface RetryStats {
  retries: number;
  /** Retried ADDs by their message (numbers blanked). */
  reasons: Map<string, number>;
}

/**
 * ADD with the kubelet's retry: a sandbox whose network setup failed is torn down (DEL) and tried
 * again with backoff, whatever the CNI code; every failed attempt is counted by its message.
 */
async function addWithRetry(
  node: HollowNode,
  name: string,
  o: { deadline: number; stats: RetryStats },
): Promise<HollowPod> {
  let delay = 500;
  for (;;) {
    try {
      return await node.add("default", name);
    } catch (err) {
      const json = (err as { outcome?: { json?: { code?: number; msg?: string } } }).outcome?.json;
      if (!json || Date.now() + delay > o.deadline) throw err;
      o.stats.retries++;
      // One reason per kind of failure: names (handles, pods, blocks) and numbers left out.
      const why = `${json.code}: ${
        (json.msg ?? "").replace(/"[^"]*"/g, '"…"').replace(/\d+/g, "N").slice(0, 160)
      }`;
      o.stats.reasons.set(why, (o.stats.reasons.get(why) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  }
}

/** Runs `jobs` with at most `limit` at once. */
async function limited<T>(limit: number, jobs: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  return out;
}

export interface SharedResult {
  n: number;
  pods: number;
  waveAllocsPerS: number;
  churnAllocsPerS: number;
  addP50Ms: number;
  addP99Ms: number;
  /** From the daemons' own `hostnic_cni_request_duration_seconds{command=ADD}` histograms. */
  daemonAddP50Ms: number;
  daemonAddP99Ms: number;
  requestsPerAdd: number;
  /** Less the at-rest rate over the waves' wall time: what the ADDs themselves cost. */
  netRequestsPerAdd: number;
  requestsPerNodeMin: number;
  /** At rest, per node per minute, by "VERB resource". */
  restByKind: Record<string, number>;
  watchesPerNode: number;
  conflictsPerAlloc: number;
  /** Failed ADD attempts (retried as the kubelet does), per allocation. */
  retriesPerAlloc: number;
  retryReasons: Record<string, number>;
  borrows: number;
  etcdObjects: number;
  etcdBytes: number;
  passMeanS: number;
  iaasPerMinRest: number;
  rssMiB: number;
  duplicates: string[];
  /** Nodes whose daemon did not close within the bed's bound (see HollowBed.close). */
  hungCloses: string[];
}

/** One shared-mode run with `n` hollow nodes (in this process). */
export async function runShared(
  n: number,
  z: ScaleSizes,
  log: (m: string) => void,
): Promise<SharedResult> {
  const logger = jsonLogger("error");
  await using bed = await HollowBed.start({
    nodes: n,
    mode: "shared",
    startDaemons: false,
    logger,
  });
  const before = parseMetrics(await bed.apiserverMetrics());
  const t0 = performance.now();
  await bed.startNodes(bed.nodes);
  log(`scale n=${n}: ${n} daemons ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const book = new AddressBook();
  const addMs: number[] = [];
  const pods: { pod: HollowPod; node: HollowNode }[] = [];
  const retry: RetryStats = { retries: 0, reasons: new Map() };
  const timedAdd = async (node: HollowNode, name: string) => {
    const t = performance.now();
    // A failed ADD is retried as the kubelet retries the sandbox (counted with its reason).
    const pod = await addWithRetry(node, name, { deadline: Date.now() + 600_000, stats: retry });
    addMs.push(performance.now() - t);
    book.claim(pod.ip, `${node.name}/${name}`);
    return pod;
  };
  const d0 = await daemonSamples(bed.nodes);
  const a0 = parseMetrics(await bed.apiserverMetrics());
  let waveMs = 0;
  const perWave = Math.ceil(z.podsPerNode / z.waves);
  for (let w = 0; w < z.waves; w++) {
    const want = bed.nodes.flatMap((node) =>
      Array.from(
        { length: Math.min(perWave, z.podsPerNode - w * perWave) },
        (_, j) => ({ node, name: `w${w}-${node.name}-${j}` }),
      )
    );
    await createPodObjects(bed, want.map((p) => ({ name: p.name, node: p.node.name })));
    const t = performance.now();
    await Promise.all(bed.nodes.map(async (node) => {
      const mine = want.filter((p) => p.node === node);
      const got = await limited(z.inFlight, mine.map((p) => () => timedAdd(node, p.name)));
      for (const pod of got) pods.push({ pod, node });
    }));
    waveMs += performance.now() - t;
    log(`scale n=${n}: wave ${w + 1}/${z.waves}, ${pods.length} pods`);
  }
  const waveAdds = pods.length;
  const a1 = parseMetrics(await bed.apiserverMetrics());
  // Rest.
  const c0 = await controllerSamples(bed);
  const sim0 = simCalls(bed);
  await new Promise((r) => setTimeout(r, z.restMs));
  const a2 = parseMetrics(await bed.apiserverMetrics());
  const sim1 = simCalls(bed);
  const c1 = await controllerSamples(bed);
  const restMin = z.restMs / 60_000;
  log(`scale n=${n}: rest of ${z.restMs / 1000} s sampled`);
  // Churn: one ADD→DEL loop per node over its own pre-created pods.
  const churnPods = bed.nodes.flatMap((node) =>
    Array.from({ length: 3 }, (_, j) => ({ name: `churn-${node.name}-${j}`, node: node.name }))
  );
  await createPodObjects(bed, churnPods);
  let churnAdds = 0;
  const tc = performance.now();
  const end = tc + z.churnMs;
  await Promise.all(bed.nodes.map(async (node) => {
    for (let i = 0; performance.now() < end; i++) {
      const pod = await timedAdd(node, `churn-${node.name}-${i % 3}`);
      churnAdds++;
      await node.del(pod);
      book.release(pod.ip);
    }
  }));
  const churnS = (performance.now() - tc) / 1000;
  log(`scale n=${n}: churn, ${churnAdds} ADD→DEL in ${churnS.toFixed(1)} s`);
  const d1 = await daemonSamples(bed.nodes);
  // The IPAMBlocks agree with what the pods were told.
  const held = await blockHolders(bed.cp);
  for (const { pod, node } of pods) {
    const h = held.get(pod.ip);
    if (!h || h.pod !== pod.name || h.node !== node.name) {
      book.duplicates.push(
        `${pod.ip}: ${node.name}/${pod.name} but the blocks say ${JSON.stringify(h)}`,
      );
    }
  }
  const delta = (name: string, match: Record<string, string> = {}) =>
    sumOf(d1, name, match) - sumOf(d0, name, match);
  const allocs = waveAdds + churnAdds;
  const passCount = sumOf(c1, "hostnic_controller_pass_duration_seconds_count") -
    sumOf(c0, "hostnic_controller_pass_duration_seconds_count");
  const passSum = sumOf(c1, "hostnic_controller_pass_duration_seconds_sum") -
    sumOf(c0, "hostnic_controller_pass_duration_seconds_sum");
  const result: SharedResult = {
    n,
    pods: waveAdds,
    waveAllocsPerS: waveAdds / (waveMs / 1000),
    churnAllocsPerS: churnAdds / churnS,
    addP50Ms: percentile(addMs, 50),
    addP99Ms: percentile(addMs, 99),
    daemonAddP50Ms: 1000 * histogramQuantile(d0, d1, CNI_HIST, 0.5, ADD_OK),
    daemonAddP99Ms: 1000 * histogramQuantile(d0, d1, CNI_HIST, 0.99, ADD_OK),
    requestsPerAdd: (hostnicRequests(a1) - hostnicRequests(a0)) / waveAdds,
    netRequestsPerAdd: (hostnicRequests(a1) - hostnicRequests(a0) -
      (hostnicRequests(a2) - hostnicRequests(a1)) * (waveMs / z.restMs)) / waveAdds,
    requestsPerNodeMin: (hostnicRequests(a2) - hostnicRequests(a1)) / n / restMin,
    restByKind: Object.fromEntries(
      [...requestsByKind(a2)].map((
        [k, v],
      ) => [k, (v - (requestsByKind(a1).get(k) ?? 0)) / n / restMin])
        .filter(([, v]) => (v as number) > 0),
    ),
    watchesPerNode: (watches(a2) - watches(before)) / n,
    conflictsPerAlloc: delta("hostnic_ipam_cas_conflicts") / allocs,
    retriesPerAlloc: retry.retries / allocs,
    retryReasons: Object.fromEntries(retry.reasons),
    borrows: delta("hostnic_ipam_operations", { op: "borrow" }),
    etcdObjects: await etcdObjects(bed, a2),
    etcdBytes: etcdBytes(a2),
    passMeanS: passCount > 0 ? passSum / passCount : NaN,
    iaasPerMinRest: (sim1 - sim0) / restMin,
    rssMiB: Deno.memoryUsage().rss / 2 ** 20,
    duplicates: book.duplicates,
    hungCloses: [],
  };
  // Each phase logs its end, so a run that stalls shows where (N = 200 once ran 100 minutes past
  // its waves without a word: the daemons were closed one at a time and some took minutes).
  log(`scale n=${n}: figures sampled; closing the bed`);
  const tClose = performance.now();
  await bed.close();
  result.hungCloses = [...bed.hungCloses];
  log(
    `scale n=${n}: bed closed in ${
      ((performance.now() - tClose) / 1000).toFixed(1)
    } s, ${bed.hungCloses.length} daemons did not close within the bound${
      bed.hungCloses.length ? `: ${bed.hungCloses.slice(0, 10).join(", ")}` : ""
    }`,
  );
  return result;
}

export interface BurstResult {
  nodes: number;
  pods: number;
  networked: number;
  wallS: number;
  podsPerS: number;
  iaasCalls: number;
  iaasPerMin: number;
  rateLimited: number;
  retries: number;
  retryReasons: Record<string, number>;
  addP50Ms: number;
  addP99Ms: number;
  failures: string[];
  duplicates: string[];
}

/** The nic-mode burst against the simulator's rate limit. */
export async function runBurst(z: ScaleSizes, log: (m: string) => void): Promise<BurstResult> {
  const b = z.burst;
  await using bed = await HollowBed.start({
    nodes: b.nodes,
    mode: "nic",
    pool: { poolLow: 1, poolHigh: 3 },
    logger: jsonLogger("error"),
  });
  const per = Math.ceil(b.pods / b.nodes);
  const want = bed.nodes.flatMap((node, k) =>
    Array.from({ length: Math.min(per, b.pods - k * per) }, (_, j) => ({
      node,
      name: `burst-${node.name}-${j}`,
    }))
  );
  await createPodObjects(bed, want.map((p) => ({ name: p.name, node: p.node.name })));
  // The limit is on for the burst: 20 daemons starting at once against it fail their start-up
  // checks (docs/scale.md), a different scenario from the one measured here.
  bed.sim.control.setKnobs({ rateLimit: { perSecond: b.perSecond, burst: b.burst } });
  bed.sim.control.resetCounters();
  const book = new AddressBook();
  const addMs: number[] = [];
  const failures: string[] = [];
  const stats: RetryStats = { retries: 0, reasons: new Map() };
  const deadline = Date.now() + b.deadlineMs;
  const t = performance.now();
  await Promise.all(
    bed.nodes.map((node) =>
      limited(
        z.inFlight * 2,
        want.filter((p) => p.node === node).map((p) => async () => {
          const t1 = performance.now();
          try {
            const pod = await addWithRetry(node, p.name, { deadline, stats });
            addMs.push(performance.now() - t1);
            book.claim(pod.ip, `${node.name}/${p.name}`);
          } catch (err) {
            failures.push(`${node.name}/${p.name}: ${(err as Error).message}`);
          }
        }),
      )
    ),
  );
  const wallS = (performance.now() - t) / 1000;
  const calls = simCalls(bed);
  log(`scale burst: ${addMs.length}/${want.length} pods networked in ${wallS.toFixed(1)} s`);
  return {
    nodes: b.nodes,
    pods: want.length,
    networked: addMs.length,
    wallS,
    podsPerS: addMs.length / wallS,
    iaasCalls: calls,
    iaasPerMin: calls / (wallS / 60),
    rateLimited: bed.sim.control.retCodes()["2500"] ?? 0,
    retries: stats.retries,
    retryReasons: Object.fromEntries(stats.reasons),
    addP50Ms: addMs.length ? percentile(addMs, 50) : NaN,
    addP99Ms: addMs.length ? percentile(addMs, 99) : NaN,
    failures: failures.slice(0, 20),
    duplicates: book.duplicates,
  };
}

/** Least-squares slope of log y against log x (the growth exponent: 1 = linear in N). */
export function logLogSlope(xs: readonly number[], ys: readonly number[]): number {
  const pts = xs.map((x, i) => [Math.log(x), Math.log(ys[i])]).filter(([, y]) =>
    Number.isFinite(y)
  );
  if (pts.length < 2) return NaN;
  const mx = pts.reduce((s, p) => s + p[0], 0) / pts.length;
  const my = pts.reduce((s, p) => s + p[1], 0) / pts.length;
  const num = pts.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0);
  const den = pts.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  return den === 0 ? NaN : num / den;
}

/** The costs against N: [key, figure name, unit, note]. */
const COSTS: [keyof SharedResult, string, string, string][] = [
  ["waveAllocsPerS", "allocs_per_s", "alloc/s", "cluster-wide, during the waves"],
  ["churnAllocsPerS", "churn_allocs_per_s", "alloc/s", "one ADD→DEL loop per node"],
  ["addP50Ms", "add_p50", "ms", "the plugin's socket call, all ADDs"],
  ["addP99Ms", "add_p99", "ms", "the plugin's socket call, all ADDs"],
  ["daemonAddP50Ms", "daemon_add_p50", "ms", "daemon-side histogram (bucket-interpolated)"],
  ["daemonAddP99Ms", "daemon_add_p99", "ms", "daemon-side histogram (bucket-interpolated)"],
  ["requestsPerAdd", "api_requests_per_add", "req", "apiserver_request_total, hostnic resources"],
  ["netRequestsPerAdd", "api_requests_per_add_net", "req", "less the at-rest rate over the waves"],
  ["requestsPerNodeMin", "api_requests_per_node_min", "req/min", "at rest"],
  ["watchesPerNode", "watches_per_node", "watches", "apiserver_longrunning_requests WATCH"],
  ["conflictsPerAlloc", "cas_conflicts_per_alloc", "conflicts", "hostnic_ipam_cas_conflicts"],
  ["retriesPerAlloc", "add_retries_per_alloc", "retries", "failed ADDs retried as a kubelet does"],
  ["borrows", "borrowed_blocks", "blocks", "hostnic_ipam_operations{op=borrow}"],
  ["etcdObjects", "etcd_objects", "objects", "apiserver_resource_objects (or a listing)"],
  ["etcdBytes", "etcd_bytes", "bytes", "apiserver_storage_size_bytes"],
  ["passMeanS", "controller_pass", "s", "mean hostnic_controller_pass_duration_seconds at rest"],
  ["iaasPerMinRest", "iaas_calls_per_min", "calls/min", "simulator counters, at rest"],
];

function sharedFigures(results: SharedResult[]): Figure[] {
  const out: Figure[] = [];
  for (const r of results) {
    for (const [key, name, unit, note] of COSTS) {
      const v = r[key] as number;
      if (Number.isFinite(v)) {
        out.push(figure({ name: `scale_n${r.n}_${name}`, value: v, unit, note }));
      }
    }
  }
  if (results.length >= 2) {
    const xs = results.map((r) => r.n);
    for (const [key, name] of COSTS) {
      const s = logLogSlope(xs, results.map((r) => r[key] as number));
      if (Number.isFinite(s)) {
        out.push(figure({
          name: `scale_slope_${name}`,
          value: s,
          unit: "exp",
          note: `log-log slope over N = ${xs.join(", ")}`,
        }));
      }
    }
  }
  return out;
}

function burstFigures(r: BurstResult): Figure[] {
  const note = `${r.pods} pods on ${r.nodes} nic-mode nodes, sim rate limit on`;
  return [
    figure({ name: "scale_burst_pods_per_s", value: r.podsPerS, unit: "pods/s", note }),
    figure({ name: "scale_burst_wall", value: r.wallS, unit: "s", note }),
    figure({
      name: "scale_burst_iaas_calls_per_min",
      value: r.iaasPerMin,
      unit: "calls/min",
      note,
    }),
    figure({
      name: "scale_burst_rate_limited",
      value: r.rateLimited,
      unit: "replies",
      note: `ret_code 2500 from the simulator; ${r.retries} kubelet-style ADD retries`,
    }),
    figure({
      name: "scale_burst_add_retries",
      value: r.retries,
      unit: "ADDs",
      note: `failed ADD attempts retried as the kubelet does: ${JSON.stringify(r.retryReasons)}`,
    }),
    figure({ name: "scale_burst_add_p50", value: r.addP50Ms, unit: "ms", note }),
    figure({ name: "scale_burst_add_p99", value: r.addP99Ms, unit: "ms", note }),
  ];
}

const SELF = new URL(import.meta.url).pathname;

/** Runs one part in a child process with `heapMiB` of heap; returns its JSON result. */
async function child<T>(ctx: BenchContext, args: string[], z: ScaleSizes): Promise<T> {
  const p = ctx.resources.spawn([
    Deno.execPath(),
    "run",
    "-A",
    "--quiet",
    `--v8-flags=--max-old-space-size=${z.heapMiB}`,
    SELF,
    "--child",
    ...args,
    "--sizes",
    ctx.mode,
  ], { stderr: "piped" });
  const err = (async () => {
    let tail = "";
    for await (const chunk of p.stderr.pipeThrough(new TextDecoderStream())) {
      for (const line of chunk.split("\n")) {
        if (line.startsWith("# ")) ctx.log(line.slice(2));
        else if (line.trim()) tail = (tail + line + "\n").slice(-2000);
      }
    }
    return tail;
  })();
  const out = await new Response(p.stdout).text();
  const status = await p.status;
  const tail = await err;
  const last = out.trim().split("\n").pop() ?? "";
  if (!last.startsWith("{")) {
    throw new Error(`scale ${args.join(" ")} failed (exit ${status.code}): ${tail.trim()}`);
  }
  if (!status.success) {
    ctx.log(`scale ${args.join(" ")}: result printed, then exit ${status.code}: ${tail.trim()}`);
  }
  return JSON.parse(last) as T;
}

export const scale: Benchmark = {
  name: "scale",
  description: "hollow nodes on one control plane: per-node costs against N, nic-mode burst",
  optIn: true,
  run: async (ctx) => {
    const z = ctx.mode === "full" ? FULL : QUICK;
    const results: SharedResult[] = [];
    // A failing part does not hide the others: its error is kept, the rest still runs, and the
    // figures measured are logged before the module fails.
    const errors: string[] = [];
    for (const n of nodeCounts(z)) {
      // An interrupt (SIGINT) ends the module: no next part starts a control plane meanwhile.
      if (ctx.signal.aborted) break;
      try {
        const r = await child<SharedResult>(ctx, ["shared", "--nodes", String(n)], z);
        ctx.log(`scale n=${n}: ${JSON.stringify({ ...r, duplicates: r.duplicates.length })}`);
        if (r.duplicates.length) {
          errors.push(`n=${n}: addresses not unique: ${r.duplicates.slice(0, 5).join("; ")}`);
        }
        if (r.hungCloses.length) {
          errors.push(
            `n=${n}: ${r.hungCloses.length} daemons hung in close: ${
              r.hungCloses.slice(0, 5).join(", ")
            }`,
          );
        }
        results.push(r);
      } catch (err) {
        errors.push(`n=${n}: ${(err as Error).message.slice(0, 1500)}`);
      }
    }
    const figures = sharedFigures(results);
    if (ctx.signal.aborted) throw new Error(`interrupted; ${errors.join("; ")}`);
    try {
      const burst = await child<BurstResult>(ctx, ["burst"], z);
      ctx.log(`scale burst: ${JSON.stringify(burst)}`);
      if (burst.duplicates.length) {
        errors.push(`burst: addresses not unique: ${burst.duplicates.slice(0, 5).join("; ")}`);
      }
      if (burst.networked !== burst.pods) {
        errors.push(
          `burst: ${burst.pods - burst.networked} of ${burst.pods} pods not networked: ` +
            burst.failures.slice(0, 3).join("; "),
        );
      }
      figures.push(...burstFigures(burst));
    } catch (err) {
      errors.push(`burst: ${(err as Error).message.slice(0, 1500)}`);
    }
    if (errors.length) {
      for (const f of figures) ctx.log(formatFigure(f));
      throw new Error(`scale: ${errors.join("\n")}`);
    }
    return figures;
  },
};

/** The node counts to run: the sizes', or `HOSTNIC_SCALE_NODES` (validated). */
function nodeCounts(z: ScaleSizes): number[] {
  const env = Deno.env.get("HOSTNIC_SCALE_NODES");
  if (!env) return z.ns;
  const ns = env.split(",").map((x) => Number(x.trim()));
  if (ns.some((n) => !Number.isInteger(n) || n < 1 || n > 240)) {
    throw new Error(`HOSTNIC_SCALE_NODES="${env}" must be node counts from 1 to 240, e.g. 10,50`);
  }
  return ns;
}

function usage(): string {
  return [
    "Usage: deno run -A bench/scale.ts --child shared|burst [--nodes N] [--sizes quick|full]",
    "",
    "One part of the `scale` benchmark in this process; prints its result as JSON.",
    "The module itself runs with `deno task bench --only scale` (quick) or `--full --only scale`.",
    `quick: N = ${
      QUICK.ns.join(", ")
    }, ${QUICK.podsPerNode} pods per node, burst ${QUICK.burst.pods}`,
    `full:  N = ${FULL.ns.join(", ")}, ${FULL.podsPerNode} pods per node, burst ${FULL.burst.pods}`,
    "HOSTNIC_SCALE_NODES=10,50 replaces the node counts.",
  ].join("\n");
}

if (import.meta.main) {
  const args = Deno.args;
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  if (args.includes("--help") || args.includes("-h") || !args.includes("--child")) {
    console.log(usage());
    Deno.exit(args.includes("--help") || args.includes("-h") ? 0 : 2);
  }
  const z = flag("--sizes") === "full" ? FULL : QUICK;
  const log = (m: string) => console.error(`# ${m}`);
  const part = flag("--child");
  const result = part === "burst"
    ? await runBurst(z, log)
    : await runShared(Number(flag("--nodes") ?? z.ns[0]), z, log);
  log(`scale ${part}: done, the bed closed`);
  console.log(JSON.stringify(result));
  console.error(`# ${formatNumber(result.addP50Ms)} ms ADD p50`);
  // A daemon left behind by a hung close still has timers: they must not keep this child alive.
  Deno.exit(0);
}
