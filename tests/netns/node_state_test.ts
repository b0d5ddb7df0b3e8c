/**
 * The daemon's datapath plans ADD and DEL from the node's state as its last batch left it
 * (lib/linux/node_state.ts). Real namespaces, with the node changed behind the datapath's back
 * in the two ways a kept reading can be wrong: it shows an object that is gone, or misses one
 * that is there. Either way the pod ends as set up (ADD) or gone (DEL).
 */
import assert from "node:assert/strict";
import { checkPod, CommandRunner, setupPod } from "../../lib/linux/mod.ts";
import { LinuxPodDatapath } from "../../lib/daemon/nic/datapath.ts";
import type { DatapathPod } from "../../lib/daemon/nic/service.ts";
import { NetnsLab } from "../helpers/netns.ts";
import { type Nic, VpcLab } from "../helpers/vpc.ts";

type Json = Record<string, unknown>;
const deps = { runner: new CommandRunner() };

function podOf(vpc: VpcLab, nic: Nic, netns: string, i: number): DatapathPod {
  return {
    mode: "nic",
    containerId: `ctr${i}`,
    podNamespace: "default",
    podName: `pod-${i}`,
    ifName: "eth0",
    netns,
    ip: vpc.podIp(i),
    nicId: nic.mac,
    cidr: vpc.podVxnet.cidr,
    gateway: vpc.podVxnet.gateway,
    table: 260 + i,
    settings: { vethPrefix: "vnic", mtu: 1500, hairpin: false, natMark: 0x10000 },
  };
}

async function world() {
  const lab = new NetnsLab();
  try {
    const vpc = await VpcLab.create(lab);
    const datapath = new LinuxPodDatapath(deps, { nodeNetns: vpc.node });
    return { lab, vpc, datapath };
  } catch (err) {
    await lab[Symbol.asyncDispose]();
    throw err;
  }
}

Deno.test("kept node state: an ADD after a rule vanished behind the datapath still sets it", async () => {
  const { lab, vpc, datapath } = await world();
  await using _lab = lab;
  const [nic1, nic2] = await vpc.attachNics(2);
  const [ns1, ns2] = await vpc.addPods(2);
  const a = podOf(vpc, nic1, ns1, 1);
  await datapath.setup(a);
  // Someone removes the pod's rules; the datapath's reading still shows them.
  await lab.ipBatch(vpc.node, [
    `rule del priority 1535 to ${a.ip} lookup main`,
    `rule del priority 1536 from ${a.ip} lookup ${a.table}`,
  ]);
  // The runtime retries the ADD (same pod), and another pod comes meanwhile.
  await datapath.setup(a);
  await datapath.setup(podOf(vpc, nic2, ns2, 2));
  assert.deepEqual(await datapath.check(a), []);
  assert.deepEqual(await datapath.check(podOf(vpc, nic2, ns2, 2)), []);
});

Deno.test("kept node state: a DEL of a pod the reading does not show removes it all", async () => {
  const { lab, vpc, datapath } = await world();
  await using _lab = lab;
  const [nic1, nic2] = await vpc.attachNics(2);
  const [ns1, ns2] = await vpc.addPods(2);
  const a = podOf(vpc, nic1, ns1, 1);
  const b = podOf(vpc, nic2, ns2, 2);
  await datapath.setup(a); // the datapath keeps the node's state as of now
  // b is set up behind the datapath's back: its reading misses b's veth, rules and NIC name.
  await setupPod(deps, datapath.spec(b), { nodeNetns: vpc.node });
  await datapath.teardown(b);
  const links = await lab.ipJson<Json[]>(vpc.node, "-d link show");
  const nic = links.find((l) => l.address === nic2.mac)!;
  assert.equal(nic.ifname, nic2.name, "the NIC has its name back");
  assert.equal(
    links.filter((l) => String(l.ifname).startsWith("vnic")).length,
    1,
    "only a's host veth is left",
  );
  const rules = await lab.ipJson<Json[]>(vpc.node, "rule show");
  assert.ok(!rules.some((r) => r.src === b.ip || r.dst === b.ip), JSON.stringify(rules));
  assert.deepEqual(await lab.ipJson(vpc.node, `route show table ${b.table}`), []);
  assert.deepEqual(
    (await lab.ipJson<Json[]>(vpc.node, "route show")).filter((r) => r.dst === b.ip),
    [],
  );
  // a is untouched.
  assert.deepEqual(await checkPod(deps, datapath.spec(a), { nodeNetns: vpc.node }), []);
});
