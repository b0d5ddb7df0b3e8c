/**
 * The daemon's CNI service: ADD/DEL/CHECK/STATUS/GC against the NIC pool, the store and the node
 * datapath.
 *
 * Invariants:
 * - One allocation per (containerId, ifName); a repeated ADD returns the same NIC and re-ensures the
 *   datapath. Operations on one key are serialised; different keys run concurrently.
 * - The allocation record is written before the datapath is set up and before ADD answers; a failed
 *   ADD removes what it did and gives the NIC back.
 * - DEL of an unknown key succeeds; DEL tears down the datapath before the NIC is released, so a NIC
 *   is never handed to a second pod while the first still uses it.
 */
import { NicNotFoundError } from "../../linux/errors.ts";
import type { Logger } from "../../log.ts";
import {
  type AllocationRecord,
  allocKey,
  ownerKey,
  withoutUndefined,
} from "../../nicpool/model.ts";
import type { NicPool } from "../../nicpool/pool.ts";
import type {
  AddReply,
  AddRequest,
  CheckRequest,
  CniSettings,
  DelRequest,
  GcRequest,
  ReplyInterface,
  StatusReply,
} from "../../rpc/api.ts";
import { ServiceError, type ServiceStore } from "../backend.ts";
import { KeyedSerial } from "../serial.ts";

/** What setup made, for the CNI result. */
export interface DatapathResult {
  interfaces: ReplyInterface[];
  address: string;
  gateway: string;
  interfaceIndex: number;
}

/** What the service needs from the node datapath (implemented over lib/linux). */
export interface PodDatapath {
  setup(p: DatapathPod): Promise<DatapathResult>;
  teardown(p: DatapathPod): Promise<void>;
  /** Differences between the kernel and what setup made; empty = healthy. */
  check(p: DatapathPod): Promise<string[]>;
  /** Puts a gateway NIC's address on the node (legacy `gw: 0.0.0.0` routes). */
  setupGatewayNic(g: { nicId: string; ip: string; cidr: string; gateway: string }): Promise<void>;
}

export interface DatapathPod {
  mode: "nic" | "passthrough";
  containerId: string;
  ifName: string;
  netns: string;
  podNamespace?: string;
  podName?: string;
  ip: string;
  nicId: string;
  cidr: string;
  gateway: string;
  table: number;
  settings: CniSettings;
  /** Passthrough: extra pod routes (`ipam.routes`), gateway NIC addresses already resolved. */
  routes?: { dst: string; gw: string }[];
}

export interface ServiceDeps {
  pool: NicPool;
  store: ServiceStore;
  datapath: PodDatapath;
  logger: Logger;
  now?: () => number;
  /** Default CNI settings from the daemon config (used by GC/repair, where no plugin config exists). */
  settings: CniSettings;
}

/** Pool NICs an ADD tries when the one it got has no link on the node. */
const LOST_NIC_ATTEMPTS = 3;

export class CniService {
  readonly #d: ServiceDeps;
  readonly #turns = new KeyedSerial();
  readonly #allocs = new Map<string, AllocationRecord>();
  #ready = false;
  #notReadyReason = "starting";

  constructor(deps: ServiceDeps) {
    this.#d = deps;
  }

  /** Loads allocations recovered at start-up. */
  load(records: Iterable<AllocationRecord>): void {
    for (const r of records) this.#allocs.set(ownerKey(r.containerId, r.ifName), r);
  }

  setReady(ready: boolean, reason = ""): void {
    this.#ready = ready;
    this.#notReadyReason = reason;
  }

  get ready(): boolean {
    return this.#ready;
  }

  allocations(): AllocationRecord[] {
    return [...this.#allocs.values()];
  }

  add(req: AddRequest): Promise<AddReply> {
    return this.#turns.run(ownerKey(req.containerId, req.ifName), () => this.#add(req));
  }

  del(req: DelRequest): Promise<void> {
    return this.#turns.run(ownerKey(req.containerId, req.ifName), () => this.#del(req));
  }

  check(req: CheckRequest): Promise<void> {
    return this.#turns.run(ownerKey(req.containerId, req.ifName), () => this.#check(req));
  }

  status(): StatusReply {
    const c = this.#d.pool.counts();
    if (!this.#ready) return { ready: false, freeNics: c.free, reason: this.#notReadyReason };
    const canServe = c.free > 0 || c.pending > 0 || c.total < this.#d.pool.options.maxNic;
    return canServe ? { ready: true, freeNics: c.free } : {
      ready: false,
      freeNics: c.free,
      reason: `No free NIC and maxNic=${this.#d.pool.options.maxNic} reached`,
    };
  }

  /**
   * Sets an allocation's datapath up again when it still differs from what ADD made (GC repair).
   * Runs under the pod's lock, so never while its ADD or DEL is under way (a repair racing a DEL
   * would re-plumb a pod being deleted, or move a passthrough NIC back into a dying namespace),
   * and decides on a fresh check: the caller's view may be stale by then. True if it repaired.
   */
  repair(containerId: string, ifName: string): Promise<boolean> {
    const key = ownerKey(containerId, ifName);
    return this.#turns.run(key, async () => {
      const rec = this.#allocs.get(key);
      if (!rec) return false;
      const pod = this.datapathPod(rec);
      if ((await this.#d.datapath.check(pod)).length === 0) return false;
      await this.#d.datapath.setup(pod);
      return true;
    });
  }

  /** Releases every allocation not in `validAttachments` (CNI GC). Returns the released keys. */
  async gc(req: GcRequest): Promise<string[]> {
    const keep = new Set(req.validAttachments.map((a) => ownerKey(a.containerId, a.ifName)));
    const gone = [...this.#allocs.values()].filter((a) =>
      !keep.has(ownerKey(a.containerId, a.ifName))
    );
    for (const a of gone) {
      await this.del({ containerId: a.containerId, ifName: a.ifName, netns: a.netns });
    }
    return gone.map((a) => ownerKey(a.containerId, a.ifName));
  }

  // ---- internals ----

  async #add(req: AddRequest): Promise<AddReply> {
    if (!this.#ready) {
      throw new ServiceError(
        "NOT_READY",
        `The hostnic daemon is not ready yet (${this.#notReadyReason})`,
        { retryable: true },
      );
    }
    const key = ownerKey(req.containerId, req.ifName);
    const existing = this.#allocs.get(key);
    if (existing) {
      // Repeated ADD (runtime retry): re-ensure the datapath and answer the same.
      return this.#reply(existing, await this.#d.datapath.setup(this.datapathPod(existing)));
    }
    const mode = req.type === "passthrough" ? "passthrough" : "nic";
    const poolVxnet = this.#d.pool.options.vxnet;
    const vxnet = req.vxnet ?? poolVxnet;
    const dedicated = req.ip !== undefined || (vxnet !== undefined && vxnet !== poolVxnet);
    for (let attempt = 1;; attempt++) {
      const nic = dedicated
        ? await this.#d.pool.acquireDedicated(key, { vxnet: vxnet!, ip: req.ip })
        : await this.#d.pool.acquire(key);
      const rec: AllocationRecord = {
        containerId: req.containerId,
        ifName: req.ifName,
        netns: req.netns,
        podNamespace: req.podNamespace,
        podName: req.podName,
        nicId: nic.id,
        ip: nic.ip,
        cidr: nic.cidr,
        gateway: nic.gateway,
        table: nic.table,
        mode,
        vxnet: nic.vxnet,
        settings: req.settings,
        createdAt: this.#now(),
      };
      try {
        if (mode === "passthrough" && req.routes?.length) {
          rec.routes = await this.#resolveRoutes(req.routes, nic);
        }
        await this.#d.store.batch([{
          type: "put",
          key: allocKey(req.containerId, req.ifName),
          value: withoutUndefined(rec),
        }]);
        this.#allocs.set(key, rec);
        const out = await this.#d.datapath.setup(this.datapathPod(rec));
        rec.hostVeth = out.interfaces.find((i) => i.sandbox === undefined)?.name;
        await this.#d.store.batch([{
          type: "put",
          key: allocKey(req.containerId, req.ifName),
          value: withoutUndefined(rec),
        }]);
        this.#d.logger.info("pod networked", {
          containerId: req.containerId,
          ifName: req.ifName,
          pod: req.podName ? `${req.podNamespace}/${req.podName}` : undefined,
          ip: rec.ip,
          nic: rec.nicId,
          mode,
        });
        return this.#reply(rec, out);
      } catch (err) {
        this.#d.logger.warn("ADD failed; undoing", {
          containerId: req.containerId,
          err: String(err),
        });
        await this.#d.datapath.teardown(this.datapathPod(rec)).catch((e) =>
          this.#d.logger.error("undo of a failed ADD could not tear down", { err: String(e) })
        );
        this.#allocs.delete(key);
        await this.#d.store.batch([{ type: "del", key: allocKey(req.containerId, req.ifName) }])
          .catch(() => {});
        // A pool NIC whose link is not on the node (lost with a deleted pod namespace, or gone
        // from the kernel) would fail every pod it is handed to: it leaves the pool, and this
        // ADD tries another one.
        const lost = err instanceof NicNotFoundError && !dedicated;
        if (lost) await this.#d.pool.discard(nic.id);
        else await this.#d.pool.release(nic.id);
        if (lost && attempt < LOST_NIC_ATTEMPTS) continue;
        throw err;
      }
    }
  }

  /**
   * Legacy `ipam.routes`: `gw: 0.0.0.0` becomes the address of the node's gateway NIC in the pod's
   * vxnet (created once per vxnet and kept), other gateways are used as given.
   */
  async #resolveRoutes(
    routes: NonNullable<AddRequest["routes"]>,
    nic: { vxnet: string },
  ): Promise<{ dst: string; gw: string }[]> {
    const out: { dst: string; gw: string }[] = [];
    for (const r of routes) {
      if (r.viaGatewayNic) out.push({ dst: r.dst, gw: await this.#gatewayNicIp(nic.vxnet) });
      else if (r.gw) out.push({ dst: r.dst, gw: r.gw });
    }
    return out;
  }

  #gatewayNicIp(vxnet: string): Promise<string> {
    const owner = `gateway/${vxnet}`;
    return this.#turns.run(owner, async () => {
      const have = this.#d.pool.list().find((n) => n.owner === owner && n.state === "inuse");
      const nic = have ??
        (vxnet === this.#d.pool.options.vxnet
          ? await this.#d.pool.acquire(owner)
          : await this.#d.pool.acquireDedicated(owner, { vxnet }));
      await this.#d.datapath.setupGatewayNic({
        nicId: nic.id,
        ip: nic.ip,
        cidr: nic.cidr,
        gateway: nic.gateway,
      });
      return nic.ip;
    });
  }

  async #del(req: DelRequest): Promise<void> {
    const key = ownerKey(req.containerId, req.ifName);
    const rec = this.#allocs.get(key);
    if (!rec) return;
    await this.#d.datapath.teardown(this.datapathPod({ ...rec, netns: req.netns || rec.netns }));
    await this.#d.store.batch([{ type: "del", key: allocKey(req.containerId, req.ifName) }]);
    this.#allocs.delete(key);
    await this.#d.pool.release(rec.nicId);
    this.#d.logger.info("pod released", {
      containerId: req.containerId,
      ip: rec.ip,
      nic: rec.nicId,
    });
  }

  async #check(req: CheckRequest): Promise<void> {
    const rec = this.#allocs.get(ownerKey(req.containerId, req.ifName));
    if (!rec) {
      throw new ServiceError(
        "UNKNOWN_CONTAINER",
        `No hostnic allocation for container "${req.containerId}" interface "${req.ifName}"`,
        { retryable: false },
      );
    }
    const diffs = await this.#d.datapath.check(
      this.datapathPod({ ...rec, settings: req.settings }),
    );
    if (diffs.length > 0) {
      throw new ServiceError("CHECK_FAILED", diffs.join("; "), { retryable: false });
    }
  }

  /** What the datapath needs to set up, check or tear down an allocation. */
  datapathPod(rec: AllocationRecord): DatapathPod {
    return {
      mode: rec.mode,
      containerId: rec.containerId,
      ifName: rec.ifName,
      netns: rec.netns,
      podNamespace: rec.podNamespace,
      podName: rec.podName,
      ip: rec.ip,
      nicId: rec.nicId,
      cidr: rec.cidr,
      gateway: rec.gateway,
      table: rec.table,
      settings: rec.settings ?? this.#d.settings,
      routes: rec.routes,
    };
  }

  #reply(rec: AllocationRecord, out: DatapathResult): AddReply {
    return {
      mode: rec.mode,
      address: out.address,
      gateway: out.gateway,
      interfaces: out.interfaces,
      interfaceIndex: out.interfaceIndex,
      routes: rec.routes ?? [],
      vxnet: rec.vxnet,
      vxnetCidr: rec.cidr,
      nicId: rec.nicId,
    };
  }

  #now(): number {
    return (this.#d.now ?? Date.now)();
  }
}
