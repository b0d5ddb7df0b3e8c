/**
 * `soak` (issue 20): churn for a long time on two REAL kubelet nodes in shared mode with a node
 * daemon SIGKILLed every few minutes and kube-apiserver restarted once; no address may ever be on
 * two pods, and at the end nothing may be left: no IP allocated in an IPAMBlock, no IPAMHandle,
 * `hostnic admin ipam check` clean on both nodes, no NIC the simulator holds on a node that the
 * node's daemon does not list, no host veth left on a node.
 *
 * The cluster is the real-node bed (lib/testbed/real_bed.ts): the simulator, the real control
 * plane, two nodes with containerd + kubelet + kube-proxy (lib/testbed/node.ts), hostnic installed
 * in shared mode from deploy/hostnic.yaml as docs/shared-mode.md says (lib/testbed/install.ts). The
 * daemons are the DaemonSet's containers; pods are Pod objects the kubelets run (the pause image),
 * so every ADD and DEL is containerd's CRI calling the installed plugin, at the kubelets' pace.
 *
 * - Churn: one loop per node creates `WAVE` Pod objects bound to its node (kubectl), waits for
 *   them to run with an address, holds them 1–4 s, deletes them without waiting, and starts the
 *   next wave once no more than `WAVE` of its pods are still being torn down. A pod that is not
 *   running after 2 minutes is deleted and counted (`soak_stuck_pods`).
 * - Chaos: the hostnic-node process on node-2 (found with `ctr tasks ls`) is SIGKILLed every
 *   `killEveryMs`; the kubelet restarts the container (its CrashLoopBackOff decides when), and the
 *   module waits until the pod is Ready again (time to Ready: `soak_daemon_back_max`) and then at
 *   least half a period before the next kill. kube-apiserver is stopped for `APISERVER_DOWN_MS` once, half-way.
 *   node-1's daemon is never killed: its RSS and fd count are sampled every 20 s (slope in MiB/hour,
 *   least squares after the first minute).
 * - Duplicates, checked continuously: every 2 s a list of all pods (one list is one consistent
 *   snapshot) in which no address may be on two live pods (not hostNetwork, not Succeeded/Failed,
 *   and not being deleted with every container stopped); every 15 s the IPAMBlocks against the
 *   pods live in the snapshots before and after the read: an address a live pod has must be
 *   allocated to that pod.
 * - The kubelets' own failure events are counted: FailedCreatePodSandBox (an ADD that failed,
 *   retried by the kubelet) and FailedKillPod (a DEL that failed, retried likewise).
 * - End: every churn pod deleted, the kubelets given up to 4 minutes to tear them down, then up to
 *   2 minutes for the leak checks above to come out clean.
 *
 *   deno task bench --only soak                 quick: 5 minutes, a kill every minute
 *   deno task bench --full --only soak          full: 60 minutes, a kill every 5 minutes
 *   HOSTNIC_SOAK_MINUTES=20 deno task bench --only soak   (any duration; kills every duration/5)
 */
import { RPC } from "../lib/rpc/protocol.ts";
import { RpcClient } from "../lib/rpc/client.ts";
import type { NicView } from "../lib/rpc/api.ts";
import { CommandRunner } from "../lib/linux/exec.ts";
import { hostnicImage, PAUSE_REF, pauseImage } from "../lib/testbed/images.ts";
import type { ControlPlane } from "../lib/testbed/kube.ts";
import type { RealNode } from "../lib/testbed/node.ts";
import { runAdmin } from "../lib/testbed/processes.ts";
import { procMemory } from "./rss_mem.ts";
import { containerPid, daemonPod, daemonSocket, RealBed } from "../lib/testbed/real_bed.ts";
import { blockHolders } from "../lib/testbed/shared.ts";
import type { BenchContext, Benchmark } from "./lib/context.ts";
import { type Figure, figure, formatFigure } from "./lib/figure.ts";

/** Pods per node per wave. */
const WAVE = 4;
const NAMESPACE = "default";
const APISERVER_DOWN_MS = 5000;
const runner = new CommandRunner();

interface SoakSizes {
  durationMs: number;
  killEveryMs: number;
}

function sizes(mode: "quick" | "full"): SoakSizes {
  const env = Deno.env.get("HOSTNIC_SOAK_MINUTES");
  if (env !== undefined) {
    const m = Number(env);
    if (!(m >= 1 && m <= 24 * 60)) {
      throw new Error(`HOSTNIC_SOAK_MINUTES="${env}" must be a number of minutes from 1 to 1440`);
    }
    return { durationMs: m * 60_000, killEveryMs: Math.max(30_000, (m * 60_000) / 5) };
  }
  return mode === "full"
    ? { durationMs: 60 * 60_000, killEveryMs: 5 * 60_000 }
    : { durationMs: 5 * 60_000, killEveryMs: 60_000 };
}

export interface PodJson {
  metadata: { name: string; namespace: string; uid: string; deletionTimestamp?: string };
  spec: { nodeName?: string; hostNetwork?: boolean };
  status: {
    phase?: string;
    podIP?: string;
    containerStatuses?: { state?: { running?: unknown } }[];
  };
}

/** A pod holds its address: it has one, and it is not terminated (nor stopped for deletion). */
export function holdsAddress(p: PodJson): boolean {
  if (!p.status.podIP || p.spec.hostNetwork) return false;
  if (p.status.phase === "Succeeded" || p.status.phase === "Failed") return false;
  if (!p.metadata.deletionTimestamp) return true;
  return (p.status.containerStatuses ?? []).some((c) => c.state?.running !== undefined);
}

/** Address → the live pods (`ns/name`) that have it, from one snapshot. */
export function addressesOf(pods: readonly PodJson[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const p of pods) {
    if (!holdsAddress(p)) continue;
    const who = `${p.metadata.namespace}/${p.metadata.name}`;
    out.set(p.status.podIP!, [...(out.get(p.status.podIP!) ?? []), who]);
  }
  return out;
}

/** What the continuous checks found; every finding is kept once. */
class Book {
  readonly duplicates = new Set<string>();
  /** The latest snapshot of all pods, and when it was taken. */
  pods: PodJson[] = [];
  snapshots = 0;
  blockChecks = 0;
  /** Pod uids seen running with an address. */
  readonly started = new Set<string>();

  take(pods: PodJson[]) {
    this.pods = pods;
    this.snapshots++;
    for (const [ip, who] of addressesOf(pods)) {
      if (who.length > 1) this.duplicates.add(`${ip} on ${who.join(" and ")} at once`);
    }
    for (const p of pods) {
      if (p.status.phase === "Running" && p.status.podIP && !p.spec.hostNetwork) {
        this.started.add(p.metadata.uid);
      }
    }
  }
}

interface Sample {
  atMs: number;
  rssMiB: number;
  /** glibc's `[heap]` mapping (native allocations: TLS buffers, the spawn residue). */
  brkMiB: number;
  fds: number;
}

async function sampleProc(pid: number): Promise<{ rssMiB: number; brkMiB: number; fds: number }> {
  const mem = await procMemory(pid);
  let fds = 0;
  for await (const _ of Deno.readDir(`/proc/${pid}/fd`)) fds++;
  return { rssMiB: mem.rss / 2 ** 20, brkMiB: mem.brk / 2 ** 20, fds };
}

/** Least-squares slope of y against x. */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  const num = xs.reduce((s, x, i) => s + (x - mx) * (ys[i] - my), 0);
  const den = xs.reduce((s, x) => s + (x - mx) ** 2, 0);
  return den === 0 ? NaN : num / den;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface SoakResult {
  minutes: number;
  /** Churn pods that ran with an address. */
  pods: number;
  podsPerMin: number;
  stuckPods: number;
  /** The first stuck pods (name and phase). */
  stuck: string[];
  /** The first FailedCreatePodSandBox messages. */
  addErrors: string[];
  /** The kubelets' FailedCreatePodSandBox / FailedKillPod events (summed counts). */
  addFailures: number;
  delFailures: number;
  /** The first DEL failures' messages. */
  delErrors: string[];
  kills: number;
  /** node-2's container restarts the kubelet made (restartCount), and node-1's (should be 0). */
  restarts: number;
  neverKilledRestarts: number;
  /** Seconds from each SIGKILL to the daemon pod Ready again. */
  backSeconds: number[];
  apiserverRestarts: number;
  snapshots: number;
  blockChecks: number;
  duplicates: string[];
  leaks: string[];
  rssSlopeMiBPerHour: number;
  rssStartMiB: number;
  rssEndMiB: number;
  brkSlopeMiBPerHour: number;
  fdStart: number;
  fdEnd: number;
}

/** Retries a kubectl call while the API server is away (until `untilMs`); false if it never took. */
async function kubectlRetry(
  cp: ControlPlane,
  args: string[],
  o: { stdin?: string; untilMs: number },
) {
  for (;;) {
    const r = await cp.kubectl(args, { stdin: o.stdin });
    // A create whose reply the restarting API server lost may have been done: that is success.
    if (r.code === 0 || /AlreadyExists|already exists/.test(r.stderr)) return true;
    if (Date.now() > o.untilMs) return false;
    await sleep(1000);
  }
}

function podManifest(names: string[], node: string): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "List",
    items: names.map((name) => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: NAMESPACE, labels: { app: "soak" } },
      spec: {
        nodeName: node,
        terminationGracePeriodSeconds: 1,
        tolerations: [{ operator: "Exists" }],
        containers: [{ name: "main", image: PAUSE_REF, imagePullPolicy: "Never" }],
      },
    })),
  });
}

export async function runSoak(z: SoakSizes, log: (m: string) => void): Promise<SoakResult> {
  const images = [await pauseImage(), await hostnicImage({ log })].map((i) => ({
    archive: i.archive,
  }));
  // A prefix of its own: a testbed's close deletes every namespace named `<prefix>-…`, and
  // tests/e2e/shared_chaos_test.ts, which may run beside a bench, uses "sk".
  const prefix = `so${crypto.randomUUID().slice(0, 4)}`;
  await using bed = await RealBed.start({ prefix, mode: "shared", images, log });
  const { cp, nodes } = bed;
  log("soak: two real nodes in shared mode; churn starts");
  const book = new Book();
  const counts = { stuck: 0, kills: 0, apiRestarts: 0 };
  const backSeconds: number[] = [];
  const stuck: string[] = [];
  /** What went wrong during the churn that the end checks would not see. */
  const problems: string[] = [];
  const t0 = Date.now();
  const end = t0 + z.durationMs;
  let seq = 0;

  const snapshot = async () => {
    const r = await cp.kubectl(["get", "pods", "-A", "-o", "json"]);
    if (r.code !== 0) return false; // the API server is restarting
    book.take((JSON.parse(r.stdout) as { items: PodJson[] }).items);
    return true;
  };
  const watcher = async () => {
    while (Date.now() < end) {
      await snapshot();
      await sleep(2000);
    }
  };

  const worker = async (node: RealNode, k: number) => {
    while (Date.now() < end) {
      const names = Array.from({ length: WAVE }, () => `soak-${k}-${++seq}`);
      if (
        !await kubectlRetry(cp, ["create", "-f", "-"], {
          stdin: podManifest(names, node.name),
          untilMs: end,
        })
      ) break;
      const deadline = Date.now() + 120_000;
      const mine = () => book.pods.filter((p) => names.includes(p.metadata.name));
      while (Date.now() < deadline) {
        const running = mine().filter((p) => p.status.phase === "Running" && p.status.podIP);
        if (running.length === names.length) break;
        await sleep(500);
      }
      for (const p of mine()) {
        if (p.status.phase === "Running" && p.status.podIP) continue;
        counts.stuck++;
        if (stuck.length < 5) stuck.push(`${p.metadata.name} (${p.status.phase ?? "?"})`);
      }
      await sleep(1000 + Math.random() * 3000);
      await kubectlRetry(cp, [
        "delete",
        "pod",
        "-n",
        NAMESPACE,
        "--wait=false",
        "--ignore-not-found",
        ...names,
      ], {
        untilMs: end + 60_000,
      });
      // Pace on the kubelet: the next wave once at most WAVE of this node's pods are going.
      while (Date.now() < end) {
        const going = book.pods.filter((p) =>
          p.spec.nodeName === node.name && p.metadata.deletionTimestamp &&
          p.metadata.name.startsWith("soak-")
        );
        if (going.length <= WAVE) break;
        await sleep(500);
      }
    }
  };

  // Every 15 s: the blocks against the pods live in the snapshots before and after the read.
  const blockChecker = async () => {
    while (Date.now() < end) {
      await sleep(15_000);
      const before = addressesOf(book.pods);
      const held = await blockHolders(cp).catch(() => undefined);
      if (!held || !await snapshot()) continue;
      const after = addressesOf(book.pods);
      const going = new Set(
        book.pods.filter((p) => p.metadata.deletionTimestamp).map((p) =>
          `${p.metadata.namespace}/${p.metadata.name}`
        ),
      );
      book.blockChecks++;
      for (const [ip, who] of before) {
        // Changed meanwhile, or being deleted (its DEL may have run before its status says so).
        if (who.length !== 1 || after.get(ip)?.join() !== who[0] || going.has(who[0])) continue;
        const h = held.get(ip);
        const holder = h ? `${h.namespace}/${h.pod}` : undefined;
        if (holder !== who[0]) {
          book.duplicates.add(
            `${ip}: live pod ${who[0]}, IPAMBlock ${h?.block ?? "-"} says ${holder ?? "free"}`,
          );
        }
      }
    }
  };

  // The kubelets' events for failed ADDs and DELs, by event uid (the API server aggregates).
  const events = new Map<string, { reason: string; count: number; message: string }>();
  const collectEvents = async () => {
    const r = await cp.kubectl(["get", "events", "-n", NAMESPACE, "-o", "json"]);
    if (r.code !== 0) return;
    const list = JSON.parse(r.stdout) as {
      items: {
        metadata: { uid: string };
        reason: string;
        message: string;
        count?: number;
        series?: { count: number };
      }[];
    };
    for (const e of list.items) {
      if (e.reason !== "FailedCreatePodSandBox" && e.reason !== "FailedKillPod") continue;
      const count = Math.max(e.count ?? 1, e.series?.count ?? 1);
      events.set(e.metadata.uid, { reason: e.reason, count, message: e.message });
    }
  };
  const eventCollector = async () => {
    while (Date.now() < end) {
      await sleep(30_000);
      await collectEvents();
    }
  };

  // Chaos: node-2's daemon SIGKILLed every killEveryMs; the API server restarted half-way.
  const killed = nodes[1];
  const firstPod = await daemonPod(cp, killed.name);
  const neverKilledPod = await daemonPod(cp, nodes[0].name);
  const chaos = async () => {
    let restarted = false;
    const restartApiserver = async () => {
      log(`soak: kube-apiserver down for ${APISERVER_DOWN_MS / 1000} s`);
      await cp.restartApiserver({ downMs: APISERVER_DOWN_MS });
      restarted = true;
      counts.apiRestarts++;
    };
    let next = t0 + z.killEveryMs;
    for (; next < end; next += z.killEveryMs) {
      while (Date.now() < next) {
        if (!restarted && Date.now() >= t0 + z.durationMs / 2) await restartApiserver();
        await sleep(500);
      }
      const before = await daemonPod(cp, killed.name).catch(() => undefined);
      const pid = before && await containerPid(killed, before.containerId);
      if (!before || !pid) {
        log(`soak: no running daemon on ${killed.name} to kill (${JSON.stringify(before)})`);
        continue;
      }
      log(
        `soak: SIGKILL ${killed.name}'s daemon, pid ${pid} (${
          Math.round((Date.now() - t0) / 1000)
        } s)`,
      );
      Deno.kill(pid, "SIGKILL");
      counts.kills++;
      const tk = Date.now();
      let back = false;
      while (!back && Date.now() - tk < 10 * 60_000) {
        const now = await daemonPod(cp, killed.name).catch(() => undefined);
        back = now !== undefined && now.restarts > before.restarts && now.ready;
        if (!back) await sleep(1000);
      }
      if (!back) {
        problems.push(`${killed.name}'s daemon not Ready 10 minutes after its SIGKILL`);
        break;
      }
      backSeconds.push((Date.now() - tk) / 1000);
      log(`soak: ${killed.name}'s daemon Ready again after ${backSeconds.at(-1)!.toFixed(1)} s`);
      // The kubelet's back-off grows with each crash: give the daemon at least half a period of
      // work between its Ready and the next kill, so it is not killed again as soon as it is back.
      next = Math.max(next, Date.now() - z.killEveryMs / 2); // the loop adds a period
    }
    if (!restarted) await restartApiserver();
  };

  const samples: Sample[] = [];
  let neverKilledPid = await containerPid(nodes[0], neverKilledPod?.containerId ?? "");
  if (!neverKilledPid) throw new Error(`no daemon process on ${nodes[0].name}`);
  const sample = async () => {
    const s = await sampleProc(neverKilledPid!).catch(() => undefined);
    if (s) samples.push({ atMs: Date.now() - t0, ...s });
    else log(`soak: ${nodes[0].name}'s daemon (pid ${neverKilledPid}) is gone`);
  };
  const sampler = async () => {
    while (Date.now() < end) {
      await sample();
      await sleep(20_000);
    }
  };

  await Promise.all([
    watcher(),
    ...nodes.map((n, k) => worker(n, k + 1)),
    blockChecker(),
    eventCollector(),
    chaos(),
    sampler(),
  ]);
  const pods = book.started.size;
  log(`soak: churn over, ${pods} pods; deleting the rest and waiting for the kubelets`);
  await sample();
  const leaks = [...problems, ...await teardown(bed, book)];
  await collectEvents();
  const lastPod = await daemonPod(cp, killed.name);
  const lastNeverKilled = await daemonPod(cp, nodes[0].name);
  neverKilledPid = undefined;
  const steady = samples.filter((s) => s.atMs >= 60_000);
  const use = steady.length >= 2 ? steady : samples;
  const failed = [...events.values()];
  const sum = (reason: string) =>
    failed.filter((e) => e.reason === reason).reduce((s, e) => s + e.count, 0);
  return {
    minutes: z.durationMs / 60_000,
    pods,
    podsPerMin: pods / (z.durationMs / 60_000),
    stuckPods: counts.stuck,
    stuck,
    addErrors: failed.filter((e) => e.reason === "FailedCreatePodSandBox").slice(0, 3).map((e) =>
      e.message.slice(0, 400)
    ),
    addFailures: sum("FailedCreatePodSandBox"),
    delFailures: sum("FailedKillPod"),
    delErrors: failed.filter((e) => e.reason === "FailedKillPod").slice(0, 5).map((e) =>
      e.message.slice(0, 400)
    ),
    kills: counts.kills,
    restarts: (lastPod?.restarts ?? 0) - (firstPod?.restarts ?? 0),
    neverKilledRestarts: (lastNeverKilled?.restarts ?? 0) - (neverKilledPod?.restarts ?? 0),
    backSeconds,
    apiserverRestarts: counts.apiRestarts,
    snapshots: book.snapshots,
    blockChecks: book.blockChecks,
    duplicates: [...book.duplicates],
    leaks,
    rssSlopeMiBPerHour: slope(use.map((s) => s.atMs / 3_600_000), use.map((s) => s.rssMiB)),
    rssStartMiB: use[0]?.rssMiB ?? NaN,
    rssEndMiB: use.at(-1)?.rssMiB ?? NaN,
    brkSlopeMiBPerHour: slope(use.map((s) => s.atMs / 3_600_000), use.map((s) => s.brkMiB)),
    fdStart: use[0]?.fds ?? NaN,
    fdEnd: use.at(-1)?.fds ?? NaN,
  };
}

/**
 * Deletes every churn pod, waits (4 minutes) for the kubelets to tear them down, then (2 minutes)
 * for nothing to be left; returns what is: pods still there, IPs still allocated, handles, `ipam
 * check` findings, NICs the simulator holds that no daemon lists, host veths on a node.
 */
async function teardown(bed: RealBed, book: Book): Promise<string[]> {
  const { cp, nodes, cluster } = bed;
  await kubectlRetry(cp, ["delete", "pods", "-n", NAMESPACE, "-l", "app=soak", "--wait=false"], {
    untilMs: Date.now() + 60_000,
  });
  const gone = Date.now() + 240_000;
  let left: string[] = [];
  for (;;) {
    const list = await cp.getJson<{ items: PodJson[] }>([
      "pods",
      "-n",
      NAMESPACE,
      "-l",
      "app=soak",
    ]);
    book.take(list.items);
    left = list.items.map((p) => `pod ${p.metadata.name} on ${p.spec.nodeName} still there`);
    if (left.length === 0 || Date.now() > gone) break;
    await sleep(2000);
  }
  const deadline = Date.now() + 120_000;
  for (;;) {
    const leaks = [...left];
    for (const [ip, h] of await blockHolders(cp)) {
      leaks.push(`IP ${ip} still allocated to ${h.namespace}/${h.pod} (${h.node})`);
    }
    const handles = await cp.getJson<{ items: { metadata: { name: string } }[] }>(["ipamhandles"]);
    for (const h of handles.items) leaks.push(`IPAMHandle ${h.metadata.name}`);
    const known = new Set<string>();
    for (const node of nodes) {
      const socket = daemonSocket(node);
      const check = await runAdmin(socket, ["ipam", "check", "-o", "json"]);
      if (check.code !== 0) {
        leaks.push(
          `ipam check on ${node.name}: ${(check.stdout + check.stderr).trim().slice(0, 600)}`,
        );
      }
      try {
        const nics = await new RpcClient(socket, { timeoutMs: 10_000 }).call<NicView[]>(
          RPC.adminNics,
        );
        for (const n of nics) known.add(n.id);
      } catch (err) {
        leaks.push(`${node.name}'s daemon does not answer: ${(err as Error).message}`);
      }
      const links = JSON.parse(
        (await runner.run(["ip", "-n", node.instance.netns, "-j", "link", "show"])).stdout,
      ) as { ifname: string }[];
      for (const l of links) {
        if (l.ifname.startsWith("vnic")) leaks.push(`veth ${l.ifname} on ${node.name}`);
      }
    }
    for (const nic of await cluster.simNics()) {
      if (nic.role === 1 || !nodes.some((n) => n.instance.instanceId === nic.instanceId)) continue;
      if (!known.has(nic.id)) {
        leaks.push(`NIC ${nic.id} (${nic.status}) on ${nic.instanceId} known to no daemon`);
      }
    }
    if (leaks.length === 0 || Date.now() > deadline) return leaks;
    await sleep(2000);
  }
}

function figures(r: SoakResult): Figure[] {
  const note = `${r.minutes} min on 2 real kubelet nodes, ${r.kills} daemon SIGKILLs, ` +
    `${r.apiserverRestarts} apiserver restart`;
  const back = [...r.backSeconds].sort((a, b) => a - b);
  return [
    figure({ name: "soak_pods", value: r.pods, unit: "pods", note }),
    figure({
      name: "soak_pods_per_min",
      value: r.podsPerMin,
      unit: "pods/min",
      note: "pods that ran with an address, both nodes",
    }),
    figure({
      name: "soak_duplicates",
      value: r.duplicates.length,
      unit: "addresses",
      target: { of: "value", op: "<=", value: 0 },
      note: `${r.snapshots} pod lists and ${r.blockChecks} block reads`,
    }),
    figure({
      name: "soak_leaks",
      value: r.leaks.length,
      unit: "objects",
      target: { of: "value", op: "<=", value: 0 },
      note: r.leaks[0] ?? "pods, IPs, handles, ipam check, NICs, veths",
    }),
    figure({
      name: "soak_stuck_pods",
      value: r.stuckPods,
      unit: "pods",
      note: `not running with an address 2 minutes after their creation: ${
        r.stuck.join(", ") || "none"
      }`,
    }),
    figure({
      name: "soak_add_failures",
      value: r.addFailures,
      unit: "ADDs",
      note: `kubelet FailedCreatePodSandBox events (retried by the kubelet)${
        r.addErrors[0] ? `; first: ${r.addErrors[0]}` : ""
      }`,
    }),
    figure({
      name: "soak_del_failures",
      value: r.delFailures,
      unit: "DELs",
      target: { of: "value", op: "<=", value: 0 },
      note: r.delErrors[0] ?? "kubelet FailedKillPod events: a DEL must succeed",
    }),
    figure({
      name: "soak_daemon_restarts",
      value: r.restarts,
      unit: "restarts",
      target: { of: "value", op: ">=", value: r.kills },
      note:
        `node-2's container restarts by the kubelet for ${r.kills} SIGKILLs; node-1: ${r.neverKilledRestarts}`,
    }),
    figure({
      name: "soak_daemon_back_max",
      value: back.at(-1) ?? NaN,
      unit: "s",
      note: `SIGKILL → pod Ready again (kubelet back-off included); all: ${
        back.map((s) => s.toFixed(0)).join(", ")
      }`,
    }),
    figure({
      name: "soak_rss_slope",
      value: r.rssSlopeMiBPerHour,
      unit: "MiB/h",
      note: `node-1's daemon, ${r.rssStartMiB.toFixed(0)} → ${r.rssEndMiB.toFixed(0)} MiB; ` +
        `glibc heap ${r.brkSlopeMiBPerHour.toFixed(1)} MiB/h`,
    }),
    figure({
      name: "soak_fds_end",
      value: r.fdEnd,
      unit: "fds",
      note: `node-1's daemon, ${r.fdStart} after the first minute`,
    }),
  ];
}

export const soak: Benchmark = {
  name: "soak",
  description:
    "churn on two real kubelet nodes (shared mode) with daemon SIGKILLs and an apiserver restart",
  optIn: true,
  run: async (ctx: BenchContext) => {
    const r = await runSoak(sizes(ctx.mode), ctx.log);
    ctx.log(`soak: ${JSON.stringify(r)}`);
    const out = figures(r);
    // A failed run still shows its figures (the bench prints none for a module that throws).
    if (r.duplicates.length || r.leaks.length) {
      for (const f of out) ctx.log(`soak: ${formatFigure(f)}`);
    }
    if (r.duplicates.length) {
      throw new Error(`soak: addresses on two pods: ${r.duplicates.slice(0, 5).join("; ")}`);
    }
    if (r.leaks.length) throw new Error(`soak: left behind: ${r.leaks.slice(0, 10).join("; ")}`);
    return out;
  },
};

if (import.meta.main) {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log([
      "Usage: deno run -A bench/soak.ts [--full]",
      "",
      "The soak benchmark alone (5 minutes; --full 60; HOSTNIC_SOAK_MINUTES=N any length).",
    ].join("\n"));
    Deno.exit(0);
  }
  const r = await runSoak(sizes(Deno.args.includes("--full") ? "full" : "quick"), console.error);
  console.log(JSON.stringify(r));
}
