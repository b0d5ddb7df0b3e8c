/**
 * ADDs waiting for a pool NIC: who gets which free NIC, in what order, and when a waiter gives up.
 *
 * - Free NICs are handed out longest-released first; a NIC whose IP is cooling down is skipped
 *   (the ADD waits for a new one) unless the node is full (poolHigh free, or maxNic in all).
 * - Waiters are served oldest first as NICs land, come back or cool; each waits at most
 *   `allocTimeoutMs` and then fails with a retryable POOL_TIMEOUT naming the last pool error.
 */
import type { NicRecord } from "./model.ts";
import { PoolError } from "./contracts.ts";
import type { PoolRecords } from "./records.ts";

interface Waiter {
  resolve: (nic: NicRecord) => void;
  reject: (err: Error) => void;
  owner: string;
  timer: ReturnType<typeof setTimeout>;
}

export interface WaiterHooks {
  /** Schedules a reconcile pass (the pool's kick). */
  kick: () => void;
  /** The last batch error, quoted when a waiter times out. */
  lastError: () => string | undefined;
}

export class PoolWaiters {
  readonly #rec: PoolRecords;
  readonly #hooks: WaiterHooks;
  readonly #waiters: Waiter[] = [];
  #coolTimer?: ReturnType<typeof setTimeout>;

  constructor(rec: PoolRecords, hooks: WaiterHooks) {
    this.#rec = rec;
    this.#hooks = hooks;
  }

  /** How many ADDs are waiting. */
  get size(): number {
    return this.#waiters.length;
  }

  /** Takes the next free pool NIC for `owner` at once, if there is one to give. */
  takeFree(owner: string): NicRecord | undefined {
    const n = this.#nextFree();
    if (n) this.#rec.setState(n, "inuse", owner);
    return n;
  }

  /** Waits for a free pool NIC (bounded by allocTimeoutMs); starts a reconcile pass. */
  wait(owner: string): Promise<NicRecord> {
    const opts = this.#rec.opts;
    return new Promise<NicRecord>((resolve, reject) => {
      const w: Waiter = {
        owner,
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.#waiters.indexOf(w);
          if (i >= 0) this.#waiters.splice(i, 1);
          const lastError = this.#hooks.lastError();
          const why = lastError ? ` Last pool error: ${lastError}` : "";
          reject(
            new PoolError(
              "POOL_TIMEOUT",
              `No free NIC became available within ${
                Math.round(opts.allocTimeoutMs / 1000)
              } s (pool of vxnet "${opts.vxnet}").${why}`,
              { retryable: true },
            ),
          );
        }, opts.allocTimeoutMs),
      };
      this.#waiters.push(w);
      this.#hooks.kick();
    });
  }

  /** Hands free pool NICs (freshly attached, released, or cooled) to waiters, oldest first. */
  serve(): void {
    while (this.#waiters.length > 0) {
      const nic = this.#nextFree();
      if (!nic) {
        this.#wakeOnCooled();
        return;
      }
      const w = this.#waiters.shift()!;
      clearTimeout(w.timer);
      this.#rec.setState(nic, "inuse", w.owner);
      w.resolve(nic);
    }
  }

  /** Fails every waiter (shutdown) and stops the cooldown timer. */
  close(): void {
    clearTimeout(this.#coolTimer);
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(
        new PoolError("SHUTTING_DOWN", "The hostnic daemon is shutting down", { retryable: true }),
      );
    }
  }

  /**
   * The free pool NIC to hand out next: released longest ago first. A NIC in cooldown is skipped
   * (the ADD waits for a new one) unless the node already holds poolHigh free NICs or maxNic in
   * all: cooldown never makes a node grow past its high-water mark, so under fast churn the IP
   * released longest ago is reused instead of the pool filling the vxnet.
   */
  #nextFree(): NicRecord | undefined {
    const rec = this.#rec;
    let best: NicRecord | undefined;
    let free = 0;
    for (const n of rec.nics.values()) {
      if (n.state !== "free" || !rec.pooled(n)) continue;
      free++;
      if (!best || (n.releasedAt ?? 0) < (best.releasedAt ?? 0)) best = n;
    }
    if (!best || rec.coolsUntil(best) <= rec.now()) return best;
    const full = free >= rec.opts.poolHigh || rec.nics.size >= rec.opts.maxNic;
    return full ? best : undefined;
  }

  /** With ADDs waiting and NICs cooling, look again when the first of them has cooled. */
  #wakeOnCooled(): void {
    const rec = this.#rec;
    if (this.#waiters.length === 0 || this.#coolTimer !== undefined || rec.closed) return;
    let first = Infinity;
    const now = rec.now();
    for (const n of rec.nics.values()) {
      if (n.state !== "free" || !rec.pooled(n)) continue;
      const until = rec.coolsUntil(n);
      if (until > now) first = Math.min(first, until);
    }
    if (first === Infinity) return;
    this.#coolTimer = setTimeout(() => {
      this.#coolTimer = undefined;
      this.#hooks.kick();
    }, first - now + 1);
  }
}
