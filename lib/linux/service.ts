/**
 * Node-level service handling, set up once per node (daemon start, or any plugin call):
 *
 * - mangle chains `HOSTNIC-PREROUTING` (mark natMark on connections whose original destination
 *   is the node IP: NodePort) and `HOSTNIC-OUTPUT` (mark natMark on connections the node opens
 *   to serviceCIDR), jumped to from PREROUTING / OUTPUT, and `HOSTNIC-FORWARD` (clears natMark's
 *   bits again on forwarded packets, jumped to from mangle FORWARD): the mark only steers the
 *   routing decision, which is made by then, and a policy engine's filter FORWARD chains must
 *   not see it. kube-router's "accepted by a policy" bit is 0x10000, natMark's default, so a
 *   NodePort connection to a pod would otherwise pass every NetworkPolicy (docs/policy.md; no
 *   daemon or plugin code calls ensureServiceRouting yet, so this is latent in the product);
 * - rule 1534 `fwmark <natMark>/<natMark> lookup main`, ahead of the pods' rule 1536, so the
 *   marked packets (a pod's replies to NodePort clients, whose un-DNAT happens on the way out
 *   through the node's own interface) follow the main table instead of the pod's NIC.
 *
 * Marks are set with `--set-xmark natMark/natMark`, touching only natMark's bits; natMark may not
 * overlap kube-proxy's 0x4000/0x8000. Calico's default mask 0xffff0000 contains the upstream
 * default natMark 0x10000, so that overlap is reported as a warning, not refused.
 *
 * Also here: the legacy host "gateway NIC" (seed 002, `ipam.routes` with `gw: 0.0.0.0`), a
 * NIC in the pod's vxnet that carries an address on the node so passthrough pods can route
 * serviceCIDR to it through the SDN.
 */
import { type Desired, diffDesired, emptyDesired } from "./check.ts";
import { InvalidSpecError, NicNotFoundError } from "./errors.ts";
import {
  addrAddLine,
  addrDelLine,
  hasAddr,
  hasRule,
  linkByMac,
  type NsState,
  readNsState,
  ruleAddLine,
  ruleDelLine,
  type RuleSpec,
  ruleSpecOf,
  TABLE_MAIN,
} from "./ip.ts";
import { requireCidr, requireIpv4 } from "./ipv4.ts";
import {
  deleteIptables,
  diffIptables,
  ensureIptables,
  saveIptables,
  type TableSpec,
} from "./iptables.ts";
import { DEFAULT_NAT_MARK, PRIORITY, requireMac } from "./names.ts";
import { applyPlan, type IpOp, type LinuxDeps, type Plan, runTeardownPlan } from "./plan.ts";
import { type NodeOptions, prefixLength, requireVxnet, type VxnetSpec } from "./spec.ts";
import { forwardingSysctls, ipv4ConfKey } from "./sysctl.ts";
import { nullLogger } from "../log.ts";

export const CHAIN_PREROUTING = "HOSTNIC-PREROUTING";
export const CHAIN_OUTPUT = "HOSTNIC-OUTPUT";
export const CHAIN_FORWARD = "HOSTNIC-FORWARD";

/** kube-proxy's masquerade/drop marks: never set by hostnic. */
export const KUBE_PROXY_MARKS = 0x4000 | 0x8000;
/** Calico's default iptablesMarkMask. */
export const CALICO_MARK_MASK = 0xffff0000;

export interface ServiceRoutingSpec {
  /** The node's primary IP (NodePort destination). */
  nodeIp: string;
  /** Kubernetes service CIDR; without it only NodePort connections are marked. */
  serviceCidr?: string;
  /** Default 0x10000. */
  natMark?: number;
}

/** Validates natMark; returns warnings for overlaps that are legal but worth knowing. */
export function checkNatMark(mark: number): string[] {
  if (!Number.isInteger(mark) || mark <= 0 || mark > 0xffffffff) {
    throw new InvalidSpecError("natMark", `${mark} is not a 32-bit mark`);
  }
  if ((mark & KUBE_PROXY_MARKS) !== 0) {
    throw new InvalidSpecError(
      "natMark",
      `0x${mark.toString(16)} overlaps kube-proxy's marks 0x4000/0x8000`,
    );
  }
  return (mark & CALICO_MARK_MASK) >>> 0 !== 0
    ? [`natMark 0x${mark.toString(16)} lies inside Calico's default mark mask 0xffff0000`]
    : [];
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** The mangle table content hostnic owns, in iptables-save's canonical form. */
export function serviceTableSpec(spec: ServiceRoutingSpec): TableSpec {
  const mark = spec.natMark ?? DEFAULT_NAT_MARK;
  checkNatMark(mark);
  const nodeIp = requireIpv4("nodeIp", spec.nodeIp);
  const setMark = `-j MARK --set-xmark ${hex(mark)}/${hex(mark)}`;
  const clearMark = `-j MARK --set-xmark 0x0/${hex(mark)}`;
  // iptables-save prints a /32 without its length and any other prefix with it.
  const output = spec.serviceCidr
    ? [`-m conntrack --ctorigdst ${requireCidr("serviceCidr", spec.serviceCidr)} ${setMark}`]
    : [];
  return {
    table: "mangle",
    chains: [
      { chain: CHAIN_PREROUTING, rules: [`-m conntrack --ctorigdst ${nodeIp} ${setMark}`] },
      { chain: CHAIN_OUTPUT, rules: output },
      { chain: CHAIN_FORWARD, rules: [clearMark] },
    ],
    jumps: [
      { from: "PREROUTING", to: CHAIN_PREROUTING },
      { from: "OUTPUT", to: CHAIN_OUTPUT },
      { from: "FORWARD", to: CHAIN_FORWARD },
    ],
  };
}

/** An empty spec naming hostnic's chains, for deletion. */
function serviceChainNames(): TableSpec {
  return {
    table: "mangle",
    chains: [
      { chain: CHAIN_PREROUTING, rules: [] },
      { chain: CHAIN_OUTPUT, rules: [] },
      { chain: CHAIN_FORWARD, rules: [] },
    ],
    jumps: [
      { from: "PREROUTING", to: CHAIN_PREROUTING },
      { from: "OUTPUT", to: CHAIN_OUTPUT },
      { from: "FORWARD", to: CHAIN_FORWARD },
    ],
  };
}

export function natMarkRule(mark: number = DEFAULT_NAT_MARK): RuleSpec {
  return { priority: PRIORITY.natMark, fwmark: { value: mark, mask: mark }, table: TABLE_MAIN };
}

/**
 * Ensures chains, jumps and the fwmark rule. Spawns: iptables-save + ip read, then
 * iptables-restore and ip batch only when something is missing.
 */
export async function ensureServiceRouting(
  deps: LinuxDeps,
  spec: ServiceRoutingSpec,
  opts: NodeOptions = {},
): Promise<void> {
  const mark = spec.natMark ?? DEFAULT_NAT_MARK;
  for (const w of checkNatMark(mark)) (deps.logger ?? nullLogger).warn(w);
  await ensureIptables(deps, serviceTableSpec(spec), { netns: opts.nodeNetns });
  const node = await readNsState(deps, opts.nodeNetns);
  const rule = natMarkRule(mark);
  if (hasRule(node, rule)) return;
  await applyPlan(deps, {
    what: "service fwmark rule",
    steps: [{
      kind: "ip",
      role: "node",
      netns: opts.nodeNetns,
      ops: [{ line: ruleAddLine(rule) }],
    }],
  });
}

/** Removes hostnic's chains, jumps and every rule at the natMark priority. */
export async function removeServiceRouting(deps: LinuxDeps, opts: NodeOptions = {}): Promise<void> {
  await deleteIptables(deps, serviceChainNames(), { netns: opts.nodeNetns });
  const node = await readNsState(deps, opts.nodeNetns);
  const ops = node.rules
    .filter((r) => r.priority === PRIORITY.natMark && r.fwmark !== undefined)
    .map((r) => ({ line: ruleDelLine(ruleSpecOf(r)) }));
  await runTeardownPlan(deps, {
    what: "service routing",
    steps: [{ kind: "ip", role: "node", netns: opts.nodeNetns, ops }],
  });
}

export async function checkServiceRouting(
  deps: LinuxDeps,
  spec: ServiceRoutingSpec,
  opts: NodeOptions = {},
): Promise<string[]> {
  const saved = await saveIptables(deps, "mangle", { netns: opts.nodeNetns });
  const node = await readNsState(deps, opts.nodeNetns);
  const want = emptyDesired();
  want.rules.push(natMarkRule(spec.natMark ?? DEFAULT_NAT_MARK));
  return [
    ...diffIptables(serviceTableSpec(spec), saved).map((d) => `node: ${d}`),
    ...diffDesired(want, node, "node"),
  ];
}

// Legacy gateway NIC ---------------------------------------------------------------------------

export interface GatewayNicSpec {
  nicMac: string;
  /** The gateway NIC's own private IP, which replaces `0.0.0.0` in the pod's routes. */
  ip: string;
  vxnet: VxnetSpec;
}

function gatewayAddr(spec: GatewayNicSpec, dev: string) {
  return {
    cidr: `${requireIpv4("ip", spec.ip)}/${prefixLength(requireVxnet(spec.vxnet).cidr)}`,
    dev,
  };
}

/** Up + `<ip>/<prefix>` on the NIC (name kept), ARP restricted to its own address. */
export function planGatewayNicSetup(
  spec: GatewayNicSpec,
  node: NsState,
  opts: NodeOptions,
): Plan {
  const mac = requireMac("nicMac", spec.nicMac);
  const link = linkByMac(node, mac);
  if (!link) throw new NicNotFoundError(mac, "the node's network namespace");
  const addr = gatewayAddr(spec, link.name);
  const undo = (lines: string[]) => ({ netns: opts.nodeNetns, lines });
  const ops: IpOp[] = [];
  if (!link.up) {
    ops.push({
      line: `link set dev ${link.name} up`,
      undo: undo([`link set dev ${link.name} down`]),
    });
  }
  if (!hasAddr(node, addr)) ops.push({ line: addrAddLine(addr), undo: undo([addrDelLine(addr)]) });
  return {
    what: `gateway NIC ${link.name}`,
    steps: [
      { kind: "ip", role: "node", netns: opts.nodeNetns, ops },
      {
        kind: "sysctl",
        role: "node",
        netns: opts.nodeNetns,
        values: {
          ...forwardingSysctls([link.name]),
          [ipv4ConfKey(link.name, "arp_ignore")]: "1",
          [ipv4ConfKey(link.name, "arp_announce")]: "2",
          [ipv4ConfKey(link.name, "rp_filter")]: "0",
        },
      },
    ],
  };
}

export function gatewayNicDesired(spec: GatewayNicSpec, node: NsState): Desired {
  const d = emptyDesired();
  const link = linkByMac(node, spec.nicMac);
  const name = link?.name ?? `(${spec.nicMac})`;
  d.links.push({ name, mac: spec.nicMac, up: true });
  d.addrs.push(gatewayAddr(spec, name));
  return d;
}

export function planGatewayNicTeardown(
  spec: GatewayNicSpec,
  node: NsState,
  opts: NodeOptions,
): Plan {
  const link = linkByMac(node, spec.nicMac);
  const ops: IpOp[] = [];
  if (link) {
    const addr = gatewayAddr(spec, link.name);
    if (hasAddr(node, addr)) ops.push({ line: addrDelLine(addr) });
    if (link.up) ops.push({ line: `link set dev ${link.name} down` });
  }
  return {
    what: `gateway NIC ${spec.nicMac}`,
    steps: [{ kind: "ip", role: "node", netns: opts.nodeNetns, ops }],
  };
}

export async function setupGatewayNic(
  deps: LinuxDeps,
  spec: GatewayNicSpec,
  opts: NodeOptions = {},
): Promise<void> {
  await applyPlan(deps, planGatewayNicSetup(spec, await readNsState(deps, opts.nodeNetns), opts));
}

export async function teardownGatewayNic(
  deps: LinuxDeps,
  spec: GatewayNicSpec,
  opts: NodeOptions = {},
): Promise<void> {
  const node = await readNsState(deps, opts.nodeNetns);
  await runTeardownPlan(deps, planGatewayNicTeardown(spec, node, opts));
}
