/**
 * 50 pods set up and torn down concurrently on one node: no name or table collisions, every pod
 * works, and the node ends exactly as it started.
 */
import assert from "node:assert/strict";
import {
  checkPod,
  CommandRunner,
  type NicPodSpec,
  setupPod,
  setupSharedNic,
  type SharedPodSpec,
  teardownPod,
  teardownSharedNic,
} from "../../lib/linux/mod.ts";
import { diffDumps, mapLimit, NetnsLab } from "../helpers/netns.ts";
import { VpcLab } from "../helpers/vpc.ts";

type Json = Record<string, unknown>;

const PODS = 50;
const deps = { runner: new CommandRunner() };

Deno.test(`scale: ${PODS} nic-mode pods with ${PODS} NICs and tables, concurrently`, async () => {
  await using lab = new NetnsLab();
  const vpc = await VpcLab.create(lab);
  const nics = await vpc.attachNics(PODS);
  const pods = await vpc.addPods(PODS);
  const specs: NicPodSpec[] = pods.map((netns, i) => ({
    mode: "nic",
    pod: { containerId: `ctr${i}`, k8sNamespace: "scale", podName: `pod-${i}` },
    ifName: "eth0",
    netns,
    ip: vpc.podIp(i),
    table: 260 + i,
    nicMac: nics[i].mac,
    vxnet: vpc.podVxnet,
    hairpin: i % 2 === 0,
  }));
  await vpc.sdnLearn(specs.map((s, i) => ({ ip: s.ip, mac: nics[i].mac })));
  const opts = { nodeNetns: vpc.node };
  const before = await lab.dump(vpc.node);

  const results = await Promise.all(specs.map((s) => setupPod(deps, s, opts)));
  const vethNames = new Set(results.map((r) => r.interfaces[1].name));
  assert.equal(vethNames.size, PODS, "host veth names collided");

  const links = await lab.ipJson<Json[]>(vpc.node, "link show");
  for (const [i, s] of specs.entries()) {
    assert.equal(links.find((l) => l.address === s.nicMac)?.ifname, `hostnic_${260 + i}`);
  }
  const rules = await lab.ipJson<Json[]>(vpc.node, "rule show");
  assert.equal(rules.filter((r) => r.priority === 1536).length, PODS);

  await mapLimit(specs, 8, (s) => lab.ping(s.netns, vpc.podVxnet.gateway));
  const problems = (await mapLimit(specs, 8, (s) => checkPod(deps, s, opts))).flat();
  assert.deepEqual(problems, []);

  await Promise.all(
    specs.map((s) =>
      teardownPod(deps, {
        mode: "nic",
        pod: s.pod,
        ifName: "eth0",
        netns: s.netns,
        ip: s.ip,
        table: s.table,
      }, opts)
    ),
  );
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
});

Deno.test(`scale: ${PODS} shared-mode pods on one NIC, concurrently`, async () => {
  await using lab = new NetnsLab();
  const vpc = await VpcLab.create(lab);
  const nic = await vpc.attachNic();
  const pods = await vpc.addPods(PODS);
  const opts = { nodeNetns: vpc.node };
  const before = await lab.dump(vpc.node);
  await setupSharedNic(deps, { nicMac: nic.mac, table: 300, vxnet: vpc.podVxnet }, opts);
  const specs: SharedPodSpec[] = pods.map((netns, i) => ({
    mode: "shared",
    pod: { containerId: `ctr${i}`, k8sNamespace: "scale", podName: `pod-${i}` },
    ifName: "eth0",
    netns,
    ip: vpc.podIp(i),
    table: 300,
  }));

  await Promise.all(specs.map((s) => setupPod(deps, s, opts)));
  await mapLimit(specs, 8, (s) => lab.ping(s.netns, vpc.podVxnet.gateway));
  const proxies = await lab.ipJson<Json[]>(vpc.node, "neigh show proxy");
  assert.equal(proxies.length, PODS);

  await Promise.all(
    specs.map((s) =>
      teardownPod(
        deps,
        { mode: "shared", pod: s.pod, ifName: "eth0", netns: s.netns, ip: s.ip },
        opts,
      )
    ),
  );
  await teardownSharedNic(deps, { table: 300 }, opts);
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
});
