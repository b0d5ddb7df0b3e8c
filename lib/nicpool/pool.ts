/**
 * The warm NIC pool of one node: keeps between poolLow and poolHigh free NICs in the node's vxnet,
 * never more than maxNic in all, creates and attaches in batches (one CreateNics with `count`, one
 * AttachNics for many NICs), hands NICs to ADDs and takes them back on DEL.
 *
 * Invariants:
 * - A NIC record is written (state `creating`/`attaching`) before the cloud call that creates or
 *   attaches it is reported done, and every NIC is created with the owner name `hostnic_<instance>`
 *   (and the configured tag) so it can be found again after a crash.
 * - A NIC in state `inuse` is never detached or deleted by the pool.
 * - An ADD that finds the pool empty waits for the batch in flight (bounded by `allocTimeoutMs`)
 *   instead of starting its own; the batch is sized for every waiter at once, and while ADDs keep
 *   coming batches are spaced out so that each gathers more of them; a burst never creates more
 *   NICs than ADDs waiting plus poolHigh.
 * - State changes happen synchronously in memory (no await between the check and the change), so
 *   two concurrent ADDs can never take the same NIC.
 * - A released IP cools down (`ipCooldownMs`, persisted as `releasedAt`, so it holds across
 *   restarts) before another pod gets it; free NICs are handed out longest-released first.
 */
import {
  batchSpacingMs,
  nextTable,
  nicKey,
  type NicRecord,
  planPool,
  withoutUndefined,
} from "./model.ts";
import { type PoolDeps, PoolError, type PoolOptions } from "./contracts.ts";

export * from "./contracts.ts";

/**
 * A second batch may start while one is attaching (refills during bursts); more start only for
 * waiting ADDs that the batches in flight cannot serve, else they would only multiply API calls.
 */
const MAX_BATCHES_IN_FLIGHT = 2;

interface Waiter {
  resolve: (nic: NicRecord) => void;
  reject: (err: Error) => void;
  owner: string;
  timer: ReturnType<typeof setTimeout>;
}

export class NicPool {
  readonly #deps: PoolDeps;
  readonly #opts: PoolOptions;
  readonly #nics = new Map<string, NicRecord>();
  readonly #waiters: Waiter[] = [];
  #vxnetInfo?: { id: string; cidr: string; gateway: string };
  #reconciling = false;
  #again = false;
  #closed = false;
  #lastError?: string;
  #kickTimer?: ReturnType<typeof setTimeout>;
  #kickDone?: () => void;
  #coolTimer?: ReturnType<typeof setTimeout>;
  #batches = 0;
  /** Consecutive failed batches, and when the next may start (exponential backoff). */
  #failures = 0;
  #retryAt = 0;
  /** Batches started in a row while ADDs waited, and when an ADD last asked for a NIC. */
  #streak = 0;
  #lastDemand = 0;
  /** When the last batch started, and the timer that starts the next one when it is due. */
  #lastBatchAt = -Infinity;
  #batchTimer?: ReturnType<typeof setTimeout>;
  /** When a pod last gave a pool NIC back (trimming waits for releases to stop too). */
  #lastRelease = 0;
  readonly #inflight = new Set<Promise<void>>();
  /** NICs a detach is running for right now (a retry must not start a second one). */
  readonly #detachingNow = new Set<string>();

  constructor(deps: PoolDeps, opts: PoolOptions) {
    this.#deps = deps;
    this.#opts = opts;
  }

  get nicName(): string {
    return `hostnic_${this.#opts.instanceId}`;
  }

  get options(): Readonly<PoolOptions> {
    return this.#opts;
  }

  /** Last error of a pool batch, for health reporting. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** Loads records recovered by start-up (already reconciled with cloud and kernel). */
  load(records: Iterable<NicRecord>): void {
    for (const r of records) this.#nics.set(r.id, { ...r });
  }

  list(): NicRecord[] {
    return [...this.#nics.values()].sort((a, b) => a.table - b.table);
  }

  get(id: string): NicRecord | undefined {
    const r = this.#nics.get(id);
    return r && { ...r };
  }

  counts(): {
    free: number;
    cooling: number;
    pending: number;
    total: number;
    inuse: number;
    waiters: number;
  } {
    let free = 0, cooling = 0, pending = 0, inuse = 0;
    const now = this.#now();
    for (const n of this.#nics.values()) {
      if (!this.#pooled(n)) {
        if (n.state === "inuse") inuse++;
        continue;
      }
      if (n.state === "free") {
        free++;
        if (this.#coolsUntil(n) > now) cooling++;
      } else if (n.state === "creating" || n.state === "attaching") pending++;
      else if (n.state === "inuse") inuse++;
    }
    return { free, cooling, pending, inuse, total: this.#nics.size, waiters: this.#waiters.length };
  }

  /**
   * Takes a free pool NIC for `owner`, waiting for the batch in flight when the pool is empty.
   * The NIC is marked in use and persisted before this resolves.
   */
  async acquire(owner: string): Promise<NicRecord> {
    if (!this.#opts.vxnet) {
      throw new PoolError(
        "NO_POOL_VXNET",
        "This node has no pool vxnet: set --vxnets / pool.vxNets or annotate the node with " +
          '"hostnic.network.kubesphere.io/vxnet", or give the pod a vxnet annotation',
        { retryable: false },
      );
    }
    this.#lastDemand = this.#now();
    const nic = this.#takeFree(owner) ?? await this.#wait(owner);
    try {
      await this.#persist(nic);
    } catch (err) {
      this.#setState(nic, "free", undefined);
      throw err;
    }
    this.kick();
    return { ...nic };
  }

  /**
   * Creates a NIC for one pod (a vxnet other than the pool's, or a fixed IP) and attaches it.
   * Deleted again on release.
   */
  async acquireDedicated(
    owner: string,
    o: { vxnet: string; ip?: string; disableIp?: boolean },
  ): Promise<NicRecord> {
    if (this.#nics.size >= this.#opts.maxNic) {
      throw new PoolError(
        "MAX_NIC",
        `This node already holds maxNic=${this.#opts.maxNic} NICs; raise pool.maxNic or free some`,
        { retryable: true },
      );
    }
    const [nic] = await this.#createBatch({
      vxnet: o.vxnet,
      count: 1,
      privateIps: o.ip ? [o.ip] : undefined,
      disableIp: o.disableIp,
      dedicated: true,
      owner,
    });
    return { ...nic };
  }

  /**
   * Takes a NIC that cannot serve pods out of the pool (its link is not on the node: lost with a
   * deleted pod namespace, or gone from the kernel): detached and deleted instead of going back
   * to the pool, where it would fail every pod it is handed to. The pool refills.
   */
  async discard(id: string): Promise<void> {
    const nic = this.#nics.get(id);
    if (!nic || nic.state === "detaching") return;
    this.#setState(nic, "detaching", undefined);
    await this.#persist(nic);
    this.#track(this.#detach([nic]));
    this.kick();
  }

  /** Gives the NIC back: pool NICs become free, dedicated ones are detached and deleted. */
  async release(id: string): Promise<void> {
    const nic = this.#nics.get(id);
    if (!nic) return;
    if (!this.#pooled(nic)) {
      this.#setState(nic, "detaching", undefined);
      await this.#persist(nic);
      this.#track(this.#detach([nic]));
      return;
    }
    nic.releasedAt = this.#now();
    this.#lastRelease = nic.releasedAt;
    this.#setState(nic, "free", undefined);
    await this.#persist(nic);
    // A waiter gets it at once only when cooldown allows (no cooldown, or nothing else to give).
    this.#serveWaiters();
    this.kick();
  }

  /**
   * Schedules a reconcile pass. Passes are coalesced over `batchDelayMs` so that a burst of ADDs
   * arriving together is served by one CreateNics/AttachNics pair sized for all of them.
   */
  kick(): void {
    if (this.#closed) return;
    if (this.#reconciling) {
      this.#again = true;
      return;
    }
    if (this.#kickTimer !== undefined) return;
    this.#track(
      new Promise<void>((resolve) => {
        this.#kickDone = resolve;
        this.#kickTimer = setTimeout(() => {
          this.#kickTimer = undefined;
          this.#kickDone = undefined;
          this.reconcile().finally(resolve);
        }, this.#opts.batchDelayMs ?? 30);
      }),
    );
  }

  /** One sizing pass: create a batch for the deficit, trim the excess. */
  async reconcile(): Promise<void> {
    if (this.#reconciling || this.#closed) return;
    this.#reconciling = true;
    try {
      do {
        this.#again = false;
        if (!this.#opts.vxnet) return;
        this.#serveWaiters();
        const counts = this.counts();
        // A burst whose pods arrive spread out has moments without waiters: the batch size only
        // falls back once demand has been quiet for trimDelayMs.
        const trimDelay = this.#opts.trimDelayMs ?? 0;
        const idle = this.#now() - this.#lastDemand >= trimDelay;
        if (idle && counts.waiters === 0) this.#streak = 0;
        const released = this.#now() - this.#lastRelease >= trimDelay;
        const plan = planPool(counts, this.#opts, { streak: this.#streak, idle: idle && released });
        if (plan.trim > 0) {
          // Only cooled NICs: deleting one in cooldown would give its IP back to the cloud,
          // which may hand it to another pod at once.
          const now = this.#now();
          const victims = [...this.#nics.values()]
            .filter((n) =>
              n.state === "free" && this.#pooled(n) &&
              this.#coolsUntil(n) <= now
            )
            .slice(0, plan.trim);
          for (const v of victims) this.#setState(v, "detaching", undefined);
          await this.#persistAll(victims);
          this.#track(this.#detach(victims));
        }
        // Beyond MAX_BATCHES_IN_FLIGHT a batch starts only for ADDs that the batches in flight
        // cannot serve (a burst that outgrew them), not for refills.
        const uncovered = counts.waiters > counts.pending;
        // While ADDs keep waiting, batches are spaced out so each gathers the pods arriving
        // meanwhile (model.ts `batchSpacingMs`); refills without waiters are not held back.
        const due = this.#lastBatchAt + (counts.waiters > 0 ? batchSpacingMs(this.#streak) : 0);
        const ready = plan.create > 0 && (this.#batches < MAX_BATCHES_IN_FLIGHT || uncovered) &&
          this.#now() >= this.#retryAt;
        if (ready && this.#now() < due) this.#kickAt(due);
        if (ready && this.#now() >= due) {
          this.#lastBatchAt = this.#now();
          if (counts.waiters > 0) this.#streak++;
          // Not awaited: waiters are served as soon as the batch lands; further kicks coalesce.
          this.#track(
            this.#createBatch({ vxnet: this.#opts.vxnet, count: plan.create, dedicated: false })
              .then(() => {}, () => {}),
          );
        }
      } while (this.#again);
    } finally {
      this.#reconciling = false;
    }
  }

  /** Waits for every batch in flight (tests, shutdown). */
  async settle(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  /** Detaches and deletes every free NIC (CleanUpCacheOnExit). */
  async drainFree(): Promise<void> {
    const free = [...this.#nics.values()].filter((n) => n.state === "free");
    for (const n of free) this.#setState(n, "detaching", undefined);
    await this.#persistAll(free);
    if (free.length) await this.#detach(free);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#kickTimer);
    clearTimeout(this.#coolTimer);
    clearTimeout(this.#batchTimer);
    this.#kickDone?.();
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(
        new PoolError("SHUTTING_DOWN", "The hostnic daemon is shutting down", { retryable: true }),
      );
    }
    await this.settle();
  }

  // ---- internals ----

  #takeFree(owner: string): NicRecord | undefined {
    const n = this.#nextFree();
    if (n) this.#setState(n, "inuse", owner);
    return n;
  }

  /** A NIC of the warm pool (the pool's vxnet, not created for one pod). */
  #pooled(n: NicRecord): boolean {
    return !n.dedicated && n.vxnet === this.#opts.vxnet;
  }

  /** End of a NIC's IP cooldown (0 when it never served a pod). */
  #coolsUntil(n: NicRecord): number {
    return n.releasedAt === undefined ? 0 : n.releasedAt + (this.#opts.ipCooldownMs ?? 0);
  }

  /**
   * The free pool NIC to hand out next: released longest ago first. A NIC in cooldown is skipped
   * (the ADD waits for a new one) unless the node already holds poolHigh free NICs or maxNic in
   * all: cooldown never makes a node grow past its high-water mark, so under fast churn the IP
   * released longest ago is reused instead of the pool filling the vxnet.
   */
  #nextFree(): NicRecord | undefined {
    let best: NicRecord | undefined;
    let free = 0;
    for (const n of this.#nics.values()) {
      if (n.state !== "free" || !this.#pooled(n)) continue;
      free++;
      if (!best || (n.releasedAt ?? 0) < (best.releasedAt ?? 0)) best = n;
    }
    if (!best || this.#coolsUntil(best) <= this.#now()) return best;
    const full = free >= this.#opts.poolHigh || this.#nics.size >= this.#opts.maxNic;
    return full ? best : undefined;
  }

  /** A reconcile pass at `at` (pool clock), unless one is already due then. */
  #kickAt(at: number): void {
    if (this.#batchTimer !== undefined || this.#closed) return;
    this.#batchTimer = setTimeout(() => {
      this.#batchTimer = undefined;
      this.kick();
    }, Math.max(0, at - this.#now()));
  }

  /** With ADDs waiting and NICs cooling, look again when the first of them has cooled. */
  #wakeOnCooled(): void {
    if (this.#waiters.length === 0 || this.#coolTimer !== undefined || this.#closed) return;
    let first = Infinity;
    const now = this.#now();
    for (const n of this.#nics.values()) {
      if (n.state !== "free" || !this.#pooled(n)) continue;
      const until = this.#coolsUntil(n);
      if (until > now) first = Math.min(first, until);
    }
    if (first === Infinity) return;
    this.#coolTimer = setTimeout(() => {
      this.#coolTimer = undefined;
      this.kick();
    }, first - now + 1);
  }

  #wait(owner: string): Promise<NicRecord> {
    return new Promise<NicRecord>((resolve, reject) => {
      const w: Waiter = {
        owner,
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.#waiters.indexOf(w);
          if (i >= 0) this.#waiters.splice(i, 1);
          const why = this.#lastError ? ` Last pool error: ${this.#lastError}` : "";
          reject(
            new PoolError(
              "POOL_TIMEOUT",
              `No free NIC became available within ${
                Math.round(this.#opts.allocTimeoutMs / 1000)
              } s (pool of vxnet "${this.#opts.vxnet}").${why}`,
              { retryable: true },
            ),
          );
        }, this.#opts.allocTimeoutMs),
      };
      this.#waiters.push(w);
      this.kick();
    });
  }

  /** Hands free pool NICs (freshly attached, released, or cooled) to waiters, oldest first. */
  #serveWaiters(): void {
    while (this.#waiters.length > 0) {
      const nic = this.#nextFree();
      if (!nic) {
        this.#wakeOnCooled();
        return;
      }
      const w = this.#waiters.shift()!;
      clearTimeout(w.timer);
      this.#setState(nic, "inuse", w.owner);
      w.resolve(nic);
    }
  }

  async #vxnet(id: string): Promise<{ id: string; cidr: string; gateway: string }> {
    if (this.#vxnetInfo?.id === id) return this.#vxnetInfo;
    const info = await this.#deps.cloud.describeVxnet(id);
    if (id === this.#opts.vxnet) this.#vxnetInfo = info;
    return info;
  }

  async #createBatch(
    o: {
      vxnet: string;
      count: number;
      privateIps?: string[];
      disableIp?: boolean;
      dedicated: boolean;
      owner?: string;
    },
  ): Promise<NicRecord[]> {
    const { cloud, logger } = this.#deps;
    const now = this.#now();
    this.#batches++;
    // Reserve the slots now so concurrent passes see them as pending and respect maxNic.
    const placeholders: NicRecord[] = [];
    for (let i = 0; i < o.count; i++) {
      const ph: NicRecord = {
        id: `pending-${crypto.randomUUID()}`,
        vxnet: o.vxnet,
        ip: "",
        cidr: "",
        gateway: "",
        table: 0,
        state: "creating",
        dedicated: o.dedicated,
        createdAt: now,
        updatedAt: now,
      };
      this.#nics.set(ph.id, ph);
      placeholders.push(ph);
    }
    let created: NicRecord[] = [];
    try {
      const vx = await this.#vxnet(o.vxnet);
      const nics = await cloud.createNics({
        vxnet: o.vxnet,
        count: o.count,
        nicName: this.nicName,
        privateIps: o.privateIps,
        ...(o.disableIp ? { disableIp: true } : {}),
      });
      for (const ph of placeholders) this.#nics.delete(ph.id);
      placeholders.length = 0;
      created = nics.map((n) => {
        const rec: NicRecord = {
          id: n.id,
          vxnet: o.vxnet,
          ip: n.ip,
          cidr: vx.cidr,
          gateway: vx.gateway,
          table: nextTable(this.#nics.values(), this.#opts.routeTableBase),
          state: "attaching",
          dedicated: o.dedicated,
          owner: o.owner,
          createdAt: now,
          updatedAt: now,
        };
        this.#nics.set(rec.id, rec);
        return rec;
      });
      await this.#persistAll(created);
      if (this.#opts.tag) {
        await cloud.tagNics(created.map((n) => n.id), this.#opts.tag).catch((err) =>
          logger.warn("tagging NICs failed; they are still found by name", {
            err: String(err),
            nics: created.map((n) => n.id),
          })
        );
      }
      const jobId = await cloud.attachNics(created.map((n) => n.id), this.#opts.instanceId);
      for (const n of created) n.jobId = jobId;
      await this.#persistAll(created);
      await cloud.waitJob(jobId, this.#opts.jobTimeoutMs);
      await this.#deps.links.waitForMacs(created.map((n) => n.id), this.#opts.jobTimeoutMs);
      for (const n of created) {
        n.jobId = undefined;
        this.#setState(n, o.owner ? "inuse" : "free", o.owner);
      }
      await this.#persistAll(created);
      this.#lastError = undefined;
      this.#failures = 0;
      this.#retryAt = 0;
      logger.info("NICs attached", {
        nics: created.map((n) => n.id),
        vxnet: o.vxnet,
        dedicated: o.dedicated,
      });
      this.#serveWaiters();
      this.kick();
      return created;
    } catch (err) {
      for (const ph of placeholders) this.#nics.delete(ph.id);
      const why = err instanceof Error ? err.message : String(err);
      logger.error("creating/attaching NICs failed", { err: why, vxnet: o.vxnet, owner: o.owner });
      if (created.length) {
        for (const n of created) this.#setState(n, "detaching", undefined);
        await this.#persistAll(created).catch(() => {});
        this.#track(this.#detach(created));
      }
      // A dedicated NIC's failure (one pod's taken IP, say) is that pod's error: it neither marks
      // the pool unhealthy nor delays the pool's refills.
      if (!o.dedicated) {
        this.#lastError = why;
        // Back off before the next batch (the cloud client already retried transient errors),
        // so a lasting failure (quota, permissions) does not turn into a storm of CreateNics
        // calls; a waiter is retried for at the end of the backoff rather than at its timeout.
        this.#failures++;
        const delay = Math.min(30_000, 1000 * 2 ** (this.#failures - 1));
        this.#retryAt = this.#now() + delay;
        if (this.#waiters.length > 0 && !this.#closed) setTimeout(() => this.kick(), delay);
      }
      throw new PoolError("IAAS_FAILED", `Could not create and attach a NIC: ${why}`, {
        retryable: true,
        cause: err,
      });
    } finally {
      this.#batches--;
      this.#deps.onChange?.();
    }
  }

  /**
   * Detaches (those attached here) and deletes NICs; records are removed once the NICs are gone.
   * Asks the cloud where each NIC is first, so a NIC whose attach never happened is only deleted.
   * Failures leave the NICs in state "detaching" for the repair loop.
   */
  async #detach(nics: NicRecord[]): Promise<void> {
    const { cloud, logger } = this.#deps;
    const ids = nics.map((n) => n.id);
    for (const id of ids) this.#detachingNow.add(id);
    try {
      const where = await cloud.nicStatus(ids);
      const attached = ids.filter((id) => {
        const w = where.get(id);
        return w?.status === "in-use" && w.instance === this.#opts.instanceId;
      });
      const foreign = ids.filter((id) => {
        const w = where.get(id);
        return w?.status === "in-use" && w.instance !== this.#opts.instanceId;
      });
      if (attached.length > 0) {
        const jobId = await cloud.detachNics(attached);
        for (const n of nics) if (attached.includes(n.id)) n.jobId = jobId;
        await this.#persistAll(nics);
        await cloud.waitJob(jobId, this.#opts.jobTimeoutMs);
      }
      const deletable = ids.filter((id) => where.has(id) && !foreign.includes(id));
      if (deletable.length > 0) await cloud.deleteNics(deletable);
      // Gone, deleted, or attached elsewhere (not ours to delete any more): forget them.
      for (const id of ids) this.#nics.delete(id);
      await this.#deps.store.batch(ids.map((id) => ({ type: "del" as const, key: nicKey(id) })));
      if (foreign.length) {
        logger.warn("NICs attached to another instance were forgotten", { foreign });
      }
      logger.info("NICs detached and deleted", { nics: ids });
    } catch (err) {
      logger.warn("detaching/deleting NICs failed; will retry", { nics: ids, err: String(err) });
    } finally {
      for (const id of ids) this.#detachingNow.delete(id);
      this.#deps.onChange?.();
    }
  }

  /** Takes an owned NIC found attached here but unknown to the store (GC) into the pool. */
  async adopt(rec: NicRecord): Promise<void> {
    if (this.#nics.has(rec.id)) return;
    const n: NicRecord = {
      ...rec,
      table: nextTable(this.#nics.values(), this.#opts.routeTableBase),
      state: "free",
      owner: undefined,
      jobId: undefined,
    };
    this.#nics.set(n.id, n);
    await this.#persist(n);
    this.#deps.onChange?.();
    this.#serveWaiters();
  }

  /** Drops the record of a NIC that is gone from the cloud or now belongs elsewhere (GC). */
  async forget(id: string): Promise<void> {
    const n = this.#nics.get(id);
    if (!n || n.state === "inuse") return;
    this.#nics.delete(id);
    await this.#deps.store.batch([{ type: "del", key: nicKey(id) }]);
    this.#deps.onChange?.();
  }

  /**
   * Detaches (if attached here) and deletes NICs nobody uses: free pool records or owned cloud
   * NICs the store does not know (GC). NICs in use are never touched.
   */
  async collect(nics: { id: string; vxnet: string; ip: string }[]): Promise<void> {
    const victims: NicRecord[] = [];
    const now = this.#now();
    for (const c of nics) {
      const known = this.#nics.get(c.id);
      if (known && known.state !== "free" && known.state !== "detaching") continue;
      const n: NicRecord = known ?? {
        ...c,
        cidr: "",
        gateway: "",
        table: 0,
        state: "detaching",
        dedicated: false,
        createdAt: now,
        updatedAt: now,
      };
      this.#nics.set(n.id, n);
      this.#setState(n, "detaching", undefined);
      victims.push(n);
    }
    await this.#persistAll(victims);
    if (victims.length) await this.#detach(victims);
  }

  /** Retries detaching NICs stuck in "detaching" (all, or these ids), skipping those in flight. */
  async retryDetaching(ids?: string[]): Promise<void> {
    const stuck = [...this.#nics.values()].filter((n) =>
      n.state === "detaching" && !this.#detachingNow.has(n.id) && (!ids || ids.includes(n.id))
    );
    if (stuck.length) await this.#detach(stuck);
  }

  /** Cidr and gateway of a vxnet (cached for the pool's own). */
  vxnetInfo(id: string): Promise<{ id: string; cidr: string; gateway: string }> {
    return this.#vxnet(id);
  }

  #setState(n: NicRecord, state: NicRecord["state"], owner: string | undefined): void {
    n.state = state;
    n.owner = owner;
    n.updatedAt = this.#now();
    this.#deps.onChange?.();
  }

  #persist(n: NicRecord): Promise<void> {
    return this.#persistAll([n]);
  }

  #persistAll(ns: NicRecord[]): Promise<void> {
    if (ns.length === 0) return Promise.resolve();
    return this.#deps.store.batch(
      ns.map((n) => ({ type: "put" as const, key: nicKey(n.id), value: withoutUndefined(n) })),
    );
  }

  #track(p: Promise<void>): void {
    const t = p.finally(() => this.#inflight.delete(t));
    this.#inflight.add(t);
  }

  #now(): number {
    return (this.#deps.now ?? Date.now)();
  }
}
