/**
 * Garbage collection and repair of one node: what the daemon owns that no one uses any more, and
 * kernel state a pod lost (a node reboot, someone's `ip rule flush`). Runs at start-up (without the
 * cloud part: recovery just did it), every `nodeSync` seconds, and on `hostnic admin gc`.
 *
 * The decision (`planGc`) is pure: facts in, actions with their reasons out, so `admin gc
 * --dry-run` shows exactly what a pass would do. Rules:
 * - a pod whose network namespace is gone is released (its NIC goes back to the pool);
 * - with Kubernetes, a pod the API server no longer has is released once its allocation is older
 *   than `podGraceMs` (a pod that is being created may not be in the watch cache yet);
 * - a pod whose links, routes or rules differ from what ADD made is set up again;
 * - a DEL the plugin journaled while the daemon was away is replayed;
 * - an owned NIC (named `hostnic_<instance>`) the store does not know is adopted when it is
 *   attached here in the pool's vxnet, else deleted — only after it was seen unknown for
 *   `freePeriodMs` (a batch in flight creates NICs before it records them);
 * - a pool record whose NIC is gone from the cloud, or now attached elsewhere, is forgotten; a free
 *   one the cloud shows detached is deleted; a stuck detach is retried.
 * A NIC named by an allocation is never deleted or forgotten here: releasing the pod comes first.
 */
import { errorMessage } from "../../errors.ts";
import type { IaasClient } from "../../iaas/mod.ts";
import { describeAllNics } from "../../iaas/paginate.ts";
import { isNetnsMissingDiff } from "../../linux/mod.ts";
import type { Logger } from "../../log.ts";
import type { AllocationRecord, NicRecord } from "../../nicpool/model.ts";
import { ownerKey } from "../../nicpool/model.ts";
import type { NicPool } from "../../nicpool/pool.ts";
import { listReleaseRecords, removeReleaseRecord } from "../../store/mod.ts";
import type { LinuxPodDatapath } from "./datapath.ts";
import type { CniService } from "./service.ts";

export type GcAction =
  | { kind: "release-pod"; containerId: string; ifName: string; pod?: string; reason: string }
  | { kind: "repair-pod"; containerId: string; ifName: string; pod?: string; reason: string }
  | { kind: "replay-release"; containerId: string; ifName: string; id: string; reason: string }
  | { kind: "adopt-nic"; nicId: string; ip: string; vxnet: string; reason: string }
  | { kind: "delete-nic"; nicId: string; ip: string; vxnet: string; reason: string }
  | { kind: "forget-nic"; nicId: string; reason: string }
  | { kind: "retry-detach"; nicId: string; reason: string };

/** A NIC the cloud lists under this node's owner name. */
export interface CloudNic {
  id: string;
  vxnet: string;
  ip: string;
  status: "in-use" | "available";
  /** Instance it is attached to ("" when available). */
  instance: string;
}

export interface GcFacts {
  now: number;
  allocations: readonly AllocationRecord[];
  nics: readonly NicRecord[];
  /** Datapath differences per allocation (`<containerId>/<ifName>`); missing = not checked. */
  podDiffs: ReadonlyMap<string, readonly string[]>;
  /** Ids the pool holds now (default: those of `nics`); an owned NIC among them is not unknown. */
  known?: ReadonlySet<string>;
  /** Owned NICs in the cloud; undefined = the cloud was not asked this pass. */
  cloudNics?: readonly CloudNic[];
  /** When each unknown owned NIC was first seen (kept by the caller across passes). */
  firstSeen: ReadonlyMap<string, number>;
  /** `namespace/name` of the pods Kubernetes has on this node; undefined = not known. */
  livePods?: ReadonlySet<string>;
  /** Release records the plugin journaled while the daemon was unreachable. */
  journal: readonly { id: string; containerId: string; ifName: string; reason: string }[];
}

export interface GcOptions {
  instanceId: string;
  pooledVxnet?: string;
  freePeriodMs: number;
  podGraceMs: number;
}

const podName = (a: AllocationRecord) =>
  a.podName ? `${a.podNamespace ?? "default"}/${a.podName}` : undefined;

export function planGc(f: GcFacts, o: GcOptions): GcAction[] {
  const out: GcAction[] = [];
  const journaled = new Set(f.journal.map((j) => ownerKey(j.containerId, j.ifName)));
  for (const j of f.journal) {
    out.push({
      kind: "replay-release",
      containerId: j.containerId,
      ifName: j.ifName,
      id: j.id,
      reason: `DEL journaled by the plugin (${j.reason})`,
    });
  }
  for (const a of f.allocations) {
    const key = ownerKey(a.containerId, a.ifName);
    if (journaled.has(key)) continue;
    const pod = podName(a);
    const base = { containerId: a.containerId, ifName: a.ifName, pod };
    const diffs = f.podDiffs.get(key) ?? [];
    if (diffs.some(isNetnsMissingDiff)) {
      out.push({ kind: "release-pod", ...base, reason: `network namespace ${a.netns} is gone` });
    } else if (
      f.livePods && pod && !f.livePods.has(pod) && f.now - a.createdAt >= o.podGraceMs
    ) {
      out.push({
        kind: "release-pod",
        ...base,
        reason: `pod ${pod} no longer exists in Kubernetes`,
      });
    } else if (diffs.length > 0) {
      out.push({ kind: "repair-pod", ...base, reason: diffs.join("; ") });
    }
  }

  const referenced = new Set(f.allocations.map((a) => a.nicId));
  for (const n of f.nics) {
    if (n.state === "detaching") {
      out.push({ kind: "retry-detach", nicId: n.id, reason: "an earlier detach/delete failed" });
    }
  }
  if (!f.cloudNics) return out;
  const cloud = new Map(f.cloudNics.map((c) => [c.id, c] as const));
  const known = f.known ?? new Set(f.nics.map((n) => n.id));
  for (const n of f.nics) {
    if (referenced.has(n.id) || n.state === "inuse" || n.id.startsWith("pending-")) continue;
    if (n.state !== "free") continue;
    const c = cloud.get(n.id);
    if (!c) {
      out.push({
        kind: "forget-nic",
        nicId: n.id,
        reason: "free in the pool but gone from the cloud",
      });
    } else if (c.status === "in-use" && c.instance !== o.instanceId) {
      out.push({
        kind: "forget-nic",
        nicId: n.id,
        reason: `free in the pool but attached to instance ${c.instance}`,
      });
    } else if (c.status === "available") {
      out.push({
        kind: "delete-nic",
        nicId: n.id,
        ip: n.ip,
        vxnet: n.vxnet,
        reason: "free in the pool but detached in the cloud",
      });
    }
  }
  for (const c of f.cloudNics) {
    if (known.has(c.id) || referenced.has(c.id)) continue;
    if (c.status === "in-use" && c.instance !== o.instanceId) continue;
    // Seen unknown on an earlier pass too (a batch in flight records its NICs within moments).
    const seen = f.firstSeen.get(c.id) ?? f.now;
    if (seen >= f.now || f.now - seen < o.freePeriodMs) continue;
    const mins = +(o.freePeriodMs / 60_000).toFixed(2);
    const attachedHere = c.status === "in-use";
    if (attachedHere && c.vxnet === o.pooledVxnet) {
      out.push({
        kind: "adopt-nic",
        nicId: c.id,
        ip: c.ip,
        vxnet: c.vxnet,
        reason: `attached here, unknown to the store for ${mins} min`,
      });
    } else {
      out.push({
        kind: "delete-nic",
        nicId: c.id,
        ip: c.ip,
        vxnet: c.vxnet,
        reason: `owned by this node and unused for ${mins} min (${
          attachedHere ? "attached here, not in the pool's vxnet" : "not attached"
        })`,
      });
    }
  }
  return out;
}

/** Updates the first-seen times of owned cloud NICs the store does not know. */
export function trackUnknown(
  firstSeen: Map<string, number>,
  cloudNics: readonly CloudNic[],
  known: ReadonlySet<string>,
  now: number,
): void {
  const unknown = new Set(cloudNics.filter((c) => !known.has(c.id)).map((c) => c.id));
  for (const id of [...firstSeen.keys()]) if (!unknown.has(id)) firstSeen.delete(id);
  for (const id of unknown) if (!firstSeen.has(id)) firstSeen.set(id, now);
}

/** One line per action, for logs and `admin gc`. */
export function describeAction(a: GcAction): string {
  switch (a.kind) {
    case "release-pod":
    case "repair-pod":
      return `${a.kind} ${a.pod ?? a.containerId}/${a.ifName}: ${a.reason}`;
    case "replay-release":
      return `${a.kind} ${a.containerId}/${a.ifName}: ${a.reason}`;
    case "adopt-nic":
    case "delete-nic":
      return `${a.kind} ${a.nicId} (${a.ip}): ${a.reason}`;
    case "forget-nic":
    case "retry-detach":
      return `${a.kind} ${a.nicId}: ${a.reason}`;
  }
}

export interface GcReport {
  actions: GcAction[];
  /** False for a dry run. */
  applied: boolean;
  /** Actions that failed (they are tried again next pass). */
  failed: { action: string; error: string }[];
}

export interface CollectorDeps {
  svc: CniService;
  pool: NicPool;
  datapath: Pick<LinuxPodDatapath, "checkAll">;
  iaas: IaasClient;
  logger: Logger;
  journalDir: string;
  /** Kubernetes' pods on this node, when the daemon has Kubernetes. */
  livePods?: () => ReadonlySet<string> | undefined;
  now?: () => number;
}

/**
 * Gathers the facts, plans and (unless dry) carries out a GC pass. Passes never overlap: a pass
 * asked for while one runs waits for it.
 */
export class Collector {
  readonly #d: CollectorDeps;
  readonly #o: GcOptions;
  readonly #firstSeen = new Map<string, number>();
  #running: Promise<unknown> = Promise.resolve();
  /** Another backend's DEL (shared mode, lib/daemon/shared/): a journaled DEL may name its pod. */
  sharedDel?: (containerId: string, ifName: string) => Promise<void>;

  constructor(deps: CollectorDeps, opts: GcOptions) {
    this.#d = deps;
    this.#o = opts;
  }

  /**
   * `cloud: false` skips asking the cloud (start-up, right after recovery); `pods: false` also
   * skips checking pods' datapaths (the short loop only replays the journal and retries detaches).
   * Once `signal` aborts, the pass applies no further action (each one is crash-safe on its own).
   */
  run(
    o: { dryRun?: boolean; cloud?: boolean; pods?: boolean; signal?: AbortSignal } = {},
  ): Promise<GcReport> {
    const next = this.#running.then(() =>
      this.#pass(o.dryRun ?? false, o.cloud ?? true, o.pods ?? true, o.signal)
    );
    this.#running = next.catch(() => {});
    return next;
  }

  async #pass(
    dryRun: boolean,
    askCloud: boolean,
    checkPods: boolean,
    signal?: AbortSignal,
  ): Promise<GcReport> {
    const { svc, pool, datapath, logger } = this.#d;
    const now = (this.#d.now ?? Date.now)();
    const { records, garbage } = await listReleaseRecords(this.#d.journalDir);
    for (const g of garbage) logger.warn("unreadable release record ignored", { ...g });
    const allocations = svc.allocations();
    const checked = checkPods ? allocations : [];
    const diffs = await datapath.checkAll(checked.map((a) => svc.datapathPod(a)));
    const podDiffs = new Map(checked.map((a, i) => [ownerKey(a.containerId, a.ifName), diffs[i]]));
    // The pool as it was before the cloud was asked: a NIC the pool gained while the listing was
    // under way is not in it, so it cannot be taken for one gone from the cloud.
    const nics = pool.list();
    let known = new Set(nics.map((n) => n.id));
    let cloudNics: CloudNic[] | undefined;
    signal?.throwIfAborted();
    if (askCloud) {
      const listed = await describeAllNics(this.#d.iaas, { nicName: pool.nicName });
      cloudNics = listed.map((c) => ({
        id: c.nic_id,
        vxnet: c.vxnet_id,
        ip: c.private_ip ?? "",
        status: c.status === "in-use" ? "in-use" : "available",
        instance: c.instance_id ?? "",
      }));
      // …and as it is after: a NIC recorded meanwhile is not unknown.
      known = new Set([...known, ...pool.list().map((n) => n.id)]);
      trackUnknown(this.#firstSeen, cloudNics, known, now);
    }
    const actions = planGc({
      now,
      allocations,
      nics,
      known,
      podDiffs,
      cloudNics,
      firstSeen: this.#firstSeen,
      livePods: checkPods ? this.#d.livePods?.() : undefined,
      journal: records.map((r) => ({ id: r.id, ...r.record })),
    }, this.#o);
    const report: GcReport = { actions, applied: !dryRun, failed: [] };
    if (dryRun) return report;
    signal?.throwIfAborted();
    // NICs to detach and delete go to the cloud together (one DescribeNics, DetachNics and
    // DeleteNics for all), not one chain of calls per NIC; the pool retries what fails.
    const deletes = actions.filter((a) => a.kind === "delete-nic");
    const retries = actions.filter((a) => a.kind === "retry-detach");
    for (const a of actions) {
      if (a.kind === "delete-nic" || a.kind === "retry-detach") continue;
      signal?.throwIfAborted();
      try {
        await this.#apply(a);
        logger.info("gc", { action: describeAction(a) });
      } catch (err) {
        report.failed.push({ action: describeAction(a), error: errorMessage(err) });
        logger.warn("gc action failed; will retry", {
          action: describeAction(a),
          err: errorMessage(err),
        });
      }
    }
    signal?.throwIfAborted();
    if (deletes.length > 0) {
      await pool.collect(deletes.map((a) => ({ id: a.nicId, vxnet: a.vxnet, ip: a.ip })));
    }
    if (retries.length > 0) await pool.retryDetaching(retries.map((a) => a.nicId));
    for (const a of [...deletes, ...retries]) logger.info("gc", { action: describeAction(a) });
    return report;
  }

  async #apply(a: GcAction): Promise<void> {
    const { svc, pool } = this.#d;
    switch (a.kind) {
      case "replay-release":
        await svc.del({ containerId: a.containerId, ifName: a.ifName, netns: "" });
        await this.sharedDel?.(a.containerId, a.ifName);
        await removeReleaseRecord(this.#d.journalDir, a.id);
        return;
      case "release-pod":
        await svc.del({ containerId: a.containerId, ifName: a.ifName, netns: "" });
        return;
      case "repair-pod":
        // Under the pod's lock and on a fresh check: the pod's ADD or DEL may be running.
        await svc.repair(a.containerId, a.ifName);
        return;
      case "adopt-nic": {
        const info = await pool.vxnetInfo(a.vxnet);
        const now = (this.#d.now ?? Date.now)();
        await pool.adopt({
          id: a.nicId,
          vxnet: a.vxnet,
          ip: a.ip,
          cidr: info.cidr,
          gateway: info.gateway,
          table: 0,
          state: "free",
          dedicated: false,
          createdAt: now,
          updatedAt: now,
        });
        return;
      }
      case "forget-nic":
        await pool.forget(a.nicId);
        return;
        // delete-nic and retry-detach are carried out together, in one batch, by #pass.
    }
  }
}
