/**
 * Hollow nodes (lib/testbed/hollow) against the real kube-apiserver and the simulator. Shared mode: three
 * daemons in shared mode give pods unique addresses through their sockets (the plugin's own
 * handlers), the IPAMBlocks hold each address for its pod, CNI CHECK finds the recorded datapath
 * as the daemon planned it, the recorder saw the commands a real node runs for a pod, and DEL
 * gives everything back (twice is fine). Nic mode: each pod's address is a NIC the simulator attached to
 * its node, whose hot-plugged link the daemon renamed and routed; DEL removes the rules.
 */
import assert from "node:assert/strict";
import { HollowBed } from "../../lib/testbed/hollow/bed.ts";
import { blockHolders, createPods } from "../../lib/testbed/shared.ts";
import type { HollowPod } from "../../lib/testbed/hollow/node.ts";
import { NODE_NS } from "../../lib/testbed/hollow/kernel.ts";

const PER_NODE = 4;

Deno.test({
  name: "hollow nodes: 3 shared-mode daemons, pods through the socket, unique addresses, clean DEL",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using bed = await HollowBed.start({ nodes: 3, mode: "shared", keepLog: true });
    const pods = bed.nodes.flatMap((n) =>
      Array.from({ length: PER_NODE }, (_, j) => ({ name: `${n.name}-p${j}`, node: n }))
    );
    await createPods(bed.cp, pods.map((p) => ({ ...p, namespace: "default", node: p.node.name })));
    const added: { pod: HollowPod; node: (typeof bed.nodes)[number] }[] = [];
    await Promise.all(bed.nodes.map(async (node) => {
      const mine = pods.filter((p) => p.node === node);
      const got = await Promise.all(mine.map((p) => node.add("default", p.name)));
      for (const pod of got) added.push({ pod, node });
    }));
    const ips = added.map((a) => a.pod.ip);
    assert.equal(new Set(ips).size, pods.length, `unique addresses: ${ips.join(", ")}`);
    for (const ip of ips) assert.match(ip, /^10\.64\./, "from the pod vxnet");
    const held = await blockHolders(bed.cp);
    for (const { pod, node } of added) {
      const h = held.get(pod.ip);
      assert.ok(h, `${pod.ip} is held in an IPAMBlock`);
      assert.equal(h.pod, pod.name);
      assert.equal(h.node, node.name);
    }
    for (const { pod, node } of added) {
      const check = await node.cni({
        CNI_COMMAND: "CHECK",
        CNI_CONTAINERID: pod.containerId,
        CNI_NETNS: pod.netns,
        CNI_IFNAME: "eth0",
        CNI_PATH: "/opt/cni/bin",
        CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod.name}`,
      }, { ...node.netConf(), prevResult: pod.result });
      assert.equal(check.code, 0, `CHECK ${pod.name}: ${check.stdout}`);
    }
    // What a real node would have run for each pod: a veth pair into the pod's namespace, the
    // /32 route and rule 1535 to it, the proxy neighbour on the shared NIC, the pod's address.
    for (const { pod, node } of added) {
      const log = node.runner.log;
      const nodeBatch = log.find((c) =>
        c.netns === undefined && c.stdin?.includes(`netns ${pod.netns}`)
      )?.stdin ?? "";
      assert.match(nodeBatch, /link add vnic\w+ .*type veth peer name eth0/);
      assert.ok(nodeBatch.includes(`route replace ${pod.ip}/32 dev vnic`), nodeBatch);
      assert.ok(nodeBatch.includes(`rule add priority 1535 to ${pod.ip} lookup main`), nodeBatch);
      assert.ok(nodeBatch.includes(`neigh replace proxy ${pod.ip} dev hostnic_`), nodeBatch);
      const podBatch = log.find((c) => c.netns === pod.netns && c.argv.includes("-batch"))?.stdin ??
        "";
      assert.ok(podBatch.includes(`address replace ${pod.ip}/32 dev eth0`), podBatch);
    }
    for (const node of bed.nodes) {
      assert.ok(node.runner.spawns.get("sysctl")! > 0, "forwarding sysctls were written");
      const shared = [...node.kernel.node.links.values()].filter((l) =>
        l.name.startsWith("hostnic_")
      );
      assert.equal(shared.length, 1, `${node.name} has one shared NIC`);
    }

    for (const { pod, node } of added) await node.del(pod);
    for (const { pod, node } of added) await node.del(pod); // DEL twice succeeds
    const after = await blockHolders(bed.cp);
    for (const ip of ips) assert.equal(after.get(ip), undefined, `${ip} released`);
    for (const node of bed.nodes) {
      const veths = [...node.kernel.namespaces.get(NODE_NS)!.links.values()].filter((l) =>
        l.kind === "veth"
      );
      assert.deepEqual(veths, [], `${node.name} has no veth left`);
      assert.equal(node.kernel.node.proxies.length, 0, `${node.name} has no proxy entry left`);
    }
  },
});

Deno.test({
  name: "hollow nodes: nic mode — each pod's NIC hot-plugged by the simulator, renamed, routed",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using bed = await HollowBed.start({ nodes: 2, mode: "nic", keepLog: true });
    const pods = bed.nodes.flatMap((n) =>
      Array.from({ length: 3 }, (_, j) => ({ name: `${n.name}-n${j}`, node: n }))
    );
    await createPods(bed.cp, pods.map((p) => ({ ...p, namespace: "default", node: p.node.name })));
    const added = await Promise.all(
      pods.map(async (p) => ({ pod: await p.node.add("default", p.name), node: p.node })),
    );
    const ips = added.map((a) => a.pod.ip);
    assert.equal(new Set(ips).size, pods.length, `unique addresses: ${ips.join(", ")}`);
    const world = bed.sim.world;
    for (const { pod, node } of added) {
      // The pod's address is the primary IP of a NIC the cloud attached to this node's instance.
      const nic = [...world.nics.values()].find((n) =>
        n.privateIp !== null &&
        [
            n.privateIp >>> 24,
            (n.privateIp >>> 16) & 255,
            (n.privateIp >>> 8) & 255,
            n.privateIp & 255,
          ]
            .join(".") === pod.ip
      );
      assert.ok(nic, `${pod.ip} is a NIC's address`);
      assert.equal(nic.instanceId, node.instanceId, "attached to the pod's node");
      const link = [...node.kernel.node.links.values()].find((l) => l.mac === nic.id.toLowerCase());
      assert.match(link?.name ?? "", /^hostnic_\d+$/, "the NIC's link renamed to its table");
      const table = Number(link!.name.slice("hostnic_".length));
      assert.ok(
        node.kernel.node.rules.some((r) =>
          r.priority === 1536 && r.from === `${pod.ip}/32` && r.table === table
        ),
        `rule 1536 from ${pod.ip} lookup ${table}`,
      );
    }
    for (const { pod, node } of added) await node.del(pod);
    for (const node of bed.nodes) {
      assert.equal(
        node.kernel.node.rules.filter((r) => r.priority === 1536 || r.priority === 1535).length,
        0,
        `${node.name}: no pod rule left`,
      );
    }
  },
});
