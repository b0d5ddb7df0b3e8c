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
 *
 * This file is the pool's public face and its sizing pass (reconcile); the jobs it delegates live
 * beside it: records.ts (the record table, persistence, clock), waiters.ts (ADDs waiting for a
 * NIC, cooldown order), batch.ts (create/attach batches, backoff) and detach.ts (detach/delete).
 */
import { batchSpacingMs, nextTable, type NicRecord, planPool } from "./model.ts";
import { type PoolDeps, PoolError, type PoolOptions } from "./contracts.ts";
import { PoolBatches } from "./batch.ts";
import { PoolDetacher } from "./detach.ts";
import { PoolRecords } from "./records.ts";
import { PoolWaiters } from "./waiters.ts";

export * from "./contracts.ts";

/**
 * A second batch may start while one is attaching (refills during bursts); more start only for
 * waiting ADDs that the batches in flight cannot serve, else they would only multiply API calls.
 */
const MAX_BATCHES_IN_FLIGHT = 2;

export class NicPool {
  readonly #rec: PoolRecords;
  readonly #waiters: PoolWaiters;
  readonly #detacher: PoolDetacher;
  readonly #batches: PoolBatches;
  #reconciling = false;
  #again = false;
  #kickTimer?: ReturnType<typeof setTimeout>;
  #kickDone?: () => void;
  /** Batches started in a row while ADDs waited, and when an ADD last asked for a NIC. */
  #streak = 0;
  #lastDemand = 0;
  /** When the last batch started, and the timer that starts the next one when it is due. */
  #lastBatchAt = -Infinity;
  #batchTimer?: ReturnType<typeof setTimeout>;
  /** When a pod last gave a pool NIC back (trimming waits for releases to stop too). */
  #lastRelease = 0;

  constructor(deps: PoolDeps, opts: PoolOptions) {
    this.#rec = new PoolRecords(deps, opts);
    const kick = () => this.kick();
    this.#waiters = new PoolWaiters(this.#rec, { kick, lastError: () => this.lastError });
    this.#detacher = new PoolDetacher(this.#rec);
    this.#batches = new PoolBatches(this.#rec, this.#waiters, this.#detacher, kick);
  }

  get nicName(): string {
    return this.#rec.nicName;
  }

  get options(): Readonly<PoolOptions> {
    return this.#rec.opts;
  }

  /** Last error of a pool batch, for health reporting. */
  get lastError(): string | undefined {
    return this.#batches.lastError;
  }

  /** Loads records recovered by start-up (already reconciled with cloud and kernel). */
  load(records: Iterable<NicRecord>): void {
    for (const r of records) this.#rec.nics.set(r.id, { ...r });
  }

  list(): NicRecord[] {
    return [...this.#rec.nics.values()].sort((a, b) => a.table - b.table);
  }

  get(id: string): NicRecord | undefined {
    const r = this.#rec.nics.get(id);
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
    const rec = this.#rec;
    let free = 0, cooling = 0, pending = 0, inuse = 0;
    const now = rec.now();
    for (const n of rec.nics.values()) {
      if (!rec.pooled(n)) {
        if (n.state === "inuse") inuse++;
        continue;
      }
      if (n.state === "free") {
        free++;
        if (rec.coolsUntil(n) > now) cooling++;
      } else if (n.state === "creating" || n.state === "attaching") pending++;
      else if (n.state === "inuse") inuse++;
    }
    return { free, cooling, pending, inuse, total: rec.nics.size, waiters: this.#waiters.size };
  }

  /**
   * Takes a free pool NIC for `owner`, waiting for the batch in flight when the pool is empty.
   * The NIC is marked in use and persisted before this resolves.
   */
  async acquire(owner: string): Promise<NicRecord> {
    const rec = this.#rec;
    if (!rec.opts.vxnet) {
      throw new PoolError(
        "NO_POOL_VXNET",
        "This node has no pool vxnet: set --vxnets / pool.vxNets or annotate the node with " +
          '"hostnic.network.kubesphere.io/vxnet", or give the pod a vxnet annotation',
        { retryable: false },
      );
    }
    this.#lastDemand = rec.now();
    const nic = this.#waiters.takeFree(owner) ?? await this.#waiters.wait(owner);
    try {
      await rec.persist(nic);
    } catch (err) {
      rec.setState(nic, "free", undefined);
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
    const maxNic = this.#rec.opts.maxNic;
    if (this.#rec.nics.size >= maxNic) {
      throw new PoolError(
        "MAX_NIC",
        `This node already holds maxNic=${maxNic} NICs; raise pool.maxNic or free some`,
        { retryable: true },
      );
    }
    const [nic] = await this.#batches.create({
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
    const rec = this.#rec;
    const nic = rec.nics.get(id);
    if (!nic || nic.state === "detaching") return;
    rec.setState(nic, "detaching", undefined);
    await rec.persist(nic);
    rec.track(this.#detacher.detach([nic]));
    this.kick();
  }

  /** Gives the NIC back: pool NICs become free, dedicated ones are detached and deleted. */
  async release(id: string): Promise<void> {
    const rec = this.#rec;
    const nic = rec.nics.get(id);
    if (!nic) return;
    if (!rec.pooled(nic)) {
      rec.setState(nic, "detaching", undefined);
      await rec.persist(nic);
      rec.track(this.#detacher.detach([nic]));
      return;
    }
    nic.releasedAt = rec.now();
    this.#lastRelease = nic.releasedAt;
    rec.setState(nic, "free", undefined);
    await rec.persist(nic);
    // A waiter gets it at once only when cooldown allows (no cooldown, or nothing else to give).
    this.#waiters.serve();
    this.kick();
  }

  /**
   * Schedules a reconcile pass. Passes are coalesced over `batchDelayMs` so that a burst of ADDs
   * arriving together is served by one CreateNics/AttachNics pair sized for all of them.
   */
  kick(): void {
    if (this.#rec.closed) return;
    if (this.#reconciling) {
      this.#again = true;
      return;
    }
    if (this.#kickTimer !== undefined) return;
    this.#rec.track(
      new Promise<void>((resolve) => {
        this.#kickDone = resolve;
        this.#kickTimer = setTimeout(() => {
          this.#kickTimer = undefined;
          this.#kickDone = undefined;
          this.reconcile().finally(resolve);
        }, this.#rec.opts.batchDelayMs ?? 30);
      }),
    );
  }

  /** One sizing pass: create a batch for the deficit, trim the excess. */
  async reconcile(): Promise<void> {
    const rec = this.#rec;
    const opts = rec.opts;
    if (this.#reconciling || rec.closed) return;
    this.#reconciling = true;
    try {
      do {
        this.#again = false;
        if (!opts.vxnet) return;
        this.#waiters.serve();
        const counts = this.counts();
        // A burst whose pods arrive spread out has moments without waiters: the batch size only
        // falls back once demand has been quiet for trimDelayMs.
        const trimDelay = opts.trimDelayMs ?? 0;
        const idle = rec.now() - this.#lastDemand >= trimDelay;
        if (idle && counts.waiters === 0) this.#streak = 0;
        const released = rec.now() - this.#lastRelease >= trimDelay;
        const plan = planPool(counts, opts, { streak: this.#streak, idle: idle && released });
        if (plan.trim > 0) {
          // Only cooled NICs: deleting one in cooldown would give its IP back to the cloud,
          // which may hand it to another pod at once.
          const now = rec.now();
          const victims = [...rec.nics.values()]
            .filter((n) =>
              n.state === "free" && rec.pooled(n) &&
              rec.coolsUntil(n) <= now
            )
            .slice(0, plan.trim);
          for (const v of victims) rec.setState(v, "detaching", undefined);
          await rec.persistAll(victims);
          rec.track(this.#detacher.detach(victims));
        }
        // Beyond MAX_BATCHES_IN_FLIGHT a batch starts only for ADDs that the batches in flight
        // cannot serve (a burst that outgrew them), not for refills.
        const uncovered = counts.waiters > counts.pending;
        // While ADDs keep waiting, batches are spaced out so each gathers the pods arriving
        // meanwhile (model.ts `batchSpacingMs`); refills without waiters are not held back.
        const due = this.#lastBatchAt + (counts.waiters > 0 ? batchSpacingMs(this.#streak) : 0);
        const ready = plan.create > 0 &&
          (this.#batches.inFlight < MAX_BATCHES_IN_FLIGHT || uncovered) &&
          rec.now() >= this.#batches.retryAt;
        if (ready && rec.now() < due) this.#kickAt(due);
        if (ready && rec.now() >= due) {
          this.#lastBatchAt = rec.now();
          if (counts.waiters > 0) this.#streak++;
          // Not awaited: waiters are served as soon as the batch lands; further kicks coalesce.
          rec.track(
            this.#batches.create({ vxnet: opts.vxnet, count: plan.create, dedicated: false })
              .then(() => {}, () => {}),
          );
        }
      } while (this.#again);
    } finally {
      this.#reconciling = false;
    }
  }

  /** Waits for every batch in flight (tests, shutdown). */
  settle(): Promise<void> {
    return this.#rec.settle();
  }

  /** Detaches and deletes every free NIC (CleanUpCacheOnExit). */
  async drainFree(): Promise<void> {
    const rec = this.#rec;
    const free = [...rec.nics.values()].filter((n) => n.state === "free");
    for (const n of free) rec.setState(n, "detaching", undefined);
    await rec.persistAll(free);
    if (free.length) await this.#detacher.detach(free);
  }

  async close(): Promise<void> {
    this.#rec.closed = true;
    clearTimeout(this.#kickTimer);
    clearTimeout(this.#batchTimer);
    this.#kickDone?.();
    this.#waiters.close();
    await this.#rec.settle();
  }

  /** Takes an owned NIC found attached here but unknown to the store (GC) into the pool. */
  async adopt(r: NicRecord): Promise<void> {
    const rec = this.#rec;
    if (rec.nics.has(r.id)) return;
    const n: NicRecord = {
      ...r,
      table: nextTable(rec.nics.values(), rec.opts.routeTableBase),
      state: "free",
      owner: undefined,
      jobId: undefined,
    };
    rec.nics.set(n.id, n);
    await rec.persist(n);
    rec.changed();
    this.#waiters.serve();
  }

  /** Drops the record of a NIC that is gone from the cloud or now belongs elsewhere (GC). */
  async forget(id: string): Promise<void> {
    const rec = this.#rec;
    const n = rec.nics.get(id);
    if (!n || n.state === "inuse") return;
    rec.nics.delete(id);
    await rec.unpersist([id]);
    rec.changed();
  }

  /**
   * Detaches (if attached here) and deletes NICs nobody uses: free pool records or owned cloud
   * NICs the store does not know (GC). NICs in use are never touched.
   */
  async collect(nics: { id: string; vxnet: string; ip: string }[]): Promise<void> {
    const rec = this.#rec;
    const victims: NicRecord[] = [];
    const now = rec.now();
    for (const c of nics) {
      const known = rec.nics.get(c.id);
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
      rec.nics.set(n.id, n);
      rec.setState(n, "detaching", undefined);
      victims.push(n);
    }
    await rec.persistAll(victims);
    if (victims.length) await this.#detacher.detach(victims);
  }

  /** Retries detaching NICs stuck in "detaching" (all, or these ids), skipping those in flight. */
  retryDetaching(ids?: string[]): Promise<void> {
    return this.#detacher.retry(ids);
  }

  /** Cidr and gateway of a vxnet (cached for the pool's own). */
  vxnetInfo(id: string): Promise<{ id: string; cidr: string; gateway: string }> {
    return this.#batches.vxnet(id);
  }

  /** A reconcile pass at `at` (pool clock), unless one is already due then. */
  #kickAt(at: number): void {
    if (this.#batchTimer !== undefined || this.#rec.closed) return;
    this.#batchTimer = setTimeout(() => {
      this.#batchTimer = undefined;
      this.kick();
    }, Math.max(0, at - this.#rec.now()));
  }
}
