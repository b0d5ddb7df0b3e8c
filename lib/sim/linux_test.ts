import assert from "node:assert/strict";
import { parseIp } from "./ip.ts";
import {
  buildTopology,
  freeEthNames,
  onlyGone,
  plugScript,
  primaryScript,
  stableMac,
  unplugScript,
  vpcLinkName,
  vpcScript,
} from "./linux.ts";
import { testScenario } from "./testing.ts";
import { World } from "./world.ts";

Deno.test("names: VPC-side link from the MAC, bridges and namespaces from ids", () => {
  assert.equal(vpcLinkName("52:54:ab:cd:ef:01"), "nabcdef01");
  const world = new World({ scenario: testScenario() });
  const t = buildTopology(world, "tsimu");
  assert.deepEqual(t.routerNamespaces, ["tsimu-vpc"]);
  assert.equal(t.baseNamespace, "tsimu-base");
  const a = t.bridges.get("vxnet-a")!;
  assert.deepEqual([a.namespace, a.bridge, a.gateway, a.prefix], [
    "tsimu-vpc",
    "br-a",
    "172.25.1.1",
    24,
  ]);
  assert.equal(t.bridges.get("vxnet-basic")!.namespace, "tsimu-base");
  assert.equal(t.instances.get("i-one")!.namespace, "tsimu-i-one");
  for (const b of t.bridges.values()) assert.ok(b.bridge.length <= 15);
  assert.equal(stableMac("x"), stableMac("x"));
  assert.match(stableMac("x"), /^02:5e(:[0-9a-f]{2}){4}$/);
});

Deno.test("scripts: plug registers the NIC with the SDN emulation, unplug undoes it", () => {
  const world = new World({ scenario: testScenario() });
  const t = buildTopology(world, "tsimu");
  const bridge = t.bridges.get("vxnet-a")!;
  const placement = {
    nicId: "52:54:00:00:00:0a",
    ip: parseIp("172.25.1.50")!,
    vxnetId: "vxnet-a",
    instanceId: "i-one",
  };
  const s = plugScript({ placement, bridge, instanceNamespace: "tsimu-i-one", ifName: "eth1" });
  assert.deepEqual(s.ip, [
    "link add n0000000a type veth peer name eth1 address 52:54:00:00:00:0a netns tsimu-i-one",
    "link set n0000000a master br-a",
    "link set n0000000a type bridge_slave proxy_arp_wifi on",
    "link set n0000000a up",
    "neigh replace 172.25.1.50 lladdr 52:54:00:00:00:0a dev br-a nud permanent",
  ]);
  assert.deepEqual(s.bridge, ["fdb replace 52:54:00:00:00:0a dev n0000000a master static"]);
  assert.deepEqual(unplugScript(placement, bridge), [
    "link del n0000000a",
    "neigh del 172.25.1.50 dev br-a",
  ]);
  assert.equal(
    plugScript({
      placement: { ...placement, ip: null },
      bridge,
      instanceNamespace: "x",
      ifName: "eth1",
    }).ip.length,
    4,
  );
  assert.deepEqual(vpcScript([bridge]).slice(1), [
    `link add br-a address ${bridge.mac} type bridge`,
    "addr add 172.25.1.1/24 dev br-a",
    "link set br-a up",
  ]);
  assert.deepEqual(primaryScript(t.instances.get("i-one")!, bridge).slice(2), [
    "addr add 172.25.1.10/24 dev eth0",
    "route add default via 172.25.1.1 dev eth0",
  ]);
});

Deno.test("new NICs get the lowest free eth<N>", () => {
  assert.deepEqual(freeEthNames(new Set(["lo", "eth0", "eth2"]), 3), ["eth1", "eth3", "eth4"]);
});

Deno.test("unplugging forgives links already gone, or going with a deleted namespace", () => {
  assert.ok(onlyGone('Cannot find device "n0000000a"\nCommand failed -:1\n'));
  assert.ok(onlyGone("RTNETLINK answers: No such device\nCommand failed -:7\n"));
  assert.ok(onlyGone("RTNETLINK answers: No such file or directory\nCommand failed -:2\n"));
  assert.ok(!onlyGone("RTNETLINK answers: File exists\nCommand failed -:1\n"));
});
