/**
 * passthrough mode in real namespaces: the NIC moves into the pod, host-bound prefixes go back
 * over a service veth; and the legacy gateway-NIC variant.
 */
import assert from "node:assert/strict";
import {
  checkPod,
  CommandRunner,
  DatapathSetupError,
  type PassthroughPodSpec,
  type PodTeardownSpec,
  setupGatewayNic,
  setupPod,
  teardownGatewayNic,
  teardownPod,
} from "../../lib/linux/mod.ts";
import { diffDumps, NetnsLab } from "../helpers/netns.ts";
import { type Nic, VpcLab } from "../helpers/vpc.ts";

type Json = Record<string, unknown>;

const deps = { runner: new CommandRunner() };
const SERVICE_CIDR = "10.96.0.0/12";

function ptSpec(
  vpc: VpcLab,
  nic: Nic,
  netns: string,
  i: number,
  extra: Partial<PassthroughPodSpec> = {},
) {
  return {
    mode: "passthrough",
    pod: { containerId: `ctr${i}`, k8sNamespace: "default", podName: `pt-${i}` },
    ifName: "eth0",
    netns,
    ip: vpc.podIp(i),
    nicMac: nic.mac,
    vxnet: vpc.podVxnet,
    hostRoutes: [SERVICE_CIDR, `${vpc.nodeIp}/32`],
    ...extra,
  } satisfies PassthroughPodSpec;
}

function teardownOf(spec: PassthroughPodSpec): PodTeardownSpec {
  return {
    mode: "passthrough",
    pod: spec.pod,
    ifName: spec.ifName,
    netns: spec.netns,
    ip: spec.ip,
    nicMac: spec.nicMac,
  };
}

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

Deno.test("passthrough: NIC in the pod, host routes over the service veth, teardown restores", async () => {
  const { lab, vpc, opts } = await node();
  await using _lab = lab;
  const nic = await vpc.attachNic();
  const podNs = await vpc.addPod();
  const spec = ptSpec(vpc, nic, podNs, 1);
  const before = await lab.dump(vpc.node);

  const result = await setupPod(deps, spec, opts);
  assert.equal(result.address, `${spec.ip}/24`);
  assert.equal(result.gateway, vpc.podVxnet.gateway);

  const nodeLinks = await lab.ipJson<Json[]>(vpc.node, "link show");
  assert.ok(!nodeLinks.some((l) => l.address === nic.mac), "the NIC is still on the node");
  const [podNic] = await lab.ipJson<Json[]>(podNs, "-d address show dev eth0");
  assert.equal(podNic.address, nic.mac);
  assert.equal(podNic.ifalias, nic.name);
  assert.deepEqual(
    (podNic.addr_info as Json[]).filter((a) => a.family === "inet").map((a) =>
      `${a.local}/${a.prefixlen}`
    ),
    [`${spec.ip}/24`],
  );
  const podRoutes = await lab.ipJson<Json[]>(podNs, "route show");
  const shown = podRoutes.map((r) => `${r.dst} ${r.gateway ?? "-"} ${r.dev}`).sort();
  assert.deepEqual(
    shown,
    [
      `${SERVICE_CIDR} 169.254.1.1 hostnic-svc`,
      `${vpc.nodeIp} 169.254.1.1 hostnic-svc`,
      "169.254.1.1 - hostnic-svc",
      "172.22.1.0/24 - eth0",
      `default ${vpc.podVxnet.gateway} eth0`,
    ].sort(),
  );
  const rules = await lab.ipJson<Json[]>(vpc.node, "rule show");
  assert.ok(rules.some((r) => r.priority === 1535 && r.dst === spec.ip));

  await lab.ping(podNs, vpc.podVxnet.gateway);
  await lab.ping(podNs, vpc.nodeIp);
  assert.deepEqual(await checkPod(deps, spec, opts), []);

  await setupPod(deps, spec, opts); // ensure: harmless
  await lab.ping(podNs, vpc.podVxnet.gateway);
  assert.deepEqual(await checkPod(deps, spec, opts), []);

  await teardownPod(deps, teardownOf(spec), opts);
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
  await teardownPod(deps, teardownOf(spec), opts);
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
});

Deno.test("passthrough: teardown never set up, after netns deletion, and partial failures", async (t) => {
  const { lab, vpc, opts } = await node();
  await using _lab = lab;
  const nic = await vpc.attachNic();
  const before = await lab.dump(vpc.node);

  await t.step("never set up", async () => {
    const spec = ptSpec(vpc, nic, await vpc.addPod(), 1);
    await teardownPod(deps, teardownOf(spec), opts);
    await teardownPod(deps, { ...teardownOf(spec), netns: "" }, opts);
    assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
  });

  await t.step("failure halfway (service veth MTU 70000) moves the NIC back", async () => {
    const spec = ptSpec(vpc, nic, await vpc.addPod(), 2, { mtu: 70000 });
    const podBefore = await lab.dump(spec.netns);
    await assert.rejects(setupPod(deps, spec, opts), DatapathSetupError);
    assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
    assert.deepEqual(diffDumps(podBefore, await lab.dump(spec.netns)), []);
  });

  await t.step("pod namespace deleted before teardown", async () => {
    const spec = ptSpec(vpc, nic, await vpc.addPod(), 3);
    await setupPod(deps, spec, opts);
    await lab.deleteNetns(spec.netns);
    await teardownPod(deps, teardownOf(spec), opts);
    // A veth "NIC" dies with the namespace (a real one would come back to the root namespace,
    // which teardown renames by MAC); everything else of ours is gone.
    const diff = diffDumps(before, await lab.dump(vpc.node));
    assert.equal(diff.length, 1, diff.join("\n"));
    assert.match(diff[0], new RegExp(`^- links: .*"ifname":"${nic.name}".*"${nic.mac}"`));
  });
});

Deno.test("passthrough: a NIC that returned to the node on its own gets its name back", async () => {
  const { lab, vpc, opts } = await node();
  await using _lab = lab;
  const nic = await vpc.attachNic();
  const spec = ptSpec(vpc, nic, await vpc.addPod(), 1, { hostRoutes: [] });
  const before = await lab.dump(vpc.node);
  await setupPod(deps, spec, opts);
  // What the kernel does with a physical NIC when its namespace dies: back to the node, keeping
  // its alias, under a kernel-chosen name.
  await lab.ip(spec.netns, `link set dev eth0 netns /run/netns/${vpc.node} name dev7`);
  await teardownPod(deps, { ...teardownOf(spec), netns: "" }, opts);
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
});

Deno.test("passthrough: legacy gateway NIC carries serviceCIDR through the vxnet", async () => {
  const { lab, vpc, opts } = await node();
  await using _lab = lab;
  const [podNic, gwNic] = await vpc.attachNics(2);
  const gwIp = vpc.podIp(200);
  const gwSpec = { nicMac: gwNic.mac, ip: gwIp, vxnet: vpc.podVxnet };
  const spec = ptSpec(vpc, podNic, await vpc.addPod(), 1, {
    hostRoutes: [],
    routes: [{ dst: SERVICE_CIDR, via: gwIp }],
  });
  const before = await lab.dump(vpc.node);
  await setupGatewayNic(deps, gwSpec, opts);
  await setupGatewayNic(deps, gwSpec, opts); // ensure: harmless
  await setupPod(deps, spec, opts);
  const routes = await lab.ipJson<Json[]>(spec.netns, `route show ${SERVICE_CIDR}`);
  assert.deepEqual(routes.map((r) => `${r.gateway} ${r.dev}`), [`${gwIp} eth0`]);
  await lab.ping(spec.netns, gwIp);
  assert.deepEqual(await checkPod(deps, spec, opts), []);
  await teardownPod(deps, teardownOf(spec), opts);
  await teardownGatewayNic(deps, gwSpec, opts);
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
});

/** Gives `name` to a new node link right before the batch in `podNs` that moves the NIC back. */
class TakeNameBeforeMoveBack {
  #inner = new CommandRunner();
  taken = false;
  constructor(readonly podNs: string, readonly nodeNs: string, readonly name: string) {}
  async run(argv: readonly string[], opts: { netns?: string; stdin?: string } = {}) {
    const moves = opts.stdin?.includes(` name ${this.name} alias`) ?? false;
    if (!this.taken && opts.netns === this.podNs && argv.includes("-batch") && moves) {
      this.taken = true;
      await this.#inner.run(["ip", "link", "add", this.name, "type", "veth", "peer", "tkpeer"], {
        netns: this.nodeNs,
      });
    }
    return await this.#inner.run(argv, opts);
  }
}

Deno.test("passthrough: teardown succeeds when the NIC's old name is taken just before the move back", async () => {
  const { lab, vpc, opts } = await node();
  await using _lab = lab;
  const nic = await vpc.attachNic();
  const spec = ptSpec(vpc, nic, await vpc.addPod(), 5);
  await setupPod(deps, spec, opts);
  const runner = new TakeNameBeforeMoveBack(spec.netns, vpc.node, nic.name);
  await teardownPod({ runner }, teardownOf(spec), opts);
  assert.ok(runner.taken, "the name was taken mid-teardown");
  const nodeLinks = await lab.ipJson<Json[]>(vpc.node, "link show");
  const back = nodeLinks.find((l) => l.address === nic.mac);
  assert.equal(back?.ifname, `hn${nic.mac.replaceAll(":", "")}`, "back on the node, renamed");
});
