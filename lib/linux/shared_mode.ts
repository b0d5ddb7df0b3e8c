/**
 * `shared` mode: one cloud NIC per (node, vxnet), shared by every pod of that vxnet on the node.
 * Pods get addresses from block IPAM; the NIC itself has none.
 *
 *   once per vxnet (setupSharedNic):
 *     hostnic_<t> up, no IPv4 address; table <t>: <cidr> dev hostnic_<t> scope link,
 *     default via <gw>; rule 1536 from <vxnet cidr> lookup <t>; proxy_delay 0 on the NIC
 *   per pod (setupPod): the veth of nic mode, rule 1535 to <ip> lookup main, and
 *     `ip neigh add proxy <ip> dev hostnic_<t>`
 *
 * The proxy neighbour entry makes the node answer the SDN's ARP for the pod IP with the NIC's
 * MAC. It replaces upstream's bridge + ebtables arpreply (unavailable on nft-only kernels): the
 * kernel answers for a proxy entry when forwarding is on and the pod IP routes out another link.
 *
 * The NIC is released only by `teardownSharedNic`, which the caller runs when the NIC's last pod
 * is gone (`sharedNicPodIps` lists the pods still answered for on it).
 */
import { type Desired, emptyDesired } from "./check.ts";
import { NicNotFoundError } from "./errors.ts";
import {
  linkByName,
  neighAddLine,
  neighDelLine,
  type NeighSpec,
  type NsState,
  ruleDelLine,
  type RuleSpec,
  ruleSpecOf,
  TABLE_MAIN,
} from "./ip.ts";
import { requireIpv4 } from "./ipv4.ts";
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
  vethPodDesired,
  vethPodOps,
} from "./veth.ts";

/** The shared NIC of one vxnet on this node. */
export interface SharedNicSpec {
  nicMac: string;
  table: number;
  vxnet: VxnetSpec;
}

export interface SharedPodSpec {
  mode: "shared";
  pod: PodIdentity;
  ifName: string;
  netns: string;
  /** Pod IP from block IPAM, inside the vxnet. */
  ip: string;
  /** Table of the vxnet's shared NIC (`hostnic_<table>` must exist: see setupSharedNic). */
  table: number;
  vethPrefix?: string;
  mtu?: number;
}

function sharedNicRule(spec: SharedNicSpec): RuleSpec {
  return { priority: PRIORITY.fromPod, from: requireVxnet(spec.vxnet).cidr, table: spec.table };
}

export function planSharedNicSetup(
  spec: SharedNicSpec,
  node: NsState,
  opts: { nodeNetns?: string },
): Plan {
  const vxnet = requireVxnet(spec.vxnet);
  const ctx = { node, nodeNetns: opts.nodeNetns };
  return {
    what: `shared NIC ${nicLinkName(spec.table)}`,
    steps: [
      {
        kind: "ip",
        role: "node",
        netns: opts.nodeNetns,
        ops: [
          ...nicAdoptOps({ mac: spec.nicMac, table: spec.table }, ctx),
          ...nicTableOps(spec.table, vxnet, ctx),
          ...ensureRuleOps([sharedNicRule(spec)], ctx),
        ],
      },
      {
        kind: "sysctl",
        role: "node",
        netns: opts.nodeNetns,
        values: nicSysctls(spec.table, { proxyNeighbours: true }),
      },
    ],
  };
}

export function sharedNicDesired(spec: SharedNicSpec): Desired {
  const rules = emptyDesired();
  rules.rules.push(sharedNicRule(spec));
  return mergeDesired(
    nicDesired({ mac: spec.nicMac, table: spec.table }, requireVxnet(spec.vxnet)),
    rules,
  );
}

/** Releases the shared NIC: its rules, proxy entries and table, then name and state. */
export function planSharedNicTeardown(
  spec: { table: number },
  node: NsState,
  opts: { nodeNetns?: string },
): Plan {
  const dev = nicLinkName(spec.table);
  const ops: IpOp[] = [
    ...node.rules
      .filter((r) => r.priority === PRIORITY.fromPod && r.table === spec.table)
      .map((r) => ({ line: ruleDelLine(ruleSpecOf(r)) })),
    ...node.proxies
      .filter((p) => p.dev === dev)
      .map((p) => ({ line: neighDelLine({ dst: p.dst, dev, proxy: true }) })),
    ...nicReleaseOps(spec.table, node),
  ];
  return {
    what: `shared NIC ${dev}`,
    steps: [{ kind: "ip", role: "node", netns: opts.nodeNetns, ops }],
  };
}

/** Pod IPs the node still answers ARP for on the shared NIC of `table`. */
export function sharedNicPodIpsIn(node: NsState, table: number): string[] {
  const dev = nicLinkName(table);
  return node.proxies.filter((p) => p.dev === dev).map((p) => p.dst);
}

function proxyNeigh(spec: { ip: string; table: number }): NeighSpec {
  return { dst: spec.ip, dev: nicLinkName(spec.table), proxy: true };
}

function toPodRule(ip: string): RuleSpec {
  return { priority: PRIORITY.toPod, to: ip, table: TABLE_MAIN };
}

export function planSharedPodSetup(
  spec: SharedPodSpec,
  node: NsState,
  opts: { nodeNetns?: string },
): Plan {
  requireIpv4("ip", spec.ip);
  const podNetns = requireNetns("netns", spec.netns);
  const nic = nicLinkName(spec.table);
  if (!linkByName(node, nic)) {
    throw new NicNotFoundError(`(${nic})`, "the node: set up the shared NIC first");
  }
  const veth = planVeth(spec.pod, spec.ifName, spec);
  const ctx = { node, nodeNetns: opts.nodeNetns };
  const neigh = proxyNeigh(spec);
  return {
    what: `shared-mode pod ${spec.ip}`,
    steps: [
      {
        kind: "ip",
        role: "node",
        netns: opts.nodeNetns,
        ops: [
          ...vethNodeOps(veth, { ...ctx, podNetns, ip: spec.ip }),
          ...ensureRuleOps([toPodRule(spec.ip)], ctx),
          {
            line: neighAddLine(neigh),
            undo: { netns: opts.nodeNetns, lines: [neighDelLine(neigh)] },
          },
        ],
      },
      {
        kind: "sysctl",
        role: "node",
        netns: opts.nodeNetns,
        values: hostVethSysctls(veth.hostName),
      },
      {
        kind: "ip",
        role: "pod",
        netns: podNetns,
        ops: vethPodOps(veth, { ip: spec.ip, withAddress: true }),
      },
    ],
  };
}

export function sharedPodDesired(spec: SharedPodSpec): { node: Desired; pod: Desired } {
  const veth = planVeth(spec.pod, spec.ifName, spec);
  const extra = emptyDesired();
  extra.rules.push(toPodRule(spec.ip));
  extra.neighs.push(proxyNeigh(spec));
  return {
    node: mergeDesired(vethNodeDesired(veth, spec.ip), extra),
    pod: vethPodDesired(veth, { ip: spec.ip, withAddress: true }),
  };
}

export function sharedPodResult(spec: SharedPodSpec): PodSetupResult {
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

/** Per-pod teardown: veth, rule 1535 and the proxy entry (on whichever link holds it). */
export function planSharedPodTeardown(
  spec: PodTeardownSpec,
  node: NsState,
  opts: { nodeNetns?: string },
): Plan {
  return planVethPodTeardown(spec, node, {
    ...opts,
    extraNodeOps: (ip) =>
      node.proxies.filter((p) => ip !== undefined && p.dst === ip)
        .map((p) => ({ line: neighDelLine({ dst: p.dst, dev: p.dev, proxy: true }) })),
  });
}
