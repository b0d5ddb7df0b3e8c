/**
 * Leader election on a `coordination.k8s.io/v1` Lease, so several controller replicas are safe
 * (upstream runs one and hopes). The rules are client-go's:
 * - A candidate takes the Lease when it is free (no holder) or expired: its record has not changed
 *   for `leaseDurationSeconds` as measured on the candidate's own monotonic clock since it last
 *   saw the record change (clocks of different machines are never compared).
 * - Every write is a replace carrying the resourceVersion read, so two candidates cannot both win.
 * - The leader renews every `retryPeriodMs`; when no renewal succeeded for `renewDeadlineMs`
 *   (< lease duration) it steps down: its work is aborted before anyone else may take over.
 * - On shutdown the leader releases the Lease (empty holder), so a successor starts at once.
 */
import { sleep } from "../sleep.ts";
import { errorMessage } from "../errors.ts";
import { ConflictError } from "../ipam/mod.ts";
import type { Logger } from "../log.ts";
import { LeaderElectionError } from "./types.ts";

export interface LeaseRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  /** MicroTime text (RFC 3339 with microseconds). */
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions: number;
}

export interface StoredLease {
  resourceVersion: string;
  record: LeaseRecord;
}

/** The Lease API (`kubectl get/create/replace lease -n <ns> <name>`). */
export interface LeaseApi {
  get(namespace: string, name: string): Promise<StoredLease | undefined>;
  /** `AlreadyExistsError` (lib/ipam) when someone created it first. */
  create(namespace: string, name: string, record: LeaseRecord): Promise<StoredLease>;
  /** `ConflictError` (lib/ipam) when the resourceVersion is stale. */
  replace(
    namespace: string,
    name: string,
    o: { resourceVersion: string; record: LeaseRecord },
  ): Promise<StoredLease>;
}

export interface LeaderElectorOptions {
  api: LeaseApi;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  logger: Logger;
  /** Monotonic ms. */
  now?: () => number;
  /** Wall clock for the record's times. */
  wallClock?: () => Date;
  onLeaderChange?: (holder: string) => void;
}

/** `2026-12-02T02:12:38.123000Z`: Kubernetes MicroTime. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export type LeadershipEnd = "stopped" | "lost";

export class LeaderElector {
  readonly #o: LeaderElectorOptions;
  readonly #now: () => number;
  readonly #wall: () => Date;
  #observed?: { rv: string; record: LeaseRecord; at: number };
  #lastHolder = "";
  #leading = false;

  constructor(o: LeaderElectorOptions) {
    if (!(o.renewDeadlineMs < o.leaseDurationMs)) {
      throw new LeaderElectionError("renew deadline must be shorter than the lease duration");
    }
    if (!(o.retryPeriodMs < o.renewDeadlineMs)) {
      throw new LeaderElectionError("retry period must be shorter than the renew deadline");
    }
    this.#o = o;
    this.#now = o.now ?? (() => performance.now());
    this.#wall = o.wallClock ?? (() => new Date());
  }

  get leading(): boolean {
    return this.#leading;
  }

  /**
   * Campaigns until leader, runs `work` while leading, and returns why leadership ended: "stopped"
   * (the `stop` signal; the Lease was released) or "lost" (renewal failed past the deadline; `work`
   * was aborted). `work` gets a signal that aborts when leadership ends.
   */
  async run(
    work: (signal: AbortSignal) => Promise<void>,
    stop: AbortSignal,
  ): Promise<LeadershipEnd> {
    const o = this.#o;
    while (!stop.aborted) {
      if (await this.#tryAcquireOrRenew()) break;
      await sleep(this.#jitter(o.retryPeriodMs), stop);
    }
    if (stop.aborted) return "stopped";
    this.#leading = true;
    o.logger.info("became leader", { lease: `${o.namespace}/${o.name}`, identity: o.identity });
    const ac = new AbortController();
    const onStop = () => ac.abort(new Error("stopping"));
    stop.addEventListener("abort", onStop, { once: true });
    let lost = false;
    const renewing = (async () => {
      let lastOk = this.#now();
      while (!ac.signal.aborted) {
        await sleep(o.retryPeriodMs, ac.signal);
        if (ac.signal.aborted) break;
        if (await this.#tryAcquireOrRenew()) {
          lastOk = this.#now();
        } else if (this.#lastHolder !== o.identity && this.#lastHolder !== "") {
          lost = true;
          o.logger.error("leadership lost: another replica holds the Lease; stepping down", {
            holder: this.#lastHolder,
          });
          ac.abort(new LeaderElectionError("leadership lost"));
        } else if (this.#now() - lastOk >= o.renewDeadlineMs) {
          lost = true;
          o.logger.error("leadership lost: the Lease was not renewed in time; stepping down", {
            renewDeadlineMs: o.renewDeadlineMs,
          });
          ac.abort(new LeaderElectionError("leadership lost"));
        }
      }
    })();
    const working = (async () => {
      try {
        await work(ac.signal);
      } finally {
        if (!ac.signal.aborted) ac.abort(new Error("work ended"));
      }
    })();
    try {
      await Promise.all([renewing, working]);
    } finally {
      stop.removeEventListener("abort", onStop);
      this.#leading = false;
    }
    if (lost) return "lost";
    await this.#release();
    return "stopped";
  }

  #jitter(ms: number): number {
    return ms * (1 + Math.random() * 0.2);
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const o = this.#o;
    const now = this.#wall();
    const durationS = Math.ceil(o.leaseDurationMs / 1000);
    try {
      const cur = await o.api.get(o.namespace, o.name);
      if (!cur) {
        const rec: LeaseRecord = {
          holderIdentity: o.identity,
          leaseDurationSeconds: durationS,
          acquireTime: microTime(now),
          renewTime: microTime(now),
          leaseTransitions: 0,
        };
        const made = await o.api.create(o.namespace, o.name, rec);
        this.#observe(made);
        return true;
      }
      this.#observe(cur);
      const r = cur.record;
      const mine = r.holderIdentity === o.identity;
      const free = r.holderIdentity === "";
      const expired = this.#now() - this.#observed!.at >= r.leaseDurationSeconds * 1000;
      if (!mine && !free && !expired) return false;
      const rec: LeaseRecord = mine
        ? { ...r, leaseDurationSeconds: durationS, renewTime: microTime(now) }
        : {
          holderIdentity: o.identity,
          leaseDurationSeconds: durationS,
          acquireTime: microTime(now),
          renewTime: microTime(now),
          leaseTransitions: r.leaseTransitions + 1,
        };
      const written = await o.api.replace(o.namespace, o.name, {
        resourceVersion: cur.resourceVersion,
        record: rec,
      });
      this.#observe(written);
      return true;
    } catch (err) {
      if (!(err instanceof ConflictError)) {
        o.logger.warn("lease update failed", { error: errorMessage(err) });
      }
      return false;
    }
  }

  #observe(l: StoredLease): void {
    if (!this.#observed || this.#observed.rv !== l.resourceVersion) {
      this.#observed = { rv: l.resourceVersion, record: l.record, at: this.#now() };
    }
    if (l.record.holderIdentity !== this.#lastHolder) {
      this.#lastHolder = l.record.holderIdentity;
      if (l.record.holderIdentity) {
        this.#o.logger.info("lease holder", { holder: l.record.holderIdentity });
      }
      this.#o.onLeaderChange?.(l.record.holderIdentity);
    }
  }

  /** Gives the Lease up if we still hold it (best effort). */
  async #release(): Promise<void> {
    const o = this.#o;
    try {
      const cur = await o.api.get(o.namespace, o.name);
      if (!cur || cur.record.holderIdentity !== o.identity) return;
      await o.api.replace(o.namespace, o.name, {
        resourceVersion: cur.resourceVersion,
        record: {
          ...cur.record,
          holderIdentity: "",
          leaseDurationSeconds: 1,
          renewTime: microTime(this.#wall()),
        },
      });
      o.logger.info("lease released", { lease: `${o.namespace}/${o.name}` });
    } catch (err) {
      o.logger.warn("lease not released", { error: errorMessage(err) });
    }
  }
}
