/**
 * A claim storm, for tests: `nodes` nodes, each with its own `Ipam` (own block copies, own
 * writer), allocate their first address at the same moment from one pool over the given stores,
 * as a cluster's daemons do when they all start at once. Reports what each got and what the
 * compare-and-swap cost; the memory store (claim_test.ts) and a real kube-apiserver
 * (kube_store_test.ts) run it.
 */
import { type Allocation, Ipam, IpamCounters } from "./ipam.ts";
import type { BlockStore, HandleStore, PoolStore } from "./store.ts";
import type { IpPoolSpec } from "./types.ts";

/** 10.64.0.0/18 in /26 blocks: 256 blocks, the hollow bed's shared-mode pod vxnet. */
export const STORM_POOL: IpPoolSpec = {
  type: "local",
  cidr: "10.64.0.0/18",
  gateway: "10.64.0.1",
  blockSize: 26,
};

export interface StormResult {
  /** One per node, in node order: its address, or the error its allocation threw. */
  outcomes: (Allocation | Error)[];
  counters: IpamCounters;
}

export async function claimStorm(o: {
  nodes: number;
  stores: (k: number) => { blocks: BlockStore; handles: HandleStore; pools: PoolStore };
  pool: string;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
}): Promise<StormResult> {
  const counters = new IpamCounters();
  const ipams = Array.from({ length: o.nodes }, (_, k) =>
    new Ipam({
      ...o.stores(k),
      now: Date.now,
      random: o.random ?? Math.random,
      sleep: o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms))),
      counters,
    }));
  const outcomes = await Promise.all(ipams.map((ipam, k) =>
    ipam.allocate({
      handle: `${o.pool}-${k}.eth0`,
      node: `hollow-${k}`,
      namespace: "default",
      pod: `storm-${k}`,
      pools: [o.pool],
    }).catch((e: Error) => e)
  ));
  return { outcomes, counters };
}
