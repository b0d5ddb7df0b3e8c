import assert from "node:assert/strict";
import { InvalidSpecError } from "./errors.ts";
import { FakeRunner, link, nsState } from "./fake_runner.ts";
import { planIptablesEnsure } from "./iptables.ts";
import { formatPlan } from "./plan.ts";
import {
  checkNatMark,
  natMarkRule,
  planGatewayNicSetup,
  planGatewayNicTeardown,
  removeServiceRouting,
  serviceTableSpec,
} from "./service.ts";
import { ruleAddLine } from "./ip.ts";

Deno.test("service chains mark NodePort and service connections with natMark only", () => {
  const spec = serviceTableSpec({ nodeIp: "172.22.0.2", serviceCidr: "10.96.0.0/12" });
  assert.equal(
    planIptablesEnsure(spec, ""),
    [
      "*mangle",
      ":HOSTNIC-PREROUTING - [0:0]",
      ":HOSTNIC-OUTPUT - [0:0]",
      ":HOSTNIC-FORWARD - [0:0]",
      "-A HOSTNIC-PREROUTING -m conntrack --ctorigdst 172.22.0.2 -j MARK --set-xmark 0x10000/0x10000",
      "-A HOSTNIC-OUTPUT -m conntrack --ctorigdst 10.96.0.0/12 -j MARK --set-xmark 0x10000/0x10000",
      // Cleared again once routed: a policy engine's filter FORWARD must not see natMark.
      "-A HOSTNIC-FORWARD -j MARK --set-xmark 0x0/0x10000",
      "-A PREROUTING -j HOSTNIC-PREROUTING",
      "-A OUTPUT -j HOSTNIC-OUTPUT",
      "-A FORWARD -j HOSTNIC-FORWARD",
      "COMMIT",
      "",
    ].join("\n"),
  );
  assert.deepEqual(
    serviceTableSpec({ nodeIp: "172.22.0.2", natMark: 0x20000 }).chains[1].rules,
    [],
  );
  assert.equal(
    ruleAddLine(natMarkRule(0x20000)),
    "rule add priority 1534 fwmark 0x20000/0x20000 lookup main",
  );
});

Deno.test("natMark may not touch kube-proxy's marks; Calico's mask overlap is a warning", () => {
  assert.throws(() => checkNatMark(0x4000), InvalidSpecError);
  assert.throws(() => checkNatMark(0xc000), InvalidSpecError);
  assert.throws(() => checkNatMark(0), InvalidSpecError);
  assert.throws(
    () => serviceTableSpec({ nodeIp: "172.22.0.2", natMark: 0x8000 }),
    InvalidSpecError,
  );
  assert.deepEqual(checkNatMark(0x1000), []);
  assert.equal(checkNatMark(0x10000).length, 1);
});

Deno.test("removeServiceRouting deletes our chains and mark rules, forgiving absence", async () => {
  const state = [
    JSON.stringify([]),
    JSON.stringify([]),
    JSON.stringify([]),
    JSON.stringify([{
      priority: 1534,
      src: "all",
      fwmark: "0x10000",
      fwmask: "0x10000",
      table: "main",
    }]),
    JSON.stringify([]),
    JSON.stringify([]),
  ].join("\n");
  const runner = new FakeRunner((c) => ({
    stdout: c.argv[0] === "iptables-save" ? "" : c.argv.includes("-json") ? state : "",
    stderr: "",
  }));
  await removeServiceRouting({ runner }, { nodeNetns: "n" });
  assert.deepEqual(runner.batchLines(), [
    "n: rule del priority 1534 fwmark 0x10000/0x10000 lookup main",
  ]);
});

Deno.test("gateway NIC: address of the vxnet on the node, ARP only for it; teardown reverses", () => {
  const spec = {
    nicMac: "52:54:00:00:00:09",
    ip: "172.22.1.200",
    vxnet: { cidr: "172.22.1.0/24", gateway: "172.22.1.1" },
  };
  const node = nsState({ links: [link("eth3", "52:54:00:00:00:09")] });
  assert.deepEqual(formatPlan(planGatewayNicSetup(spec, node, {})), [
    "node: link set dev eth3 up",
    "node: address replace 172.22.1.200/24 dev eth3",
    "node: sysctl net/ipv4/ip_forward=1 net/ipv4/conf/eth3/forwarding=1 " +
    "net/ipv4/conf/eth3/arp_ignore=1 net/ipv4/conf/eth3/arp_announce=2 net/ipv4/conf/eth3/rp_filter=0",
  ]);
  const up = nsState({
    links: [link("eth3", "52:54:00:00:00:09", { up: true })],
    addrs: [{ dev: "eth3", cidr: "172.22.1.200/24" }],
  });
  assert.deepEqual(formatPlan(planGatewayNicTeardown(spec, up, {})), [
    "node: address del 172.22.1.200/24 dev eth3",
    "node: link set dev eth3 down",
  ]);
});
