/**
 * Leak-proof garbage collection of shared-mode allocations. Like gc.ts, the decision
 * (`planSharedGc`) is pure — facts in, actions with reasons out — and `SharedCollector` gathers
 * the facts and applies the actions.
 *
 * Rules:
 * - a local record whose pod network namespace is gone is released at once;
 * - a local record whose pod Kubernetes no longer has is released after `graceMs` (a pod being
 *   created may not be in the watch cache yet), after re-reading the pod right before release;
 * - an `allocating` record (an ADD that crashed before it finished) is released after `graceMs`
 *   when its pod is not live (a live pod's kubelet retries the ADD, which completes it);
 * - a `releasing` record (a pending release: its DEL answered while IPAM could not be reached)
 *   is released at once, every pass, until IPAM answers;
 * - an address an IPAMBlock gives to this node for a handle this node has no record of (a lost
 *   store, a crash inside a release) is released once it has been seen orphaned for `graceMs`;
 * - an address an IPAMBlock gives to a node that Kubernetes no longer has is released at once.
 *   Every daemon does this, not one elected daemon: each release names the allocation's sequence
 *   number and is a compare-and-swap, so when several daemons release the same address the first
 *   frees it and the others free nothing — and nobody has to be alive for a dead node's addresses
 *   to come back. The Node list is re-read right before such a release.
 * Every release names its handle and sequence (all addresses of a handle or none: a handle holds
 * one address in shared mode), so an address re-allocated since the scan is never freed.
 * GC only reads and releases: a full subnet never stops it.
 */
import { errorMessage } from "../../errors.ts";
import { type BlockStore, type Ipam, ipOf, RESERVED_HANDLE } from "../../ipam/mod.ts";
import { isNetnsMissingDiff } from "../../linux/mod.ts";
import type { Logger } from "../../log.ts";
import type { SharedRecord, SharedService } from "./service.ts";

export type SharedGcAction =
  | {
    kind: "release-record";
    containerId: string;
    ifName: string;
    sequence?: number;
    pod: string;
    ip?: string;
    reason: string;
    /** Re-read the pod right before releasing (the reason is "pod gone"). */
    recheckPod: boolean;
  }
  | { kind: "repair-record"; containerId: string; ifName: string; pod: string; reason: string }
  | {
    kind: "release-address";
    handle: string;
    sequence: number;
    ip: string;
    block: string;
    node: string;
    pod: string;
    reason: string;
    /** Re-read the Node list right before releasing. */
    recheckNode: boolean;
  };

/** An address an IPAMBlock holds for a pod. */
export interface BlockAddress {
  handle: string;
  sequence: number;
  ip: string;
  block: string;
  node: string;
  namespace: string;
  pod: string;
}

export interface SharedGcFacts {
  now: number;
  nodeName: string;
  records: readonly SharedRecord[];
  /** Kernel differences per ready record handle; missing = not checked. */
  diffs: ReadonlyMap<string, readonly string[]>;
  /** `namespace/name` of the pods Kubernetes has on this node; undefined = not known. */
  livePods?: ReadonlySet<string>;
  /** Every pod address in the IPAMBlocks; undefined = the blocks were not read. */
  addresses?: readonly BlockAddress[];
  /** Node names Kubernetes has; undefined = not known. */
  nodes?: ReadonlySet<string>;
  /** When each orphaned handle was first seen (kept by the caller across passes). */
  firstSeen: ReadonlyMap<string, number>;
}

export function planSharedGc(f: SharedGcFacts, o: { graceMs: number }): SharedGcAction[] {
  const out: SharedGcAction[] = [];
  const local = new Set(f.records.map((r) => r.handle));
  for (const r of f.records) {
    const pod = `${r.podNamespace}/${r.podName}`;
    const base = {
      containerId: r.containerId,
      ifName: r.ifName,
      pod,
      ...(r.sequence !== undefined ? { sequence: r.sequence } : {}),
      ...(r.ip ? { ip: r.ip } : {}),
    };
    const old = f.now - r.createdAt >= o.graceMs;
    const live = f.livePods?.has(pod);
    const diffs = f.diffs.get(r.handle) ?? [];
    if (r.state === "releasing") {
      const since = new Date(r.releasePendingSince ?? r.createdAt).toISOString();
      out.push({
        kind: "release-record",
        ...base,
        reason: `its DEL could not release it (pending since ${since}: ${
          r.releaseError ?? "IPAM did not answer"
        })`,
        recheckPod: false,
      });
    } else if (r.state === "ready" && diffs.some(isNetnsMissingDiff)) {
      out.push({
        kind: "release-record",
        ...base,
        reason: `network namespace ${r.netns} is gone`,
        recheckPod: false,
      });
    } else if (f.livePods && !live && old) {
      out.push({
        kind: "release-record",
        ...base,
        reason: r.state === "allocating"
          ? `ADD never finished and pod ${pod} no longer exists in Kubernetes`
          : `pod ${pod} no longer exists in Kubernetes`,
        recheckPod: true,
      });
    } else if (r.state === "ready" && diffs.length > 0) {
      out.push({
        kind: "repair-record",
        containerId: r.containerId,
        ifName: r.ifName,
        pod,
        reason: diffs.join("; "),
      });
    }
  }
  for (const a of f.addresses ?? []) {
    const base = {
      kind: "release-address" as const,
      handle: a.handle,
      sequence: a.sequence,
      ip: a.ip,
      block: a.block,
      node: a.node,
      pod: `${a.namespace}/${a.pod}`,
    };
    if (a.node === f.nodeName) {
      if (local.has(a.handle)) continue;
      const since = f.firstSeen.get(a.handle) ?? f.now;
      if (f.now - since >= o.graceMs) {
        out.push({
          ...base,
          reason: `no record on this node holds it (orphaned for ${
            Math.round((f.now - since) / 1000)
          } s)`,
          recheckNode: false,
        });
      }
    } else if (f.nodes && a.node && !f.nodes.has(a.node)) {
      out.push({
        ...base,
        reason: `node ${a.node} no longer exists in Kubernetes`,
        recheckNode: true,
      });
    }
  }
  return out;
}

/** Every pod address of the blocks (reserved ones left out). */
export function blockAddresses(
  blocks: readonly { name: string; spec: Parameters<typeof ipOf>[0] }[],
): BlockAddress[] {
  const out: BlockAddress[] = [];
  for (const b of blocks) {
    b.spec.allocations.forEach((idx, ordinal) => {
      if (idx === null) return;
      const attr = b.spec.attributes[idx];
      if (!attr || attr.handle_id === RESERVED_HANDLE) return;
      out.push({
        handle: attr.handle_id,
        sequence: attr.sequence,
        ip: ipOf(b.spec, ordinal),
        block: b.name,
        node: attr.secondary.node ?? "",
        namespace: attr.secondary.namespace ?? "",
        pod: attr.secondary.pod ?? "",
      });
    });
  }
  return out;
}

export interface SharedCollectorDeps {
  shared: SharedService;
  ipam: Ipam;
  blocks: BlockStore;
  logger: Logger;
  nodeName: string;
  livePods?: () => ReadonlySet<string> | undefined;
  /** Node names; undefined when unknown. */
  nodes?: () => Promise<ReadonlySet<string> | undefined>;
  /** Is the pod still in Kubernetes? (the re-check right before a release) */
  podExists?: (namespace: string, name: string) => Promise<boolean>;
  now?: () => number;
}

export interface SharedGcResult {
  actions: (SharedGcAction & { text: string })[];
  applied: boolean;
  failed: { action: string; error: string }[];
  /** Addresses released (records and orphans). */
  released: number;
}

export function describeSharedAction(a: SharedGcAction): string {
  switch (a.kind) {
    case "release-record":
      return `release ${a.ip ?? "(no address yet)"} of ${a.pod}: ${a.reason}`;
    case "repair-record":
      return `repair the datapath of ${a.pod}: ${a.reason}`;
    case "release-address":
      return `release ${a.ip} (block ${a.block}, handle ${a.handle}, pod ${a.pod}): ${a.reason}`;
  }
}

export class SharedCollector {
  readonly #d: SharedCollectorDeps;
  readonly #graceMs: number;
  readonly #firstSeen = new Map<string, number>();
  #running: Promise<SharedGcResult> | undefined;
  /** GC candidates of the last pass and addresses released since start (metrics). */
  lastCandidates = 0;
  reclaimed = 0;

  constructor(deps: SharedCollectorDeps, opts: { graceMs: number }) {
    this.#d = deps;
    this.#graceMs = opts.graceMs;
  }

  /**
   * One pass; concurrent calls share it. `blocks: false` skips the cluster-wide part. Once
   * `signal` aborts, the pass applies no further action (each one is crash-safe on its own).
   */
  run(
    o: { dryRun?: boolean; blocks?: boolean; signal?: AbortSignal } = {},
  ): Promise<SharedGcResult> {
    if (this.#running) return this.#running;
    const p = this.#pass(o).finally(() => (this.#running = undefined));
    this.#running = p;
    return p;
  }

  async #pass(
    o: { dryRun?: boolean; blocks?: boolean; signal?: AbortSignal },
  ): Promise<SharedGcResult> {
    const now = (this.#d.now ?? Date.now)();
    const records = this.#d.shared.records();
    const diffs = new Map<string, string[]>();
    for (const r of records) {
      if (r.state !== "ready") continue;
      o.signal?.throwIfAborted();
      diffs.set(
        r.handle,
        await this.#d.shared.diffs(r).catch((err) => [`check failed: ${errorMessage(err)}`]),
      );
    }
    let addresses: BlockAddress[] | undefined;
    let nodes: ReadonlySet<string> | undefined;
    o.signal?.throwIfAborted();
    if (o.blocks !== false) {
      try {
        addresses = blockAddresses(await this.#d.blocks.list());
        nodes = await this.#d.nodes?.();
      } catch (err) {
        this.#d.logger.warn("shared GC could not read the IPAMBlocks or Nodes", {
          err: errorMessage(err),
        });
      }
      if (addresses) {
        const local = new Set(records.map((r) => r.handle));
        const orphans = new Set(
          addresses.filter((a) => a.node === this.#d.nodeName && !local.has(a.handle))
            .map((a) => a.handle),
        );
        for (const h of orphans) if (!this.#firstSeen.has(h)) this.#firstSeen.set(h, now);
        for (const h of [...this.#firstSeen.keys()]) if (!orphans.has(h)) this.#firstSeen.delete(h);
      }
    }
    const actions = planSharedGc({
      now,
      nodeName: this.#d.nodeName,
      records,
      diffs,
      livePods: this.#d.livePods?.(),
      ...(addresses ? { addresses } : {}),
      ...(nodes ? { nodes } : {}),
      firstSeen: this.#firstSeen,
    }, { graceMs: this.#graceMs });
    this.lastCandidates = actions.filter((a) => a.kind !== "repair-record").length;
    const result: SharedGcResult = {
      actions: actions.map((a) => ({ ...a, text: describeSharedAction(a) })),
      applied: !o.dryRun,
      failed: [],
      released: 0,
    };
    if (o.dryRun) return result;
    for (const a of actions) {
      o.signal?.throwIfAborted();
      try {
        if (await this.#apply(a)) result.released += a.kind === "repair-record" ? 0 : 1;
      } catch (err) {
        result.failed.push({ action: describeSharedAction(a), error: errorMessage(err) });
        this.#d.logger.warn("shared GC action failed", {
          action: describeSharedAction(a),
          err: errorMessage(err),
        });
      }
    }
    this.reclaimed += result.released;
    return result;
  }

  async #apply(a: SharedGcAction): Promise<boolean> {
    const log = (what: string) => this.#d.logger.info(what, { action: describeSharedAction(a) });
    switch (a.kind) {
      case "repair-record": {
        const done = await this.#d.shared.repair(a.containerId, a.ifName);
        if (done) log("shared GC repaired a pod");
        return done;
      }
      case "release-record": {
        if (a.recheckPod && this.#d.podExists) {
          const [ns, name] = a.pod.split("/");
          if (await this.#d.podExists(ns, name)) return false; // the watch was behind
        }
        const done = await this.#d.shared.release(a.containerId, a.ifName, a.sequence);
        if (done) log("shared GC released a pod's address");
        return done;
      }
      case "release-address": {
        if (a.recheckNode) {
          const nodes = await this.#d.nodes?.();
          if (!nodes || nodes.has(a.node)) return false;
        } else {
          const [cid, ...rest] = a.handle.split(".");
          if (this.#d.shared.has(cid, rest.join("."))) return false; // an ADD recorded it since
        }
        const r = await this.#d.ipam.release(a.handle, { sequence: a.sequence });
        if (r.released.length > 0) {
          this.#firstSeen.delete(a.handle);
          log("shared GC released an orphaned address");
        }
        return r.released.length > 0;
      }
    }
  }
}
