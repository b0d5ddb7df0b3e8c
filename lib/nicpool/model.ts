/**
 * The node's view of its cloud NICs and pod allocations, as persisted in the store.
 *
 * Lifecycle of a NIC the daemon owns:
 *   creating → attaching → free ⇄ inuse → detaching → (deleted, record removed)
 * `creating` is written before CreateNics is called (with a request token), so a crash between the
 * API reply and the next write is found again by name/tag at start-up instead of leaking.
 */

import type { CniSettings } from "../rpc/api.ts";

export type NicState = "creating" | "attaching" | "free" | "inuse" | "detaching";

export interface NicRecord {
  /** QingCloud NIC id = its MAC address, `52:54:xx:xx:xx:xx`. */
  id: string;
  vxnet: string;
  /** Primary private IP of the NIC (the pod's IP in nic/passthrough modes). */
  ip: string;
  /** Vxnet CIDR and gateway, copied at creation so datapath work needs no API call. */
  cidr: string;
  gateway: string;
  /** Policy-routing table number assigned on this node (unique among this node's NICs). */
  table: number;
  state: NicState;
  /** Created for one pod (vxnet/IP annotation): deleted when that pod releases it. */
  dedicated: boolean;
  /** Attach or detach job in flight. */
  jobId?: string;
  /** Allocation key `<containerId>/<ifName>` while in use. */
  owner?: string;
  /**
   * When a pod last gave this NIC back. Its IP is in cooldown until `releasedAt + ipCooldown`: not
   * handed to another pod while Services, conntrack and peers may still point at the old one.
   */
  releasedAt?: number;
  createdAt: number;
  updatedAt: number;
}

export type AttachMode = "nic" | "passthrough";

export interface AllocationRecord {
  containerId: string;
  ifName: string;
  netns: string;
  podNamespace?: string;
  podName?: string;
  nicId: string;
  ip: string;
  cidr: string;
  gateway: string;
  table: number;
  mode: AttachMode;
  /** Host-side veth name (veth modes). */
  hostVeth?: string;
  vxnet: string;
  /** CNI settings of the ADD (teardown derives names from them). */
  settings?: CniSettings;
  /** Passthrough: extra pod routes set up by the ADD. */
  routes?: { dst: string; gw: string }[];
  createdAt: number;
}

/** A copy without `undefined` members: the store keeps plain JSON only. */
export function withoutUndefined<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

export const nicKey = (id: string): string => `nic/${id}`;
export const allocKey = (containerId: string, ifName: string): string =>
  `alloc/${containerId}/${ifName}`;
export const ownerKey = (containerId: string, ifName: string): string => `${containerId}/${ifName}`;

/** Lowest table number ≥ base not used by any of `nics`. */
export function nextTable(nics: Iterable<NicRecord>, base: number): number {
  const used = new Set<number>();
  for (const n of nics) used.add(n.table);
  let t = base;
  while (used.has(t)) t++;
  return t;
}

export interface PoolTargets {
  poolLow: number;
  poolHigh: number;
  maxNic: number;
}

export interface PoolCounts {
  /** Free NICs in the pool vxnet (not dedicated), including those in cooldown. */
  free: number;
  /** Free NICs whose IP is still in cooldown (part of `free`, not yet handed out). */
  cooling?: number;
  /** Pool NICs being created or attached. */
  pending: number;
  /** Every NIC this node holds in any state (counts toward maxNic). */
  total: number;
  /** ADDs waiting for a pool NIC right now. */
  waiters: number;
}

export interface PoolPlan {
  /** Pool NICs to create and attach now (one batch). */
  create: number;
  /** Free pool NICs to detach and delete now. */
  trim: number;
}

/** What the pool knows about recent demand (defaults: none). */
export interface PoolDemand {
  /** Batches started in a row while ADDs were waiting (grows the next batch). */
  streak?: number;
  /** No ADD for a while: trimming may happen (false holds NICs through a burst's gaps). */
  idle?: boolean;
}

/**
 * Pure sizing decision. Keeps ready + pending ≥ poolLow + waiters, where ready = free NICs out of
 * cooldown (so a burst is served by one batch, not one NIC per pod), trims ready NICs above
 * poolHigh when nobody waits and demand has been quiet (NICs in cooldown are trimmed once they
 * have cooled), never exceeds maxNic. While ADDs keep waiting, each further batch is at least
 * poolLow·2^streak (at least 1): a burst whose pods arrive spread out is served by a few growing
 * batches instead of one small batch per arrival — but never beyond waiters + poolHigh NICs ready
 * or in flight, so a burst creates no more NICs than pods waiting plus poolHigh.
 */
export function planPool(c: PoolCounts, t: PoolTargets, d: PoolDemand = {}): PoolPlan {
  const ready = c.free - (c.cooling ?? 0);
  const want = t.poolLow + c.waiters;
  const have = ready + c.pending;
  let create = Math.max(0, want - have);
  if (create > 0 && c.waiters > 0) {
    create = Math.max(create, Math.max(1, t.poolLow) * 2 ** Math.min(d.streak ?? 0, 6));
    // The growth never creates more than the pods waiting plus poolHigh: a burst leaves at most
    // poolHigh NICs free once it is served (a batch of 20 for 27 waiters with 17 in flight left
    // 10 NICs beyond that, which then had to be trimmed).
    create = Math.min(create, Math.max(0, c.waiters + t.poolHigh - have));
  }
  // NICs in cooldown do not make the node grow past poolHigh free NICs: from there on the pool
  // hands out the longest-cooled one instead (see NicPool), so churn never fills a vxnet.
  if ((c.cooling ?? 0) > 0) create = Math.min(create, Math.max(0, t.poolHigh - c.free - c.pending));
  create = Math.min(create, Math.max(0, t.maxNic - c.total), 252);
  const quiet = c.waiters === 0 && c.pending === 0 && d.idle !== false;
  const trim = quiet ? Math.max(0, ready - t.poolHigh) : 0;
  return { create, trim };
}

/** Spacing of batches for waiting ADDs while they keep coming (see `batchSpacingMs`). */
export const BATCH_SPACING = { firstMs: 100, maxMs: 500 } as const;

/**
 * How long after the previous batch the next one for waiting ADDs may start, `streak` batches
 * into a burst: at once for the first, then 100 ms, doubling up to 500 ms. A burst whose pods
 * arrive spread out (each is a process that has to start) is served by a few batches that each
 * gather more pods — the batch grows by waiting for pods, not by creating NICs for pods that have
 * not arrived (`planPool` keeps a batch within waiters + poolHigh).
 */
export function batchSpacingMs(streak: number): number {
  if (streak <= 0) return 0;
  return Math.min(BATCH_SPACING.firstMs * 2 ** (streak - 1), BATCH_SPACING.maxMs);
}
