/**
 * The hollow kernel answers lib/linux's own readers and batch runners like Linux does: state read
 * back through `readNsState`, "exists" / "not found" failures that lib/linux/errors.ts classifies,
 * veth pairs, renames, namespace moves, and iptables transactions.
 */
import assert from "node:assert/strict";
import { classifyError } from "../../linux/errors.ts";
import { ExecError } from "../../linux/exec.ts";
import {
  ensureIptables,
  readNsState,
  runIpBatch,
  runIpBatchForgiving,
  writeSysctls,
} from "../../linux/mod.ts";
import { HollowKernel, NODE_NS } from "./kernel.ts";
import { HollowRunner } from "./runner.ts";

const POD = "/var/run/netns/hollow-test";

function bed() {
  const kernel = new HollowKernel();
  const runner = new HollowRunner({ kernel });
  kernel.addLink(NODE_NS, { name: "eth1", mac: "52:54:00:00:00:01", mtu: 1500, up: false });
  kernel.createNetns(POD);
  return { kernel, runner, deps: { runner } };
}

Deno.test("a veth pair, a route, a rule and a proxy neighbour read back as lib/linux expects", async () => {
  const { deps, runner } = bed();
  await runIpBatch(deps, [
    `link add vnic1 mtu 1500 address ee:00:00:00:00:01 type veth peer name eth0 mtu 1500 address 02:00:00:00:00:01 netns ${POD}`,
    "link set dev vnic1 up",
    "route replace 10.0.0.5/32 dev vnic1 scope link",
    "rule add priority 1535 to 10.0.0.5 lookup main",
    'link set dev eth1 name hostnic_260 alias "eth1"',
    "route replace default via 10.0.0.1 dev hostnic_260 table 260",
    "rule add priority 1536 from 10.0.0.0/24 lookup 260",
    "neigh replace proxy 10.0.0.5 dev hostnic_260",
  ], { netns: undefined });
  await runIpBatch(deps, [
    "link set dev eth0 up",
    "address replace 10.0.0.5/32 dev eth0",
    "neigh replace 169.254.1.1 lladdr ee:00:00:00:00:01 dev eth0 nud permanent",
    "route replace 169.254.1.1 dev eth0 scope link",
    "route replace default via 169.254.1.1 dev eth0",
  ], { netns: POD });
  const node = await readNsState(deps, undefined);
  const veth = node.links.find((l) => l.name === "vnic1");
  assert.deepEqual(
    { up: veth?.up, kind: veth?.kind, mac: veth?.mac },
    { up: true, kind: "veth", mac: "ee:00:00:00:00:01" },
  );
  const nic = node.links.find((l) => l.name === "hostnic_260");
  assert.equal(nic?.alias, "eth1");
  assert.ok(
    node.routes.some((r) => r.dst === "10.0.0.5/32" && r.dev === "vnic1" && r.table === 254),
  );
  assert.ok(
    node.routes.some((r) => r.dst === "0.0.0.0/0" && r.table === 260 && r.via === "10.0.0.1"),
  );
  assert.ok(
    node.rules.some((r) => r.priority === 1535 && r.to === "10.0.0.5/32" && r.table === 254),
  );
  assert.ok(
    node.rules.some((r) => r.priority === 1536 && r.from === "10.0.0.0/24" && r.table === 260),
  );
  assert.deepEqual(node.proxies, [{ dst: "10.0.0.5", dev: "hostnic_260" }]);
  const pod = await readNsState(deps, POD);
  assert.deepEqual(pod.addrs, [{ dev: "eth0", cidr: "10.0.0.5/32" }]);
  assert.deepEqual(pod.neighs, [{
    dst: "169.254.1.1",
    dev: "eth0",
    lladdr: "ee:00:00:00:00:01",
    permanent: true,
  }]);
  assert.equal(runner.spawns.get("ip"), 4);
  assert.equal(runner.ipLines.get("link add"), 1);
});

Deno.test("deleting one veth end deletes the other, with its routes", async () => {
  const { deps, kernel } = bed();
  await runIpBatch(deps, [
    `link add vnic1 mtu 1500 address ee:00:00:00:00:01 type veth peer name eth0 mtu 1500 address 02:00:00:00:00:01 netns ${POD}`,
    "route replace 10.0.0.5/32 dev vnic1 scope link",
  ], { netns: undefined });
  await runIpBatch(deps, ["link del vnic1"], { netns: undefined });
  assert.equal((await readNsState(deps, undefined)).routes.length, 0);
  assert.deepEqual([...kernel.namespaces.get(POD)!.links.values()].map((l) => l.name), ["lo"]);
});

Deno.test("failures carry the texts lib/linux classifies, and ip -batch stops at the failing line", async () => {
  const { deps } = bed();
  const err = await runIpBatch(deps, [
    "rule add priority 7 lookup 9",
    "rule add priority 7 lookup 9",
  ], {
    netns: undefined,
  }).catch((e) => e);
  assert.ok(err instanceof ExecError);
  assert.equal(classifyError(err), "exists");
  assert.match(err.stderr, /Command failed -:2/);
  const gone = await runIpBatch(deps, ["link del nothing"], { netns: undefined }).catch((e) => e);
  assert.equal(classifyError(gone), "not-found");
  const missing = await runIpBatch(deps, ["link set dev lo up"], { netns: "/var/run/netns/none" })
    .catch((e) => e);
  assert.equal(classifyError(missing), "netns-missing");
  // DEL semantics: not-found lines are forgiven, the rest still runs.
  const r = await runIpBatchForgiving(deps, [
    "route del 10.9.9.9/32 dev eth1",
    "rule del priority 7 lookup 9",
    "neigh del proxy 10.9.9.9 dev eth1",
  ], { netns: undefined });
  assert.deepEqual(r.failures, []);
  assert.equal((await readNsState(deps, undefined)).rules.some((x) => x.priority === 7), false);
});

Deno.test("moving a link into a namespace drops its addresses; the cloud's detach unplugs it", async () => {
  const { deps, kernel } = bed();
  await runIpBatch(deps, ["address replace 10.0.0.7/24 dev eth1"], { netns: undefined });
  await runIpBatch(deps, [`link set dev eth1 netns ${POD} name eth0`], { netns: undefined });
  const pod = await readNsState(deps, POD);
  assert.deepEqual(pod.links.map((l) => l.name), ["lo", "eth0"]);
  assert.deepEqual(pod.addrs, []);
  kernel.unplug("52:54:00:00:00:01");
  assert.deepEqual((await readNsState(deps, POD)).links.map((l) => l.name), ["lo"]);
});

Deno.test("iptables-restore is a transaction that iptables-save shows back; sysctls are kept", async () => {
  const { deps, kernel } = bed();
  const spec = {
    table: "mangle" as const,
    chains: [{
      chain: "HOSTNIC-OUTPUT",
      rules: ['-m comment --comment "hostnic x" -j MARK --set-xmark 0x10000/0x10000'],
    }],
    jumps: [{ from: "OUTPUT", to: "HOSTNIC-OUTPUT" }],
  };
  assert.equal(await ensureIptables(deps, spec, { netns: undefined }), true);
  assert.equal(await ensureIptables(deps, spec, { netns: undefined }), false, "up to date");
  await writeSysctls(deps, { "net/ipv4/ip_forward": "1" }, { netns: undefined });
  assert.equal(kernel.node.sysctls.get("net/ipv4/ip_forward"), "1");
});
