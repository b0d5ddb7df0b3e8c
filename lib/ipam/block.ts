/**
 * Pure operations on one IPAMBlock spec. Each returns a new spec and never mutates its input, so the
 * allocator can compute a change, attempt the compare-and-swap, and on conflict simply recompute
 * from the fresh copy.
 *
 * Invariants of a block (see `checkBlock`): every ordinal is either in `unallocated` (exactly once)
 * or points to an attribute; every attribute is referenced; reserved ordinals belong to
 * RESERVED_HANDLE; `sequenceNumber` exceeds every attribute's `sequence`.
 */
import { IpamPoolError } from "./errors.ts";
import { cidrContains, cidrSize, formatIp, parseCidr } from "./ip.ts";
import { reservedOrdinals } from "./reserve.ts";
import {
  type Attribute,
  type BlockSpec,
  type IpPoolSpec,
  POOL_IDS,
  RESERVED_HANDLE,
} from "./types.ts";

/** A fresh block of `pool` at `cidr`: reserved ordinals pre-allocated, the rest free in order. */
export function newBlock(o: {
  pool: string;
  spec: IpPoolSpec;
  cidr: string;
  affinity?: string | null;
}): BlockSpec {
  const cidr = parseCidr(o.cidr);
  if (!cidr) throw new IpamPoolError(o.pool, `block cidr "${o.cidr}" is not an IPv4 CIDR`);
  const size = cidrSize(cidr);
  const allocations: (number | null)[] = new Array(size).fill(null);
  const attributes: Attribute[] = [];
  const byReason = new Map<string, number>();
  for (const { ordinal, reason } of reservedOrdinals(o.spec, o.cidr)) {
    let idx = byReason.get(reason);
    if (idx === undefined) {
      idx = attributes.length;
      attributes.push({ handle_id: RESERVED_HANDLE, secondary: { note: reason }, sequence: 0 });
      byReason.set(reason, idx);
    }
    allocations[ordinal] = idx;
  }
  const unallocated: number[] = [];
  for (let i = 0; i < size; i++) if (allocations[i] === null) unallocated.push(i);
  return {
    id: o.spec.type === "local" ? POOL_IDS.local : 0,
    pool: o.pool,
    cidr: o.cidr,
    affinity: o.affinity ?? null,
    allocations,
    unallocated,
    attributes,
    sequenceNumber: 1,
    releasedAt: {},
    deleted: false,
  };
}

export function ipOf(b: BlockSpec, ordinal: number): string {
  return formatIp(parseCidr(b.cidr)!.network + ordinal);
}

/** Ordinal of `ip` (a number) in the block, or undefined when outside it. */
export function ordinalOf(b: BlockSpec, ip: number): number | undefined {
  const cidr = parseCidr(b.cidr);
  if (!cidr || !cidrContains(cidr, ip)) return undefined;
  return ip - cidr.network;
}

/** Attribute holding `ordinal`, or undefined when it is free. */
export function holderOf(b: BlockSpec, ordinal: number): Attribute | undefined {
  const idx = b.allocations[ordinal];
  return idx === null || idx === undefined ? undefined : b.attributes[idx];
}

export interface HeldAddress {
  ordinal: number;
  ip: string;
  sequence: number;
}

/** Addresses `handle` holds in this block. */
export function allocationsOf(b: BlockSpec, handle: string): HeldAddress[] {
  const out: HeldAddress[] = [];
  b.allocations.forEach((idx, ordinal) => {
    if (idx === null) return;
    const a = b.attributes[idx];
    if (a?.handle_id === handle) out.push({ ordinal, ip: ipOf(b, ordinal), sequence: a.sequence });
  });
  return out;
}

export interface Pick {
  ordinal: number;
  /** True when the address was released less than `cooldownMs` ago. */
  cooling: boolean;
  /** When it was released (unix ms), or undefined for a never-used address. */
  releasedAt?: number;
}

/**
 * The address to hand out next: the first free one (FIFO) that has rested `cooldownMs`; when every
 * free address is still cooling, the one released longest ago (the front of the FIFO), marked
 * `cooling` so callers can prefer a cooled address elsewhere. Undefined when the block is full.
 */
export function pickOrdinal(
  b: BlockSpec,
  o: { now: number; cooldownMs: number },
): Pick | undefined {
  for (const ordinal of b.unallocated) {
    const at = b.releasedAt[String(ordinal)];
    if (at === undefined) return { ordinal, cooling: false };
    if (o.now - at >= o.cooldownMs) return { ordinal, cooling: false, releasedAt: at };
  }
  const front = b.unallocated[0];
  if (front === undefined) return undefined;
  return { ordinal: front, cooling: true, releasedAt: b.releasedAt[String(front)] };
}

/** Gives `ordinal` to `handle`. Throws when the ordinal is not free (a caller bug). */
export function assignOrdinal(
  b: BlockSpec,
  o: { ordinal: number; handle: string; secondary: Record<string, string> },
): { spec: BlockSpec; sequence: number } {
  const pos = b.unallocated.indexOf(o.ordinal);
  if (pos < 0 || b.allocations[o.ordinal] !== null) {
    throw new Error(`ordinal ${o.ordinal} of block "${b.cidr}" is not free`);
  }
  if (o.handle === RESERVED_HANDLE) throw new Error(`handle "${o.handle}" is reserved`);
  const spec = structuredClone(b);
  const sequence = spec.sequenceNumber;
  spec.sequenceNumber += 1;
  spec.unallocated.splice(pos, 1);
  spec.attributes.push({ handle_id: o.handle, secondary: { ...o.secondary }, sequence });
  spec.allocations[o.ordinal] = spec.attributes.length - 1;
  delete spec.releasedAt[String(o.ordinal)];
  return { spec, sequence };
}

export interface ReleaseOutcome {
  spec: BlockSpec;
  /** Addresses freed (appended to the back of the FIFO). */
  released: HeldAddress[];
  /** Addresses of the handle left alone because their sequence differs from the one asked for. */
  kept: HeldAddress[];
}

/**
 * Frees what `handle` holds here: all of it, or only the allocation whose sequence is `sequence`
 * (a stale sequence frees nothing), or only `ordinal`. Attributes are compacted.
 */
export function releaseOrdinals(
  b: BlockSpec,
  o: { handle: string; now: number; sequence?: number; ordinal?: number },
): ReleaseOutcome {
  const held = allocationsOf(b, o.handle).filter((h) =>
    o.ordinal === undefined || h.ordinal === o.ordinal
  );
  const released = held.filter((h) => o.sequence === undefined || h.sequence === o.sequence);
  const kept = held.filter((h) => !released.includes(h));
  if (released.length === 0 || o.handle === RESERVED_HANDLE) {
    return { spec: b, released: [], kept: held };
  }
  const spec = structuredClone(b);
  const dropped = new Set<number>();
  for (const h of released) {
    dropped.add(spec.allocations[h.ordinal]!);
    spec.allocations[h.ordinal] = null;
    spec.unallocated.push(h.ordinal);
    spec.releasedAt[String(h.ordinal)] = o.now;
  }
  // Compact: drop the released attributes and renumber the references of the others.
  const remap = new Map<number, number>();
  const attributes: Attribute[] = [];
  spec.attributes.forEach((a, i) => {
    if (dropped.has(i)) return;
    remap.set(i, attributes.length);
    attributes.push(a);
  });
  spec.attributes = attributes;
  spec.allocations = spec.allocations.map((idx) => idx === null ? null : remap.get(idx)!);
  return { spec, released, kept };
}

export interface BlockStats {
  size: number;
  reserved: number;
  allocated: number;
  /** Free addresses, cooling ones included: cooldown is capacity, not a loss. */
  free: number;
  /** Of `free`, those released less than `cooldownMs` ago. */
  cooling: number;
}

export function blockStats(b: BlockSpec, o: { now: number; cooldownMs: number }): BlockStats {
  let reserved = 0;
  let allocated = 0;
  for (const idx of b.allocations) {
    if (idx === null) continue;
    if (b.attributes[idx]?.handle_id === RESERVED_HANDLE) reserved++;
    else allocated++;
  }
  const cooling = b.unallocated.filter((ord) => {
    const at = b.releasedAt[String(ord)];
    return at !== undefined && o.now - at < o.cooldownMs;
  }).length;
  return { size: b.allocations.length, reserved, allocated, free: b.unallocated.length, cooling };
}

/** `blockStats` summed over `blocks`, with their count. */
export function sumBlockStats(
  blocks: Iterable<BlockSpec>,
  o: { now: number; cooldownMs: number },
): BlockStats & { blocks: number } {
  const sum = { size: 0, reserved: 0, allocated: 0, free: 0, cooling: 0, blocks: 0 };
  for (const b of blocks) {
    const s = blockStats(b, o);
    sum.size += s.size;
    sum.reserved += s.reserved;
    sum.allocated += s.allocated;
    sum.free += s.free;
    sum.cooling += s.cooling;
    sum.blocks++;
  }
  return sum;
}

/** Every broken invariant of the block, as sentences; empty when the block is consistent. */
export function checkBlock(b: BlockSpec): string[] {
  const problems: string[] = [];
  const cidr = parseCidr(b.cidr);
  if (!cidr) return [`cidr "${b.cidr}" is not an IPv4 CIDR`];
  const size = cidrSize(cidr);
  if (b.allocations.length !== size) {
    problems.push(`allocations has ${b.allocations.length} entries, the block has ${size}`);
  }
  const free = new Set<number>();
  for (const ord of b.unallocated) {
    if (free.has(ord)) problems.push(`ordinal ${ord} is listed twice as free`);
    free.add(ord);
    if (b.allocations[ord] !== null) problems.push(`ordinal ${ord} is both free and allocated`);
  }
  const referenced = new Set<number>();
  b.allocations.forEach((idx, ord) => {
    if (idx === null) {
      if (!free.has(ord)) problems.push(`ordinal ${ord} is neither free nor allocated`);
      return;
    }
    if (b.attributes[idx] === undefined) {
      problems.push(`ordinal ${ord} points to missing attribute ${idx}`);
    }
    referenced.add(idx);
  });
  b.attributes.forEach((a, i) => {
    if (!referenced.has(i)) problems.push(`attribute ${i} ("${a.handle_id}") is not referenced`);
    if (a.handle_id !== RESERVED_HANDLE && a.sequence >= b.sequenceNumber) {
      problems.push(`attribute ${i} has sequence ${a.sequence} >= ${b.sequenceNumber}`);
    }
  });
  return problems;
}
