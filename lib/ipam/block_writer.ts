/**
 * Group commit of block writes inside one process: every change this allocator makes to an
 * IPAMBlock goes through `BlockWriter.submit`. While a write of a block is in flight, further
 * operations on it queue; when it returns they are applied together to the newest copy and go out
 * in one compare-and-swap. So a node's concurrent ADDs and DELs never race each other on their own
 * block: a conflict can only come from another writer (another node, the controller), and then the
 * whole batch is recomputed from a fresh read (bounded, jittered retries, `casRetry`).
 *
 * Invariants:
 * - Operations of a batch are applied in submission order to one copy; each gets its own outcome.
 * - A refusal (`lost`: the ordinal is held, the block is deleted or gone) is only reported after
 *   a fresh read of the block, never on a possibly stale copy.
 * - A write that fails other than by conflict rejects every operation of its batch: the block may
 *   or may not hold the change (the caller keeps its handle pointing at it).
 * - A batch that changes nothing writes nothing.
 */
import {
  allocationsOf,
  assignOrdinal,
  type HeldAddress,
  holderOf,
  releaseOrdinals,
} from "./block.ts";
import type { BlockCache } from "./block_cache.ts";
import { casRetry, type CasRetryOptions } from "./cas_retry.ts";
import { IpInUseError, IpOutsidePoolsError, IpReservedError, NotFoundError } from "./errors.ts";
import type { Versioned } from "./store.ts";
import { type Attribute, type BlockSpec, RESERVED_HANDLE } from "./types.ts";

type Block = Versioned<BlockSpec>;

export type BlockOp =
  /** Give `ordinal` to `handle`. */
  | { kind: "assign"; handle: string; secondary: Record<string, string>; ordinal: number }
  /** Free what `handle` holds (with `sequence`: only that allocation; with `ordinal`: only it). */
  | { kind: "release"; handle: string; sequence?: number; ordinal?: number; fresh?: boolean }
  /** Set the affinity of an unclaimed block. */
  | { kind: "claim"; affinity: string };

export type BlockOutcome =
  | { kind: "assigned"; block: Block; sequence: number }
  /** `changed`: this operation set the affinity (false: it already was this one). */
  | { kind: "claimed"; block: Block; changed: boolean }
  | {
    kind: "released";
    released: HeldAddress[];
    kept: HeldAddress[];
    /** Addresses the handle still holds in this block. */
    left: number;
  }
  | {
    kind: "lost";
    reason: "held" | "deleted" | "gone" | "claimed";
    /** Who holds the ordinal (reason "held"). */
    holder?: Attribute;
    /** The fresh copy the refusal was decided on (undefined when the block is gone). */
    block?: Block;
  };

interface Pending {
  op: BlockOp;
  resolve: (o: BlockOutcome) => void;
  reject: (e: unknown) => void;
}

export class BlockWriter {
  readonly #cache: BlockCache;
  readonly #retry: CasRetryOptions;
  readonly #now: () => number;
  readonly #queues = new Map<string, Pending[]>();
  /** Compare-and-swap writes sent (tests count them). */
  writes = 0;

  constructor(o: { cache: BlockCache; retry: CasRetryOptions; now: () => number }) {
    this.#cache = o.cache;
    this.#retry = o.retry;
    this.#now = o.now;
  }

  /** Applies `op` to block `name` in the next write of that block. */
  submit(name: string, op: BlockOp): Promise<BlockOutcome> {
    const { promise, resolve, reject } = Promise.withResolvers<BlockOutcome>();
    const q = this.#queues.get(name);
    if (q) q.push({ op, resolve, reject });
    else {
      this.#queues.set(name, [{ op, resolve, reject }]);
      this.#drain(name);
    }
    return promise;
  }

  /** Writes batches of `name` until its queue is empty. */
  async #drain(name: string): Promise<void> {
    const q = this.#queues.get(name)!;
    while (q.length > 0) {
      const batch = q.splice(0, q.length);
      try {
        const outcomes = await this.#write(name, batch.map((p) => p.op));
        batch.forEach((p, i) => p.resolve(outcomes[i]));
      } catch (e) {
        for (const p of batch) p.reject(e);
      }
    }
    this.#queues.delete(name);
  }

  #write(name: string, ops: BlockOp[]): Promise<BlockOutcome[]> {
    let fresh = ops.some((o) => o.kind === "release" && o.fresh);
    return casRetry(`write IPAMBlock "${name}"`, this.#retry, async () => {
      const held = fresh ? undefined : this.#cache.peek(name);
      let cur = held ?? await this.#cache.read(name);
      let wasFresh = held === undefined;
      // Any retry (a conflict) starts from a fresh read.
      fresh = true;
      let plan = this.#apply(cur, ops);
      if (!wasFresh && plan.outcomes.some((o) => o.kind === "lost")) {
        cur = await this.#cache.read(name);
        wasFresh = true;
        plan = this.#apply(cur, ops);
      }
      if (!cur || !plan.spec || plan.spec === cur.spec) {
        return plan.outcomes.map((o) => fill(o, cur));
      }
      let written: Block;
      try {
        this.writes++;
        written = await this.#cache.update({ ...cur, spec: plan.spec });
      } catch (e) {
        if (e instanceof NotFoundError) {
          // Deleted meanwhile: decide again on what a fresh read says (nothing).
          this.#cache.forget(name);
          return this.#apply(undefined, ops).outcomes;
        }
        throw e;
      }
      return plan.outcomes.map((o) => fill(o, written));
    });
  }

  /** The batch applied in order to `cur` (undefined: the block is gone). */
  #apply(
    cur: Block | undefined,
    ops: BlockOp[],
  ): { spec: BlockSpec | undefined; outcomes: BlockOutcome[] } {
    let spec = cur?.spec;
    const now = this.#now();
    const outcomes = ops.map((op): BlockOutcome => {
      if (!spec) {
        return op.kind === "release"
          ? { kind: "released", released: [], kept: [], left: 0 }
          : { kind: "lost", reason: "gone" };
      }
      switch (op.kind) {
        case "assign": {
          const holder = holderOf(spec, op.ordinal);
          if (holder?.handle_id === op.handle) {
            return { kind: "assigned", block: cur!, sequence: holder.sequence };
          }
          if (holder) return { kind: "lost", reason: "held", holder };
          if (spec.deleted) return { kind: "lost", reason: "deleted" };
          const r = assignOrdinal(spec, op);
          spec = r.spec;
          return { kind: "assigned", block: cur!, sequence: r.sequence };
        }
        case "release": {
          const r = releaseOrdinals(spec, { ...op, now });
          spec = r.spec;
          return {
            kind: "released",
            released: r.released,
            kept: r.kept,
            left: allocationsOf(spec, op.handle).length,
          };
        }
        case "claim": {
          if (spec.affinity === op.affinity) {
            return { kind: "claimed", block: cur!, changed: false };
          }
          if (spec.affinity !== null || spec.deleted) return { kind: "lost", reason: "claimed" };
          spec = { ...spec, affinity: op.affinity };
          return { kind: "claimed", block: cur!, changed: true };
        }
      }
    });
    return { spec, outcomes };
  }
}

/** An outcome with the block it was written to (and, for a refusal, the copy it was read from). */
function fill(o: BlockOutcome, b: Block | undefined): BlockOutcome {
  if (o.kind === "assigned" || o.kind === "claimed") return { ...o, block: b! };
  if (o.kind === "lost") return b ? { ...o, block: b } : o;
  return o;
}

/** `IpInUseError` naming the holder's pod. */
export function ipInUse(
  ip: string,
  holder: { handle_id: string; secondary: Record<string, string> },
): IpInUseError {
  return new IpInUseError(ip, {
    handle: holder.handle_id,
    ...pickDefined(holder.secondary, ["namespace", "pod", "node"]),
  });
}

/** A fixed IP the writer refused (decided on a fresh read) as the caller's error. */
export function throwIfRefused(ip: string, out: BlockOutcome, block: string): void {
  if (out.kind !== "lost") return;
  if (out.reason === "held" && out.holder) {
    if (out.holder.handle_id === RESERVED_HANDLE) {
      throw new IpReservedError(ip, block, out.holder.secondary.note ?? "reserved");
    }
    throw ipInUse(ip, out.holder);
  }
  if (out.reason === "deleted") {
    throw new IpOutsidePoolsError(ip, [block], `its block "${block}" is being deleted`);
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
