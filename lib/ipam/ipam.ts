/**
 * The block allocator: hands out pod addresses from IPAMBlocks over a `CasStore`, never twice.
 *
 * - Every block write is a compare-and-swap on its resourceVersion; a lost race re-reads and
 *   recomputes (bounded, jittered retries; `IpamRetryError` after `maxAttempts`).
 * - A node allocates from blocks affine to it (`host:<node>`); when they are full it claims an
 *   unclaimed block of the pool (creating it from the pool's CIDR if the controller has not);
 *   only when no block is free anywhere does it borrow an address from another node's block.
 * - Free addresses are reused FIFO; an address released less than `cooldownMs` ago is taken only
 *   when the node's blocks hold no rested one (cooling addresses count as capacity, so they never
 *   make a node claim more blocks).
 * - The IPAMHandle (`<containerID>.<ifname>`) is written before the block, so a crash in between
 *   leaves a handle pointing at nothing (harmless) rather than an address without a handle.
 * - Each allocation carries the block's sequence number; a release naming another sequence frees
 *   nothing, so a GC can never free an address re-allocated after its scan.
 * Callers must not run two calls for the same handle at once (CNI never does for one container).
 */
import {
  allocationsOf,
  assignOrdinal,
  type BlockStats,
  holderOf,
  ipOf,
  newBlock,
  ordinalOf,
  type Pick,
  pickOrdinal,
  releaseOrdinals,
  sumBlockStats,
} from "./block.ts";
import {
  ConflictError,
  IpamExhaustedError,
  IpamRequestError,
  IpInUseError,
  IpOutsidePoolsError,
  IpReservedError,
} from "./errors.ts";
import { cidrContains, parseCidr, parseIp } from "./ip.ts";
import { casRetry, IpamCounters } from "./cas_retry.ts";
import {
  type AllocateRequest,
  type Allocation,
  type ReleaseResult,
  requestSchema,
  type ValidRequest,
} from "./request.ts";

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
import { type BlockSpec, hostAffinity, type IpPoolSpec, RESERVED_HANDLE } from "./types.ts";

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

/** One allocation attempt's decision: which ordinal of which block, and how it was found. */
interface Choice {
  block: Versioned<BlockSpec>;
  pick: Pick;
  borrowed: boolean;
}

export class Ipam {
  readonly #cooldownMs: number;
  readonly #maxAttempts: number;
  readonly #backoff: { baseMs: number; capMs: number };
  readonly #counters: IpamCounters;
  /** In-flight claims by (node, pool, exclusions). */
  readonly #claims = new Map<string, Promise<Versioned<BlockSpec> | undefined>>();

  constructor(private readonly deps: IpamDeps, opts: IpamOptions = {}) {
    this.#cooldownMs = opts.cooldownMs ?? 30_000;
    this.#maxAttempts = opts.maxAttempts ?? 16;
    this.#backoff = opts.backoff ?? { baseMs: 5, capMs: 250 };
    this.#counters = deps.counters ?? new IpamCounters();
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
    handleName(req.handle); // refuses handles no object name can carry
    const existing = await this.addressesOf(req.handle);
    if (existing.length > 0) return existing[0];
    const secondary = { namespace: req.namespace, pod: req.pod, node: req.node };
    const result = await this.#retry("allocate", async () => {
      const choice = req.fixedIp !== undefined
        ? await this.#chooseFixed(req.fixedIp, req)
        : await this.#choose(req);
      return await this.#commit(choice, { handle: req.handle, secondary });
    });
    this.#counters.allocations++;
    if (result.borrowed) this.#counters.borrows++;
    return result;
  }

  /**
   * Frees what `handle` holds; with `sequence`, only the allocation carrying it; with `ip`, only
   * that address. Releasing an unknown handle frees nothing and succeeds. The handle is deleted
   * once it holds nothing.
   */
  async release(
    handle: string,
    opts: { sequence?: number; ip?: string } = {},
  ): Promise<ReleaseResult> {
    const ipNum = opts.ip === undefined ? undefined : parseIp(opts.ip);
    if (opts.ip !== undefined && ipNum === undefined) {
      throw new IpamRequestError("ip", `"${opts.ip}" is not an IPv4 address`);
    }
    const name = handleName(handle);
    const h = await this.deps.handles.get(name);
    if (!h) return { released: [], kept: [] };
    const out: ReleaseResult = { released: [], kept: [] };
    /** Block → addresses the handle still holds there after this release. */
    const remaining = new Map<string, number>();
    for (const blockId of Object.keys(h.spec.block)) {
      const r = await this.#retry("release", async () => {
        const b = await this.deps.blocks.get(blockId);
        if (!b) return { released: [], kept: [], left: 0 };
        const ordinal = ipNum === undefined ? undefined : ordinalOf(b.spec, ipNum);
        if (ipNum !== undefined && ordinal === undefined) {
          return { released: [], kept: [], left: allocationsOf(b.spec, handle).length };
        }
        const outcome = releaseOrdinals(b.spec, {
          handle,
          now: this.deps.now(),
          ...(opts.sequence !== undefined ? { sequence: opts.sequence } : {}),
          ...(ordinal !== undefined ? { ordinal } : {}),
        });
        if (outcome.released.length > 0) {
          await this.deps.blocks.update({ ...b, spec: outcome.spec });
        }
        return { ...outcome, left: allocationsOf(outcome.spec, handle).length };
      });
      const tag = (a: { ip: string; sequence: number }) => ({
        ip: a.ip,
        block: blockId,
        sequence: a.sequence,
      });
      out.released.push(...r.released.map(tag));
      out.kept.push(...r.kept.map(tag));
      if (r.left > 0) remaining.set(blockId, r.left);
    }
    await this.#retry("release handle", async () => {
      const cur = await this.deps.handles.get(name);
      if (!cur) return;
      if (remaining.size === 0) {
        await this.deps.handles.delete(name, { resourceVersion: cur.resourceVersion });
      } else {
        await this.deps.handles.update({
          ...cur,
          spec: { ...cur.spec, block: Object.fromEntries(remaining) },
        });
      }
    });
    this.#counters.releases += out.released.length;
    return out;
  }

  /** Frees everything `handle` holds (CNI DEL). Idempotent; returns how many addresses it freed. */
  async releaseByHandle(handle: string): Promise<number> {
    return (await this.release(handle)).released.length;
  }

  /** Addresses `handle` holds, read from the blocks its IPAMHandle names. */
  async addressesOf(handle: string): Promise<Allocation[]> {
    const h = await this.deps.handles.get(handleName(handle));
    if (!h) return [];
    const out: Allocation[] = [];
    for (const blockId of Object.keys(h.spec.block)) {
      const b = await this.deps.blocks.get(blockId);
      if (!b) continue;
      const pool = await this.deps.pools.get(b.spec.pool);
      for (const a of allocationsOf(b.spec, handle)) {
        const attr = holderOf(b.spec, a.ordinal)!;
        out.push({
          ip: a.ip,
          handle,
          block: b.name,
          blockCidr: b.spec.cidr,
          pool: b.spec.pool,
          ...(pool?.spec.gateway ? { gateway: pool.spec.gateway } : {}),
          sequence: a.sequence,
          borrowed: b.spec.affinity !== hostAffinity(attr.secondary.node ?? ""),
        });
      }
    }
    return out;
  }

  /**
   * Gives `node` a block of `pool` with at least one free address: one already affine to it (a
   * concurrent call may just have claimed it), else an unclaimed block (first by name), else a new
   * block for a CIDR of the pool that has none yet. Undefined when the pool is missing, disabled or
   * fully claimed. Concurrent calls for the same node and pool on this instance share one claim, so
   * a burst of pods on a node does not grab a block each.
   */
  claimBlock(
    node: string,
    pool: string,
    opts: { exclude?: string[] } = {},
  ): Promise<Versioned<BlockSpec> | undefined> {
    const key = JSON.stringify([node, pool, [...(opts.exclude ?? [])].sort()]);
    const inflight = this.#claims.get(key);
    if (inflight) return inflight;
    const p = this.#claimBlock(node, pool, new Set(opts.exclude ?? [])).finally(() =>
      this.#claims.delete(key)
    );
    this.#claims.set(key, p);
    return p;
  }

  async #claimBlock(
    node: string,
    pool: string,
    exclude: Set<string>,
  ): Promise<Versioned<BlockSpec> | undefined> {
    const p = await this.deps.pools.get(pool);
    if (!p || p.spec.disabled) return undefined;
    const mine = hostAffinity(node);
    const usable = (b: Versioned<BlockSpec>) =>
      !b.spec.deleted && !exclude.has(b.name) && b.spec.unallocated.length > 0;
    return await this.#retry("claim block", async () => {
      const blocks = (await this.deps.blocks.list()).filter((b) => b.spec.pool === pool);
      const own = blocks.find((b) => b.spec.affinity === mine && usable(b));
      if (own) return own;
      const free = blocks.find((b) => b.spec.affinity === null && usable(b));
      if (free) {
        const claimed = await this.deps.blocks.update({
          ...free,
          spec: { ...free.spec, affinity: mine },
        });
        this.#counters.claims++;
        return claimed;
      }
      const have = new Set(blocks.map((b) => b.spec.cidr));
      for (const cidr of carveBlocks(pool, p.spec)) {
        const name = blockName(cidr);
        if (have.has(cidr) || exclude.has(name)) continue;
        const spec = newBlock({ pool, spec: p.spec, cidr, affinity: mine });
        if (spec.unallocated.length === 0) continue;
        const created = await this.deps.blocks.create(name, spec);
        this.#counters.claims++;
        return created;
      }
      return undefined;
    });
  }

  /** Per-pool usage (cooling addresses counted as free capacity). */
  async usage(pool: string): Promise<BlockStats & { blocks: number }> {
    const mine = (await this.deps.blocks.list()).filter((b) => b.spec.pool === pool);
    return sumBlockStats(mine.map((b) => b.spec), {
      now: this.deps.now(),
      cooldownMs: this.#cooldownMs,
    });
  }

  // -------------------------------------------------------------------------------------------

  /** Affine blocks (rested address first), then a claimed block, then a borrowed address. */
  async #choose(req: ValidRequest): Promise<Choice> {
    const scope = await this.#scope(req);
    const mine = hostAffinity(req.node);
    const affine = this.#best(scope.blocks.filter((b) => b.spec.affinity === mine));
    if (affine) return { block: affine.block, pick: affine.pick, borrowed: false };
    const claimed = await this.#claimInScope(req.node, scope, req);
    if (claimed) {
      const pick = pickOrdinal(claimed.spec, this.#pickOpts());
      if (pick) return { block: claimed, pick, borrowed: false };
    }
    // Claiming found nothing free: other nodes claimed meanwhile, so borrow from a fresh read.
    const fresh = await this.#scope(req);
    const own = this.#best(fresh.blocks.filter((b) => b.spec.affinity === mine));
    if (own) return { block: own.block, pick: own.pick, borrowed: false };
    const foreign = this.#best(fresh.blocks.filter((b) => b.spec.affinity !== mine));
    if (foreign) return { block: foreign.block, pick: foreign.pick, borrowed: true };
    throw new IpamExhaustedError(fresh.names, fresh.details);
  }

  /** Blocks the request may use, in preference order, plus why some pools were skipped. */
  async #scope(req: ValidRequest): Promise<{
    blocks: Versioned<BlockSpec>[];
    pools: Map<string, IpPoolSpec>;
    names: string[];
    details: string[];
    /** Names of every block object, deleted ones included. */
    existing: Set<string>;
  }> {
    const listed = await this.deps.blocks.list();
    const existing = new Set(listed.map((b) => b.name));
    const all = listed.filter((b) => !b.spec.deleted);
    const pools = new Map<string, IpPoolSpec>();
    const details: string[] = [];
    if (req.blocks?.length) {
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
    const blocks: Versioned<BlockSpec>[] = [];
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
  async #claimInScope(
    node: string,
    scope: { blocks: Versioned<BlockSpec>[]; pools: Map<string, IpPoolSpec> },
    req: ValidRequest,
  ): Promise<Versioned<BlockSpec> | undefined> {
    if (req.blocks?.length) {
      const free = scope.blocks.find((b) => b.spec.affinity === null && b.spec.unallocated.length);
      if (!free) return undefined;
      // A conflict here restarts the whole attempt with fresh blocks.
      const claimed = await this.deps.blocks.update({
        ...free,
        spec: { ...free.spec, affinity: hostAffinity(node) },
      });
      this.#counters.claims++;
      return claimed;
    }
    for (const pool of scope.pools.keys()) {
      const claimed = await this.claimBlock(node, pool, { exclude: req.excludeBlocks ?? [] });
      if (claimed) return claimed;
    }
    return undefined;
  }

  /** The best address over `blocks`: the first rested one, else the one released longest ago. */
  #best(blocks: Versioned<BlockSpec>[]): { block: Versioned<BlockSpec>; pick: Pick } | undefined {
    let cooling: { block: Versioned<BlockSpec>; pick: Pick } | undefined;
    for (const block of blocks) {
      const pick = pickOrdinal(block.spec, this.#pickOpts());
      if (!pick) continue;
      if (!pick.cooling) return { block, pick };
      if (!cooling || (pick.releasedAt ?? 0) < (cooling.pick.releasedAt ?? 0)) {
        cooling = { block, pick };
      }
    }
    return cooling;
  }

  /** The block holding `ip`, creating it (claimed by this node) when the pool has none yet. */
  async #chooseFixed(ip: string, req: ValidRequest): Promise<Choice> {
    const n = parseIp(ip)!;
    const scope = await this.#scope(req);
    const block = scope.blocks.find((b) => ordinalOf(b.spec, n) !== undefined);
    if (block) {
      const ordinal = ordinalOf(block.spec, n)!;
      const holder = holderOf(block.spec, ordinal);
      if (holder?.handle_id === RESERVED_HANDLE) {
        throw new IpReservedError(ip, block.name, holder.secondary.note ?? "reserved");
      }
      if (holder) {
        throw new IpInUseError(ip, {
          handle: holder.handle_id,
          ...pickDefined(holder.secondary, ["namespace", "pod", "node"]),
        });
      }
      const at = block.spec.releasedAt[String(ordinal)];
      const cooling = at !== undefined && this.deps.now() - at < this.#cooldownMs;
      return {
        block,
        pick: { ordinal, cooling, ...(at !== undefined ? { releasedAt: at } : {}) },
        borrowed: block.spec.affinity !== hostAffinity(req.node),
      };
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
        throw new IpOutsidePoolsError(ip, scope.names, `its block "${bName}" is being deleted`);
      }
      const spec0 = newBlock({
        pool: name,
        spec,
        cidr: blockCidr,
        affinity: hostAffinity(req.node),
      });
      // AlreadyExists (another node created it meanwhile) restarts the attempt.
      const created = await this.deps.blocks.create(bName, spec0);
      this.#counters.claims++;
      return {
        block: created,
        pick: { ordinal: ordinalOf(spec0, n)!, cooling: false },
        borrowed: false,
      };
    }
    throw new IpOutsidePoolsError(ip, scope.names);
  }

  /** Writes the handle, then the block (CAS). On a lost race the handle entry is taken back. */
  async #commit(
    choice: Choice,
    o: { handle: string; secondary: Record<string, string> },
  ): Promise<Allocation> {
    const { block, pick } = choice;
    const { spec, sequence } = assignOrdinal(block.spec, {
      ordinal: pick.ordinal,
      handle: o.handle,
      secondary: o.secondary,
    });
    const held = allocationsOf(block.spec, o.handle).length;
    await this.#setHandleCount(o.handle, block.name, held + 1);
    try {
      await this.deps.blocks.update({ ...block, spec });
    } catch (e) {
      // Only a refused write is certainly not applied; after any other failure the block may
      // hold the address, and the handle must keep pointing at it.
      if (e instanceof ConflictError) {
        await this.#setHandleCount(o.handle, block.name, held).catch(() => {});
      }
      throw e;
    }
    if (pick.cooling) this.#counters.coolingReuses++;
    const pool = await this.deps.pools.get(spec.pool);
    return {
      ip: ipOf(spec, pick.ordinal),
      handle: o.handle,
      block: block.name,
      blockCidr: spec.cidr,
      pool: spec.pool,
      ...(pool?.spec.gateway ? { gateway: pool.spec.gateway } : {}),
      sequence,
      borrowed: choice.borrowed,
    };
  }

  /** Sets handle → block count (creating or deleting the handle as needed), with retries. */
  async #setHandleCount(handle: string, block: string, count: number): Promise<void> {
    const name = handleName(handle);
    await this.#retry("write handle", async () => {
      const cur = await this.deps.handles.get(name);
      const blocks = { ...(cur?.spec.block ?? {}) };
      if (count > 0) blocks[block] = count;
      else delete blocks[block];
      if (!cur) {
        if (count > 0) {
          await this.deps.handles.create(name, { handleID: handle, block: blocks, deleted: false });
        }
      } else if (Object.keys(blocks).length === 0) {
        await this.deps.handles.delete(name, { resourceVersion: cur.resourceVersion });
      } else {
        await this.deps.handles.update({ ...cur, spec: { ...cur.spec, block: blocks } });
      }
    });
  }

  #pickOpts() {
    return { now: this.deps.now(), cooldownMs: this.#cooldownMs };
  }

  /** Runs `attempt` until it does not lose a race, at most `maxAttempts` times. */
  #retry<T>(operation: string, attempt: () => Promise<T>): Promise<T> {
    return casRetry(operation, {
      maxAttempts: this.#maxAttempts,
      backoff: this.#backoff,
      counters: this.#counters,
      sleep: this.deps.sleep,
      random: this.deps.random,
    }, attempt);
  }
}

function pickDefined<K extends string>(
  rec: Record<string, string>,
  keys: K[],
): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const k of keys) if (rec[k] !== undefined) out[k] = rec[k];
  return out;
}
