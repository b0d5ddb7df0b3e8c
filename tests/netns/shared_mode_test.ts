/**
 * shared mode in real namespaces: one NIC per vxnet, pods answered for by proxy neighbours.
 * The emulated SDN is not told where pod IPs live (no sdnLearn): the node's proxy entries must
 * answer the gateway's ARP.
 */
import assert from "node:assert/strict";
import {
  checkPod,
  checkSharedNic,
  CommandRunner,
  DatapathSetupError,
  type PodTeardownSpec,
  setupPod,
  setupSharedNic,
  sharedNicPodIps,
  type SharedNicSpec,
  type SharedPodSpec,
  teardownPod,
  teardownSharedNic,
} from "../../lib/linux/mod.ts";
import { diffDumps, NetnsLab } from "../helpers/netns.ts";
import { VpcLab } from "../helpers/vpc.ts";

type Json = Record<string, unknown>;

const deps = { runner: new CommandRunner() };
const TABLE = 270;

function podSpec(vpc: VpcLab, netns: string, i: number, extra: Partial<SharedPodSpec> = {}) {
  return {
    mode: "shared",
    pod: { containerId: `ctr${i}`, k8sNamespace: "shared", podName: `pod-${i}` },
    ifName: "eth0",
    netns,
    ip: vpc.podIp(i),
    table: TABLE,
    ...extra,
  } satisfies SharedPodSpec;
}

function teardownOf(spec: SharedPodSpec): PodTeardownSpec {
  return { mode: "shared", pod: spec.pod, ifName: spec.ifName, netns: spec.netns, ip: spec.ip };
}

async function sharedNode() {
  const lab = new NetnsLab();
  try {
    const vpc = await VpcLab.create(lab);
    const nic = await vpc.attachNic();
    const nicSpec: SharedNicSpec = { nicMac: nic.mac, table: TABLE, vxnet: vpc.podVxnet };
    return { lab, vpc, nic, nicSpec, opts: { nodeNetns: vpc.node } };
  } catch (err) {
    await lab[Symbol.asyncDispose]();
    throw err;
  }
}

Deno.test("shared mode: pods share one NIC, reach gateway, node and each other; teardown restores", async () => {
  const { lab, vpc, nic, nicSpec, opts } = await sharedNode();
  await using _lab = lab;
  const [ns1, ns2] = await vpc.addPods(2);
  const a = podSpec(vpc, ns1, 1);
  const b = podSpec(vpc, ns2, 2);
  const before = await lab.dump(vpc.node);

  await setupSharedNic(deps, nicSpec, opts);
  await setupSharedNic(deps, nicSpec, opts); // ensure: harmless
  assert.deepEqual(await checkSharedNic(deps, nicSpec, opts), []);
  await Promise.all([setupPod(deps, a, opts), setupPod(deps, b, opts)]);
  await setupPod(deps, a, opts); // ensure: harmless

  const links = await lab.ipJson<Json[]>(vpc.node, "link show");
  assert.equal(links.find((l) => l.address === nic.mac)?.ifname, `hostnic_${TABLE}`);
  const proxies = await lab.ipJson<Json[]>(vpc.node, "neigh show proxy");
  assert.deepEqual(proxies.map((p) => `${p.dst} ${p.dev}`).sort(), [
    `${a.ip} hostnic_${TABLE}`,
    `${b.ip} hostnic_${TABLE}`,
  ]);
  const rules = await lab.ipJson<Json[]>(vpc.node, "rule show");
  assert.ok(
    rules.some((r) =>
      r.priority === 1536 && r.src === "172.22.1.0" && r.srclen === 24 && r.table === `${TABLE}`
    ),
  );
  assert.ok(rules.some((r) => r.priority === 1535 && r.dst === a.ip && r.table === "main"));
  assert.deepEqual((await sharedNicPodIps(deps, { table: TABLE }, opts)).sort(), [a.ip, b.ip]);

  await lab.ping(ns1, vpc.podVxnet.gateway);
  await lab.ping(ns2, vpc.podVxnet.gateway);
  await lab.ping(ns1, vpc.nodeIp);
  await lab.ping(ns1, b.ip);
  // The gateway learnt the pod IPs from the node's proxy answers: the NIC's MAC.
  const gwNeigh = await lab.ipJson<Json[]>(vpc.vx, "neigh show dev br-pods");
  assert.equal(gwNeigh.find((n) => n.dst === a.ip)?.lladdr, nic.mac);
  assert.deepEqual(await checkPod(deps, a, opts), []);
  assert.deepEqual(await checkPod(deps, b, opts), []);

  await teardownPod(deps, teardownOf(a), opts);
  assert.deepEqual(await sharedNicPodIps(deps, { table: TABLE }, opts), [b.ip]);
  await lab.ping(ns2, vpc.podVxnet.gateway);
  await teardownPod(deps, teardownOf(b), opts);
  await teardownPod(deps, teardownOf(b), opts);
  await teardownSharedNic(deps, { table: TABLE }, opts);
  await teardownSharedNic(deps, { table: TABLE }, opts);
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
});

Deno.test("shared mode: a pod needs its NIC set up first", async () => {
  const { lab, vpc, opts } = await sharedNode();
  await using _lab = lab;
  const before = await lab.dump(vpc.node);
  await assert.rejects(
    setupPod(deps, podSpec(vpc, await vpc.addPod(), 1), opts),
    (e: Error & { code?: string }) => e.code === "NIC_NOT_FOUND",
  );
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
});

Deno.test("shared mode: teardown never set up, after netns deletion, and failures leave nothing", async (t) => {
  const { lab, vpc, nicSpec, opts } = await sharedNode();
  await using _lab = lab;
  const before = await lab.dump(vpc.node);
  await setupSharedNic(deps, nicSpec, opts);
  const withNic = await lab.dump(vpc.node);

  await t.step("never set up", async () => {
    await teardownPod(deps, teardownOf(podSpec(vpc, await vpc.addPod(), 1)), opts);
    await teardownPod(deps, { ...teardownOf(podSpec(vpc, "", 1)), netns: undefined }, opts);
    assert.deepEqual(diffDumps(withNic, await lab.dump(vpc.node)), []);
  });

  await t.step("pod namespace deleted before teardown", async () => {
    const spec = podSpec(vpc, await vpc.addPod(), 2);
    await setupPod(deps, spec, opts);
    await lab.ping(spec.netns, vpc.podVxnet.gateway);
    await lab.deleteNetns(spec.netns);
    await teardownPod(deps, teardownOf(spec), opts);
    assert.deepEqual(diffDumps(withNic, await lab.dump(vpc.node)), []);
  });

  await t.step("failure halfway (MTU 70000)", async () => {
    const spec = podSpec(vpc, await vpc.addPod(), 3, { mtu: 70000 });
    await assert.rejects(setupPod(deps, spec, opts), DatapathSetupError);
    assert.deepEqual(diffDumps(withNic, await lab.dump(vpc.node)), []);
  });

  await teardownSharedNic(deps, { table: TABLE }, opts);
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
});
