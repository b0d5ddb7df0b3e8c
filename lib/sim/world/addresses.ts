/**
 * Addresses in a vxnet: which are taken (NICs including primaries, VIPs, the gateway), how many
 * remain in the DHCP range, and the checks an explicitly requested address must pass (inside the
 * network, not network/broadcast → 1100; not the gateway, not taken → 1400). Shared by NICs and
 * VIPs, so both draw from one address space per vxnet.
 */
import { cidrContains, hostRange, parseIp } from "../ip.ts";
import { invalidParameter, permissionDenied } from "../errors.ts";
import type { Tables } from "./tables.ts";
import type { Vxnet } from "./types.ts";

/** IPs taken in a vxnet: NICs (incl. primaries), VIPs and the gateway. */
export function usedIps(w: Tables, vxnetId: string): Set<number> {
  const vx = w.vxnets.get(vxnetId);
  const used = new Set<number>();
  if (vx) used.add(vx.managerIp);
  for (const n of w.nics.values()) {
    if (n.vxnetId === vxnetId && n.privateIp !== null) used.add(n.privateIp);
  }
  for (const v of w.vips.values()) if (v.vxnetId === vxnetId) used.add(v.addr);
  return used;
}

export function nicCountInVxnet(w: Tables, vxnetId: string): number {
  let n = 0;
  for (const nic of w.nics.values()) if (nic.vxnetId === vxnetId) n++;
  return n;
}

/** Free addresses left in the vxnet's DHCP range. */
export function availableIpCount(w: Tables, vxnetId: string): number {
  const vx = w.vxnets.get(vxnetId);
  if (!vx?.dynRange) return 0;
  const used = usedIps(w, vxnetId);
  let free = 0;
  for (let ip = vx.dynRange.start; ip <= vx.dynRange.end; ip++) if (!used.has(ip)) free++;
  return free;
}

/** Validates an explicit address for a vxnet against network, reserved and used addresses. */
export function checkExplicitIp(vx: Vxnet, text: string, used: Set<number>, param: string): number {
  const ip = parseIp(text);
  if (ip === undefined) throw invalidParameter(`${param} [${text}] is not an IPv4 address`);
  const cidr = { network: vx.networkAddr, prefix: vx.prefix };
  if (!cidrContains(cidr, ip)) {
    throw invalidParameter(`${param} [${text}] is outside vxnet [${vx.id}] (${vx.ipNetwork})`);
  }
  const range = hostRange(cidr);
  if (ip < range.first || ip > range.last) {
    throw invalidParameter(`${param} [${text}] is the network or broadcast address`);
  }
  if (ip === vx.managerIp) {
    throw permissionDenied(`ip [${text}] is the gateway of vxnet [${vx.id}]`);
  }
  if (used.has(ip)) throw permissionDenied(`ip [${text}] is already in use in vxnet [${vx.id}]`);
  return ip;
}
