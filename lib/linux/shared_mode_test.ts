import assert from "node:assert/strict";
import { NicNotFoundError } from "./errors.ts";
import { link, nsState } from "./fake_runner.ts";
import { formatPlan } from "./plan.ts";
import {
  planSharedNicSetup,
  planSharedNicTeardown,
  planSharedPodSetup,
  planSharedPodTeardown,
  sharedNicPodIpsIn,
  type SharedPodSpec,
} from "./shared_mode.ts";

const VXNET = { cidr: "172.22.1.0/24", gateway: "172.22.1.1" };
const NIC = "52:54:00:00:00:02";
const VETH = "vnicc440f455693";
const POD: SharedPodSpec = {
  mode: "shared",
  pod: { containerId: "c1", k8sNamespace: "default", podName: "nginx" },
  ifName: "eth0",
  netns: "/run/netns/p",
  ip: "172.22.1.5",
  table: 270,
};

Deno.test("shared NIC plan: rename, table, rule from the vxnet CIDR, proxy_delay 0", () => {
  const node = nsState({ links: [link("eth1", NIC)] });
  assert.deepEqual(
    formatPlan(planSharedNicSetup({ nicMac: NIC, table: 270, vxnet: VXNET }, node, {})),
    [
      'node: link set dev eth1 name hostnic_270 alias "eth1"',
      "node: link set dev hostnic_270 up",
      "node: route replace 172.22.1.0/24 dev hostnic_270 scope link table 270",
      "node: route replace default via 172.22.1.1 dev hostnic_270 table 270",
      "node: rule add priority 1536 from 172.22.1.0/24 lookup 270",
      "node: sysctl net/ipv4/ip_forward=1 net/ipv4/conf/hostnic_270/forwarding=1 " +
      "net/ipv4/conf/all/rp_filter=0 net/ipv4/conf/hostnic_270/rp_filter=0 " +
      "net/ipv4/conf/hostnic_270/arp_ignore=1 net/ipv4/conf/hostnic_270/accept_local=1 " +
      "net/ipv4/neigh/hostnic_270/proxy_delay=0",
    ],
  );
});

const WITH_NIC = nsState({
  links: [link("hostnic_270", NIC, { up: true, alias: "eth1" })],
  routes: [{
    table: 270,
    dst: "0.0.0.0/0",
    via: "172.22.1.1",
    dev: "hostnic_270",
    type: "unicast",
  }],
  rules: [{ priority: 1536, from: "172.22.1.0/24", table: 270 }],
});

Deno.test("shared pod plan: veth, rule 1535 and a proxy neighbour instead of a bridge", () => {
  assert.deepEqual(formatPlan(planSharedPodSetup(POD, WITH_NIC, {})), [
    `node: link add ${VETH} mtu 1500 address ee:a9:d9:71:c1:0e type veth peer name eth0 mtu 1500 ` +
    "address 02:53:68:fd:d2:04 netns /run/netns/p",
    `node: link set dev ${VETH} up`,
    `node: route replace 172.22.1.5/32 dev ${VETH} scope link`,
    "node: rule add priority 1535 to 172.22.1.5 lookup main",
    "node: neigh replace proxy 172.22.1.5 dev hostnic_270",
    `node: sysctl net/ipv4/ip_forward=1 net/ipv4/conf/${VETH}/forwarding=1 ` +
    `net/ipv4/conf/${VETH}/rp_filter=0`,
    "pod: link set dev eth0 up",
    "pod: address replace 172.22.1.5/32 dev eth0",
    "pod: neigh replace 169.254.1.1 lladdr ee:a9:d9:71:c1:0e dev eth0 nud permanent",
    "pod: route replace 169.254.1.1 dev eth0 scope link",
    "pod: route replace default via 169.254.1.1 dev eth0",
  ]);
  assert.throws(() => planSharedPodSetup(POD, nsState(), {}), NicNotFoundError);
});

const WITH_PODS = nsState({
  ...WITH_NIC,
  links: [...WITH_NIC.links, link(VETH, "ee:a9:d9:71:c1:0e", { up: true, kind: "veth" })],
  rules: [...WITH_NIC.rules, { priority: 1535, to: "172.22.1.5/32", table: 254 }],
  proxies: [{ dst: "172.22.1.5", dev: "hostnic_270" }, { dst: "172.22.1.6", dev: "hostnic_270" }],
});

Deno.test("shared pod teardown removes only that pod's veth, rule and proxy entry", () => {
  const spec = { mode: "shared" as const, pod: POD.pod, ifName: "eth0", netns: "", ip: POD.ip };
  assert.deepEqual(formatPlan(planSharedPodTeardown(spec, WITH_PODS, {})), [
    `node: link del ${VETH}`,
    "node: rule del priority 1535 to 172.22.1.5/32 lookup main",
    "node: neigh del proxy 172.22.1.5 dev hostnic_270",
  ]);
  assert.deepEqual(sharedNicPodIpsIn(WITH_PODS, 270), ["172.22.1.5", "172.22.1.6"]);
});

Deno.test("shared NIC teardown: its rule, leftover proxies, table, then the old name", () => {
  assert.deepEqual(formatPlan(planSharedNicTeardown({ table: 270 }, WITH_PODS, {})), [
    "node: rule del priority 1536 from 172.22.1.0/24 lookup 270",
    "node: neigh del proxy 172.22.1.5 dev hostnic_270",
    "node: neigh del proxy 172.22.1.6 dev hostnic_270",
    "node: route del 0.0.0.0/0 via 172.22.1.1 dev hostnic_270 table 270",
    "node: link set dev hostnic_270 down",
    'node: link set dev hostnic_270 name eth1 alias ""',
  ]);
  assert.deepEqual(formatPlan(planSharedNicTeardown({ table: 270 }, nsState(), {})), []);
});
