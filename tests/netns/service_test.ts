/**
 * Node-level service routing in a real namespace: mangle chains + fwmark rule, idempotent,
 * leaving kube-proxy's rules alone, and actually steering NodePort replies off the pod's NIC;
 * and the mark is gone again before filter FORWARD, where a policy engine (kube-router) reads
 * its own "accepted" bit 0x10000, natMark's default.
 */
import assert from "node:assert/strict";
import {
  checkServiceRouting,
  CommandRunner,
  ensureServiceRouting,
  removeServiceRouting,
  setupPod,
} from "../../lib/linux/mod.ts";
import { diffDumps, NetnsLab } from "../helpers/netns.ts";
import { VpcLab } from "../helpers/vpc.ts";

type Json = Record<string, unknown>;

const deps = { runner: new CommandRunner() };

async function node() {
  const lab = new NetnsLab();
  try {
    const vpc = await VpcLab.create(lab);
    return { lab, vpc, opts: { nodeNetns: vpc.node } };
  } catch (err) {
    await lab[Symbol.asyncDispose]();
    throw err;
  }
}

/** A nic-mode pod behind a NodePort stand-in (kube-proxy's DNAT of the node IP, ICMP only). */
async function podBehindNodePort(
  { lab, vpc, opts }: Awaited<ReturnType<typeof node>>,
): Promise<string> {
  const nic = await vpc.attachNic();
  const podNs = await vpc.addPod();
  const ip = vpc.podIp(1);
  await vpc.sdnLearn([{ ip, mac: nic.mac }]);
  await setupPod(deps, {
    mode: "nic",
    pod: { containerId: "np" },
    ifName: "eth0",
    netns: podNs,
    ip,
    table: 261,
    nicMac: nic.mac,
    vxnet: vpc.podVxnet,
  }, opts);
  await lab.run(vpc.node, [
    "iptables",
    "-t",
    "nat",
    "-A",
    "PREROUTING",
    "-d",
    vpc.nodeIp,
    "-p",
    "icmp",
    "-j",
    "DNAT",
    "--to-destination",
    ip,
  ]);
  return ip;
}

Deno.test("service routing: ensure is idempotent, keeps kube-proxy's rules, remove restores", async () => {
  const { lab, vpc, opts } = await node();
  await using _lab = lab;
  // A kube-proxy-like mangle rule that must survive untouched.
  await lab.run(vpc.node, ["iptables", "-t", "mangle", "-N", "KUBE-KUBELET-CANARY"]);
  await lab.run(vpc.node, [
    "iptables",
    "-t",
    "mangle",
    "-A",
    "PREROUTING",
    "-j",
    "MARK",
    "--set-xmark",
    "0x4000/0x4000",
  ]);
  const before = await lab.dump(vpc.node);
  const spec = { nodeIp: vpc.nodeIp, serviceCidr: "10.96.0.0/12" };

  assert.ok((await checkServiceRouting(deps, spec, opts)).length > 0);
  await ensureServiceRouting(deps, spec, opts);
  await ensureServiceRouting(deps, spec, opts);
  assert.deepEqual(await checkServiceRouting(deps, spec, opts), []);

  const saved = (await lab.run(vpc.node, ["iptables-save", "-t", "mangle"])).stdout;
  const rules = saved.split("\n").filter((l) => l.startsWith("-A")).sort();
  assert.deepEqual(
    rules,
    [
      "-A PREROUTING -j MARK --set-xmark 0x4000/0x4000",
      "-A PREROUTING -j HOSTNIC-PREROUTING",
      "-A OUTPUT -j HOSTNIC-OUTPUT",
      "-A FORWARD -j HOSTNIC-FORWARD",
      "-A HOSTNIC-FORWARD -j MARK --set-xmark 0x0/0x10000",
      `-A HOSTNIC-PREROUTING -m conntrack --ctorigdst ${vpc.nodeIp} -j MARK --set-xmark 0x10000/0x10000`,
      "-A HOSTNIC-OUTPUT -m conntrack --ctorigdst 10.96.0.0/12 -j MARK --set-xmark 0x10000/0x10000",
    ].sort(),
  );
  const ipRules = await lab.ipJson<Json[]>(vpc.node, "rule show");
  assert.equal(
    ipRules.filter((r) => r.priority === 1534 && r.fwmark === "0x10000" && r.table === "main")
      .length,
    1,
  );

  // A changed spec (node IP moved) rewrites our chain, still without duplicates.
  await ensureServiceRouting(deps, { ...spec, nodeIp: "172.22.0.9" }, opts);
  assert.deepEqual(await checkServiceRouting(deps, { ...spec, nodeIp: "172.22.0.9" }, opts), []);

  await removeServiceRouting(deps, opts);
  await removeServiceRouting(deps, opts);
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
});

Deno.test("service routing: NodePort replies leave through the node, not the pod's NIC", async () => {
  const n = await node();
  const { lab, vpc, opts } = n;
  await using _lab = lab;
  await podBehindNodePort(n);
  const nicTx = async () => {
    const [l] = await lab.ipJson<Json[]>(vpc.node, "-s link show dev hostnic_261");
    return Number((l.stats64 as { tx: { packets: number } }).tx.packets);
  };
  const pingNodeFromOutside = () =>
    lab.run(vpc.vx, ["ping", "-c", "3", "-i", "0.2", "-W", "1", "-q", vpc.nodeIp]);

  // Without service routing the replies follow rule 1536 out of the pod's NIC.
  const tx0 = await nicTx();
  await pingNodeFromOutside();
  assert.ok(await nicTx() - tx0 >= 3, "replies should have left through the NIC");

  await ensureServiceRouting(deps, { nodeIp: vpc.nodeIp }, opts);
  const tx1 = await nicTx();
  await pingNodeFromOutside();
  assert.equal(await nicTx() - tx1, 0, "replies left through the pod's NIC");
});

Deno.test("service routing: natMark never reaches filter FORWARD (kube-router's accept bit), so NodePort traffic to a pod stays subject to policy", async () => {
  const n = await node();
  const { lab, vpc, opts } = n;
  await using _lab = lab;
  const ip = await podBehindNodePort(n);
  await ensureServiceRouting(deps, { nodeIp: vpc.nodeIp }, opts);
  const pingNodeFromOutside = () =>
    deps.runner.run(["ping", "-c", "2", "-i", "0.2", "-W", "1", "-q", vpc.nodeIp], {
      netns: vpc.vx,
    }).then(() => true, () => false);
  assert.ok(await pingNodeFromOutside(), "the NodePort stand-in should answer without a policy");
  // kube-router's pod chain under a deny-all ingress policy: what its policies did not mark
  // 0x10000/0x10000 ("accepted") is rejected. Nothing here marks, so everything must be.
  await lab.run(vpc.node, [
    "iptables",
    "-A",
    "FORWARD",
    "-d",
    ip,
    "-m",
    "mark",
    "!",
    "--mark",
    "0x10000/0x10000",
    "-j",
    "REJECT",
  ]);
  assert.equal(
    await pingNodeFromOutside(),
    false,
    "hostnic's natMark (0x10000) let NodePort traffic pass a deny-all policy",
  );
});
