/**
 * `nic` mode (default): one cloud NIC per pod. The pod sits behind a veth and owns the NIC's
 * primary IP as `<ip>/32`; the node steers the pod's egress into the NIC's table and traffic to
 * the pod down its veth:
 *
 *   pod:  <ip>/32 dev <if>; 169.254.1.1 dev <if> scope link; default via 169.254.1.1;
 *         neigh 169.254.1.1 lladdr <host veth MAC> permanent
 *   node: <ip>/32 dev <veth> scope link; hostnic_<t> up, no IPv4 address (alias = old name);
 *         table <t>: <vxnet cidr> dev hostnic_<t> scope link, default via <gw> dev hostnic_<t>
 *         hairpin off: rule 1535 to <ip> lookup main; rule 1536 from <ip> lookup <t>
 *         hairpin on:  rule 1535 to <ip> iif hostnic_<t> lookup main;
 *                      rule 1535 from <ip> to <ip> lookup main;
 *                      rule 1536 from <ip> iif <veth> lookup <t>
 *
 * With hairpin, traffic between two pods of the node leaves through the sender's NIC and comes
 * back through the receiver's (so the cloud's security groups and flow logs see it). The cloud
 * SDN answers ARP for the pod IP with the NIC's MAC, so the node needs no ARP trickery here.
 */
import { type Desired, emptyDesired } from "./check.ts";
import { type NsState, type RuleSpec, TABLE_MAIN } from "./ip.ts";
import { canonicalCidr, requireIpv4 } from "./ipv4.ts";
import { nicLinkName, type PodIdentity, PRIORITY } from "./names.ts";
import { nicAdoptOps, nicDesired, nicReleaseOps, nicSysctls, nicTableOps } from "./nic.ts";
import type { IpOp, Plan } from "./plan.ts";
import {
  type PodSetupResult,
  type PodTeardownSpec,
  requireNetns,
  requireVxnet,
  type VxnetSpec,
} from "./spec.ts";
import {
  ensureRuleOps,
  hostVethSysctls,
  mergeDesired,
  planVeth,
  planVethPodTeardown,
  vethNodeDesired,
  vethNodeOps,
  type VethPlan,
  vethPodDesired,
  vethPodOps,
} from "./veth.ts";

export interface NicPodSpec {
  mode: "nic";
  pod: PodIdentity;
  /** CNI_IFNAME. */
  ifName: string;
  /** CNI_NETNS (path) or a namespace name. */
  netns: string;
  /** The NIC's primary private IP, which the pod takes. */
  ip: string;
  /** Route table of the NIC (routeTableBase + n); its link becomes `hostnic_<table>`. */
  table: number;
  /** The NIC's MAC (= its QingCloud id). */
  nicMac: string;
  vxnet: VxnetSpec;
  vethPrefix?: string;
  mtu?: number;
  /** Same-node pod traffic goes out through the NIC and back (seed 000). */
  hairpin?: boolean;
}

/** The per-pod ip rules of nic mode (see the module header). */
export function nicPodRules(
  args: { ip: string; table: number; hostVeth: string; hairpin: boolean },
): RuleSpec[] {
  const { ip, table } = args;
  if (!args.hairpin) {
    return [
      { priority: PRIORITY.toPod, to: ip, table: TABLE_MAIN },
      { priority: PRIORITY.fromPod, from: ip, table },
    ];
  }
  return [
    { priority: PRIORITY.toPod, to: ip, iif: nicLinkName(table), table: TABLE_MAIN },
    { priority: PRIORITY.toPod, from: ip, to: ip, table: TABLE_MAIN },
    { priority: PRIORITY.fromPod, from: ip, iif: args.hostVeth, table },
  ];
}

interface NicPodParts {
  veth: VethPlan;
  vxnet: VxnetSpec;
  rules: RuleSpec[];
}

function parts(spec: NicPodSpec): NicPodParts {
  requireIpv4("ip", spec.ip);
  const veth = planVeth(spec.pod, spec.ifName, spec);
  return {
    veth,
    vxnet: requireVxnet(spec.vxnet),
    rules: nicPodRules({
      ip: spec.ip,
      table: spec.table,
      hostVeth: veth.hostName,
      hairpin: spec.hairpin ?? false,
    }),
  };
}

/**
 * Setup plan from the node's current state: node batch (NIC, table, veth, rules), node sysctls,
 * pod batch. 3 spawns (plus the read that produced `node`).
 */
export function planNicPodSetup(
  spec: NicPodSpec,
  node: NsState,
  opts: { nodeNetns?: string },
): Plan {
  const p = parts(spec);
  const podNetns = requireNetns("netns", spec.netns);
  const ctx = { node, nodeNetns: opts.nodeNetns };
  const nodeOps: IpOp[] = [
    ...nicAdoptOps({ mac: spec.nicMac, table: spec.table }, ctx),
    ...nicTableOps(spec.table, p.vxnet, ctx),
    ...vethNodeOps(p.veth, { ...ctx, podNetns, ip: spec.ip }),
    ...ensureRuleOps(p.rules, ctx),
  ];
  return {
    what: `nic-mode pod ${spec.ip}`,
    steps: [
      { kind: "ip", role: "node", netns: opts.nodeNetns, ops: nodeOps },
      {
        kind: "sysctl",
        role: "node",
        netns: opts.nodeNetns,
        values: {
          ...nicSysctls(spec.table, { proxyNeighbours: false }),
          ...hostVethSysctls(p.veth.hostName),
        },
      },
      {
        kind: "ip",
        role: "pod",
        netns: podNetns,
        ops: vethPodOps(p.veth, {
          ip: spec.ip,
          withAddress: true,
          secondary: spec.ifName !== "eth0",
        }),
      },
    ],
  };
}

/** What CHECK expects in the node and pod namespaces. */
export function nicPodDesired(spec: NicPodSpec): { node: Desired; pod: Desired } {
  const p = parts(spec);
  const rules = emptyDesired();
  rules.rules.push(...p.rules);
  return {
    node: mergeDesired(
      nicDesired({ mac: spec.nicMac, table: spec.table }, p.vxnet),
      vethNodeDesired(p.veth, spec.ip),
      rules,
    ),
    pod: vethPodDesired(p.veth, {
      ip: spec.ip,
      withAddress: true,
      secondary: spec.ifName !== "eth0",
    }),
  };
}

export function nicPodResult(spec: NicPodSpec): PodSetupResult {
  const v = planVeth(spec.pod, spec.ifName, spec);
  return {
    interfaces: [
      { name: v.podName, mac: v.podMac, sandbox: spec.netns },
      { name: v.hostName, mac: v.hostMac },
    ],
    address: `${spec.ip}/32`,
    gateway: "169.254.1.1",
    interfaceIndex: 0,
  };
}

/** The table of a pod's NIC, read from its rule 1536 `from <ip> ... lookup <table>`. */
export function tableOfPodRule(node: NsState, ip: string): number | undefined {
  const host = canonicalCidr(ip);
  return node.rules.find((r) => r.priority === PRIORITY.fromPod && r.from === host)?.table;
}

/** nic-mode teardown: the veth part plus releasing `hostnic_<table>` (table read from the
 * pod's rule 1536 when the DEL does not know it). */
export function planNicPodTeardown(
  spec: PodTeardownSpec,
  node: NsState,
  opts: { nodeNetns?: string },
): Plan {
  return planVethPodTeardown(spec, node, {
    ...opts,
    extraNodeOps: (ip) => {
      const table = spec.table ?? (ip ? tableOfPodRule(node, ip) : undefined);
      return table === undefined ? [] : nicReleaseOps(table, node);
    },
  });
}
