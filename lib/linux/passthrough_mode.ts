/**
 * `passthrough` mode: the NIC itself moves into the pod namespace and becomes `CNI_IFNAME`
 * with `<ip>/<vxnet prefix>` and a default route via the vxnet gateway; pod traffic rides the
 * cloud SDN without touching the node. Its old name is kept in its alias for the way back.
 *
 * Services need the node (kube-proxy's DNAT lives there), so prefixes listed in `hostRoutes`
 * (serviceCIDR, the node IP) go back to the node over a second link: a veth whose pod end
 * (`hostnic-svc` by default) routes them via 169.254.1.1 with `src <ip>`, and whose host end
 * gets `<ip>/32` and rule 1535 `to <ip> lookup main`, so replies come back the same way.
 * For the legacy "gateway NIC" design (seed 002, `gw: 0.0.0.0`), `routes` instead sends a prefix
 * through the NIC via a host gateway NIC's address in the same vxnet (see setupGatewayNic).
 *
 * Teardown moves the NIC back to the node under its old name. If the pod namespace is already
 * gone, a real NIC has returned to the initial namespace by itself: given its MAC, teardown
 * restores its name there.
 */
import { type Desired, emptyDesired } from "./check.ts";
import { LinkConflictError, NicNotFoundError } from "./errors.ts";
import {
  addrAddLine,
  linkByMac,
  linkByName,
  type NsState,
  routeAddLine,
  type RouteSpec,
  TABLE_MAIN,
} from "./ip.ts";
import { requireCidr, requireIpv4 } from "./ipv4.ts";
import {
  DEFAULT_SERVICE_IFNAME,
  type PodIdentity,
  PRIORITY,
  requireLinkName,
  requireMac,
} from "./names.ts";
import { fallbackNicName } from "./nic.ts";
import type { IpOp, Plan, PlanStep } from "./plan.ts";
import { netnsPath } from "./exec.ts";
import {
  nodeNetnsRef,
  type PodSetupResult,
  type PodTeardownSpec,
  prefixLength,
  quoteArg,
  requireNetns,
  requireVxnet,
  type VxnetSpec,
} from "./spec.ts";
import {
  ensureRuleOps,
  hostVethSysctls,
  mergeDesired,
  planVeth,
  podIpOfVeth,
  podRuleDelOps,
  vethNodeDesired,
  vethNodeOps,
  vethPodDesired,
  vethPodOps,
} from "./veth.ts";

export interface PassthroughPodSpec {
  mode: "passthrough";
  pod: PodIdentity;
  ifName: string;
  netns: string;
  ip: string;
  nicMac: string;
  vxnet: VxnetSpec;
  /** Prefixes routed back to the node over the service veth (e.g. serviceCIDR, `<nodeIP>/32`). */
  hostRoutes?: string[];
  /** Extra routes through the NIC (e.g. serviceCIDR via a gateway NIC's IP). */
  routes?: { dst: string; via: string }[];
  /** Pod-side name of the service veth. */
  serviceIfName?: string;
  vethPrefix?: string;
  /** MTU of the service veth (the NIC keeps its own). */
  mtu?: number;
}

interface Parts {
  mac: string;
  vxnet: VxnetSpec;
  hostRoutes: string[];
  routes: RouteSpec[];
  serviceIf: string;
}

function parts(spec: PassthroughPodSpec): Parts {
  requireIpv4("ip", spec.ip);
  requireLinkName("ifName", spec.ifName);
  const serviceIf = requireLinkName("serviceIfName", spec.serviceIfName ?? DEFAULT_SERVICE_IFNAME);
  return {
    mac: requireMac("nicMac", spec.nicMac),
    vxnet: requireVxnet(spec.vxnet),
    hostRoutes: (spec.hostRoutes ?? []).map((c, i) => requireCidr(`hostRoutes[${i}]`, c)),
    routes: (spec.routes ?? []).map((r, i) => ({
      dst: requireCidr(`routes[${i}].dst`, r.dst),
      via: requireIpv4(`routes[${i}].via`, r.via),
      dev: spec.ifName,
    })),
    serviceIf,
  };
}

function nicPodRoutes(spec: PassthroughPodSpec, p: Parts): RouteSpec[] {
  return [{ dst: "default", via: p.vxnet.gateway, dev: spec.ifName }, ...p.routes];
}

function toPodRule(ip: string) {
  return { priority: PRIORITY.toPod, to: ip, table: TABLE_MAIN };
}

/**
 * Setup plan from the node's and pod's current state. Node batch (move the NIC, service veth,
 * rule), node sysctls, pod batch (address, routes, service link): 3 spawns plus the two reads.
 */
export function planPassthroughSetup(
  spec: PassthroughPodSpec,
  state: { node: NsState; pod: NsState },
  opts: { nodeNetns?: string },
): Plan {
  const p = parts(spec);
  const podNetns = requireNetns("netns", spec.netns);
  const nodeOps: IpOp[] = [];
  const podOps: IpOp[] = [];
  const inNode = linkByMac(state.node, p.mac);
  const inPod = linkByMac(state.pod, p.mac);
  if (inNode) {
    const clash = linkByName(state.pod, spec.ifName);
    if (clash) {
      throw new LinkConflictError(
        spec.ifName,
        `Cannot move NIC "${inNode.name}" (${p.mac}) into the pod as "${spec.ifName}": ` +
          `that name is taken there`,
      );
    }
    if (inNode.up) nodeOps.push({ line: `link set dev ${inNode.name} down` });
    nodeOps.push({
      line: `link set dev ${inNode.name} netns ${netnsPath(podNetns)} name ${spec.ifName} ` +
        `alias ${quoteArg(inNode.name)}`,
      undo: {
        netns: podNetns,
        lines: [
          `link set dev ${spec.ifName} down`,
          `link set dev ${spec.ifName} netns ${nodeNetnsRef(opts.nodeNetns)} name ${inNode.name} ` +
          `alias ${quoteArg(inNode.alias ?? "")}`,
        ],
      },
    });
  } else if (inPod) {
    // Already moved by an earlier setup: only make sure of its name.
    if (inPod.name !== spec.ifName) {
      podOps.push({ line: `link set dev ${inPod.name} down` });
      podOps.push({ line: `link set dev ${inPod.name} name ${spec.ifName}` });
    }
  } else {
    throw new NicNotFoundError(p.mac, "the node or the pod's network namespace");
  }
  podOps.push({ line: `link set dev ${spec.ifName} up` });
  podOps.push({
    line: addrAddLine({ cidr: `${spec.ip}/${prefixLength(p.vxnet.cidr)}`, dev: spec.ifName }),
  });
  podOps.push(...nicPodRoutes(spec, p).map((r) => ({ line: routeAddLine(r) })));

  let sysctls: Record<string, string> = {};
  if (p.hostRoutes.length > 0) {
    const veth = planVeth(spec.pod, p.serviceIf, spec);
    const ctx = { node: state.node, nodeNetns: opts.nodeNetns };
    nodeOps.push(...vethNodeOps(veth, { ...ctx, podNetns, ip: spec.ip }));
    nodeOps.push(...ensureRuleOps([toPodRule(spec.ip)], ctx));
    sysctls = hostVethSysctls(veth.hostName);
    podOps.push(...vethPodOps(veth, { ip: spec.ip, withAddress: false, hostRoutes: p.hostRoutes }));
  }
  return {
    what: `passthrough pod ${spec.ip}`,
    steps: [
      { kind: "ip", role: "node", netns: opts.nodeNetns, ops: nodeOps },
      { kind: "sysctl", role: "node", netns: opts.nodeNetns, values: sysctls },
      { kind: "ip", role: "pod", netns: podNetns, ops: podOps },
    ],
  };
}

export function passthroughDesired(spec: PassthroughPodSpec): { node: Desired; pod: Desired } {
  const p = parts(spec);
  const node = emptyDesired();
  node.absentMacs.push(p.mac);
  const pod = emptyDesired();
  pod.links.push({ name: spec.ifName, mac: p.mac, up: true });
  pod.addrs.push({ cidr: `${spec.ip}/${prefixLength(p.vxnet.cidr)}`, dev: spec.ifName });
  pod.routes.push(...nicPodRoutes(spec, p));
  if (p.hostRoutes.length === 0) return { node, pod };
  const veth = planVeth(spec.pod, p.serviceIf, spec);
  node.rules.push(toPodRule(spec.ip));
  return {
    node: mergeDesired(node, vethNodeDesired(veth, spec.ip)),
    pod: mergeDesired(
      pod,
      vethPodDesired(veth, { ip: spec.ip, withAddress: false, hostRoutes: p.hostRoutes }),
    ),
  };
}

export function passthroughResult(spec: PassthroughPodSpec): PodSetupResult {
  const p = parts(spec);
  const interfaces = [{ name: spec.ifName, mac: p.mac, sandbox: spec.netns }];
  if (p.hostRoutes.length > 0) {
    const v = planVeth(spec.pod, p.serviceIf, spec);
    interfaces.push({ name: v.podName, mac: v.podMac, sandbox: spec.netns });
  }
  return {
    interfaces,
    address: `${spec.ip}/${prefixLength(p.vxnet.cidr)}`,
    gateway: p.vxnet.gateway,
    interfaceIndex: 0,
  };
}

/**
 * Pod half of the teardown (run first, if the namespace still exists): bring `ifName` down and
 * move it to the node under the name kept in its alias — unless the node gave that name to another
 * NIC meanwhile (names are reused as NICs come and go), or there is no alias (not set up by us):
 * then under a MAC-derived name that cannot clash.
 */
export function planPassthroughPodTeardown(
  spec: PodTeardownSpec,
  pod: NsState,
  opts: { nodeNetns?: string; nodeLinks?: readonly string[] },
): PlanStep[] {
  const link = linkByName(pod, spec.ifName);
  if (!link || !spec.netns) return [];
  if (spec.nicMac && link.mac?.toLowerCase() !== spec.nicMac.toLowerCase()) return [];
  const taken = link.alias !== undefined && (opts.nodeLinks ?? []).includes(link.alias);
  const name = link.alias && !taken ? link.alias : fallbackNicName(link.mac ?? "");
  return [{
    kind: "ip",
    role: "pod",
    netns: spec.netns,
    ops: [
      { line: `link set dev ${spec.ifName} down` },
      {
        line: `link set dev ${spec.ifName} netns ${nodeNetnsRef(opts.nodeNetns)} name ${name} ` +
          `alias ""`,
        claims: name,
      },
    ],
  }];
}

/**
 * Node half of the teardown (run after the pod half, from fresh node state): the service veth,
 * rule 1535, and the NIC's name if it came back on its own when its namespace was destroyed.
 */
export function planPassthroughNodeTeardown(spec: PodTeardownSpec, node: NsState): IpOp[] {
  const ops: IpOp[] = [];
  const veth = planVeth(spec.pod, DEFAULT_SERVICE_IFNAME, spec);
  if (linkByName(node, veth.hostName)) ops.push({ line: `link del ${veth.hostName}` });
  const ip = spec.ip ?? podIpOfVeth(node, veth.hostName);
  if (ip) ops.push(...podRuleDelOps(ip, node));
  const nic = spec.nicMac ? linkByMac(node, spec.nicMac) : undefined;
  if (nic?.alias && nic.alias !== nic.name) {
    const target = linkByName(node, nic.alias) ? fallbackNicName(nic.mac ?? "") : nic.alias;
    if (nic.up) ops.push({ line: `link set dev ${nic.name} down` });
    ops.push({ line: `link set dev ${nic.name} name ${target} alias ""`, claims: target });
  }
  return ops;
}
