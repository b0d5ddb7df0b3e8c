/**
 * Shared mode in the daemon (issue 15): pods take addresses from block IPAM (lib/ipam) and share
 * one cloud NIC per vxnet on the node. The first pod of a vxnet gets the node a NIC in it (created
 * through the pool with `disable_ip`: its own IaaS address is never used) with its route table,
 * rule 1536 and proxy ARP (lib/linux/shared_mode.ts); later pods get only a veth and an address.
 *
 * Invariants:
 * - The handle of an allocation is `<containerId>.<ifName>`. A record naming it is written to the
 *   store (state `allocating`) before IPAM is asked, and the allocation's address and sequence
 *   number are written before the datapath is set up and before ADD answers: a crash anywhere
 *   leaves a record GC can settle (gc.ts), never an address nobody knows about.
 * - DEL tears the datapath down, then releases by handle with the stored sequence (a release of
 *   an address re-allocated since frees nothing), then deletes the record. Idempotent. When IPAM
 *   does not answer within DEL_RELEASE_BUDGET_MS (the API server is down), the record becomes a
 *   pending release (state `releasing`, persisted before DEL answers success) that GC retries
 *   (gc.ts) and an ADD of the same container settles first; a failed ADD's undo does the same.
 * - Operations on one handle are serialised; NIC work on one vxnet is serialised.
 * - A shared NIC is kept while any record names it; one without pods for `freePeriodMs` is torn
 *   down and given back to the pool (a dedicated NIC: detached and deleted).
 */
import { errorMessage, HostnicError } from "../../errors.ts";
import {
  type Allocation,
  type Ipam,
  IpamRequestError,
  type IpamTarget,
  NamespaceUnmappedError,
  type PoolStore,
  resolveNamespace,
} from "../../ipam/mod.ts";
import type { IpamConfig } from "../../ipam/mod.ts";
import {
  checkPod,
  type LinuxDeps,
  setupPod,
  setupSharedNic,
  teardownPod,
  teardownSharedNic,
} from "../../linux/mod.ts";
import type { Logger } from "../../log.ts";
import type { NicRecord } from "../../nicpool/model.ts";
import { withoutUndefined } from "../../nicpool/model.ts";
import type { NicPool } from "../../nicpool/pool.ts";
import type {
  AddReply,
  AddRequest,
  CheckRequest,
  CniSettings,
  DelRequest,
  PodView,
} from "../../rpc/api.ts";
import type { ServiceStore } from "../backend.ts";
import { ServiceError } from "../backend.ts";

export {
  CALICO_IP_ADDRS,
  CALICO_POD_IP,
  CALICO_POD_IPS,
  fixedIpOf,
  SharedRequestError,
  sharedRpcError,
} from "./request.ts";
import { fixedIpOf, SharedRequestError } from "./request.ts";
import { KeyedSerial } from "../serial.ts";

/** Pool owner of the shared NIC of a vxnet. */
export const SHARED_OWNER_PREFIX = "shared/";
export { handleOf, sharedKey, type SharedRecord, type SharedState } from "./record.ts";
import {
  DEL_RELEASE_BUDGET_MS,
  handleOf,
  podSpecOf,
  RECORD_PREFIX,
  releaseOpts,
  ReleasePendingError,
  replyOf,
  sharedKey,
  type SharedRecord,
  teardownSpecOf,
  within,
} from "./record.ts";

/** What shared mode needs from Kubernetes (a slice of `Kube`, plus the Calico annotation). */
export interface SharedKube {
  /**
   * `hostnic-ipam-config`, parsed: the watch's copy, or with `fresh` (and before the watch has
   * delivered) a read. An ADD whose namespace the copy does not map asks again with `fresh`, so
   * a new mapping applies at once; a changed one within the watch's latency.
   */
  ipamConfig(opts?: { fresh?: boolean }): Promise<IpamConfig>;
  /**
   * The annotations of the pod an ADD is for; undefined when the pod is gone. Read live once per
   * ADD (the daemon's binding already read the pod for this container: that read is reused).
   */
  podAnnotations(
    pod: { namespace: string; name: string; containerId: string; ifName: string },
  ): Promise<Record<string, string> | undefined>;
  /** Writes Calico's podIP/podIPs (server.networkPolicy: calico); undefined = not wanted. */
  annotateCalico?: (namespace: string, name: string, ip: string) => Promise<void>;
}

export interface SharedDeps {
  pool: NicPool;
  store: ServiceStore;
  linux: LinuxDeps;
  ipam: Ipam;
  pools: PoolStore;
  kube: SharedKube;
  logger: Logger;
  nodeName: string;
  settings: CniSettings;
  now?: () => number;
  /** Namespace of the node; undefined = this process's (production). */
  nodeNetns?: string;
}

export interface SharedOptions {
  /** A shared NIC without pods this long is given back (`pool.freePeriod`). */
  freePeriodMs: number;
}

export class SharedService {
  readonly #d: SharedDeps;
  readonly #o: SharedOptions;
  readonly #records = new Map<string, SharedRecord>();
  readonly #turns = new KeyedSerial();
  /** Shared NICs whose node plumbing was set up by this process. */
  readonly #nicReady = new Set<string>();
  /** NIC id → since when it has had no pod. */
  readonly #idleSince = new Map<string, number>();
  /** IPPool name → cidr/gateway (an IPPool's CIDR is immutable). */
  readonly #vxnets = new Map<string, { cidr: string; gateway: string }>();
  /** Release attempts that outlived their budget, by record key. */
  readonly #inflight = new Map<string, Promise<unknown>>();
  #ready = false;

  constructor(deps: SharedDeps, opts: SharedOptions) {
    this.#d = deps;
    this.#o = opts;
  }

  /** Loads the records of the store (start-up). */
  async load(): Promise<SharedRecord[]> {
    const rows = await this.#d.store.list<SharedRecord>(RECORD_PREFIX);
    for (const r of rows) this.#records.set(r.key, r.value);
    return rows.map((r) => r.value);
  }

  setReady(ready: boolean): void {
    this.#ready = ready;
  }

  records(): SharedRecord[] {
    return [...this.#records.values()];
  }

  /** Records whose address still waits for its release (DEL answered, IPAM not told yet). */
  pendingReleases(): number {
    let n = 0;
    for (const r of this.#records.values()) if (r.state === "releasing") n++;
    return n;
  }

  /** `admin pod ls` rows. */
  views(): PodView[] {
    return this.records().map((r) => ({
      containerId: r.containerId,
      ifName: r.ifName,
      pod: `${r.podNamespace}/${r.podName}`,
      netns: r.netns,
      mode: "shared",
      ip: r.ip ?? "",
      nicId: r.nicId ?? "",
      vxnet: r.vxnet ?? "",
      table: r.table ?? 0,
      createdAt: new Date(r.createdAt).toISOString(),
      ...(r.block ? { block: r.block } : {}),
      ...(r.sequence !== undefined ? { sequence: r.sequence } : {}),
      state: r.state,
    }));
  }

  has(containerId: string, ifName: string): boolean {
    return this.#records.has(sharedKey(containerId, ifName));
  }

  /** Shared NICs of the pool (owner `shared/<vxnet>`). */
  nics(): NicRecord[] {
    return this.#d.pool.list().filter((n) => n.owner?.startsWith(SHARED_OWNER_PREFIX));
  }

  add(req: AddRequest): Promise<AddReply> {
    return this.#turns.run(sharedKey(req.containerId, req.ifName), () => this.#add(req));
  }

  async del(req: DelRequest): Promise<void> {
    await this.#turns.run(sharedKey(req.containerId, req.ifName), () => this.#del(req));
  }

  /**
   * Releases one record (GC): under the handle's lock, and only if the record still carries
   * `sequence` (a re-ADD in between wins). True when it released.
   */
  release(containerId: string, ifName: string, sequence: number | undefined): Promise<boolean> {
    const key = sharedKey(containerId, ifName);
    return this.#turns.run(key, async () => {
      const rec = this.#records.get(key);
      if (!rec || rec.sequence !== sequence) return false;
      return await this.#del({ containerId, ifName, netns: rec.netns });
    });
  }

  async check(req: CheckRequest): Promise<void> {
    const rec = this.#records.get(sharedKey(req.containerId, req.ifName));
    if (!rec || rec.state !== "ready") {
      throw new ServiceError(
        "UNKNOWN_CONTAINER",
        `No hostnic allocation for container "${req.containerId}" interface "${req.ifName}"`,
        { retryable: false },
      );
    }
    const diffs = await this.diffs(rec);
    if (diffs.length > 0) {
      throw new ServiceError("CHECK_FAILED", diffs.join("; "), { retryable: false });
    }
  }

  /** Kernel differences of a ready record (empty = healthy). */
  diffs(rec: SharedRecord): Promise<string[]> {
    return checkPod(this.#d.linux, this.#podSpec(rec), this.#node());
  }

  /** Sets a ready record's pod datapath up again (GC repair), under its lock. */
  repair(containerId: string, ifName: string): Promise<boolean> {
    const key = sharedKey(containerId, ifName);
    return this.#turns.run(key, async () => {
      const rec = this.#records.get(key);
      if (!rec || rec.state !== "ready") return false;
      if ((await this.diffs(rec)).length === 0) return false;
      this.#nicReady.delete(rec.nicId!);
      await this.#adoptNic(rec);
      await setupPod(this.#d.linux, this.#podSpec(rec), this.#node());
      return true;
    });
  }

  /**
   * Gives back shared NICs without pods for `freePeriodMs` (every sync pass). Returns the ids
   * released.
   */
  async sweepNics(): Promise<string[]> {
    const now = this.#now();
    const out: string[] = [];
    for (const nic of this.nics()) {
      if (nic.state !== "inuse") continue;
      const vxnet = nic.owner!.slice(SHARED_OWNER_PREFIX.length);
      const used = this.records().some((r) =>
        r.state !== "releasing" && (r.nicId === nic.id || r.vxnet === vxnet)
      );
      if (used) {
        this.#idleSince.delete(nic.id);
        continue;
      }
      const since = this.#idleSince.get(nic.id) ?? now;
      this.#idleSince.set(nic.id, since);
      if (now - since < this.#o.freePeriodMs) continue;
      const freed = await this.#turns.run(`nic/${vxnet}`, async () => {
        // A pod came meanwhile.
        if (this.records().some((r) => r.state !== "releasing" && r.vxnet === vxnet)) return false;
        await teardownSharedNic(this.#d.linux, { table: nic.table }, this.#node());
        this.#nicReady.delete(nic.id);
        this.#idleSince.delete(nic.id);
        await this.#d.pool.release(nic.id);
        return true;
      });
      if (freed) {
        out.push(nic.id);
        this.#d.logger.info("shared NIC without pods given back", {
          nic: nic.id,
          vxnet,
          idleMs: now - since,
        });
      }
    }
    return out;
  }

  // ---- internals ----

  async #add(req: AddRequest): Promise<AddReply> {
    if (!this.#ready) {
      throw new ServiceError("NOT_READY", "The hostnic daemon is not ready yet (starting)", {
        retryable: true,
      });
    }
    const key = sharedKey(req.containerId, req.ifName);
    const existing = await this.#settlePending(key);
    if (existing?.state === "ready") {
      await this.#adoptNic(existing);
      await setupPod(this.#d.linux, this.#podSpec(existing), this.#node());
      return this.#reply(existing);
    }
    if (!req.podNamespace || !req.podName) {
      throw new SharedRequestError(
        "Shared mode needs the pod's namespace and name (CNI_ARGS K8S_POD_NAMESPACE and " +
          "K8S_POD_NAME): addresses come from the namespace's blocks",
      );
    }
    if (req.vxnet !== undefined) {
      throw new SharedRequestError(
        `A vxnet annotation ("${req.vxnet}") is not honoured in shared mode: map the namespace ` +
          "to blocks of that vxnet in hostnic-ipam-config, or use type: passthrough",
      );
    }
    // hostnic's own fixed-IP annotation is already in req.ip; Calico's needs the annotations.
    const annotations = req.ip !== undefined ? undefined : await this.#d.kube.podAnnotations({
      namespace: req.podNamespace,
      name: req.podName,
      containerId: req.containerId,
      ifName: req.ifName,
    });
    const fixedIp = fixedIpOf(req.ip, annotations);
    const target = await this.#target(req.podNamespace);
    const rec: SharedRecord = existing ?? {
      containerId: req.containerId,
      ifName: req.ifName,
      netns: req.netns,
      podNamespace: req.podNamespace,
      podName: req.podName,
      handle: handleOf(req.containerId, req.ifName),
      state: "allocating",
      settings: req.settings,
      createdAt: this.#now(),
    };
    rec.netns = req.netns;
    rec.settings = req.settings;
    await this.#put(rec);
    let alloc: Allocation;
    try {
      alloc = await this.#d.ipam.allocate({
        handle: rec.handle,
        node: this.#d.nodeName,
        namespace: req.podNamespace,
        pod: req.podName,
        ...target,
        ...(fixedIp !== undefined ? { fixedIp } : {}),
      });
    } catch (err) {
      // A refusal (pool exhausted, fixed IP taken …) allocated nothing: the record goes. After
      // anything else (API server unreachable, retries exhausted) the handle may hold an address
      // (a lost reply): it is released, or the release is left pending for GC.
      if (
        err instanceof HostnicError && err.code.startsWith("IPAM_") &&
        err.code !== "IPAM_RETRIES_EXHAUSTED"
      ) {
        await this.#drop(rec);
      } else {
        await this.#releaseOrDefer(rec, "failed ADD");
      }
      throw err;
    }
    try {
      const vx = await this.#vxnetOf(alloc.pool);
      Object.assign(rec, {
        ip: alloc.ip,
        sequence: alloc.sequence,
        block: alloc.block,
        handleVersion: alloc.handleVersion,
        vxnet: alloc.pool,
        cidr: vx.cidr,
        gateway: vx.gateway,
      });
      await this.#put(rec);
      const nic = await this.#ensureNic(alloc.pool, rec);
      rec.nicId = nic.id;
      rec.table = nic.table;
      rec.state = "ready";
      await this.#put(rec);
      const out = await setupPod(this.#d.linux, this.#podSpec(rec), this.#node());
      rec.hostVeth = out.interfaces.find((i) => i.sandbox === undefined)?.name;
      await this.#put(rec);
    } catch (err) {
      this.#d.logger.warn("shared ADD failed; undoing", {
        containerId: req.containerId,
        err: errorMessage(err),
      });
      await this.#undo(rec);
      throw err;
    }
    if (this.#d.kube.annotateCalico) {
      await this.#d.kube.annotateCalico(req.podNamespace, req.podName, rec.ip!).catch((err) =>
        this.#d.logger.warn("could not write Calico's podIP annotations", {
          pod: `${req.podNamespace}/${req.podName}`,
          err: errorMessage(err),
        })
      );
    }
    this.#d.logger.info("pod networked (shared)", {
      containerId: req.containerId,
      pod: `${req.podNamespace}/${req.podName}`,
      ip: rec.ip,
      block: rec.block,
      nic: rec.nicId,
    });
    return this.#reply(rec);
  }

  /** Undo of a failed ADD: datapath, address (by sequence), record. Keeps the record on failure. */
  async #undo(rec: SharedRecord): Promise<void> {
    if (rec.table !== undefined) {
      await teardownPod(this.#d.linux, this.#teardownSpec(rec), this.#node()).catch((e) =>
        this.#d.logger.error("undo of a failed ADD could not tear down", { err: errorMessage(e) })
      );
    }
    await this.#releaseOrDefer(rec, "failed ADD").catch((err) =>
      this.#d.logger.error("undo of a failed ADD could not record its release", {
        handle: rec.handle,
        err: errorMessage(err),
      })
    );
  }

  /** DEL (and GC's release): true when the address was released, false when left pending. */
  async #del(req: DelRequest): Promise<boolean> {
    const key = sharedKey(req.containerId, req.ifName);
    const rec = this.#records.get(key);
    if (!rec) return false;
    if (rec.state !== "releasing" && (rec.state === "ready" || rec.table !== undefined)) {
      await teardownPod(
        this.#d.linux,
        this.#teardownSpec({ ...rec, netns: req.netns || rec.netns }),
        this.#node(),
      );
    }
    return await this.#releaseOrDefer(rec, "DEL");
  }

  /**
   * Releases the record's address and drops the record. When IPAM fails or does not answer within
   * DEL_RELEASE_BUDGET_MS, the record is persisted as a pending release instead (before this
   * returns: a daemon restart keeps it) and false is returned; GC retries it. Throws only when
   * the store cannot be written.
   */
  async #releaseOrDefer(rec: SharedRecord, why: string): Promise<boolean> {
    const key = sharedKey(rec.containerId, rec.ifName);
    // An earlier attempt still waits for IPAM: no second one beside it (the record stays pending;
    // the next GC pass confirms whatever that attempt achieved).
    if (this.#inflight.has(key)) return false;
    const attempt = this.#d.ipam.release(rec.handle, releaseOpts(rec));
    try {
      await within(attempt, DEL_RELEASE_BUDGET_MS, rec.handle);
    } catch (err) {
      // An attempt that outlived the budget goes on (bounded by the API client's deadline).
      const settled = attempt.then(() => {}, () => {}).finally(() => {
        if (this.#inflight.get(key) === settled) this.#inflight.delete(key);
      });
      this.#inflight.set(key, settled);
      const first = rec.state !== "releasing";
      rec.state = "releasing";
      rec.releasePendingSince ??= this.#now();
      rec.releaseError = errorMessage(err);
      await this.#put(rec);
      (first ? this.#d.logger.warn : this.#d.logger.debug).call(
        this.#d.logger,
        "IPAM release failed; it stays pending and GC retries it",
        { why, handle: rec.handle, ip: rec.ip, block: rec.block, err: errorMessage(err) },
      );
      return false;
    }
    await this.#drop(rec);
    this.#d.logger.info("pod released (shared)", {
      why,
      containerId: rec.containerId,
      ip: rec.ip,
      block: rec.block,
      ...(rec.releasePendingSince !== undefined
        ? { pendingMs: this.#now() - rec.releasePendingSince }
        : {}),
    });
    return true;
  }

  /**
   * The record of `key` for an ADD: a pending release is finished first (the handle is this
   * container's, and a new allocation must not start under it while the old one may be held).
   * Throws ReleasePendingError (CNI 11) when it cannot be finished now.
   */
  async #settlePending(key: string): Promise<SharedRecord | undefined> {
    const rec = this.#records.get(key);
    if (rec?.state !== "releasing") return rec;
    if (!(await this.#releaseOrDefer(rec, "ADD of the same container"))) {
      throw new ReleasePendingError(rec, rec.releaseError);
    }
    return undefined;
  }

  /**
   * Points a ready record at the vxnet's current shared NIC (a NIC lost in a crash was replaced
   * by another, with another table), persisting the change.
   */
  async #adoptNic(rec: SharedRecord): Promise<void> {
    const nic = await this.#ensureNic(rec.vxnet!, rec);
    if (nic.id === rec.nicId && nic.table === rec.table) return;
    if (rec.table !== undefined && rec.table !== nic.table) {
      // The pod's veth and proxy entry on the old NIC go first; setup makes them anew.
      await teardownPod(this.#d.linux, this.#teardownSpec(rec), this.#node()).catch(() => {});
    }
    rec.nicId = nic.id;
    rec.table = nic.table;
    await this.#put(rec);
  }

  /** The node's shared NIC in `vxnet`, created and plumbed on first use. */
  #ensureNic(vxnet: string, rec: SharedRecord): Promise<NicRecord> {
    return this.#turns.run(`nic/${vxnet}`, async () => {
      const owner = `${SHARED_OWNER_PREFIX}${vxnet}`;
      let nic = this.#d.pool.list().find((n) => n.owner === owner && n.state === "inuse");
      if (!nic) {
        nic = await this.#d.pool.acquireDedicated(owner, { vxnet, disableIp: true });
        this.#d.logger.info("shared NIC attached for a vxnet", { vxnet, nic: nic.id });
      }
      this.#idleSince.delete(nic.id);
      if (!this.#nicReady.has(nic.id)) {
        await setupSharedNic(this.#d.linux, {
          nicMac: nic.id,
          table: nic.table,
          vxnet: { cidr: rec.cidr!, gateway: rec.gateway! },
        }, this.#node());
        this.#nicReady.add(nic.id);
      }
      return nic;
    });
  }

  /** Where the namespace's pods get addresses; an unmapped namespace is asked about afresh. */
  async #target(namespace: string): Promise<IpamTarget> {
    try {
      return resolveNamespace(await this.#d.kube.ipamConfig(), namespace);
    } catch (err) {
      if (!(err instanceof NamespaceUnmappedError)) throw err;
      return resolveNamespace(await this.#d.kube.ipamConfig({ fresh: true }), namespace);
    }
  }

  async #vxnetOf(pool: string): Promise<{ cidr: string; gateway: string }> {
    const have = this.#vxnets.get(pool);
    if (have) return have;
    const p = await this.#d.pools.get(pool);
    if (!p || !p.spec.gateway) {
      throw new IpamRequestError("pool", `IPPool "${pool}" is missing or has no gateway`);
    }
    const vx = { cidr: p.spec.cidr, gateway: p.spec.gateway };
    this.#vxnets.set(pool, vx);
    return vx;
  }

  #podSpec(rec: SharedRecord) {
    return podSpecOf(rec, this.#d.settings);
  }

  #teardownSpec(rec: SharedRecord) {
    return teardownSpecOf(rec, this.#d.settings);
  }

  #reply(rec: SharedRecord): AddReply {
    return replyOf(rec, this.#d.settings);
  }

  async #put(rec: SharedRecord): Promise<void> {
    await this.#d.store.batch([{
      type: "put",
      key: sharedKey(rec.containerId, rec.ifName),
      value: withoutUndefined(rec),
    }]);
    this.#records.set(sharedKey(rec.containerId, rec.ifName), rec);
  }

  async #drop(rec: SharedRecord): Promise<void> {
    await this.#d.store.batch([{ type: "del", key: sharedKey(rec.containerId, rec.ifName) }]);
    this.#records.delete(sharedKey(rec.containerId, rec.ifName));
  }

  #node() {
    return this.#d.nodeNetns ? { nodeNetns: this.#d.nodeNetns } : {};
  }

  #now(): number {
    return (this.#d.now ?? Date.now)();
  }
}
