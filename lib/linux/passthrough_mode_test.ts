import assert from "node:assert/strict";
import { LinkConflictError, NicNotFoundError } from "./errors.ts";
import { link, nsState } from "./fake_runner.ts";
import {
  type PassthroughPodSpec,
  planPassthroughNodeTeardown,
  planPassthroughPodTeardown,
  planPassthroughSetup,
} from "./passthrough_mode.ts";
import { formatPlan } from "./plan.ts";

const NIC = "52:54:00:00:00:02";
const VETH = "vnicc440f455693";
const SPEC: PassthroughPodSpec = {
  mode: "passthrough",
  pod: { containerId: "c1", k8sNamespace: "default", podName: "nginx" },
  ifName: "eth0",
  netns: "/run/netns/p",
  ip: "172.22.1.5",
  nicMac: NIC,
  vxnet: { cidr: "172.22.1.0/24", gateway: "172.22.1.1" },
};
const NODE = nsState({
  links: [link("eth0", "52:54:00:00:00:01"), link("eth1", NIC, { up: true })],
});

Deno.test("passthrough plan without host routes: just the NIC, moved and configured", () => {
  assert.deepEqual(formatPlan(planPassthroughSetup(SPEC, { node: NODE, pod: nsState() }, {})), [
    "node: link set dev eth1 down",
    'node: link set dev eth1 netns /run/netns/p name eth0 alias "eth1"',
    "pod: link set dev eth0 up",
    "pod: address replace 172.22.1.5/24 dev eth0",
    "pod: route replace default via 172.22.1.1 dev eth0",
  ]);
});

Deno.test("passthrough plan with host routes (service veth) and gateway-NIC routes", () => {
  const spec = {
    ...SPEC,
    hostRoutes: ["10.96.0.0/12", "172.22.0.2/32"],
    routes: [{ dst: "10.0.0.0/8", via: "172.22.1.200" }],
  };
  const plan = planPassthroughSetup(spec, { node: NODE, pod: nsState() }, { nodeNetns: "tdp-n" });
  assert.deepEqual(formatPlan(plan), [
    "node: link set dev eth1 down",
    'node: link set dev eth1 netns /run/netns/p name eth0 alias "eth1"',
    `node: link add ${VETH} mtu 1500 address ee:a9:d9:71:c1:0e type veth peer name hostnic-svc ` +
    "mtu 1500 address 02:53:68:fd:d2:04 netns /run/netns/p",
    `node: link set dev ${VETH} up`,
    `node: route replace 172.22.1.5/32 dev ${VETH} scope link`,
    "node: rule add priority 1535 to 172.22.1.5 lookup main",
    `node: sysctl net/ipv4/ip_forward=1 net/ipv4/conf/${VETH}/forwarding=1 ` +
    `net/ipv4/conf/${VETH}/rp_filter=0`,
    "pod: link set dev eth0 up",
    "pod: address replace 172.22.1.5/24 dev eth0",
    "pod: route replace default via 172.22.1.1 dev eth0",
    "pod: route replace 10.0.0.0/8 via 172.22.1.200 dev eth0",
    "pod: link set dev hostnic-svc up",
    "pod: neigh replace 169.254.1.1 lladdr ee:a9:d9:71:c1:0e dev hostnic-svc nud permanent",
    "pod: route replace 169.254.1.1 dev hostnic-svc scope link",
    "pod: route replace 10.96.0.0/12 via 169.254.1.1 dev hostnic-svc src 172.22.1.5",
    "pod: route replace 172.22.0.2/32 via 169.254.1.1 dev hostnic-svc src 172.22.1.5",
  ]);
  // Undoing the move runs inside the pod namespace and brings the NIC back to the node.
  const step = plan.steps[0];
  assert.deepEqual(step.kind === "ip" && step.ops[1].undo, {
    netns: "/run/netns/p",
    lines: [
      "link set dev eth0 down",
      'link set dev eth0 netns /run/netns/tdp-n name eth1 alias ""',
    ],
  });
});

Deno.test("passthrough plan is idempotent once the NIC is in the pod, and checks names", () => {
  const pod = nsState({ links: [link("eth0", NIC, { up: true, alias: "eth1" })] });
  assert.deepEqual(formatPlan(planPassthroughSetup(SPEC, { node: nsState(), pod }, {})), [
    "pod: link set dev eth0 up",
    "pod: address replace 172.22.1.5/24 dev eth0",
    "pod: route replace default via 172.22.1.1 dev eth0",
  ]);
  assert.throws(
    () => planPassthroughSetup(SPEC, { node: nsState(), pod: nsState() }, {}),
    NicNotFoundError,
  );
  const taken = nsState({ links: [link("eth0", "02:00:00:00:00:01")] });
  assert.throws(
    () => planPassthroughSetup(SPEC, { node: NODE, pod: taken }, {}),
    LinkConflictError,
  );
});

Deno.test("passthrough teardown: NIC back under its alias, service veth and rule removed", () => {
  const spec = {
    mode: "passthrough" as const,
    pod: SPEC.pod,
    ifName: "eth0",
    netns: "/run/netns/p",
    ip: SPEC.ip,
    nicMac: NIC,
  };
  const pod = nsState({ links: [link("eth0", NIC, { up: true, alias: "eth1" })] });
  assert.deepEqual(
    formatPlan({ what: "t", steps: planPassthroughPodTeardown(spec, pod, { nodeNetns: "tdp-n" }) }),
    [
      "pod: link set dev eth0 down",
      'pod: link set dev eth0 netns /run/netns/tdp-n name eth1 alias ""',
    ],
  );
  // The node gave "eth1" to a NIC attached meanwhile: a MAC-derived name instead of a clash.
  const moved = formatPlan({
    what: "t",
    steps: planPassthroughPodTeardown(spec, pod, { nodeNetns: "tdp-n", nodeLinks: ["lo", "eth1"] }),
  });
  assert.match(moved[1], /^pod: link set dev eth0 netns \/run\/netns\/tdp-n name (\S+) alias ""$/);
  assert.doesNotMatch(moved[1], / name eth1 /);
  // Not our NIC (another MAC): left alone.
  const other = nsState({ links: [link("eth0", "02:00:00:00:00:01", { up: true })] });
  assert.deepEqual(planPassthroughPodTeardown(spec, other, {}), []);

  const node = nsState({
    links: [link(VETH, "ee:a9:d9:71:c1:0e", { up: true }), link("dev7", NIC, { alias: "eth1" })],
    rules: [{ priority: 1535, to: "172.22.1.5/32", table: 254 }],
  });
  assert.deepEqual(planPassthroughNodeTeardown(spec, node).map((o) => o.line), [
    `link del ${VETH}`,
    "rule del priority 1535 to 172.22.1.5/32 lookup main",
    'link set dev dev7 name eth1 alias ""',
  ]);
});
