/**
 * `soak` (issue 20): churn for a long time on two shared-mode nodes with a daemon SIGKILLed every
 * few minutes and the API server restarted once; no address may ever be on two pods, and at the
 * end nothing may be left: no NIC the simulator holds that no daemon knows, no IP still allocated
 * in an IPAMBlock, no IPAMHandle, `hostnic admin ipam check` clean on both nodes.
 *
 * The nodes are the testbed's (lib/testbed/cluster.ts, tests/helpers/shared_bed.ts): real
 * `hostnic daemon start` processes in simulated instance namespaces, the real control plane in the
 * master, the shared-mode bed of lib/testbed/shared.ts (`Default` → the pod vxnet), pods as real
 * network namespaces plumbed by the real plugin binary path (`hostnic` in CNI mode) — not real
 * kubelets: docs/scale.md says why.
 *
 * - Churn: `WORKERS` loops per node: Pod objects created ten at a time (kubectl), then per pod an
 *   ADD, a hold of 0–2 s, a DEL, and the Pod objects deleted ten at a time. An ADD that fails
 *   (its daemon is down) is DELed and counted; the loop goes on. A DEL that fails is counted and
 *   retried every 2 s, the pod's namespace and address kept until it succeeds (as the kubelet
 *   keeps a sandbox it could not tear down).
 * - Chaos: node-2's daemon is SIGKILLed every `killEveryMs` and started again 2 s later; the API
 *   server is restarted once, half-way. node-1's daemon is never killed: its RSS and fd count are
 *   sampled every 20 s and give the slope (MiB/hour, least squares after the first minute).
 * - Duplicates, checked continuously: every ADD's address against the live pods, and every 15 s
 *   the IPAMBlocks against the pods live across the read.
 *
 *   deno task bench --only soak                 quick: 5 minutes, a kill every minute
 *   deno task bench --full --only soak          full: 60 minutes, a kill every 5 minutes
 *   HOSTNIC_SOAK_MINUTES=20 deno task bench --only soak   (any duration; kills every duration/5)
 */
import { RPC } from "../lib/rpc/protocol.ts";
import type { NicView } from "../lib/rpc/api.ts";
import { Cluster, type ClusterNode, type Pod } from "../lib/testbed/cluster.ts";
import { ControlPlane } from "../lib/testbed/kube.ts";
import { blockHolders, startDaemonOn, startSharedBed } from "../lib/testbed/shared.ts";
import type { BenchContext, Benchmark } from "./lib/context.ts";
import { type Figure, figure } from "./lib/figure.ts";

const WORKERS = 3;
const NODES = ["node-1", "node-2"];

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

/** Live pods by address; every claim of an address already live is a duplicate. */
class Book {
  readonly live = new Map<string, string>();
  readonly duplicates: string[] = [];
  claim(ip: string, pod: string) {
    const had = this.live.get(ip);
    if (had !== undefined) this.duplicates.push(`${ip} on ${had} and ${pod}`);
    this.live.set(ip, pod);
  }
  release(ip: string, pod: string) {
    if (this.live.get(ip) === pod) this.live.delete(ip);
  }
}

interface Sample {
  atMs: number;
  rssMiB: number;
  fds: number;
}

async function sampleProc(pid: number): Promise<{ rssMiB: number; fds: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  let fds = 0;
  for await (const _ of Deno.readDir(`/proc/${pid}/fd`)) fds++;
  return { rssMiB: kb / 1024, fds };
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
  pods: number;
  addFailures: number;
  delFailures: number;
  /** The first DEL failures' CNI errors (a DEL must not fail, daemon down or not). Each failed
   * attempt counts; the pod keeps its address until a retry succeeds. */
  delErrors: string[];
  kills: number;
  apiserverRestarts: number;
  checks: number;
  duplicates: string[];
  leaks: string[];
  rssSlopeMiBPerHour: number;
  rssStartMiB: number;
  rssEndMiB: number;
  fdStart: number;
  fdEnd: number;
}

export async function runSoak(z: SoakSizes, log: (m: string) => void): Promise<SoakResult> {
  await using c = await Cluster.start({
    nodes: 2,
    prefix: "sk",
    master: true,
    startDaemons: false,
    configFile: false,
    vxnets: [],
    jobLatencyMs: 100,
  });
  await using cp = await ControlPlane.start(c);
  const bed = await startSharedBed(c, cp, NODES, { namespaces: {}, withDefault: true });
  const book = new Book();
  const counts = { pods: 0, addFailures: 0, delFailures: 0, kills: 0, restarts: 0, checks: 0 };
  const t0 = Date.now();
  const end = t0 + z.durationMs;
  let seq = 0;
  const delErrors: string[] = [];

  const worker = async (node: ClusterNode, nodeName: string) => {
    while (Date.now() < end) {
      const names = Array.from({ length: 10 }, () => `s${++seq}`);
      const created = await cp.kubectl(["create", "-f", "-"], {
        stdin: JSON.stringify({
          apiVersion: "v1",
          kind: "List",
          items: names.map((name) => ({
            apiVersion: "v1",
            kind: "Pod",
            metadata: { name, namespace: "default" },
            spec: {
              nodeName,
              tolerations: [{ operator: "Exists" }],
              containers: [{ name: "main", image: "localhost/busybox:1" }],
            },
          })),
        }),
      });
      if (created.code !== 0) {
        await sleep(1000); // the API server is restarting
        continue;
      }
      for (const name of names) {
        if (Date.now() >= end) break;
        let pod: Pod | undefined;
        try {
          pod = await node.addPod(name);
        } catch {
          counts.addFailures++;
          await node.delPod({
            name,
            netns: `${c.prefix}-p-${name}`,
            path: `/run/netns/${c.prefix}-p-${name}`,
            containerId: `ctr-${name}`,
            ifName: "eth0",
            node,
            ip: "",
            result: {},
          }).catch(() => {});
          await sleep(500);
          continue;
        }
        counts.pods++;
        book.claim(pod.ip, `${nodeName}/${name}`);
        await sleep(Math.random() * 2000);
        // As the kubelet does: the sandbox (its namespace) stays until a DEL succeeds, retried
        // every 2 s; the pod holds its address in the book until then.
        for (let attempt = 1;; attempt++) {
          const del = await node.delPod(pod, { keepNetns: true });
          if (del.code === 0) break;
          counts.delFailures++;
          const req = /request (\d+)/.exec(del.stdout)?.[1];
          const why = node.tail().split("\n").filter((l) =>
            l.includes("rpc handler failed") && (!req || l.includes(req))
          );
          if (delErrors.length < 10) {
            delErrors.push(
              `${nodeName}/${name}: ${del.stdout.trim()} ${why.join(" ").slice(0, 600)}`,
            );
          }
          if (attempt >= 60) break; // two minutes: counted, and the end check finds any leak
          await sleep(2000);
        }
        await node.delPod(pod); // DEL again (it must succeed twice) and the namespace goes
        book.release(pod.ip, `${nodeName}/${name}`);
      }
      await cp.kubectl(["delete", "pod", "--wait=false", "--ignore-not-found", ...names]);
    }
  };

  // Continuous check: the blocks against the pods live across each read.
  const checker = async () => {
    while (Date.now() < end) {
      await sleep(15_000);
      const before = new Map(book.live);
      const held = await blockHolders(cp).catch(() => undefined);
      if (!held) continue;
      counts.checks++;
      for (const [ip, pod] of before) {
        if (book.live.get(ip) !== pod) continue; // DELed meanwhile
        const h = held.get(ip);
        const who = h ? `${h.node}/${h.pod}` : undefined;
        if (who !== undefined && who !== pod) {
          book.duplicates.push(`${ip}: ${pod}, blocks say ${who}`);
        }
      }
    }
  };

  // Chaos: node-2's daemon SIGKILLed every killEveryMs; the API server restarted half-way.
  const chaos = async () => {
    let restarted = false;
    for (let next = t0 + z.killEveryMs; next < end; next += z.killEveryMs) {
      while (Date.now() < next) {
        if (!restarted && Date.now() >= t0 + z.durationMs / 2) {
          log("soak: restarting kube-apiserver");
          await cp.restartApiserver({ downMs: 2000 });
          restarted = true;
          counts.restarts++;
        }
        await sleep(500);
      }
      log(`soak: SIGKILL node-2's daemon (${Math.round((Date.now() - t0) / 1000)} s)`);
      await c.nodes[1].stopDaemon("SIGKILL");
      counts.kills++;
      await sleep(2000);
      for (let attempt = 1;; attempt++) {
        try {
          await startDaemonOn(c.nodes[1], NODES[1], bed.kubeconfig);
          await c.nodes[1].waitReady({ timeoutMs: 120_000 });
          break;
        } catch (err) {
          await c.nodes[1].stopDaemon("SIGTERM").catch(() => {});
          if (attempt >= 3) throw err;
          log(`soak: node-2's daemon did not come back (${(err as Error).message}); again`);
        }
      }
    }
    if (!restarted) {
      await cp.restartApiserver({ downMs: 2000 });
      counts.restarts++;
    }
  };

  const samples: Sample[] = [];
  const sampler = async () => {
    while (Date.now() < end) {
      const pid = c.nodes[0].daemon?.pid;
      if (pid) samples.push({ atMs: Date.now() - t0, ...(await sampleProc(pid)) });
      await sleep(20_000);
    }
  };

  await Promise.all([
    ...c.nodes.flatMap((n, i) => Array.from({ length: WORKERS }, () => worker(n, NODES[i]))),
    checker(),
    chaos(),
    sampler(),
  ]);
  log(`soak: churn over, ${counts.pods} pods; waiting for the nodes to settle`);
  const pid = c.nodes[0].daemon!.pid;
  samples.push({ atMs: Date.now() - t0, ...(await sampleProc(pid)) });
  const leaks = await settle(c, cp);
  const steady = samples.filter((s) => s.atMs >= 60_000);
  const use = steady.length >= 2 ? steady : samples;
  return {
    minutes: z.durationMs / 60_000,
    pods: counts.pods,
    addFailures: counts.addFailures,
    delFailures: counts.delFailures,
    delErrors,
    kills: counts.kills,
    apiserverRestarts: counts.restarts,
    checks: counts.checks,
    duplicates: book.duplicates,
    leaks,
    rssSlopeMiBPerHour: slope(use.map((s) => s.atMs / 3_600_000), use.map((s) => s.rssMiB)),
    rssStartMiB: use[0].rssMiB,
    rssEndMiB: use[use.length - 1].rssMiB,
    fdStart: use[0].fds,
    fdEnd: use[use.length - 1].fds,
  };
}

/**
 * Waits (up to 2 minutes) for nothing to be left, then says what is: IPs still allocated,
 * handles, `ipam check` findings, NICs the simulator holds that no daemon lists.
 */
async function settle(c: Cluster, cp: ControlPlane): Promise<string[]> {
  const deadline = Date.now() + 120_000;
  let leaks: string[] = [];
  for (;;) {
    leaks = [];
    const held = await blockHolders(cp);
    for (const [ip, h] of held) leaks.push(`IP ${ip} still allocated to ${h.node}/${h.pod}`);
    const handles = await cp.getJson<{ items: { metadata: { name: string } }[] }>(["ipamhandles"]);
    for (const h of handles.items) leaks.push(`IPAMHandle ${h.metadata.name}`);
    const known = new Set<string>();
    for (const node of c.nodes) {
      const exited = await node.daemonExited();
      if (exited) {
        leaks.push(`the daemon of ${node.instanceId} is not running (${exited}): ${node.tail()}`);
        return leaks;
      }
      const check = await node.admin(["ipam", "check", "-o", "json"]);
      if (check.code !== 0) leaks.push(`ipam check on ${node.instanceId}: ${check.stdout.trim()}`);
      const nics = await node.client.call<NicView[]>(RPC.adminNics);
      for (const n of nics) known.add(n.id);
    }
    for (const nic of await c.simNics()) {
      if (nic.role === 1 || !c.nodes.some((n) => n.instanceId === nic.instanceId)) continue;
      if (!known.has(nic.id)) leaks.push(`NIC ${nic.id} (${nic.status}) known to no daemon`);
    }
    if (leaks.length === 0 || Date.now() > deadline) return leaks;
    await sleep(2000);
  }
}

function figures(r: SoakResult): Figure[] {
  const note = `${r.minutes} min, ${r.kills} daemon SIGKILLs, ${r.apiserverRestarts} apiserver ` +
    `restart, ${r.pods} pods`;
  return [
    figure({ name: "soak_pods", value: r.pods, unit: "pods", note }),
    figure({
      name: "soak_duplicates",
      value: r.duplicates.length,
      unit: "addresses",
      target: { of: "value", op: "<=", value: 0 },
      note: `every ADD and ${r.checks} block reads`,
    }),
    figure({
      name: "soak_leaks",
      value: r.leaks.length,
      unit: "objects",
      target: { of: "value", op: "<=", value: 0 },
      note: "NICs, IPs, handles, ipam check",
    }),
    figure({
      name: "soak_add_failures",
      value: r.addFailures,
      unit: "ADDs",
      note: "ADDs refused while their daemon was down or the apiserver away (retried as new pods)",
    }),
    figure({
      name: "soak_del_failures",
      value: r.delFailures,
      unit: "DELs",
      target: { of: "value", op: "<=", value: 0 },
      note: r.delErrors[0] ?? "DEL must succeed with the daemon down or the apiserver away",
    }),
    figure({
      name: "soak_rss_slope",
      value: r.rssSlopeMiBPerHour,
      unit: "MiB/h",
      note: `node-1's daemon, ${r.rssStartMiB.toFixed(0)} → ${r.rssEndMiB.toFixed(0)} MiB`,
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
  description: "churn on two shared-mode nodes with daemon SIGKILLs and an apiserver restart",
  optIn: true,
  run: async (ctx: BenchContext) => {
    const r = await runSoak(sizes(ctx.mode), ctx.log);
    ctx.log(`soak: ${JSON.stringify(r)}`);
    if (r.duplicates.length) {
      throw new Error(`soak: addresses on two pods: ${r.duplicates.slice(0, 5).join("; ")}`);
    }
    if (r.leaks.length) throw new Error(`soak: left behind: ${r.leaks.slice(0, 10).join("; ")}`);
    return figures(r);
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
