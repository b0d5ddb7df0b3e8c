/**
 * The block allocator: hands out pod addresses from IPAMBlocks over a `CasStore`, never twice.
 *
 * - Every block write is a compare-and-swap on its resourceVersion, and every block write of this
 *   instance goes through one group-commit writer (block_writer.ts): concurrent allocations and
 *   releases on one block queue while a write of it is in flight and go out together in the next
 *   one, so this instance's calls never conflict with each other; a conflict (another node, the
 *   controller) recomputes the batch from a fresh read (bounded, jittered retries).
 * - Blocks are read from this instance's copies (block_cache.ts): a normal allocation is one
 *   handle create and one block write, nothing read. Copies may be stale; the compare-and-swap is
 *   the arbiter, and a refusal (address in use, nothing free) is only ever made on a fresh read.
 * - Choosing an address promises its ordinal to the caller until the write says yes or no, so
 *   concurrent calls choose different addresses from the same copy.
 * - A node allocates from blocks affine to it (`host:<node>`); when they are full it claims an
 *   unclaimed block of the pool (creating it from the pool's CIDR if the controller has not),
 *   searching from a point of its own so nodes claiming at once seldom collide (claim.ts);
 *   only when no block is free anywhere does it borrow an address from another node's block.
 * - Free addresses are reused FIFO; an address released less than `cooldownMs` ago is taken only
 *   when the node's blocks hold no rested one (cooling addresses count as capacity, so they never
 *   make a node claim more blocks).
 * - The IPAMHandle (`<containerID>.<ifname>`) is written before the block (a create, no read
 *   first: AlreadyExists is the idempotent path), so a crash in between leaves a handle pointing
 *   at nothing (harmless) rather than an address without a handle. A refused allocation deletes
 *   the handle it created.
 * - Each allocation carries the block's sequence number; a release naming another sequence frees
 *   nothing, so a GC can never free an address re-allocated after its scan.
 * Callers must not run two calls for the same handle at once (CNI never does for one container).
 */
import {
  allocationsOf,
  type BlockStats,
  holderOf,
  ipOf,
  newBlock,
  ordinalOf,
  type Pick,
  pickOrdinal,
  sumBlockStats,
} from "./block.ts";
import { BlockCache } from "./block_cache.ts";
import { BlockWriter, ipInUse, throwIfRefused } from "./block_writer.ts";
import {
  AlreadyExistsError,
  ConflictError,
  IpamExhaustedError,
  IpamRequestError,
  IpamRetryError,
  IpOutsidePoolsError,
  IpReservedError,
} from "./errors.ts";
import { HostnicError } from "../errors.ts";
import { cidrContains, parseCidr, parseIp } from "./ip.ts";
import { casRetry, type CasRetryOptions, IpamCounters } from "./cas_retry.ts";
import {
  type AllocateRequest,
  type Allocation,
  type ReleaseResult,
  requestSchema,
  type ValidRequest,
} from "./request.ts";
import { releaseHandle } from "./release.ts";
import { claimPoolBlock } from "./claim.ts";
import { createHandle, type HandleWriteDeps, namesOnly, setHandle } from "./handle_write.ts";

export { IpamCounters } from "./cas_retry.ts";
export type { AllocateRequest, Allocation, ReleasedAddress, ReleaseResult } from "./request.ts";
import { blockName, carveBlocks, reservedReason } from "./reserve.ts";
import {
  type BlockStore,
  handleName,
  type HandleStore,
  type PoolStore,
  type Versioned,
} from "./store.ts";
import {
  type BlockSpec,
  type HandleSpec,
  hostAffinity,
  type IpPoolSpec,
  RESERVED_HANDLE,
} from "./types.ts";

export interface IpamDeps {
  blocks: BlockStore;
  handles: HandleStore;
  /** IPPools, read only. */
  pools: PoolStore;
  /** Unix ms. */
  now: () => number;
  /** [0, 1), for retry jitter. */
  random: () => number;
  sleep: (ms: number) => Promise<void>;
  counters?: IpamCounters;
}

export interface IpamOptions {
  /** How long a released address rests before it is preferred again (default 30 s). */
  cooldownMs?: number;
  /** Attempts of one operation before `IpamRetryError` (default 16). */
  maxAttempts?: number;
  /** Retry delay: equal jitter over min(capMs, baseMs·2^(n-1)) (default 5 ms, 250 ms). */
  backoff?: { baseMs: number; capMs: number };
}

type Block = Versioned<BlockSpec>;

/** One allocation attempt's decision: which ordinal of which block, and how it was found. */
interface Choice {
  block: Block;
  pick: Pick;
  borrowed: boolean;
  /** Takes back the promise of the ordinal (made when it was picked). */
  unpromise: () => void;
}

/** What a request may use: blocks in preference order, plus why some pools were skipped. */
interface Scope {
  blocks: Block[];
  pools: Map<string, IpPoolSpec>;
  names: string[];
  details: string[];
  /** Names of every block object, deleted ones included. */
  existing: Set<string>;
}

export class Ipam {
  readonly #cooldownMs: number;
  readonly #maxAttempts: number;
  readonly #counters: IpamCounters;
  readonly #retryOpts: CasRetryOptions;
  readonly #cache: BlockCache;
  readonly #writer: BlockWriter;
  /** Block name → ordinals promised to allocations in flight (chosen, not yet written). */
  readonly #promised = new Map<string, Set<number>>();
  /** In-flight claims by (node, pool, exclusions). */
  readonly #claims = new Map<string, Promise<Block | undefined>>();

  constructor(private readonly deps: IpamDeps, opts: IpamOptions = {}) {
    this.#cooldownMs = opts.cooldownMs ?? 30_000;
    this.#maxAttempts = opts.maxAttempts ?? 16;
    this.#counters = deps.counters ?? new IpamCounters();
    this.#retryOpts = {
      maxAttempts: this.#maxAttempts,
      backoff: opts.backoff ?? { baseMs: 5, capMs: 250 },
      counters: this.#counters,
      sleep: deps.sleep,
      random: deps.random,
    };
    this.#cache = new BlockCache(deps.blocks);
    this.#writer = new BlockWriter({ cache: this.#cache, retry: this.#retryOpts, now: deps.now });
  }

  /** Block writes (compare-and-swap attempts) this instance sent. */
  get blockWrites(): number {
    return this.#writer.writes;
  }

  /** The blocks as this instance last saw them (a list when it has seen none): no fresh read. */
  cachedBlocks(): Promise<Block[]> {
    return this.#cache.list();
  }

  /**
   * An address for `handle`. Idempotent: a handle that already holds an address gets it back.
   * Throws `IpInUseError`, `IpReservedError`, `IpOutsidePoolsError` for a fixed IP that cannot be
   * had, `IpamExhaustedError` when nothing is free, `IpamRetryError` after too many lost races.
   */
  async allocate(request: AllocateRequest): Promise<Allocation> {
    const parsed = requestSchema.safeParse(request);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new IpamRequestError(issue.path.join(".") || "request", issue.message);
    }
    const req = parsed.data;
    const name = handleName(req.handle); // refuses handles no object name can carry
    const secondary = { namespace: req.namespace, pod: req.pod, node: req.node };
    /** The handle object as this call last wrote it. */
    let handle: Versioned<HandleSpec> | undefined;
    try {
      for (let round = 1;; round++) {
        // After a lost round, choose from a fresh list.
        const fresh = round > 1;
        let choice: Choice;
        try {
          choice = req.fixedIp !== undefined
            ? await this.#chooseFixed(req.fixedIp, req, fresh)
            : await this.#choose(req, fresh);
        } catch (e) {
          // A block created or claimed by someone else meanwhile: choose again.
          if (!(e instanceof AlreadyExistsError || e instanceof ConflictError)) throw e;
          this.#lostRound(round, e);
          continue;
        }
        const ordinal = choice.pick.ordinal;
        try {
          if (!handle) {
            const got = await createHandle(this.#handleDeps(), {
              name,
              handleId: req.handle,
              block: choice.block.name,
            });
            if ("existing" in got) return got.existing;
            handle = got.handle;
          } else if (!namesOnly(handle.spec, choice.block.name)) {
            handle = await setHandle(this.#handleDeps(), {
              name,
              handleId: req.handle,
              block: choice.block.name,
            }, handle);
          }
          const out = await this.#writer.submit(choice.block.name, {
            kind: "assign",
            handle: req.handle,
            secondary,
            ordinal,
          });
          if (out.kind === "assigned") {
            this.#counters.allocations++;
            if (choice.borrowed) this.#counters.borrows++;
            if (choice.pick.cooling) this.#counters.coolingReuses++;
            return await this.#allocation(out.block, {
              ordinal,
              handle: req.handle,
              sequence: out.sequence,
              borrowed: choice.borrowed,
              handleVersion: handle.resourceVersion,
            });
          }
          if (req.fixedIp !== undefined) throwIfRefused(req.fixedIp, out, choice.block.name);
          this.#lostRound(round);
        } finally {
          choice.unpromise();
        }
      }
    } catch (e) {
      // A refused allocation is certainly not in any block: its handle goes too. After any
      // other failure the block may hold the address, and the handle must keep pointing at it.
      if (handle && e instanceof HostnicError && e.code.startsWith("IPAM_")) {
        await this.deps.handles.delete(name, { resourceVersion: handle.resourceVersion })
          .catch(() => {});
      }
      throw e;
    }
  }

  /**
   * Frees what `handle` holds; with `sequence`, only the allocation carrying it; with `ip`, only
   * that address. Releasing an unknown handle frees nothing and succeeds. The handle is deleted
   * once it holds nothing. With the allocation's `block` and `handleVersion` the release reads
   * nothing (one block write, batched with concurrent ones, and one handle delete).
   */
  release(
    handle: string,
    opts: { sequence?: number; ip?: string; block?: string; handleVersion?: string } = {},
  ): Promise<ReleaseResult> {
    return releaseHandle(
      {
        handles: this.deps.handles,
        cache: this.#cache,
        writer: this.#writer,
        counters: this.#counters,
        retry: (op, fn) => casRetry(op, this.#retryOpts, fn),
      },
      handle,
      opts,
    );
  }

  /** Frees everything `handle` holds (CNI DEL). Idempotent; returns how many addresses it freed. */
  async releaseByHandle(handle: string): Promise<number> {
    return (await this.release(handle)).released.length;
  }

  /** Addresses `handle` holds, read fresh from the blocks its IPAMHandle names. */
  async addressesOf(handle: string): Promise<Allocation[]> {
    const h = await this.deps.handles.get(handleName(handle));
    return h ? await this.#held(handle, h) : [];
  }

  async #held(handle: string, h: Versioned<HandleSpec>): Promise<Allocation[]> {
    const out: Allocation[] = [];
    const names = Object.keys(h.spec.block);
    for (const blockId of names) {
      const b = await this.#cache.read(blockId);
      if (!b) continue;
      for (const a of allocationsOf(b.spec, handle)) {
        const attr = holderOf(b.spec, a.ordinal)!;
        out.push(
          await this.#allocation(b, {
            ordinal: a.ordinal,
            handle,
            sequence: a.sequence,
            borrowed: b.spec.affinity !== hostAffinity(attr.secondary.node ?? ""),
            ...(names.length === 1 ? { handleVersion: h.resourceVersion } : {}),
          }),
        );
      }
    }
    return out;
  }

  async #allocation(
    b: Block,
    o: {
      ordinal: number;
      handle: string;
      sequence: number;
      borrowed: boolean;
      handleVersion?: string;
    },
  ): Promise<Allocation> {
    const pool = await this.deps.pools.get(b.spec.pool);
    return {
      ip: ipOf(b.spec, o.ordinal),
      handle: o.handle,
      block: b.name,
      blockCidr: b.spec.cidr,
      pool: b.spec.pool,
      ...(pool?.spec.gateway ? { gateway: pool.spec.gateway } : {}),
      sequence: o.sequence,
      borrowed: o.borrowed,
      ...(o.handleVersion !== undefined ? { handleVersion: o.handleVersion } : {}),
    };
  }

  /**
   * Gives `node` a block of `pool` with at least one free address: one already affine to it (a
   * concurrent call may just have claimed it), else an unclaimed block or a new block for a CIDR of
   * the pool that has none yet, searched from a point of the node's own (claim.ts). Undefined when the pool is missing, disabled or
   * fully claimed. Concurrent calls for the same node and pool on this instance share one claim, so
   * a burst of pods on a node does not grab a block each.
   */
  claimBlock(
    node: string,
    pool: string,
    opts: { exclude?: string[] } = {},
  ): Promise<Block | undefined> {
    const key = JSON.stringify([node, pool, [...(opts.exclude ?? [])].sort()]);
    const inflight = this.#claims.get(key);
    if (inflight) return inflight;
    const p = this.#claimBlock(node, pool, new Set(opts.exclude ?? [])).finally(() =>
      this.#claims.delete(key)
    );
    this.#claims.set(key, p);
    return p;
  }

  async #claimBlock(node: string, pool: string, exclude: Set<string>): Promise<Block | undefined> {
    const p = await this.deps.pools.get(pool);
    if (!p || p.spec.disabled) return undefined;
    return await claimPoolBlock({
      cache: this.#cache,
      writer: this.#writer,
      retry: this.#retryOpts,
      projected: (b) => this.#projected(b),
    }, { node, pool, spec: p.spec, exclude });
  }

  /** Per-pool usage (cooling addresses counted as free capacity), from a fresh list. */
  async usage(pool: string): Promise<BlockStats & { blocks: number }> {
    const mine = (await this.#cache.list({ fresh: true })).filter((b) => b.spec.pool === pool);
    return sumBlockStats(mine.map((b) => b.spec), {
      now: this.deps.now(),
      cooldownMs: this.#cooldownMs,
    });
  }

  // -------------------------------------------------------------------------------------------

  /** A lost round: counted, and bounded by `maxAttempts`. */
  #lostRound(round: number, cause?: unknown): void {
    if (round >= this.#maxAttempts) {
      this.#counters.exhaustedRetries++;
      throw new IpamRetryError("allocate", round, cause ? { cause } : undefined);
    }
    this.#counters.retries++;
  }

  /** Promises `ordinal` of `block` to one caller; the returned function takes it back. */
  #promise(block: string, ordinal: number): () => void {
    let set = this.#promised.get(block);
    if (!set) this.#promised.set(block, set = new Set());
    set.add(ordinal);
    return () => {
      set.delete(ordinal);
      if (set.size === 0 && this.#promised.get(block) === set) this.#promised.delete(block);
    };
  }

  /** `b` without the free ordinals promised to calls in flight. */
  #projected(b: Block): Block {
    const p = this.#promised.get(b.name);
    if (!p?.size) return b;
    return { ...b, spec: { ...b.spec, unallocated: b.spec.unallocated.filter((o) => !p.has(o)) } };
  }

  /** Affine blocks (rested address first), then a claimed block, then a borrowed address. */
  async #choose(req: ValidRequest, fresh: boolean): Promise<Choice> {
    const scope = await this.#scope(req, fresh);
    const mine = hostAffinity(req.node);
    // Each pick is promised in the same synchronous step that saw the promises of the others.
    const affine = this.#best(scope.blocks.filter((b) => b.spec.affinity === mine));
    if (affine) return this.#take(affine.block, affine.pick, false);
    const claimed = await this.#claimInScope(req.node, scope, req);
    if (claimed) {
      const pick = pickOrdinal(this.#projected(claimed).spec, this.#pickOpts());
      if (pick) return this.#take(claimed, pick, false);
    }
    // Claiming found nothing free: other nodes claimed meanwhile, so borrow from a fresh read.
    const now = await this.#scope(req, true);
    const own = this.#best(now.blocks.filter((b) => b.spec.affinity === mine));
    if (own) return this.#take(own.block, own.pick, false);
    const foreign = this.#best(now.blocks.filter((b) => b.spec.affinity !== mine));
    if (foreign) return this.#take(foreign.block, foreign.pick, true);
    throw new IpamExhaustedError(now.names, now.details);
  }

  /** Blocks the request may use (copies, or a fresh list). */
  async #scope(req: ValidRequest, fresh: boolean): Promise<Scope> {
    const listed = await this.#cache.list({ fresh });
    const existing = new Set(listed.map((b) => b.name));
    const all = listed.filter((b) => !b.spec.deleted);
    const pools = new Map<string, IpPoolSpec>();
    const details: string[] = [];
    if (req.blocks?.length) {
      // A block named by a mapping newer than the copies: list again.
      if (!fresh && req.blocks.some((n) => !existing.has(n))) return this.#scope(req, true);
      const byName = new Map(all.map((b) => [b.name, b]));
      const blocks = req.blocks.flatMap((n) => {
        const b = byName.get(n);
        if (!b) details.push(`block "${n}" does not exist`);
        return b ? [b] : [];
      });
      for (const b of blocks) {
        const p = await this.deps.pools.get(b.spec.pool);
        if (p && !p.spec.disabled) pools.set(b.spec.pool, p.spec);
      }
      const usable = blocks.filter((b) => pools.has(b.spec.pool));
      return { blocks: usable, pools, names: req.blocks, details, existing };
    }
    const exclude = new Set(req.excludeBlocks ?? []);
    const blocks: Block[] = [];
    for (const name of req.pools ?? []) {
      const p = await this.deps.pools.get(name);
      if (!p) details.push(`pool "${name}" does not exist`);
      else if (p.spec.disabled) details.push(`pool "${name}" is disabled`);
      else {
        pools.set(name, p.spec);
        blocks.push(...all.filter((b) => b.spec.pool === name && !exclude.has(b.name)));
      }
    }
    return { blocks, pools, names: req.pools ?? [], details, existing };
  }

  /** Claims an unclaimed block in scope: a named one (namespace mapping) or one of a pool. */
  async #claimInScope(node: string, scope: Scope, req: ValidRequest): Promise<Block | undefined> {
    if (req.blocks?.length) {
      // In the configured order; one another node claimed first is passed over (the writer
      // decided that on a fresh read), so borrowing waits until no block is left.
      const free = scope.blocks.filter((b) =>
        b.spec.affinity === null && this.#projected(b).spec.unallocated.length
      );
      for (const b of free) {
        const out = await this.#writer.submit(b.name, {
          kind: "claim",
          affinity: hostAffinity(node),
        });
        if (out.kind !== "claimed") continue;
        if (out.changed) this.#counters.claims++;
        return out.block;
      }
      return undefined;
    }
    for (const pool of scope.pools.keys()) {
      const claimed = await this.claimBlock(node, pool, { exclude: req.excludeBlocks ?? [] });
      if (claimed) return claimed;
    }
    return undefined;
  }

  /** A choice of `pick` in `block`, its ordinal promised to the caller. */
  #take(block: Block, pick: Pick, borrowed: boolean): Choice {
    return { block, pick, borrowed, unpromise: this.#promise(block.name, pick.ordinal) };
  }

  /**
   * The best address over `blocks` (promised ordinals left out): the first rested one, else the
   * one released longest ago.
   */
  #best(blocks: Block[]): { block: Block; pick: Pick } | undefined {
    let cooling: { block: Block; pick: Pick } | undefined;
    for (const block of blocks) {
      const pick = pickOrdinal(this.#projected(block).spec, this.#pickOpts());
      if (!pick) continue;
      if (!pick.cooling) return { block, pick };
      if (!cooling || (pick.releasedAt ?? 0) < (cooling.pick.releasedAt ?? 0)) {
        cooling = { block, pick };
      }
    }
    return cooling;
  }

  /** The block holding `ip`, creating it (claimed by this node) when the pool has none yet. */
  async #chooseFixed(ip: string, req: ValidRequest, fresh: boolean): Promise<Choice> {
    const n = parseIp(ip)!;
    const scope = await this.#scope(req, fresh);
    let block = scope.blocks.find((b) => ordinalOf(b.spec, n) !== undefined);
    if (block) {
      const ordinal = ordinalOf(block.spec, n)!;
      let holder = holderOf(block.spec, ordinal);
      if (holder && holder.handle_id !== req.handle && !fresh) {
        // Refused only on a fresh read: the copy may predate the holder's release.
        const now = await this.#cache.read(block.name);
        if (!now || now.spec.deleted) return this.#chooseFixed(ip, req, true);
        block = now;
        holder = holderOf(block.spec, ordinal);
      }
      if (holder?.handle_id === RESERVED_HANDLE) {
        throw new IpReservedError(ip, block.name, holder.secondary.note ?? "reserved");
      }
      if (holder && holder.handle_id !== req.handle) throw ipInUse(ip, holder);
      const at = block.spec.releasedAt[String(ordinal)];
      const cooling = at !== undefined && this.deps.now() - at < this.#cooldownMs;
      return this.#take(
        block,
        { ordinal, cooling, ...(at !== undefined ? { releasedAt: at } : {}) },
        block.spec.affinity !== hostAffinity(req.node),
      );
    }
    for (const [name, spec] of scope.pools) {
      const cidr = parseCidr(spec.cidr);
      if (req.blocks?.length || !cidr || !cidrContains(cidr, n)) continue;
      const reason = reservedReason(spec, n);
      const blockCidr = carveBlocks(name, spec).find((c) => cidrContains(parseCidr(c)!, n))!;
      const bName = blockName(blockCidr);
      if (reason !== undefined) throw new IpReservedError(ip, bName, reason);
      if ((req.excludeBlocks ?? []).includes(bName)) {
        throw new IpOutsidePoolsError(
          ip,
          scope.names,
          `its block "${bName}" belongs to a namespace`,
        );
      }
      if (scope.existing.has(bName)) {
        if (!fresh) return this.#chooseFixed(ip, req, true);
        throw new IpOutsidePoolsError(ip, scope.names, `its block "${bName}" is being deleted`);
      }
      const spec0 = newBlock({
        pool: name,
        spec,
        cidr: blockCidr,
        affinity: hostAffinity(req.node),
      });
      // AlreadyExists (another node created it meanwhile) makes the caller choose again.
      const created = await this.#cache.create(bName, spec0);
      this.#counters.claims++;
      return this.#take(created, { ordinal: ordinalOf(spec0, n)!, cooling: false }, false);
    }
    throw new IpOutsidePoolsError(ip, scope.names);
  }

  #handleDeps(): HandleWriteDeps {
    return {
      handles: this.deps.handles,
      retry: this.#retryOpts,
      held: (handle, h) => this.#held(handle, h),
    };
  }

  #pickOpts() {
    return { now: this.deps.now(), cooldownMs: this.#cooldownMs };
  }
}
