/**
 * The records of one node's NICs, shared by the pool's parts (lib/nicpool/pool.ts and the batch,
 * waiter and detach modules beside it): the in-memory table, its persistence, the pool's clock and
 * the promises in flight that `settle()` waits for.
 *
 * State changes are synchronous (no await between a check and `setState`), so two concurrent ADDs
 * can never take the same NIC.
 */
import { nicKey, type NicRecord, withoutUndefined } from "./model.ts";
import type { PoolDeps, PoolOptions } from "./contracts.ts";

export class PoolRecords {
  readonly deps: PoolDeps;
  readonly opts: PoolOptions;
  /** Every NIC of the node by id, pending placeholders included. */
  readonly nics = new Map<string, NicRecord>();
  /** Set once by close(): nothing new is scheduled after it. */
  closed = false;
  readonly #inflight = new Set<Promise<void>>();

  constructor(deps: PoolDeps, opts: PoolOptions) {
    this.deps = deps;
    this.opts = opts;
  }

  /** The name every NIC of this node is created with (found again by it after a crash). */
  get nicName(): string {
    return `hostnic_${this.opts.instanceId}`;
  }

  /** A NIC of the warm pool (the pool's vxnet, not created for one pod). */
  pooled(n: NicRecord): boolean {
    return !n.dedicated && n.vxnet === this.opts.vxnet;
  }

  /** End of a NIC's IP cooldown (0 when it never served a pod). */
  coolsUntil(n: NicRecord): number {
    return n.releasedAt === undefined ? 0 : n.releasedAt + (this.opts.ipCooldownMs ?? 0);
  }

  setState(n: NicRecord, state: NicRecord["state"], owner: string | undefined): void {
    n.state = state;
    n.owner = owner;
    n.updatedAt = this.now();
    this.changed();
  }

  /** Tells the daemon the pool changed (metrics, health). */
  changed(): void {
    this.deps.onChange?.();
  }

  persist(n: NicRecord): Promise<void> {
    return this.persistAll([n]);
  }

  persistAll(ns: NicRecord[]): Promise<void> {
    if (ns.length === 0) return Promise.resolve();
    return this.deps.store.batch(
      ns.map((n) => ({ type: "put" as const, key: nicKey(n.id), value: withoutUndefined(n) })),
    );
  }

  /** Removes the records of these NICs from the store (the map entries are the caller's). */
  unpersist(ids: string[]): Promise<void> {
    return this.deps.store.batch(ids.map((id) => ({ type: "del" as const, key: nicKey(id) })));
  }

  /** Keeps a promise in flight until it settles (settle() waits for all of them). */
  track(p: Promise<void>): void {
    const t = p.finally(() => this.#inflight.delete(t));
    this.#inflight.add(t);
  }

  /** Waits for every promise tracked (tests, shutdown). */
  async settle(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  now(): number {
    return (this.deps.now ?? Date.now)();
  }
}
