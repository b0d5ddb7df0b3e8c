/**
 * Claiming a block of a pool for a node, so that many nodes claiming at once (a cluster coming
 * up, a wave of pods on every node) rarely go for the same block:
 *
 * - Each node searches the pool's block space (its CIDR cut into blocks, in address order) from
 *   its own starting point, a hash of the node name, rotating from there. Nodes starting together
 *   so mostly try different blocks; the unclaimed block objects the controller made and the CIDRs
 *   that have no object yet are candidates alike, in that one order.
 * - A lost race (the block was claimed, or created, by another node first) moves on to another
 *   candidate, picked at random among those left, rather than retrying the same one: the winner
 *   keeps it, and the nodes behind it do not queue in step on the next one.
 * - After `PER_ROUND` lost candidates the node lists the blocks again (what it lost to is claimed
 *   by then) after a jittered, exponential backoff; `maxAttempts` such rounds at most. Only then
 *   `IpamRetryError`. A pool with no candidate left is not an error here: the caller borrows, or
 *   reports the pool exhausted.
 */
import { newBlock } from "./block.ts";
import type { BlockCache } from "./block_cache.ts";
import type { BlockWriter } from "./block_writer.ts";
import { AlreadyExistsError, IpamRetryError } from "./errors.ts";
import type { CasRetryOptions } from "./cas_retry.ts";
import { blockName, carveBlocks } from "./reserve.ts";
import type { Versioned } from "./store.ts";
import { type BlockSpec, hostAffinity, type IpPoolSpec } from "./types.ts";

type Block = Versioned<BlockSpec>;

/** Candidates tried (and lost) before the node lists the blocks again. */
export const PER_ROUND = 4;

export interface ClaimDeps {
  cache: BlockCache;
  writer: BlockWriter;
  retry: CasRetryOptions;
  /** A block without the ordinals promised to allocations in flight. */
  projected: (b: Block) => Block;
}

/** A block to claim: an unclaimed object, or a CIDR of the pool no object has yet. */
export type Candidate = { kind: "claim"; block: Block } | { kind: "create"; cidr: string };

/** 32-bit FNV-1a of `s`: a node's starting point, stable across restarts and processes. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const c of new TextEncoder().encode(s)) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return h;
}

/**
 * The blocks `node` may claim, in the order it tries them: the pool's CIDRs rotated to start at
 * the node's hash, then (also rotated) unclaimed blocks of the pool whose CIDR is not one of its
 * current pieces (the block size changed since they were made).
 */
export function claimCandidates(o: {
  node: string;
  cidrs: string[];
  /** The pool's block objects. */
  blocks: Block[];
  exclude: Set<string>;
}): Candidate[] {
  const byCidr = new Map(o.blocks.map((b) => [b.spec.cidr, b]));
  const free = (b: Block) =>
    b.spec.affinity === null && !b.spec.deleted && !o.exclude.has(b.name) &&
    b.spec.unallocated.length > 0;
  const h = fnv1a(o.node);
  const out: Candidate[] = [];
  for (let i = 0; i < o.cidrs.length; i++) {
    const cidr = o.cidrs[(h + i) % o.cidrs.length];
    const b = byCidr.get(cidr);
    if (b) {
      if (free(b)) out.push({ kind: "claim", block: b });
    } else if (!o.exclude.has(blockName(cidr))) out.push({ kind: "create", cidr });
  }
  const pieces = new Set(o.cidrs);
  const odd = o.blocks.filter((b) => !pieces.has(b.spec.cidr) && free(b));
  for (let i = 0; i < odd.length; i++) {
    out.push({ kind: "claim", block: odd[(h + i) % odd.length] });
  }
  return out;
}

/**
 * A block of `pool` for `node` with a free address: one already affine to it, else one it claims
 * (see the module header). Undefined when the pool has no candidate left.
 */
export async function claimPoolBlock(
  d: ClaimDeps,
  o: { node: string; pool: string; spec: IpPoolSpec; exclude: Set<string> },
): Promise<Block | undefined> {
  const mine = hostAffinity(o.node);
  const cidrs = carveBlocks(o.pool, o.spec);
  const { counters } = d.retry;
  for (let round = 1;; round++) {
    const blocks = (await d.cache.list({ fresh: true }))
      .filter((b) => b.spec.pool === o.pool).map(d.projected);
    const own = blocks.find((b) =>
      b.spec.affinity === mine && !b.spec.deleted && !o.exclude.has(b.name) &&
      b.spec.unallocated.length > 0
    );
    if (own) return own;
    const left = claimCandidates({ node: o.node, cidrs, blocks, exclude: o.exclude });
    if (left.length === 0) return undefined;
    let lost = 0;
    while (left.length > 0 && lost < PER_ROUND) {
      // The node's own starting point first; after a loss, anywhere among the rest.
      const i = lost === 0 ? 0 : Math.floor(d.retry.random() * left.length);
      const [c] = left.splice(i, 1);
      const got = await attempt(d, c, { pool: o.pool, spec: o.spec, mine });
      if (got === "empty") continue;
      if (got) return got;
      lost++;
    }
    if (lost === 0) return undefined; // every candidate left had no usable address
    if (round >= d.retry.maxAttempts) {
      counters.exhaustedRetries++;
      throw new IpamRetryError("claim block", round * PER_ROUND);
    }
    counters.retries++;
    const exp = Math.min(d.retry.backoff.capMs, d.retry.backoff.baseMs * 2 ** (round - 1));
    await d.retry.sleep(Math.round(exp / 2 + d.retry.random() * exp / 2));
  }
}

/** One claim: the block, undefined when another node got it first, "empty" for a useless CIDR. */
async function attempt(
  d: ClaimDeps,
  c: Candidate,
  o: { pool: string; spec: IpPoolSpec; mine: string },
): Promise<Block | undefined | "empty"> {
  const { counters } = d.retry;
  if (c.kind === "claim") {
    // The writer counts the conflict of a lost compare-and-swap itself.
    const out = await d.writer.submit(c.block.name, { kind: "claim", affinity: o.mine });
    if (out.kind !== "claimed") return undefined;
    if (out.changed) counters.claims++;
    return d.projected(out.block);
  }
  const spec = newBlock({ pool: o.pool, spec: o.spec, cidr: c.cidr, affinity: o.mine });
  if (spec.unallocated.length === 0) return "empty";
  try {
    const created = await d.cache.create(blockName(c.cidr), spec);
    counters.claims++;
    return created;
  } catch (e) {
    if (!(e instanceof AlreadyExistsError)) throw e;
    counters.conflicts++;
    return undefined;
  }
}
