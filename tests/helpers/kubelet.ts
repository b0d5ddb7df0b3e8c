/**
 * What the torture tests share: a kubelet-like pod lifecycle over the testbed (a failed ADD is
 * followed by a DEL of that sandbox, then a new sandbox with a new container id and namespace is
 * tried again), and the end-of-test accounting of every NIC the simulated cloud holds for the
 * cluster (pooled in a daemon, attached to a live pod, or a leftover).
 */
import assert from "node:assert/strict";
import type { NicView, PodView, PoolView } from "../../lib/rpc/api.ts";
import { CommandRunner } from "../../lib/linux/exec.ts";
import type { Cluster, ClusterNode, CniOutcome, Pod, SimNic } from "../../lib/testbed/cluster.ts";
import { waitFor } from "./wait.ts";

const runner = new CommandRunner();

export interface AddStats {
  /** ADD calls made (first attempts and retries). */
  attempts: number;
  /** Failed ADDs, by CNI error code (`exit<n>` when the output was not CNI JSON). */
  failures: Record<string, number>;
  /** DELs of failed sandboxes (each must succeed). */
  sandboxDels: number;
  /** The message of the first few failures other than "try again later" (11). */
  samples: string[];
}

export function newAddStats(): AddStats {
  return { attempts: 0, failures: {}, sandboxDels: 0, samples: [] };
}

function podArgs(name: string, extra?: string): string {
  return `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${name}${extra ? `;${extra}` : ""}`;
}

/** CNI_ARGS extras of the pods kubeletAdd made (the runtime sends the same ones on DEL). */
const extraArgs = new WeakMap<Pod, string>();

function describe(o: CniOutcome): string {
  return `exit ${o.code}: ${o.stdout.trim()} ${o.stderr.trim()}`.slice(0, 600);
}

/**
 * Runs pod `name` on `node` as kubelet would: a sandbox (netns + container id) per attempt; a
 * failed ADD is followed by DEL of that sandbox (which must succeed, daemon up or not) and the
 * removal of its namespace, then a new sandbox after a short backoff. Throws at the deadline.
 */
export async function kubeletAdd(
  node: ClusterNode,
  name: string,
  o: { deadlineMs?: number; stats?: AddStats; args?: string } = {},
): Promise<Pod> {
  const c = node.cluster;
  const deadline = Date.now() + (o.deadlineMs ?? 90_000);
  let last = "";
  for (let attempt = 0;; attempt++) {
    const sandbox = `${name}-${attempt}`;
    const netns = `${c.prefix}-p-${sandbox}`;
    const path = `/run/netns/${netns}`;
    const containerId = `ctr-${sandbox}`;
    await runner.run(["ip", "netns", "add", netns]);
    c.podNamespaces.add(netns);
    if (o.stats) o.stats.attempts++;
    const args = podArgs(name, o.args);
    const res = await node.cni("ADD", { containerId, netns: path, args });
    if (res.code === 0 && res.json) {
      const ips = res.json.ips as { address: string }[];
      const pod: Pod = {
        name,
        netns,
        path,
        containerId,
        ifName: "eth0",
        node,
        ip: ips[0].address.split("/")[0],
        result: res.json,
      };
      if (o.args) extraArgs.set(pod, o.args);
      return pod;
    }
    last = describe(res);
    if (o.stats) {
      const code = typeof res.json?.code === "number" ? String(res.json.code) : `exit${res.code}`;
      o.stats.failures[code] = (o.stats.failures[code] ?? 0) + 1;
      if (code !== "11" && o.stats.samples.length < 10) o.stats.samples.push(`${sandbox}: ${last}`);
    }
    // The runtime tears the failed sandbox down: DEL (no prevResult: ADD never answered), then
    // the namespace goes.
    const del = await node.cni("DEL", { containerId, netns: path, args });
    if (o.stats) o.stats.sandboxDels++;
    assert.equal(del.code, 0, `DEL of failed sandbox ${sandbox} must succeed: ${describe(del)}`);
    await runner.run(["ip", "netns", "del", netns]).catch(() => {});
    c.podNamespaces.delete(netns);
    if (Date.now() > deadline) {
      throw new Error(`pod ${name} never got a network (${attempt + 1} attempts); last: ${last}`);
    }
    // kubelet's sandbox back-off (much shorter than its real 10 s start).
    await new Promise((r) => setTimeout(r, Math.min(1000, 100 * 2 ** Math.min(attempt, 4))));
  }
}

/**
 * DEL of a running pod as the runtime sends it (with the cached ADD result as prevResult), then
 * the namespace goes. Returns the plugin's outcome; DEL must always succeed.
 */
export async function kubeletDel(pod: Pod): Promise<CniOutcome> {
  const res = await pod.node.cni("DEL", {
    containerId: pod.containerId,
    netns: pod.path,
    args: podArgs(pod.name, extraArgs.get(pod)),
    conf: pod.node.netConf({ prevResult: pod.result }),
  });
  await runner.run(["ip", "netns", "del", pod.netns]).catch(() => {});
  pod.node.cluster.podNamespaces.delete(pod.netns);
  return res;
}

/** Release records the plugin journaled for the daemon and that are not replayed yet. */
export async function journalRecords(node: ClusterNode): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(`${node.dir}/state/journal`)))
      .filter((e) => e.isFile && e.name.endsWith(".json")).map((e) => e.name);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
}

export async function nicList(node: ClusterNode): Promise<NicView[]> {
  const res = await node.admin(["nic", "ls", "-o", "json"]);
  assert.equal(res.code, 0, `admin nic ls on ${node.instanceId}: ${res.stderr}`);
  return JSON.parse(res.stdout) as NicView[];
}

export async function podList(node: ClusterNode): Promise<PodView[]> {
  const res = await node.admin(["pod", "ls", "-o", "json"]);
  assert.equal(res.code, 0, `admin pod ls on ${node.instanceId}: ${res.stderr}`);
  return JSON.parse(res.stdout) as PodView[];
}

/**
 * Waits until every daemon is ready, has replayed its journal, has no batch or detach in flight
 * and holds no more free NICs than poolHigh (the trim after a burst has run).
 */
export async function settleCluster(c: Cluster, timeoutMs = 60_000): Promise<PoolView[]> {
  const views: PoolView[] = [];
  for (const n of c.nodes) {
    await n.waitReady({ timeoutMs });
    await waitFor(
      `journal of ${n.instanceId} replayed`,
      async () => (await journalRecords(n)).length === 0,
      { timeoutMs, intervalMs: 100 },
    );
    const t0 = Date.now();
    let lastLog = 0;
    views.push(
      await n.waitPool(
        (p) => {
          if (Deno.env.get("DEBUG_SETTLE") && Date.now() - lastLog > 2000) {
            lastLog = Date.now();
            console.log(`settle ${n.instanceId} +${Date.now() - t0}ms ${JSON.stringify(p)}`);
          }
          return p.pending === 0 && p.detaching === 0 && p.waiters === 0 && p.free >= p.poolLow &&
            p.free <= p.poolHigh;
        },
        timeoutMs,
      ),
    );
  }
  return views;
}

export interface NicAccount {
  /** Cloud NICs named for one of the cluster's nodes. */
  owned: SimNic[];
  /** Free in the daemon of the instance the cloud shows them attached to. */
  pooled: string[];
  /** Attached to the node of a live pod, in use by that pod in its daemon, with its IP. */
  live: string[];
  /** Everything else, with why. */
  leftover: string[];
  /** NICs a daemon lists that the cloud does not show attached to its instance. */
  phantom: string[];
}

/**
 * Sorts every NIC the simulated cloud holds under a node's owner name (`hostnic_<instance>`)
 * into pooled (free in its node's daemon, attached there, its link on the node) / attached to a
 * live pod / leftover. A NIC that is gone is simply not listed.
 */
export async function accountNics(c: Cluster, live: Pod[]): Promise<NicAccount> {
  const views = new Map<string, Map<string, NicView>>();
  const nodeMacs = new Map<string, Set<string>>();
  for (const n of c.nodes) {
    views.set(n.instanceId, new Map((await nicList(n)).map((x) => [x.id, x])));
    const links = await runner.run(["ip", "-j", "link", "show"], { netns: n.netns });
    nodeMacs.set(
      n.instanceId,
      new Set((JSON.parse(links.stdout) as { address?: string }[]).map((l) => l.address ?? "")),
    );
  }
  const byOwner = new Map(live.map((p) => [`${p.containerId}/${p.ifName}`, p]));
  const names = new Set(c.nodes.map((n) => `hostnic_${n.instanceId}`));
  const owned = (await c.simNics()).filter((n) => names.has(n.name));
  const out: NicAccount = { owned, pooled: [], live: [], leftover: [], phantom: [] };
  const cloud = new Map(owned.map((n) => [n.id, n]));
  for (const [home, nics] of views) {
    for (const v of nics.values()) {
      const nic = cloud.get(v.id);
      if (nic?.status !== "in-use" || nic.instanceId !== home) {
        out.phantom.push(
          `${v.id} (${v.state} in the daemon of ${home}, cloud: ${nic?.status ?? "gone"})`,
        );
      }
    }
  }
  for (const nic of owned) {
    const home = nic.name.slice("hostnic_".length);
    const view = views.get(home)?.get(nic.id);
    const attachedHome = nic.status === "in-use" && nic.instanceId === home;
    // A pooled NIC can serve the next pod only if its link is on the node.
    if (attachedHome && view?.state === "free" && nodeMacs.get(home)?.has(nic.id)) {
      out.pooled.push(nic.id);
      continue;
    }
    const pod = view?.owner ? byOwner.get(view.owner) : undefined;
    if (
      attachedHome && view?.state === "inuse" && pod && pod.node.instanceId === home &&
      pod.ip === nic.privateIp
    ) {
      out.live.push(nic.id);
      continue;
    }
    out.leftover.push(
      `${nic.id} (${nic.privateIp}, cloud: ${nic.status} ${nic.instanceId || "-"}, daemon of ` +
        `${home}: ${view ? `${view.state} owner=${view.owner ?? "-"}` : "unknown"}, link on ` +
        `the node: ${nodeMacs.get(home)?.has(nic.id) ? "yes" : "no"})`,
    );
  }
  return out;
}

/**
 * The cluster's invariants with `live` the pods kubelet believes run: the daemons hold exactly
 * these allocations, no IP is held twice, every live pod's namespace carries its IP.
 */
export async function assertAllocations(c: Cluster, live: Pod[]): Promise<void> {
  const ips = live.map((p) => p.ip);
  const dup = ips.filter((ip, i) => ips.indexOf(ip) !== i);
  assert.deepEqual(dup, [], `IPs held by two live pods: ${dup.join(", ")}`);
  for (const n of c.nodes) {
    const mine = live.filter((p) => p.node === n);
    const allocs = await podList(n);
    assert.deepEqual(
      allocs.map((a) => `${a.containerId} ${a.ip}`).sort(),
      mine.map((p) => `${p.containerId} ${p.ip}`).sort(),
      `allocations of ${n.instanceId} are exactly its live pods`,
    );
  }
  for (const p of live) {
    const out = await runner.run(["ip", "-4", "-j", "addr", "show", "dev", p.ifName], {
      netns: p.netns,
    });
    const addrs = (JSON.parse(out.stdout) as { addr_info: { local: string }[] }[])[0].addr_info
      .map((a) => a.local);
    assert.deepEqual(addrs, [p.ip], `pod ${p.name} carries its own IP`);
  }
}

/** Every live pod pings a live pod on another node; returns the pairs that got no answer. */
export async function pingAcross(c: Cluster, live: Pod[], parallel = 6): Promise<string[]> {
  const failures: string[] = [];
  const jobs = live.map((p) => async () => {
    const peers = live.filter((q) => q.node !== p.node);
    if (peers.length === 0) {
      failures.push(`${p.name}: no live pod on another node`);
      return;
    }
    const peer = peers[live.indexOf(p) % peers.length];
    if (!(await c.ping(p.netns, peer.ip, 1)) && !(await c.ping(p.netns, peer.ip, 2))) {
      failures.push(`${p.name} (${p.ip}, ${p.node.instanceId}) → ${peer.name} (${peer.ip})`);
    }
  });
  await runAll(jobs, parallel);
  return failures;
}

/** Runs thunks with at most `parallel` at once. */
export async function runAll(jobs: (() => Promise<void>)[], parallel: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) await jobs[next++]();
  };
  await Promise.all(Array.from({ length: Math.min(parallel, jobs.length) }, worker));
}

export interface SimJob {
  id: string;
  action: string;
  final: string | null;
  finalMs: number | null;
  effect: { kind: string; nicIds?: string[]; instanceId?: string };
}

/** Attach/detach jobs of `node`'s NICs the simulator has not finished. */
export async function unfinishedJobs(c: Cluster, node: ClusterNode): Promise<SimJob[]> {
  const st = await c.simControl<{ jobs: SimJob[]; nics: SimNic[] }>("state");
  const mine = new Set(
    st.nics.filter((n) => n.name === `hostnic_${node.instanceId}`).map((n) => n.id),
  );
  return st.jobs.filter((j) =>
    j.final === null && (
      (j.effect.kind === "attach" && j.effect.instanceId === node.instanceId) ||
      (j.effect.kind === "detach" && (j.effect.nicIds ?? []).some((id) => mine.has(id)))
    )
  );
}

/** GC actions (`adopt-nic`, `delete-nic`, …) the daemons of the cluster logged, by kind. */
export async function gcActionCounts(c: Cluster): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const n of c.nodes) {
    const text = await Deno.readTextFile(`${c.dir}/daemon-${n.instanceId}.log`).catch(() => "");
    for (const m of text.matchAll(/"action":"([a-z-]+) /g)) out[m[1]] = (out[m[1]] ?? 0) + 1;
  }
  return out;
}
