/**
 * Creating and attaching NICs in batches: one CreateNics with `count` and one AttachNics for all
 * of them, for the pool's refills and for one pod's dedicated NIC.
 *
 * - Slots are reserved (state `creating`) before the cloud call, so concurrent passes count them
 *   as pending and respect maxNic; records are written (state `attaching`) before the attach is
 *   reported done, with the owner name `hostnic_<instance>` and the configured tag.
 * - A failed pool batch marks the pool unhealthy (lastError) and backs off exponentially before
 *   the next; a failed dedicated NIC is only that pod's error. NICs of a failed batch are detached.
 */
import { nextTable, type NicRecord } from "./model.ts";
import { PoolError } from "./contracts.ts";
import type { PoolDetacher } from "./detach.ts";
import type { PoolRecords } from "./records.ts";
import type { PoolWaiters } from "./waiters.ts";

export interface BatchRequest {
  vxnet: string;
  count: number;
  privateIps?: string[];
  disableIp?: boolean;
  dedicated: boolean;
  owner?: string;
}

export interface VxnetInfo {
  id: string;
  cidr: string;
  gateway: string;
}

export class PoolBatches {
  readonly #rec: PoolRecords;
  readonly #waiters: PoolWaiters;
  readonly #detacher: PoolDetacher;
  readonly #kick: () => void;
  #vxnetInfo?: VxnetInfo;
  #inFlight = 0;
  #lastError?: string;
  /** Consecutive failed batches, and when the next may start (exponential backoff). */
  #failures = 0;
  #retryAt = 0;

  constructor(
    rec: PoolRecords,
    waiters: PoolWaiters,
    detacher: PoolDetacher,
    kick: () => void,
  ) {
    this.#rec = rec;
    this.#waiters = waiters;
    this.#detacher = detacher;
    this.#kick = kick;
  }

  /** Batches creating or attaching right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Last error of a pool batch, for health reporting. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** When the next pool batch may start after failures (pool clock; 0: now). */
  get retryAt(): number {
    return this.#retryAt;
  }

  /** Cidr and gateway of a vxnet (cached for the pool's own). */
  async vxnet(id: string): Promise<VxnetInfo> {
    if (this.#vxnetInfo?.id === id) return this.#vxnetInfo;
    const info = await this.#rec.deps.cloud.describeVxnet(id);
    if (id === this.#rec.opts.vxnet) this.#vxnetInfo = info;
    return info;
  }

  async create(o: BatchRequest): Promise<NicRecord[]> {
    const rec = this.#rec;
    const opts = rec.opts;
    const { cloud, logger } = rec.deps;
    const now = rec.now();
    this.#inFlight++;
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
      rec.nics.set(ph.id, ph);
      placeholders.push(ph);
    }
    let created: NicRecord[] = [];
    try {
      const vx = await this.vxnet(o.vxnet);
      const nics = await cloud.createNics({
        vxnet: o.vxnet,
        count: o.count,
        nicName: rec.nicName,
        privateIps: o.privateIps,
        ...(o.disableIp ? { disableIp: true } : {}),
      });
      for (const ph of placeholders) rec.nics.delete(ph.id);
      placeholders.length = 0;
      created = nics.map((n) => {
        const r: NicRecord = {
          id: n.id,
          vxnet: o.vxnet,
          ip: n.ip,
          cidr: vx.cidr,
          gateway: vx.gateway,
          table: nextTable(rec.nics.values(), opts.routeTableBase),
          state: "attaching",
          dedicated: o.dedicated,
          owner: o.owner,
          createdAt: now,
          updatedAt: now,
        };
        rec.nics.set(r.id, r);
        return r;
      });
      await rec.persistAll(created);
      if (opts.tag) {
        await cloud.tagNics(created.map((n) => n.id), opts.tag).catch((err) =>
          logger.warn("tagging NICs failed; they are still found by name", {
            err: String(err),
            nics: created.map((n) => n.id),
          })
        );
      }
      const jobId = await cloud.attachNics(created.map((n) => n.id), opts.instanceId);
      for (const n of created) n.jobId = jobId;
      await rec.persistAll(created);
      await cloud.waitJob(jobId, opts.jobTimeoutMs);
      await rec.deps.links.waitForMacs(created.map((n) => n.id), opts.jobTimeoutMs);
      for (const n of created) {
        n.jobId = undefined;
        rec.setState(n, o.owner ? "inuse" : "free", o.owner);
      }
      await rec.persistAll(created);
      this.#lastError = undefined;
      this.#failures = 0;
      this.#retryAt = 0;
      logger.info("NICs attached", {
        nics: created.map((n) => n.id),
        vxnet: o.vxnet,
        dedicated: o.dedicated,
      });
      this.#waiters.serve();
      this.#kick();
      return created;
    } catch (err) {
      for (const ph of placeholders) rec.nics.delete(ph.id);
      const why = err instanceof Error ? err.message : String(err);
      logger.error("creating/attaching NICs failed", { err: why, vxnet: o.vxnet, owner: o.owner });
      if (created.length) {
        for (const n of created) rec.setState(n, "detaching", undefined);
        await rec.persistAll(created).catch(() => {});
        rec.track(this.#detacher.detach(created));
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
        this.#retryAt = rec.now() + delay;
        if (this.#waiters.size > 0 && !rec.closed) setTimeout(() => this.#kick(), delay);
      }
      throw new PoolError("IAAS_FAILED", `Could not create and attach a NIC: ${why}`, {
        retryable: true,
        cause: err,
      });
    } finally {
      this.#inFlight--;
      rec.changed();
    }
  }
}
