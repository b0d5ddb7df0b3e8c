/**
 * Chaos: a seeded script of 200 pod ADD/DEL operations across two nodes (a fifth of the pods in
 * passthrough mode), run a few at a time, while the node daemons are killed with SIGKILL at random
 * moments (several while the simulated cloud runs an attach or detach job for that node, some
 * while the daemon rebuilds its state at start-up) and restarted. Pods are handled as kubelet
 * does: a failed ADD is followed by a DEL of the sandbox and a new sandbox; every DEL must succeed,
 * daemon up or down (the plugin then tears down locally and journals the release).
 *
 * At the end: every live pod pings a pod on the other node, no IP is held twice, the daemons hold
 * exactly the live pods' allocations, and every NIC the cloud holds under a node's name is pooled
 * in that node's daemon, attached to a live pod, or gone (leftover = 0).
 *
 * The seed is printed; `HOSTNIC_CHAOS_SEED=<n>` replays the same script (the interleaving of
 * concurrent operations and the kill moments still vary with timing).
 */
import assert from "node:assert/strict";
import { createRng } from "../../lib/sim/prng.ts";
import { Cluster, type Pod } from "../../lib/testbed/cluster.ts";
import {
  accountNics,
  assertAllocations,
  kubeletAdd,
  kubeletDel,
  newAddStats,
  pingAcross,
  settleCluster,
  type SimJob,
  unfinishedJobs,
} from "../helpers/kubelet.ts";
import { waitFor } from "../helpers/wait.ts";

const OPS = 200;
const KILLS = 12;
const WORKERS = 6;
const PASSTHROUGH = "hostnic.network.kubesphere.io/type=passthrough";

function chaosSeed(): number {
  const raw = Deno.env.get("HOSTNIC_CHAOS_SEED");
  if (raw === undefined || raw.trim() === "") return crypto.getRandomValues(new Uint32Array(1))[0];
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new Error(`HOSTNIC_CHAOS_SEED="${raw}" must be a whole number from 0 to 4294967295`);
  }
  return n;
}

function secs(from: number, to: number): string {
  return `${((to - from) / 1000).toFixed(1)} s`;
}

/** Which of `jobs` were still running at `t` (unfinished now, or finished after `t`). */
async function runningAt(c: Cluster, jobs: SimJob[], t: number): Promise<string[]> {
  const st = await c.simControl<{ jobs: SimJob[] }>("state");
  const now = new Map(st.jobs.map((j) => [j.id, j]));
  return jobs.filter((j) => {
    const s = now.get(j.id);
    return s !== undefined && (s.final === null || (s.finalMs ?? 0) >= t);
  }).map((j) => `${j.action} ${j.id}`);
}

Deno.test({
  name: "chaos: 200 ADD/DEL across 2 nodes with daemons SIGKILLed and restarted",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const seed = chaosSeed();
    console.log(`chaos seed ${seed} (replay with HOSTNIC_CHAOS_SEED=${seed})`);
    const rng = createRng(seed);
    const started = Date.now();
    await using c = await Cluster.start({
      nodes: 2,
      prefix: "cx",
      // Long enough that attach/detach jobs are often in flight when a daemon dies.
      jobLatencyMs: 700,
      // A short IP cooldown (exercised, yet the pools settle soon after the last DEL) and full
      // GC passes every 5 s, racing the pods' ADDs and DELs.
      pool: { poolLow: 2, poolHigh: 4, sync: 1, ipCooldown: 2, nodeSync: 5, freePeriod: 0.1 },
    });

    const clusterUp = Date.now();
    const live: Pod[] = [];
    const stats = newAddStats();
    const delFailures: string[] = [];
    let next = 0;
    let adds = 0;
    let dels = 0;
    let delsWhileDown = 0;
    let passthroughAdds = 0;
    // Every IP a pod holds from its ADD until its DEL has returned: an ADD answering one of these
    // hands an IP to two pods at once (the IP cooldown rules out a legitimate quick reuse).
    const held = new Map<string, string>();
    const doubleHanded: string[] = [];

    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= OPS) return;
        // Keep 6..24 pods alive: enough churn for refills and trims, far from maxNic.
        const pAdd = live.length < 6 ? 0.85 : live.length > 24 ? 0.2 : 0.55;
        if (live.length === 0 || rng.next() < pAdd) {
          const node = c.nodes[rng.int(0, c.nodes.length - 1)];
          // Some pods own their NIC (passthrough): the NIC moves into the pod and back.
          const args = rng.next() < 0.2 ? PASSTHROUGH : undefined;
          const pod = await kubeletAdd(node, `q${i}`, { stats, args });
          const holder = held.get(pod.ip);
          if (holder) doubleHanded.push(`${pod.ip}: ${pod.name} while ${holder} held it`);
          held.set(pod.ip, pod.name);
          live.push(pod);
          adds++;
          if (args) passthroughAdds++;
        } else {
          const pod = live.splice(rng.int(0, live.length - 1), 1)[0];
          if (pod.node.daemon === undefined) delsWhileDown++;
          const res = await kubeletDel(pod);
          if (held.get(pod.ip) === pod.name) held.delete(pod.ip);
          dels++;
          if (res.code !== 0) {
            delFailures.push(`${pod.name}: exit ${res.code} ${res.stdout} ${res.stderr}`);
          }
        }
      }
    };

    const kills: { node: string; op: number; jobs: string[]; startup?: boolean }[] = [];
    const killPoints = Array.from(
      { length: KILLS },
      (_, k) => Math.round(8 + (k + rng.next()) * (OPS - 30) / KILLS),
    );
    const killer = async () => {
      for (const point of killPoints) {
        await waitFor(`operation ${point}`, () => next >= point, {
          timeoutMs: 300_000,
          intervalMs: 20,
        });
        const node = c.nodes[rng.int(0, c.nodes.length - 1)];
        // Most kills wait for a job of this node in the cloud; the others hit whatever runs.
        let jobs: SimJob[] = [];
        if (rng.next() < 0.7) {
          jobs = await waitFor(
            `a job of ${node.instanceId}`,
            async () => {
              const js = await unfinishedJobs(c, node);
              return js.length > 0 ? js : undefined;
            },
            { timeoutMs: 8_000, intervalMs: 25 },
          ).catch(() => []);
        }
        const t = Date.now();
        const st = await node.stopDaemon("SIGKILL");
        kills.push({ node: node.instanceId, op: next, jobs: await runningAt(c, jobs, t) });
        assert.ok(st === undefined || st.signal === "SIGKILL" || st.code !== 0);
        // Down for a few operations (ADDs there fail with 11, DELs journal), then back.
        const until = next + rng.int(1, 4);
        await waitFor("operations while the daemon is down", () => next >= until, {
          timeoutMs: 4_000,
          intervalMs: 20,
        }).catch(() => {});
        await node.startDaemon();
        // Now and then the daemon dies again while it rebuilds its state at start-up.
        if (rng.next() < 0.3) {
          await new Promise((r) => setTimeout(r, rng.int(100, 1500)));
          await node.stopDaemon("SIGKILL");
          kills.push({ node: node.instanceId, op: next, jobs: [], startup: true });
          await node.startDaemon();
        }
      }
    };

    await Promise.all([killer(), ...Array.from({ length: WORKERS }, worker)]);
    const opsDone = Date.now();

    // A pod on each node, so every pod has a peer across nodes.
    for (const n of c.nodes) {
      if (!live.some((p) => p.node === n)) live.push(await kubeletAdd(n, `peer-${n.instanceId}`));
    }
    await settleCluster(c, 90_000);
    const settled = Date.now();

    assert.deepEqual(delFailures, [], "every DEL succeeded");
    assert.deepEqual(doubleHanded, [], "no ADD answered an IP a live pod held");
    await assertAllocations(c, live);
    const unreachable = await pingAcross(c, live);
    assert.deepEqual(unreachable, [], "every live pod reaches a pod on the other node");
    const acc = await accountNics(c, live);
    const midJob = kills.filter((k) => k.jobs.length > 0).length;
    const atStartup = kills.filter((k) => k.startup).length;
    console.log(
      `chaos: seed=${seed} ops=${OPS} (adds=${adds}, ${passthroughAdds} passthrough; dels=${dels}, ` +
        `${delsWhileDown} with the daemon down) ADD attempts=${stats.attempts} failures=${
          JSON.stringify(stats.failures)
        } ` +
        `kills=${kills.length} (mid-job ${midJob}, at start-up ${atStartup}) live pods=${live.length} ` +
        `cloud NICs=${acc.owned.length} (pooled ${acc.pooled.length}, live ${acc.live.length}) ` +
        `leftover=${acc.leftover.length} phantom=${acc.phantom.length} ` +
        `time: start ${secs(started, clusterUp)} ops ${secs(clusterUp, opsDone)} settle ` +
        `${secs(opsDone, settled)} checks ${secs(settled, Date.now())} total ` +
        `${secs(started, Date.now())}`,
    );
    for (const m of stats.samples) console.log(`  ADD failure ${m}`);
    for (const k of kills) {
      console.log(
        `  kill ${k.node} at op ${k.op}${k.startup ? " during start-up" : ""}: ${
          k.jobs.join(", ")
        }`,
      );
    }
    assert.deepEqual(acc.leftover, [], "every owned NIC is pooled, used by a live pod, or gone");
    assert.deepEqual(acc.phantom, [], "every NIC a daemon lists is attached to its node");
    assert.ok(kills.length >= 10, `${kills.length} kills`);
    assert.ok(midJob >= 1, "at least one kill while a job of that node was running");
  },
});
