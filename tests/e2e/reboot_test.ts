/**
 * Node reboot: the simulated cloud reboots an instance (its namespace is recreated with only the
 * primary NIC, its attached NICs are hot-plugged again as plain `eth<N>`, every rule, route and
 * renamed link is gone), the pods' namespaces are gone too (kubelet will re-create sandboxes), and
 * the daemon starts again from its state directory. It must rebuild before serving: the stale
 * allocations are released and their NICs are back in the pool, new pods on that node get those
 * NICs and reach pods on the other node, and nothing is leaked in the cloud.
 */
import assert from "node:assert/strict";
import { CommandRunner } from "../../lib/linux/exec.ts";
import { Cluster, POD_GATEWAY } from "../../lib/testbed/cluster.ts";
import {
  accountNics,
  assertAllocations,
  nicList,
  podList,
  settleCluster,
  unfinishedJobs,
} from "../helpers/kubelet.ts";
import { waitFor } from "../helpers/wait.ts";

const runner = new CommandRunner();

interface Link {
  ifname: string;
  address: string;
  flags: string[];
}

async function links(netns: string): Promise<Link[]> {
  return JSON.parse((await runner.run(["ip", "-j", "link", "show"], { netns })).stdout) as Link[];
}

async function ruleLines(netns: string): Promise<string[]> {
  const out = await runner.run(["ip", "-4", "rule", "show"], { netns });
  return out.stdout.split("\n").filter((l) => /^15(35|36):/.test(l));
}

Deno.test({
  name: "node reboot: the daemon rebuilds, releases the lost pods and serves new ones",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // No IP cooldown: the NICs freed by the reboot can be handed to the next pods at once.
    await using c = await Cluster.start({
      nodes: 2,
      prefix: "rb",
      pool: { poolLow: 2, poolHigh: 8, sync: 1, ipCooldown: 0 },
    });
    const [n1, n2] = c.nodes;
    const a = await n1.addPod("a");
    const b = await n1.addPod("b");
    const pt = await n1.addPod("pt", {
      args:
        "K8S_POD_NAMESPACE=default;K8S_POD_NAME=pt;hostnic.network.kubesphere.io/type=passthrough",
    });
    const peer = await n2.addPod("peer");
    for (const p of [a, b, pt]) assert.ok(await c.ping(p.netns, peer.ip), `${p.name} → peer`);
    assert.ok((await ruleLines(n1.netns)).length > 0, "pod rules exist before the reboot");
    // One more pod takes a pool NIC: the refill is in flight when the node goes down, and its
    // attach job (slow now) still runs when the daemon comes back.
    await c.simControl("knobs", { jobLatencyMs: 4000 });
    const d = await n1.addPod("d");
    await waitFor(
      "a refill attach job of node 1",
      async () => (await unfinishedJobs(c, n1)).some((j) => j.action === "AttachNics"),
      { timeoutMs: 30_000 },
    );
    const before = await nicList(n1);
    const podNics = before.filter((n) => n.state === "inuse").map((n) => n.id).sort();
    assert.equal(podNics.length, 4);
    const attaching = before.filter((n) => n.state === "attaching").map((n) => n.id);
    assert.ok(attaching.length > 0, JSON.stringify(before));

    // The reboot: processes die, pod namespaces are lost, the instance comes back clean.
    await n1.stopDaemon("SIGKILL");
    for (const p of [a, b, pt, d]) {
      await runner.run(["ip", "netns", "del", p.netns]);
      c.podNamespaces.delete(p.netns);
    }
    await c.simControl(`instances/${n1.instanceId}/reboot`, {});
    const booted = await links(n1.netns);
    assert.deepEqual(await ruleLines(n1.netns), [], "the reboot left no pod rules");
    assert.ok(!booted.some((l) => l.ifname.startsWith("hostnic_")), "no renamed NIC survives");
    const macs = new Set(booted.map((l) => l.address));
    for (const nic of before.filter((n) => n.state !== "attaching")) {
      assert.ok(macs.has(nic.id), `NIC ${nic.id} is plugged again`);
    }
    // The pod on the other node is not affected.
    assert.ok(await c.ping(peer.netns, POD_GATEWAY));

    await n1.startDaemon();
    const ready = await n1.waitReady();
    assert.equal(ready.inuse, 0, "the lost pods were released before the daemon said ready");
    assert.deepEqual(await podList(n1), []);
    let after = await nicList(n1);
    for (const id of podNics) {
      assert.equal(after.find((n) => n.id === id)?.state, "free", `NIC ${id} is back in the pool`);
    }
    // The refill interrupted by the reboot finished attaching: its NICs are pooled too.
    await c.simControl("knobs", { jobLatencyMs: 200 });
    await n1.waitPool((p) => p.pending === 0);
    for (const id of attaching) {
      const nic = (await nicList(n1)).find((n) => n.id === id);
      assert.equal(nic?.state, "free", `interrupted refill NIC ${id}: ${JSON.stringify(nic)}`);
    }
    after = await nicList(n1);
    // The daemon's start-up left the node clean: no rule or route of the lost pods, every
    // pooled NIC present as a link.
    assert.deepEqual(await ruleLines(n1.netns), []);
    const now = new Set((await links(n1.netns)).map((l) => l.address));
    for (const nic of after) assert.ok(now.has(nic.id), `link of pooled NIC ${nic.id}`);

    // New sandboxes on the rebooted node: they get pooled NICs (no new CreateNics) and work.
    await c.simControl("counters/reset", {});
    const a2 = await n1.addPod("a2");
    const pt2 = await n1.addPod("pt2", {
      args:
        "K8S_POD_NAMESPACE=default;K8S_POD_NAME=pt2;hostnic.network.kubesphere.io/type=passthrough",
    });
    const reused = (await nicList(n1)).filter((n) => n.state === "inuse").map((n) => n.id);
    assert.equal(reused.length, 2);
    for (const id of reused) assert.ok(after.some((n) => n.id === id), `${id} came from the pool`);
    assert.equal((await c.counters()).CreateNics ?? 0, 0, "no NIC created for the new pods");
    for (const p of [a2, pt2]) {
      assert.ok(await c.ping(p.netns, peer.ip), `${p.name} → pod on the other node`);
      assert.ok(await c.ping(peer.netns, p.ip), `pod on the other node → ${p.name}`);
      assert.ok(await c.ping(p.netns, POD_GATEWAY), `${p.name} → gateway`);
    }

    const live = [a2, pt2, peer];
    await settleCluster(c);
    await assertAllocations(c, live);
    const acc = await accountNics(c, live);
    console.log(
      `reboot: cloud NICs=${acc.owned.length} (pooled ${acc.pooled.length}, live ` +
        `${acc.live.length}) leftover=${acc.leftover.length} phantom=${acc.phantom.length}`,
    );
    assert.deepEqual(acc.leftover, []);
    assert.deepEqual(acc.phantom, []);
  },
});
