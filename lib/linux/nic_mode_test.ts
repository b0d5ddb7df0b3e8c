import assert from "node:assert/strict";
import { LinkConflictError, NicNotFoundError } from "./errors.ts";
import { link, nsState } from "./fake_runner.ts";
import { type NicPodSpec, planNicPodSetup, planNicPodTeardown } from "./nic_mode.ts";
import { formatPlan, planLines } from "./plan.ts";

const VXNET = { cidr: "172.22.1.0/24", gateway: "172.22.1.1" };
const SPEC: NicPodSpec = {
  mode: "nic",
  pod: { containerId: "c1", k8sNamespace: "default", podName: "nginx" },
  ifName: "eth0",
  netns: "/var/run/netns/cni-1",
  ip: "172.22.1.5",
  table: 261,
  nicMac: "52:54:00:00:00:02",
  vxnet: VXNET,
};
const VETH = "vnicc440f455693"; // vnic + sha1("default.nginx")[:11]
const NIC = "52:54:00:00:00:02";

/** A node as the pool leaves it: the NIC attached, down, with the pod IP DHCP'd onto it. */
const FRESH = nsState({
  links: [link("eth0", "52:54:00:00:00:01", { up: true }), link("eth1", NIC)],
  addrs: [{ dev: "eth0", cidr: "172.22.0.2/24" }, { dev: "eth1", cidr: "172.22.1.5/24" }],
});

const NIC_LINES = [
  'node: link set dev eth1 name hostnic_261 alias "eth1"',
  "node: link set dev hostnic_261 up",
  "node: address del 172.22.1.5/24 dev hostnic_261",
  "node: route replace 172.22.1.0/24 dev hostnic_261 scope link table 261",
  "node: route replace default via 172.22.1.1 dev hostnic_261 table 261",
];
const VETH_LINES = [
  `node: link add ${VETH} mtu 1500 address ee:a9:d9:71:c1:0e type veth peer name eth0 mtu 1500 ` +
  "address 02:53:68:fd:d2:04 netns /var/run/netns/cni-1",
  `node: link set dev ${VETH} up`,
  `node: route replace 172.22.1.5/32 dev ${VETH} scope link`,
];
const SYSCTLS = "node: sysctl net/ipv4/ip_forward=1 net/ipv4/conf/hostnic_261/forwarding=1 " +
  "net/ipv4/conf/all/rp_filter=0 net/ipv4/conf/hostnic_261/rp_filter=0 " +
  "net/ipv4/conf/hostnic_261/arp_ignore=1 net/ipv4/conf/hostnic_261/accept_local=1 " +
  `net/ipv4/conf/${VETH}/forwarding=1 net/ipv4/conf/${VETH}/rp_filter=0`;
const POD_LINES = [
  "pod: link set dev eth0 up",
  "pod: address replace 172.22.1.5/32 dev eth0",
  "pod: neigh replace 169.254.1.1 lladdr ee:a9:d9:71:c1:0e dev eth0 nud permanent",
  "pod: route replace 169.254.1.1 dev eth0 scope link",
  "pod: route replace default via 169.254.1.1 dev eth0",
];

Deno.test("nic mode plan, hairpin off: NIC, table, veth, rules 1535/1536, sysctls, pod side", () => {
  assert.deepEqual(formatPlan(planNicPodSetup(SPEC, FRESH, {})), [
    ...NIC_LINES,
    ...VETH_LINES,
    "node: rule add priority 1535 to 172.22.1.5 lookup main",
    "node: rule add priority 1536 from 172.22.1.5 lookup 261",
    SYSCTLS,
    ...POD_LINES,
  ]);
});

Deno.test("nic mode plan, hairpin on: iif-scoped rules and the pod-to-itself rule", () => {
  assert.deepEqual(formatPlan(planNicPodSetup({ ...SPEC, hairpin: true }, FRESH, {})), [
    ...NIC_LINES,
    ...VETH_LINES,
    "node: rule add priority 1535 to 172.22.1.5 iif hostnic_261 lookup main",
    "node: rule add priority 1535 from 172.22.1.5 to 172.22.1.5 lookup main",
    `node: rule add priority 1536 from 172.22.1.5 iif ${VETH} lookup 261`,
    SYSCTLS,
    ...POD_LINES,
  ]);
});

Deno.test("nic mode plan undoes only what it changes, in the node namespace given", () => {
  const plan = planNicPodSetup(SPEC, FRESH, { nodeNetns: "tdp-node" });
  const step = plan.steps[0];
  assert.equal(step.kind === "ip" && step.netns, "tdp-node");
  const undo = step.kind === "ip" ? step.ops.flatMap((o) => o.undo ? o.undo.lines : []) : [];
  assert.deepEqual(undo, [
    "link set dev hostnic_261 down",
    'link set dev hostnic_261 name eth1 alias ""',
    "link set dev hostnic_261 down",
    "address add 172.22.1.5/24 dev hostnic_261",
    "route del 172.22.1.0/24 dev hostnic_261 table 261",
    "route del default via 172.22.1.1 dev hostnic_261 table 261",
    `link del ${VETH}`,
    "rule del priority 1535 to 172.22.1.5 lookup main",
    "rule del priority 1536 from 172.22.1.5 lookup 261",
  ]);
});

/** The node after a successful setup. */
const DONE = nsState({
  links: [
    link("eth0", "52:54:00:00:00:01", { up: true }),
    link("hostnic_261", NIC, { up: true, alias: "eth1" }),
    link(VETH, "ee:a9:d9:71:c1:0e", { up: true, kind: "veth" }),
  ],
  addrs: [{ dev: "eth0", cidr: "172.22.0.2/24" }],
  routes: [
    { table: 261, dst: "172.22.1.0/24", dev: "hostnic_261", type: "unicast", scope: "link" },
    { table: 261, dst: "0.0.0.0/0", via: "172.22.1.1", dev: "hostnic_261", type: "unicast" },
    { table: 254, dst: "172.22.1.5/32", dev: VETH, type: "unicast", scope: "link" },
  ],
  rules: [
    { priority: 1535, to: "172.22.1.5/32", table: 254 },
    { priority: 1536, from: "172.22.1.5/32", table: 261 },
  ],
});

Deno.test("nic mode plan on an already set up node: replaces the veth, adds nothing twice", () => {
  const plan = planNicPodSetup(SPEC, DONE, {});
  assert.deepEqual(planLines(plan, "node"), [
    "route replace 172.22.1.0/24 dev hostnic_261 scope link table 261",
    "route replace default via 172.22.1.1 dev hostnic_261 table 261",
    `link del ${VETH}`,
    VETH_LINES[0].slice("node: ".length),
    `link set dev ${VETH} up`,
    `route replace 172.22.1.5/32 dev ${VETH} scope link`,
  ]);
  const step = plan.steps[0];
  // Existing routes are kept on failure: only the new veth is undone.
  assert.deepEqual(step.kind === "ip" && step.ops.flatMap((o) => o.undo?.lines ?? []), [
    `link del ${VETH}`,
  ]);
});

Deno.test("nic mode plan refuses a missing NIC and a table used by another NIC", () => {
  assert.throws(
    () => planNicPodSetup({ ...SPEC, nicMac: "52:54:00:00:00:99" }, FRESH, {}),
    NicNotFoundError,
  );
  const clash = nsState({
    links: [link("eth1", NIC), link("hostnic_261", "52:54:00:00:00:77", { alias: "eth7" })],
  });
  assert.throws(() => planNicPodSetup(SPEC, clash, {}), LinkConflictError);
  assert.throws(
    () => planNicPodSetup({ ...SPEC, ip: "172.22.1" }, FRESH, {}),
    /Invalid datapath input "ip"/,
  );
  assert.throws(
    () =>
      planNicPodSetup(
        { ...SPEC, vxnet: { cidr: "172.22.1.0/24", gateway: "10.0.0.1" } },
        FRESH,
        {},
      ),
    /vxnet.gateway/,
  );
});

const TEARDOWN = {
  mode: "nic" as const,
  pod: SPEC.pod,
  ifName: "eth0",
  netns: SPEC.netns,
  ip: SPEC.ip,
  table: 261,
};

Deno.test("nic mode teardown: veth, every rule naming the IP, table, NIC name from its alias", () => {
  const hairpinDone = nsState({
    ...DONE,
    links: DONE.links.slice(1),
    rules: [
      { priority: 1535, to: "172.22.1.5/32", iif: "hostnic_261", table: 254 },
      { priority: 1535, from: "172.22.1.5/32", to: "172.22.1.5/32", table: 254 },
      { priority: 1536, from: "172.22.1.5/32", iif: VETH, table: 261 },
      { priority: 1536, from: "172.22.1.0/24", table: 262 }, // another vxnet's: kept
    ],
  });
  assert.deepEqual(formatPlan(planNicPodTeardown(TEARDOWN, hairpinDone, {})), [
    `node: link del ${VETH}`,
    "node: rule del priority 1535 to 172.22.1.5/32 iif hostnic_261 lookup main",
    "node: rule del priority 1535 from 172.22.1.5/32 to 172.22.1.5/32 lookup main",
    `node: rule del priority 1536 from 172.22.1.5/32 iif ${VETH} lookup 261`,
    "node: route del 172.22.1.0/24 dev hostnic_261 table 261",
    "node: route del 0.0.0.0/0 via 172.22.1.1 dev hostnic_261 table 261",
    "node: link set dev hostnic_261 down",
    'node: link set dev hostnic_261 name eth1 alias ""',
  ]);
});

Deno.test("nic mode teardown with nothing there is empty; a renamed host veth is found from the pod", () => {
  assert.deepEqual(formatPlan(planNicPodTeardown({ ...TEARDOWN, netns: "" }, FRESH, {})), []);
  // ADD knew the pod name, DEL only the container id: the host name differs, so the pod end goes.
  const byId = { ...TEARDOWN, pod: { containerId: "c1" } };
  assert.deepEqual(formatPlan(planNicPodTeardown(byId, FRESH, {})), ["pod: link del eth0"]);
});

Deno.test("nic mode teardown falls back to a MAC-derived name when the old name was reused", () => {
  const reused = nsState({ ...DONE, links: [...DONE.links, link("eth1", "52:54:00:00:00:09")] });
  assert.ok(
    formatPlan(planNicPodTeardown(TEARDOWN, reused, {})).includes(
      'node: link set dev hostnic_261 name hn525400000002 alias ""',
    ),
  );
});

Deno.test("nic mode teardown without IP or table reads them from the veth route and rule 1536", () => {
  const known = formatPlan(planNicPodTeardown(TEARDOWN, DONE, {}));
  const podKeyOnly = { mode: "nic" as const, pod: SPEC.pod, ifName: "eth0" };
  assert.deepEqual(formatPlan(planNicPodTeardown(podKeyOnly, DONE, {})), known);
  assert.ok(known.includes('node: link set dev hostnic_261 name eth1 alias ""'));
});
