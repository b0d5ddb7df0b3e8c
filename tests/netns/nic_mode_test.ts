/**
 * nic mode in real namespaces: a node with NICs attached to an emulated VPC, pods behind veths.
 */
import assert from "node:assert/strict";
import {
  checkPod,
  CommandRunner,
  DatapathSetupError,
  hostVethName,
  NetnsNotFoundError,
  type NicPodSpec,
  type PodTeardownSpec,
  setupPod,
  teardownPod,
} from "../../lib/linux/mod.ts";
import type { Runner } from "../../lib/linux/exec.ts";
import { ExecError } from "../../lib/linux/exec.ts";
import { diffDumps, NetnsLab } from "../helpers/netns.ts";
import { waitFor } from "../helpers/wait.ts";
import { type Nic, VpcLab } from "../helpers/vpc.ts";

type Json = Record<string, unknown>;

const deps = { runner: new CommandRunner() };

function nicSpec(vpc: VpcLab, nic: Nic, podNs: string, i: number, extra: Partial<NicPodSpec> = {}) {
  return {
    mode: "nic",
    pod: { containerId: `ctr${i}`, k8sNamespace: "default", podName: `pod-${i}` },
    ifName: "eth0",
    netns: podNs,
    ip: vpc.podIp(i),
    table: 260 + i,
    nicMac: nic.mac,
    vxnet: vpc.podVxnet,
    ...extra,
  } satisfies NicPodSpec;
}

function teardownOf(spec: NicPodSpec): PodTeardownSpec {
  return {
    mode: "nic",
    pod: spec.pod,
    ifName: spec.ifName,
    netns: spec.netns,
    ip: spec.ip,
    table: spec.table,
  };
}

async function newNode(): Promise<{ lab: NetnsLab; vpc: VpcLab }> {
  const lab = new NetnsLab();
  try {
    return { lab, vpc: await VpcLab.create(lab) };
  } catch (err) {
    await lab[Symbol.asyncDispose]();
    throw err;
  }
}

Deno.test("nic mode: pod reaches gateway and node, objects exist, teardown restores the node", async () => {
  const { lab, vpc } = await newNode();
  await using _lab = lab;
  const nic = await vpc.attachNic();
  const podNs = await vpc.addPod();
  const spec = nicSpec(vpc, nic, podNs, 1);
  await vpc.sdnLearn([{ ip: spec.ip, mac: nic.mac }]);
  const opts = { nodeNetns: vpc.node };
  const before = await lab.dump(vpc.node);

  const result = await setupPod(deps, spec, opts);
  const hostVeth = result.interfaces[1].name;
  assert.match(hostVeth, /^vnic[0-9a-f]{11}$/);

  // Node side, read with plain `ip -json`.
  const links = await lab.ipJson<Json[]>(vpc.node, "-d link show");
  const nicLink = links.find((l) => l.address === nic.mac)!;
  assert.equal(nicLink.ifname, "hostnic_261");
  assert.equal(nicLink.ifalias, nic.name);
  assert.ok((nicLink.flags as string[]).includes("UP"));
  assert.deepEqual(await lab.ipJson(vpc.node, "-4 address show dev hostnic_261"), []);
  const veth = links.find((l) => l.ifname === hostVeth)!;
  assert.equal(veth.address, result.interfaces[1].mac);
  const rules = await lab.ipJson<Json[]>(vpc.node, "rule show");
  assert.ok(rules.some((r) => r.priority === 1535 && r.dst === spec.ip && r.table === "main"));
  assert.ok(rules.some((r) => r.priority === 1536 && r.src === spec.ip && r.table === "261"));
  const t261 = await lab.ipJson<Json[]>(vpc.node, "route show table 261");
  assert.deepEqual(
    t261.map((r) => `${r.dst} ${r.gateway ?? "-"} ${r.dev}`).sort(),
    ["172.22.1.0/24 - hostnic_261", "default 172.22.1.1 hostnic_261"],
  );
  const main = await lab.ipJson<Json[]>(vpc.node, "route show");
  assert.ok(main.some((r) => r.dst === spec.ip && r.dev === hostVeth && r.scope === "link"));

  // Pod side.
  const podAddrs = await lab.ipJson<Json[]>(podNs, "-4 address show dev eth0");
  assert.deepEqual(
    (podAddrs[0].addr_info as Json[]).map((a) => `${a.local}/${a.prefixlen}`),
    [`${spec.ip}/32`],
  );
  const podRoutes = await lab.ipJson<Json[]>(podNs, "route show");
  assert.deepEqual(
    podRoutes.map((r) => `${r.dst} ${r.gateway ?? "-"} ${r.scope ?? "-"}`).sort(),
    ["169.254.1.1 - link", "default 169.254.1.1 -"],
  );
  const neigh = await lab.ipJson<Json[]>(podNs, "neigh show");
  assert.ok(neigh.some((n) =>
    n.dst === "169.254.1.1" && n.lladdr === result.interfaces[1].mac &&
    (n.state as string[]).includes("PERMANENT")
  ));

  await lab.ping(podNs, vpc.podVxnet.gateway);
  await lab.ping(podNs, vpc.nodeIp);
  assert.deepEqual(await checkPod(deps, spec, opts), []);

  // Setup again: harmless, still working.
  await setupPod(deps, spec, opts);
  await lab.ping(podNs, vpc.podVxnet.gateway);
  assert.deepEqual(await checkPod(deps, spec, opts), []);

  await teardownPod(deps, teardownOf(spec), opts);
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
  await teardownPod(deps, teardownOf(spec), opts);
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
});

Deno.test("nic mode: CHECK names what is missing", async () => {
  const { lab, vpc } = await newNode();
  await using _lab = lab;
  const nic = await vpc.attachNic();
  const spec = nicSpec(vpc, nic, await vpc.addPod(), 5);
  const opts = { nodeNetns: vpc.node };
  const hostMac = (await setupPod(deps, spec, opts)).interfaces[1].mac;
  await lab.ip(vpc.node, `rule del priority 1536 from ${spec.ip} lookup 265`);
  await lab.ip(spec.netns, "neigh flush dev eth0 nud permanent");
  assert.deepEqual(await checkPod(deps, spec, opts), [
    `node: rule 1536 from ${spec.ip} lookup 265 is missing`,
    `pod: neighbour 169.254.1.1 lladdr ${hostMac} dev eth0 permanent is missing`,
  ]);
  await lab.deleteNetns(spec.netns);
  // The kernel destroys a deleted namespace, and with it the host end of the pod's veth,
  // asynchronously: wait for that, then CHECK names everything that went with the pod.
  const hostVeth = hostVethName(spec.pod, spec.vethPrefix);
  await waitFor(
    "the host veth to go with the pod namespace",
    async () =>
      !(await lab.ipJson<{ ifname: string }[]>(vpc.node, "link show")).some((l) =>
        l.ifname === hostVeth
      ),
  );
  assert.deepEqual(await checkPod(deps, spec, opts), [
    `node: link ${hostVeth} is missing`,
    `node: route ${spec.ip}/32 dev ${hostVeth} scope link is missing`,
    `node: rule 1536 from ${spec.ip} lookup 265 is missing`,
    `pod: network namespace ${spec.netns} is missing`,
  ]);
});

Deno.test("nic mode: hairpin sends same-node pod traffic out through the NICs", async () => {
  const { lab, vpc } = await newNode();
  await using _lab = lab;
  const [nic1, nic2] = await vpc.attachNics(2);
  const [ns1, ns2] = await vpc.addPods(2);
  const a = nicSpec(vpc, nic1, ns1, 1, { hairpin: true });
  const b = nicSpec(vpc, nic2, ns2, 2, { hairpin: true });
  await vpc.sdnLearn([{ ip: a.ip, mac: nic1.mac }, { ip: b.ip, mac: nic2.mac }]);
  const opts = { nodeNetns: vpc.node };
  const before = await lab.dump(vpc.node);
  await Promise.all([setupPod(deps, a, opts), setupPod(deps, b, opts)]);

  const txOf = async (dev: string) => {
    const [l] = await lab.ipJson<Json[]>(vpc.node, `-s link show dev ${dev}`);
    return Number((l.stats64 as { tx: { packets: number } }).tx.packets);
  };
  const tx1 = await txOf("hostnic_261");
  await lab.ping(ns1, b.ip);
  assert.ok(await txOf("hostnic_261") > tx1, "pod-to-pod traffic did not leave through the NIC");
  await lab.ping(ns1, vpc.podVxnet.gateway);
  await lab.ping(ns2, vpc.nodeIp);
  assert.deepEqual(await checkPod(deps, a, opts), []);

  await Promise.all([
    teardownPod(deps, teardownOf(a), opts),
    teardownPod(deps, teardownOf(b), opts),
  ]);
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
});

Deno.test("nic mode: teardown of a pod never set up succeeds and changes nothing", async () => {
  const { lab, vpc } = await newNode();
  await using _lab = lab;
  const nic = await vpc.attachNic();
  const podNs = await vpc.addPod();
  const spec = nicSpec(vpc, nic, podNs, 3);
  const before = await lab.dump(vpc.node);
  await teardownPod(deps, teardownOf(spec), { nodeNetns: vpc.node });
  await teardownPod(deps, { ...teardownOf(spec), netns: "" }, { nodeNetns: vpc.node });
  await teardownPod(deps, { ...teardownOf(spec), netns: "/proc/999999999/ns/net" }, {
    nodeNetns: vpc.node,
  });
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
});

Deno.test("nic mode: teardown after the pod namespace was deleted restores the node", async () => {
  const { lab, vpc } = await newNode();
  await using _lab = lab;
  const nic = await vpc.attachNic();
  const podNs = await vpc.addPod();
  const spec = nicSpec(vpc, nic, podNs, 4, { hairpin: true });
  const opts = { nodeNetns: vpc.node };
  const before = await lab.dump(vpc.node);
  await setupPod(deps, spec, opts);
  await lab.deleteNetns(podNs);
  await teardownPod(deps, teardownOf(spec), opts);
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
});

Deno.test("nic mode: a failure halfway (MTU 70000) leaves no partial state", async () => {
  const { lab, vpc } = await newNode();
  await using _lab = lab;
  const nic = await vpc.attachNic();
  const podNs = await vpc.addPod();
  const spec = nicSpec(vpc, nic, podNs, 6, { mtu: 70000 });
  const before = await lab.dump(vpc.node);
  const podBefore = await lab.dump(podNs);
  const err = await setupPod(deps, spec, { nodeNetns: vpc.node }).then(() => null, (e) => e);
  assert.ok(err instanceof DatapathSetupError, String(err));
  assert.equal(err.code, "DATAPATH_SETUP_FAILED");
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
  assert.deepEqual(diffDumps(podBefore, await lab.dump(podNs)), []);
});

/** Fails the first `ip -batch` run inside `netns`, after the node has been changed. */
class FailInNetns implements Runner {
  #inner = new CommandRunner();
  failed = false;
  constructor(readonly netns: string) {}
  run(argv: readonly string[], opts: { netns?: string; stdin?: string } = {}) {
    if (!this.failed && opts.netns === this.netns && argv.includes("-batch") && opts.stdin) {
      this.failed = true;
      return Promise.reject(new ExecError(argv, 1, "injected failure\nCommand failed -:2\n"));
    }
    return this.#inner.run(argv, opts);
  }
}

Deno.test("nic mode: a failure in the pod step reverts the node", async () => {
  const { lab, vpc } = await newNode();
  await using _lab = lab;
  const nic = await vpc.attachNic();
  const podNs = await vpc.addPod();
  const spec = nicSpec(vpc, nic, podNs, 7, { hairpin: true });
  const before = await lab.dump(vpc.node);
  const runner = new FailInNetns(podNs);
  await assert.rejects(setupPod({ runner }, spec, { nodeNetns: vpc.node }), DatapathSetupError);
  assert.ok(runner.failed);
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
  assert.deepEqual(await lab.ipJson(podNs, "link show dev eth0").catch(() => []), []);
});

Deno.test("nic mode: a DEL knowing only the pod key cleans up (IP and table read back)", async () => {
  const { lab, vpc } = await newNode();
  await using _lab = lab;
  const nic = await vpc.attachNic();
  const spec = nicSpec(vpc, nic, await vpc.addPod(), 8);
  const opts = { nodeNetns: vpc.node };
  const before = await lab.dump(vpc.node);
  await setupPod(deps, spec, opts);
  await teardownPod(deps, { mode: "nic", pod: spec.pod, ifName: "eth0" }, opts);
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
});

Deno.test("nic mode: setup into a missing pod namespace fails as NETNS_NOT_FOUND, node untouched", async () => {
  const { lab, vpc } = await newNode();
  await using _lab = lab;
  const nic = await vpc.attachNic();
  const spec = nicSpec(vpc, nic, lab.name("gone"), 9);
  const before = await lab.dump(vpc.node);
  const err = await setupPod(deps, spec, { nodeNetns: vpc.node }).then(() => null, (e) => e);
  assert.ok(err instanceof NetnsNotFoundError, String(err));
  assert.equal(err.netns, `/run/netns/${lab.name("gone")}`);
  assert.deepEqual(diffDumps(before, await lab.dump(vpc.node)), []);
});

/**
 * Gives the NIC's old name to a new link right before the teardown batch that renames the NIC
 * back, as the cloud does when it hot-plugs another NIC at that moment.
 */
class TakeNameBeforeRename implements Runner {
  #inner = new CommandRunner();
  taken = false;
  constructor(readonly netns: string, readonly name: string) {}
  async run(argv: readonly string[], opts: { netns?: string; stdin?: string } = {}) {
    const renames = opts.stdin?.includes(` name ${this.name} alias`) ?? false;
    if (!this.taken && opts.netns === this.netns && argv.includes("-batch") && renames) {
      this.taken = true;
      await this.#inner.run(["ip", "link", "add", this.name, "type", "veth", "peer", "tkpeer"], {
        netns: this.netns,
      });
    }
    return await this.#inner.run(argv, opts);
  }
}

Deno.test("nic mode: teardown succeeds when the NIC's old name is taken just before the rename", async () => {
  const { lab, vpc } = await newNode();
  await using _lab = lab;
  const nic = await vpc.attachNic();
  const spec = nicSpec(vpc, nic, await vpc.addPod(), 10);
  const opts = { nodeNetns: vpc.node };
  await setupPod(deps, spec, opts);
  const runner = new TakeNameBeforeRename(vpc.node, nic.name);
  await teardownPod({ runner }, teardownOf(spec), opts);
  assert.ok(runner.taken, "the name was taken mid-teardown");
  const links = await lab.ipJson<Json[]>(vpc.node, "-d link show");
  const nicLink = links.find((l) => l.address === nic.mac)!;
  assert.equal(nicLink.ifname, `hn${nic.mac.replaceAll(":", "")}`);
  assert.ok(!(nicLink.flags as string[]).includes("UP"));
  assert.deepEqual(await lab.ipJson(vpc.node, "route show table 270"), []);
  const rules = await lab.ipJson<Json[]>(vpc.node, "rule show");
  assert.ok(!rules.some((r) => r.src === spec.ip || r.dst === spec.ip), JSON.stringify(rules));
});
