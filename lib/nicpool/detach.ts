/**
 * Detaching and deleting NICs the node no longer needs (trimmed, released dedicated ones,
 * discarded, failed batches, GC victims). Asks the cloud where each NIC is first, so a NIC whose
 * attach never happened is only deleted and one attached to another instance is only forgotten.
 * A NIC in state `inuse` is never handed here by the pool.
 */
import type { NicRecord } from "./model.ts";
import type { PoolRecords } from "./records.ts";

export class PoolDetacher {
  readonly #rec: PoolRecords;
  /** NICs a detach is running for right now (a retry must not start a second one). */
  readonly #detachingNow = new Set<string>();

  constructor(rec: PoolRecords) {
    this.#rec = rec;
  }

  /**
   * Detaches (those attached here) and deletes NICs; records are removed once the NICs are gone.
   * Failures leave the NICs in state "detaching" for the repair loop (retry()).
   */
  async detach(nics: NicRecord[]): Promise<void> {
    const rec = this.#rec;
    const { cloud, logger } = rec.deps;
    const instanceId = rec.opts.instanceId;
    const ids = nics.map((n) => n.id);
    for (const id of ids) this.#detachingNow.add(id);
    try {
      const where = await cloud.nicStatus(ids);
      const attached = ids.filter((id) => {
        const w = where.get(id);
        return w?.status === "in-use" && w.instance === instanceId;
      });
      const foreign = ids.filter((id) => {
        const w = where.get(id);
        return w?.status === "in-use" && w.instance !== instanceId;
      });
      if (attached.length > 0) {
        const jobId = await cloud.detachNics(attached);
        for (const n of nics) if (attached.includes(n.id)) n.jobId = jobId;
        await rec.persistAll(nics);
        await cloud.waitJob(jobId, rec.opts.jobTimeoutMs);
      }
      const deletable = ids.filter((id) => where.has(id) && !foreign.includes(id));
      if (deletable.length > 0) await cloud.deleteNics(deletable);
      // Gone, deleted, or attached elsewhere (not ours to delete any more): forget them.
      for (const id of ids) rec.nics.delete(id);
      await rec.unpersist(ids);
      if (foreign.length) {
        logger.warn("NICs attached to another instance were forgotten", { foreign });
      }
      logger.info("NICs detached and deleted", { nics: ids });
    } catch (err) {
      logger.warn("detaching/deleting NICs failed; will retry", { nics: ids, err: String(err) });
    } finally {
      for (const id of ids) this.#detachingNow.delete(id);
      rec.changed();
    }
  }

  /** Retries detaching NICs stuck in "detaching" (all, or these ids), skipping those in flight. */
  async retry(ids?: string[]): Promise<void> {
    const stuck = [...this.#rec.nics.values()].filter((n) =>
      n.state === "detaching" && !this.#detachingNow.has(n.id) && (!ids || ids.includes(n.id))
    );
    if (stuck.length) await this.detach(stuck);
  }
}
