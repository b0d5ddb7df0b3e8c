/**
 * The daemon's datapath tears pods down in parallel (only teardowns that give a NIC back the same
 * name take turns): many concurrent DELs in real namespaces, several of whose NICs remember the
 * same old name, must all finish with every NIC freed under a name of its own.
 */
import assert from "node:assert/strict";
import { CommandRunner } from "../../lib/linux/mod.ts";
import { LinuxPodDatapath } from "../../lib/daemon/nic/datapath.ts";
import type { DatapathPod } from "../../lib/daemon/nic/service.ts";
import { NetnsLab } from "../helpers/netns.ts";
import { type Nic, VpcLab } from "../helpers/vpc.ts";

type Json = Record<string, unknown>;

const SAME_NAME = 5;
const OTHERS = 11;

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

Deno.test("concurrent DELs free every NIC, NICs remembering the same name included", async () => {
  const lab = new NetnsLab();
  await using _lab = lab;
  const vpc = await VpcLab.create(lab);
  const datapath = new LinuxPodDatapath({ runner: new CommandRunner() }, { nodeNetns: vpc.node });
  const pods: DatapathPod[] = [];
  const nsOf = await vpc.addPods(SAME_NAME + OTHERS);

  // NICs that all arrive as "eth1": each is renamed hostnic_<table> by its ADD, and the next one
  // gets the freed name from the "kernel" (here: the test), so all remember "eth1".
  const [first] = await vpc.attachNics(1);
  assert.equal(first.name, "eth1");
  const sameName: Nic[] = [first];
  for (let i = 0; i < SAME_NAME; i++) {
    if (i > 0) {
      const mac = `52:54:ee:${lab.tag.slice(3, 5)}:${lab.tag.slice(5, 7)}:${
        i.toString(16).padStart(2, "0")
      }`;
      await lab.ipBatch(vpc.vx, [
        `link add sn${i} type veth peer name eth1 address ${mac} netns /run/netns/${vpc.node}`,
        `link set dev sn${i} master br-pods`,
        `link set dev sn${i} up`,
      ]);
      sameName.push({ name: "eth1", mac });
    }
    const pod = podOf(vpc, sameName[i], nsOf[i], i + 1);
    await datapath.setup(pod);
    pods.push(pod);
  }
  const others = await vpc.attachNics(OTHERS);
  await Promise.all(others.map(async (nic, j) => {
    const pod = podOf(vpc, nic, nsOf[SAME_NAME + j], SAME_NAME + j + 1);
    await datapath.setup(pod);
    pods.push(pod);
  }));
  const links0 = await lab.ipJson<Json[]>(vpc.node, "-d link show");
  for (const nic of sameName) {
    const l = links0.find((l) => l.address === nic.mac)!;
    assert.match(String(l.ifname), /^hostnic_\d+$/);
    assert.equal(l.ifalias, "eth1");
  }

  // Every DEL at once, as the daemon serves them.
  const settled = await Promise.allSettled(pods.map((p) => datapath.teardown(p)));
  assert.deepEqual(settled.filter((s) => s.status === "rejected"), []);

  const links = await lab.ipJson<Json[]>(vpc.node, "-d link show");
  const names = links.map((l) => String(l.ifname));
  assert.equal(new Set(names).size, names.length);
  assert.deepEqual(names.filter((n) => /^(hostnic_|vnic)/.test(n)), []);
  const byMac = (mac: string) => links.filter((l) => l.address === mac);
  for (const nic of [...sameName, ...others]) {
    const found = byMac(nic.mac);
    assert.equal(found.length, 1, `NIC ${nic.mac} is on the node once`);
    assert.ok(!(found[0].flags as string[]).includes("UP"), `NIC ${nic.mac} is down`);
  }
  // One of the same-name NICs got "eth1" back, the others their MAC-derived names.
  const sameNames = sameName.map((n) => String(byMac(n.mac)[0].ifname)).sort();
  assert.deepEqual(
    sameNames,
    ["eth1", ...sameName.map((n) => `hn${n.mac.replaceAll(":", "")}`)]
      .filter((n) => sameNames.includes(n)).sort(),
  );
  assert.equal(sameNames.filter((n) => n === "eth1").length, 1);
  for (const nic of others) assert.equal(byMac(nic.mac)[0].ifname, nic.name);
  const rules = await lab.ipJson<Json[]>(vpc.node, "rule show");
  assert.deepEqual(rules.filter((r) => r.priority === 1535 || r.priority === 1536), []);
  for (const p of pods) {
    assert.deepEqual(await lab.ipJson(vpc.node, `route show table ${p.table}`), []);
  }
});
