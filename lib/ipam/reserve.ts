/**
 * Pure pool maths: which addresses of a vxnet pods may use (upstream §3.6), how a pool CIDR is
 * carved into blocks, and why a given address is reserved. Everything here is a function of its
 * arguments; the controller and the allocator both call it, so they always agree.
 */
import { IpamPoolError } from "./errors.ts";
import {
  type Cidr,
  cidrContains,
  cidrSize,
  cidrWithin,
  formatCidr,
  formatIp,
  lastIp,
  parseCidr,
  parseIp,
} from "./ip.ts";
import { BLOCK_SIZE_MAX, BLOCK_SIZE_MIN, type IpPoolSpec, POOL_IDS } from "./types.ts";

/** What DescribeVxnets says about a vxnet's addressing (router fields). */
export interface VxnetAddressing {
  vxnet: string;
  /** `router.ip_network`, e.g. 172.16.3.0/24. */
  cidr: string;
  /** `router.manager_ip`, the VPC gateway. */
  gateway?: string;
  /** `router.dyn_ip_start` / `dyn_ip_end`: the DHCP range. */
  dynStart: string;
  dynEnd: string;
  /** `tunnel_type`: "vlan" or anything else (vxlan). */
  tunnelType?: string;
}

export interface UsableRange {
  rangeStart: string;
  rangeEnd: string;
  /** Addresses left to the IaaS at the end of the DHCP range (12 on vxlan, |DHCP|/7 on vlan). */
  reserved: number;
  /** `customReservedIPCount` as applied (always 0 on vxlan, as upstream). */
  custom: number;
  /** Addresses in [rangeStart, rangeEnd]. */
  size: number;
}

/** Addresses upstream leaves to the IaaS at the end of a vxlan vxnet's DHCP range. */
export const VXLAN_RESERVED = 12;

/**
 * The pool range of a vxnet: [DHCP start, DHCP end − reserved − custom], clipped so the network
 * and broadcast addresses are never inside. On vlan vxnets `custom` must leave at least one address.
 */
export function usableRange(
  v: VxnetAddressing,
  opts: { customReservedIPCount?: number } = {},
): UsableRange {
  const fail = (msg: string) => new IpamPoolError(v.vxnet, msg);
  const cidr = parseCidr(v.cidr);
  if (!cidr) throw fail(`network "${v.cidr}" is not an IPv4 CIDR`);
  const start = parseIp(v.dynStart);
  const end = parseIp(v.dynEnd);
  if (start === undefined || end === undefined || start > end) {
    throw fail(`DHCP range "${v.dynStart}"-"${v.dynEnd}" is not a valid range`);
  }
  if (!cidrContains(cidr, start) || !cidrContains(cidr, end)) {
    throw fail(`DHCP range "${v.dynStart}"-"${v.dynEnd}" is not inside "${v.cidr}"`);
  }
  const dyn = end - start + 1;
  const vlan = v.tunnelType === "vlan";
  const reserved = vlan ? Math.floor(dyn / 7) : VXLAN_RESERVED;
  const requested = opts.customReservedIPCount ?? 0;
  if (!Number.isInteger(requested) || requested < 0) {
    throw fail(`customReservedIPCount ${requested} must be a non-negative integer`);
  }
  const custom = vlan ? requested : 0;
  if (vlan && custom > dyn - reserved - 1) {
    throw fail(
      `customReservedIPCount ${custom} leaves no address: the DHCP range has ${dyn}, ` +
        `${reserved} are reserved for the IaaS, so at most ${Math.max(0, dyn - reserved - 1)} fit`,
    );
  }
  const first = Math.max(start, cidr.prefix < 31 ? cidr.network + 1 : cidr.network);
  const last = Math.min(
    end - reserved - custom,
    cidr.prefix < 31 ? lastIp(cidr) - 1 : lastIp(cidr),
  );
  if (last < first) {
    throw fail(
      `no usable address: DHCP range "${v.dynStart}"-"${v.dynEnd}" minus ${reserved + custom} ` +
        `reserved for the IaaS is empty`,
    );
  }
  return {
    rangeStart: formatIp(first),
    rangeEnd: formatIp(last),
    reserved,
    custom,
    size: last - first + 1,
  };
}

/** The IPPool spec hostnic creates for a vxnet (type `local`, named after the vxnet). */
export function poolSpecForVxnet(
  v: VxnetAddressing,
  opts: { blockSize: number; customReservedIPCount?: number },
): IpPoolSpec {
  const range = usableRange(v, opts);
  const cidr = parseCidr(v.cidr)!;
  checkBlockSize(v.vxnet, cidr, opts.blockSize);
  return {
    type: "local",
    cidr: formatCidr(cidr),
    rangeStart: range.rangeStart,
    rangeEnd: range.rangeEnd,
    blockSize: opts.blockSize,
    ...(v.gateway ? { gateway: v.gateway } : {}),
    ...(v.tunnelType === "vlan" && opts.customReservedIPCount !== undefined
      ? { customReservedIPCount: opts.customReservedIPCount }
      : {}),
  };
}

function checkBlockSize(pool: string, cidr: Cidr, blockSize: number): void {
  if (!Number.isInteger(blockSize) || blockSize < BLOCK_SIZE_MIN || blockSize > BLOCK_SIZE_MAX) {
    throw new IpamPoolError(
      pool,
      `blockSize ${blockSize} must be an integer from ${BLOCK_SIZE_MIN} to ${BLOCK_SIZE_MAX}`,
    );
  }
  if (blockSize < cidr.prefix) {
    throw new IpamPoolError(
      pool,
      `blockSize ${blockSize} makes blocks larger than the pool "${formatCidr(cidr)}"`,
    );
  }
}

/** The block CIDRs of a pool, in address order: the pool CIDR cut into /blockSize pieces. */
export function carveBlocks(pool: string, spec: { cidr: string; blockSize: number }): string[] {
  const cidr = parseCidr(spec.cidr);
  if (!cidr) throw new IpamPoolError(pool, `cidr "${spec.cidr}" is not an IPv4 CIDR`);
  checkBlockSize(pool, cidr, spec.blockSize);
  const step = 2 ** (32 - spec.blockSize);
  const out: string[] = [];
  for (let n = cidr.network; n <= lastIp(cidr); n += step) {
    out.push(formatCidr({ network: n, prefix: spec.blockSize }));
  }
  return out;
}

/** Block object name: `<poolID>-<cidr with "." and "/" as "-">`, e.g. `4100-172-16-3-0-26`. */
export function blockName(cidr: string, poolId: number = POOL_IDS.local): string {
  return `${poolId}-${cidr.replace(/[./]/g, "-")}`;
}

/** Why `ip` may never be handed to a pod of this pool, or undefined when it may. */
export function reservedReason(pool: IpPoolSpec, ip: number): string | undefined {
  const cidr = parseCidr(pool.cidr);
  if (!cidr || !cidrContains(cidr, ip)) return "outside the pool";
  if (cidr.prefix < 31 && ip === cidr.network) return "network address";
  if (cidr.prefix < 31 && ip === lastIp(cidr)) return "broadcast address";
  if (pool.gateway !== undefined && parseIp(pool.gateway) === ip) return "vxnet gateway";
  const start = pool.rangeStart !== undefined ? parseIp(pool.rangeStart) : undefined;
  const end = pool.rangeEnd !== undefined ? parseIp(pool.rangeEnd) : undefined;
  if (start !== undefined && ip < start) return `before the pool's range start ${pool.rangeStart}`;
  if (end !== undefined && ip > end) {
    return `after the pool's range end ${pool.rangeEnd} (left to the IaaS)`;
  }
  return undefined;
}

/** Reserved ordinals of a block of `pool` with their reasons, in ordinal order. */
export function reservedOrdinals(
  pool: IpPoolSpec,
  blockCidr: string,
): { ordinal: number; reason: string }[] {
  const block = parseCidr(blockCidr);
  const poolCidr = parseCidr(pool.cidr);
  if (!block || !poolCidr || !cidrWithin(block, poolCidr)) {
    throw new IpamPoolError(blockCidr, `block is not inside pool "${pool.cidr}"`);
  }
  const out: { ordinal: number; reason: string }[] = [];
  for (let i = 0; i < cidrSize(block); i++) {
    const reason = reservedReason(pool, block.network + i);
    if (reason !== undefined) out.push({ ordinal: i, reason });
  }
  return out;
}
