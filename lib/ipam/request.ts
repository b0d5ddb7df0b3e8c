/**
 * What an allocation asks of the block allocator (validated with zod: the daemon builds it from
 * the pod and hostnic-ipam-config) and what it gets back.
 */
import { z } from "zod";
import { ipv4Schema, objectNameSchema } from "./types.ts";

export const requestSchema = z.object({
  handle: z.string().min(1).max(200),
  node: objectNameSchema,
  namespace: objectNameSchema,
  pod: z.string().min(1).max(253),
  /** Pools (IPPool names) in order of preference: the `Default` of hostnic-ipam-config. */
  pools: z.array(objectNameSchema).optional(),
  /** Blocks a pool allocation must not use (those mapped to namespaces). */
  excludeBlocks: z.array(z.string()).optional(),
  /** Blocks (IPAMBlock names) in order of preference: a namespace's mapping. */
  blocks: z.array(z.string().min(1)).optional(),
  fixedIp: ipv4Schema.optional(),
}).strict().refine((r) => (r.pools?.length ? 1 : 0) + (r.blocks?.length ? 1 : 0) === 1, {
  message: "exactly one of pools or blocks must be a non-empty list",
  path: ["pools"],
});
export type AllocateRequest = z.input<typeof requestSchema>;

export interface Allocation {
  ip: string;
  handle: string;
  /** IPAMBlock name and CIDR. */
  block: string;
  blockCidr: string;
  /** IPPool name (the vxnet) and its spec's gateway. */
  pool: string;
  gateway?: string;
  /** Block sequence number of this allocation: pass it to `release` to free exactly it. */
  sequence: number;
  /** True when the address came from another node's block. */
  borrowed: boolean;
  /**
   * resourceVersion of the IPAMHandle as this allocation left it (it then names only `block`):
   * pass it to `release` with `block` and the release needs no read of the handle.
   */
  handleVersion?: string;
}

export interface ReleasedAddress {
  ip: string;
  block: string;
  sequence: number;
}

export interface ReleaseResult {
  released: ReleasedAddress[];
  /** Addresses of the handle left allocated because their sequence was not the one asked for. */
  kept: ReleasedAddress[];
}

/** A request after validation. */
export type ValidRequest = z.output<typeof requestSchema>;
