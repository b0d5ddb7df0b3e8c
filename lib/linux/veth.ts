/**
 * The veth pair of the veth modes (nic, shared) and of passthrough's service link: the host end
 * `<vethPrefix><hash>` stays on the node, the pod end is created directly inside the pod
 * namespace, and the pod routes everything (or only host-bound prefixes) via 169.254.1.1, a
 * link-local next hop answered by a permanent neighbour entry holding the host end's MAC.
 */
import { type Desired, emptyDesired } from "./check.ts";
import { InvalidSpecError } from "./errors.ts";
import { netnsPath } from "./exec.ts";
import {
  addrAddLine,
  hasRule,
  linkByName,
  neighAddLine,
  type NeighSpec,
  type NsState,
  routeAddLine,
  type RouteSpec,
  ruleAddLine,
  ruleDelLine,
  type RuleSpec,
  ruleSpecOf,
  TABLE_MAIN,
} from "./ip.ts";
import {
  DEFAULT_MTU,
  DEFAULT_VETH_PREFIX,
  hostVethName,
  POD_GATEWAY,
  type PodIdentity,
  PRIORITY,
  requireLinkName,
  vethMacs,
} from "./names.ts";
import type { IpOp, Plan } from "./plan.ts";
import type { PodTeardownSpec } from "./spec.ts";
import { canonicalCidr } from "./ipv4.ts";
import { forwardingSysctls, ipv4ConfKey, type SysctlValues } from "./sysctl.ts";

export interface VethPlan {
  hostName: string;
  hostMac: string;
  podName: string;
  podMac: string;
  mtu: number;
}

export interface VethOptions {
  vethPrefix?: string;
  mtu?: number;
}

export function planVeth(pod: PodIdentity, podIfName: string, opts: VethOptions): VethPlan {
  const mtu = opts.mtu ?? DEFAULT_MTU;
  // The kernel judges the upper bound (it depends on the device); only nonsense is rejected here.
  if (!Number.isInteger(mtu) || mtu <= 0) {
    throw new InvalidSpecError("mtu", `${mtu} is not a positive integer`);
  }
  const macs = vethMacs(pod);
  return {
    hostName: hostVethName(pod, opts.vethPrefix ?? DEFAULT_VETH_PREFIX),
    hostMac: macs.host,
    podName: requireLinkName("ifName", podIfName),
    podMac: macs.pod,
    mtu,
  };
}

/**
 * Node-side ops: replace a stale host end (a previous sandbox of the same pod), create the pair
 * with its pod end inside `podNetns`, bring the host end up and route `<ip>/32` to it.
 */
export function vethNodeOps(
  v: VethPlan,
  args: { node: NsState; nodeNetns: string | undefined; podNetns: string; ip: string },
): IpOp[] {
  const ops: IpOp[] = [];
  if (linkByName(args.node, v.hostName)) ops.push({ line: `link del ${v.hostName}` });
  ops.push({
    line: `link add ${v.hostName} mtu ${v.mtu} address ${v.hostMac} type veth peer name ` +
      `${v.podName} mtu ${v.mtu} address ${v.podMac} netns ${netnsPath(args.podNetns)}`,
    // Deleting one end deletes both, and the /32 route with them.
    undo: { netns: args.nodeNetns, lines: [`link del ${v.hostName}`] },
  });
  ops.push({ line: `link set dev ${v.hostName} up` });
  ops.push({ line: routeAddLine(hostRoute(v, args.ip)) });
  return ops;
}

function hostRoute(v: VethPlan, ip: string): RouteSpec {
  return { dst: `${ip}/32`, dev: v.hostName, scope: "link" };
}

function gatewayNeigh(v: VethPlan): NeighSpec {
  return { dst: POD_GATEWAY, lladdr: v.hostMac, dev: v.podName };
}

/** Pod-side routes: default via 169.254.1.1, or only `hostRoutes` (with `src` = the pod IP). */
function podRoutes(v: VethPlan, args: PodSideArgs): RouteSpec[] {
  if (args.secondary) return [];
  const link: RouteSpec = { dst: POD_GATEWAY, dev: v.podName, scope: "link" };
  if (!args.hostRoutes) return [link, { dst: "default", via: POD_GATEWAY, dev: v.podName }];
  return [
    link,
    ...args.hostRoutes.map((dst) => ({ dst, via: POD_GATEWAY, dev: v.podName, src: args.ip })),
  ];
}

export interface PodSideArgs {
  ip: string;
  /** Put `<ip>/32` on the pod end (veth modes); passthrough's service link carries none. */
  withAddress: boolean;
  /** Route only these prefixes to the host instead of a default route. */
  hostRoutes?: string[];
  /**
   * A second interface of the pod (Multus `net1`): address and neighbour only. Routes through
   * 169.254.1.1 belong to the pod's first interface (`eth0`); replacing them would move the
   * pod's default route to this interface and lose it when this interface is deleted. Replies
   * from this address still leave through its own NIC: the node routes by source address.
   */
  secondary?: boolean;
}

/** Pod-side ops: up, address, the 169.254.1.1 neighbour and link route, then the routes via it. */
export function vethPodOps(v: VethPlan, args: PodSideArgs): IpOp[] {
  const lines = [`link set dev ${v.podName} up`];
  if (args.withAddress) lines.push(addrAddLine({ cidr: `${args.ip}/32`, dev: v.podName }));
  lines.push(neighAddLine(gatewayNeigh(v)));
  lines.push(...podRoutes(v, args).map(routeAddLine));
  return lines.map((line) => ({ line }));
}

export function vethNodeDesired(v: VethPlan, ip: string): Desired {
  const d = emptyDesired();
  d.links.push({ name: v.hostName, mac: v.hostMac, up: true, mtu: v.mtu });
  d.routes.push(hostRoute(v, ip));
  return d;
}

export function vethPodDesired(v: VethPlan, args: PodSideArgs): Desired {
  const d = emptyDesired();
  d.links.push({ name: v.podName, mac: v.podMac, up: true, mtu: v.mtu });
  if (args.withAddress) d.addrs.push({ cidr: `${args.ip}/32`, dev: v.podName });
  d.neighs.push(gatewayNeigh(v));
  d.routes.push(...podRoutes(v, args));
  return d;
}

/**
 * Node sysctls for a host veth end: forwarding (pod traffic is routed), and rp_filter 0 as
 * upstream does (with hairpin the `iif`-scoped rules are invisible to the reverse-path lookup).
 */
export function hostVethSysctls(hostName: string): SysctlValues {
  return { ...forwardingSysctls([hostName]), [ipv4ConfKey(hostName, "rp_filter")]: "0" };
}

/** Concatenates desired-state lists. */
export function mergeDesired(...parts: Desired[]): Desired {
  const d = emptyDesired();
  for (const p of parts) {
    d.links.push(...p.links);
    d.absentMacs.push(...p.absentMacs);
    d.addrs.push(...p.addrs);
    d.routes.push(...p.routes);
    d.rules.push(...p.rules);
    d.neighs.push(...p.neighs);
  }
  return d;
}

// Rules and teardown shared by the veth-based pods ---------------------------------------------

/** Rule ops that add the rules missing from `node` and undo only those on failure. */
export function ensureRuleOps(
  rules: RuleSpec[],
  args: { node: NsState; nodeNetns: string | undefined },
): IpOp[] {
  return rules
    .filter((r) => !hasRule(args.node, r))
    .map((r) => ({
      line: ruleAddLine(r),
      undo: { netns: args.nodeNetns, lines: [ruleDelLine(r)] },
    }));
}

/** Delete ops for every hostnic rule (1535/1536) that names `ip` as source or destination. */
export function podRuleDelOps(ip: string, node: NsState): IpOp[] {
  const host = canonicalCidr(ip);
  return node.rules
    .filter((x) => x.priority === PRIORITY.toPod || x.priority === PRIORITY.fromPod)
    .filter((x) => x.from === host || x.to === host)
    .map((x) => ({ line: ruleDelLine(ruleSpecOf(x)) }));
}

/** The pod IP a host veth routes to (its `/32` in main), for a DEL that lost the IP. */
export function podIpOfVeth(node: NsState, hostVeth: string): string | undefined {
  const r = node.routes.find((r) =>
    r.table === TABLE_MAIN && r.dev === hostVeth && r.dst.endsWith("/32")
  );
  return r?.dst.slice(0, -3);
}

/**
 * Teardown plan from the node's state: delete the host veth (its pod end and /32 route go with
 * it), the pod's rules, and `extraNodeOps`. Needs no pod namespace. Without `spec.ip`, the IP is
 * read from the host veth's route, so a DEL knowing only the pod key still cleans up.
 */
export function planVethPodTeardown(
  spec: PodTeardownSpec,
  node: NsState,
  opts: { nodeNetns?: string; extraNodeOps?: (ip: string | undefined) => IpOp[] },
): Plan {
  const v = planVeth(spec.pod, spec.ifName, spec);
  const ip = spec.ip ?? podIpOfVeth(node, v.hostName);
  const nodeOps: IpOp[] = [];
  const hostLink = node.links.find((l) => l.name === v.hostName);
  if (hostLink) nodeOps.push({ line: `link del ${v.hostName}` });
  if (ip) nodeOps.push(...podRuleDelOps(ip, node));
  nodeOps.push(...(opts.extraNodeOps?.(ip) ?? []));
  const steps: Plan["steps"] = [];
  // The host end may carry another name (ADD knew the pod name, DEL does not): then remove the
  // pod end by its CNI name, which takes the host end with it.
  if (!hostLink && spec.netns) {
    steps.push({
      kind: "ip",
      role: "pod",
      netns: spec.netns,
      ops: [{ line: `link del ${spec.ifName}` }],
    });
  }
  steps.push({ kind: "ip", role: "node", netns: opts.nodeNetns, ops: nodeOps });
  return { what: `${spec.mode}-mode pod ${ip ?? spec.pod.containerId}`, steps };
}
