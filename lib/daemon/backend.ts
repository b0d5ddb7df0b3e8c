/**
 * The one allocation interface between the daemon core and a mode. The core (daemon.ts: socket
 * API, start-up, sync loop, management server, Kubernetes binding) talks only to a `Backend`;
 * a backend folder (`nic/` for nic and passthrough pods, `shared/` for block IPAM over one NIC per
 * vxnet) implements it and owns its allocations, its GC and its Kubernetes needs. mode.ts picks the
 * backend, once, at start.
 *
 * Invariants every backend keeps (docs/architecture.md):
 * - ADD of a known (containerId, ifName) returns the same address; DEL of an unknown one succeeds;
 * - an allocation's record is written before ADD answers; a failed ADD gives back what it took;
 * - `sync` and `collect` never release what a live pod uses.
 */
import type { StartupRetry } from "./startup_retry.ts";
import type { DaemonConfig } from "../config.ts";
import { HostnicError } from "../errors.ts";
import type { IaasClient } from "../iaas/mod.ts";
import type { LinuxDeps } from "../linux/mod.ts";
import type { Logger } from "../log.ts";
import type { NicPool } from "../nicpool/pool.ts";
import type { Store } from "../store/store.ts";
import type { RpcError } from "../rpc/protocol.ts";
import type { RpcRoute } from "../rpc/server.ts";
import type {
  AddReply,
  AddRequest,
  CheckRequest,
  CniSettings,
  DelRequest,
  GcRequest,
  GcView,
  NicView,
  PodView,
  PoolView,
  StatusReply,
} from "../rpc/api.ts";
import type { KubeBinding } from "./kube/mod.ts";
import type { DaemonMetrics } from "./metrics.ts";

export interface Backend {
  /** The mode's name as `admin` and the log show it. */
  readonly mode: "nic" | "shared";
  /** The Kubernetes binding's ADD option: a fixed IP may come without a vxnet (shared mode). */
  readonly ipAlone: boolean;
  /** What start-up recovered, for the "ready" log line. */
  readonly recovered: { nics: number; pods: number };
  readonly ready: boolean;
  setReady(ready: boolean, reason?: string): void;

  add(req: AddRequest): Promise<AddReply>;
  del(req: DelRequest): Promise<void>;
  check(req: CheckRequest): Promise<void>;
  /** CNI GC: releases attachments not in `validAttachments`; returns the released keys. */
  gc(req: GcRequest): Promise<string[]>;
  /** CNI STATUS and /readyz. */
  status(): StatusReply;
  /** This backend's failures as the socket protocol's reasons; undefined for anything else. */
  rpcError(err: unknown): RpcError | undefined;

  /** Called once the socket is up: start filling the pool. */
  serve(): void;
  /**
   * One sync pass: a short one every `sync`, a full one (cloud, pods, cluster) when `full`. Once
   * `signal` aborts (shutdown) it starts nothing new and returns at its next step.
   */
  sync(full: boolean, signal?: AbortSignal): Promise<void>;
  /** `admin gc`: one GC pass, or what it would do. */
  collect(o: { dryRun: boolean }): Promise<GcView>;
  /** `admin pool ls` (the core adds the node's names) and the pool health annotation. */
  poolView(): PoolSummary;
  /** `admin nic ls`. */
  nicViews(): NicView[];
  /** `admin pod ls`. */
  podViews(): PodView[];
  /** Admin routes only this mode has (`admin ipam check`). */
  routes(): RpcRoute[];
  /** Stops; with `drainFree` the free NICs are detached and deleted (CleanUpCacheOnExit). */
  close(o: { drainFree: boolean }): Promise<void>;
}

/** The pool as a backend describes it. */
export type PoolSummary = Omit<PoolView, "instanceId" | "nodeName">;

/** What the core hands a backend at start: the node's facts and its clients. */
export interface BackendDeps {
  config: DaemonConfig;
  instanceId: string;
  /** The node's pool vxnet (node annotation, assignment or config); undefined = none. */
  poolVxnet: string | undefined;
  /** The node's primary IP (services and hairpin rules). */
  nodeIp: string | undefined;
  iaas: IaasClient;
  store: Store;
  linux: LinuxDeps;
  logger: Logger;
  metrics: DaemonMetrics;
  /** The Kubernetes binding, when the daemon has Kubernetes. */
  kube?: KubeBinding;
  /** Retries of a busy cloud for the backend's own start-up calls (startup_retry.ts). */
  startup?: StartupRetry;
}

/**
 * A backend over the node's NIC pool (nic/). Shared mode builds on one, with no warm NICs, for
 * its per-vxnet NICs and for passthrough pods, without importing the nic folder.
 */
export interface PoolBackend extends Backend {
  readonly pool: NicPool;
  /** Where a DEL the plugin journaled goes when this backend does not own the pod. */
  foreignDel: ((containerId: string, ifName: string) => Promise<void>) | undefined;
  /** The GC pass of a sync (without filling the pool); rejects when the pass fails. */
  gcPass(full: boolean, signal?: AbortSignal): Promise<void>;
  /** The first GC pass, run before the daemon says it is ready. */
  settle(): Promise<void>;
}

/** The datapath settings GC and repair use, where no plugin config exists. */
export function cniSettings(cfg: DaemonConfig): CniSettings {
  return {
    vethPrefix: cfg.cni.vethPrefix,
    mtu: cfg.cni.mtu,
    serviceCIDR: cfg.cni.serviceCIDR,
    hairpin: cfg.cni.hairpin,
    natMark: cfg.cni.natMark,
  };
}

/** The part of the store a backend's service needs (LevelStore and MemoryStore have it). */
export interface ServiceStore {
  get<T>(key: string): Promise<T | undefined>;
  list<T>(prefix: string): Promise<{ key: string; value: T }[]>;
  batch(
    ops: ({ type: "put"; key: string; value: unknown } | { type: "del"; key: string })[],
  ): Promise<void>;
}

/** A backend's own failure with a code the core maps (daemon.ts `toRpcError`). */
export class ServiceError extends HostnicError {
  readonly retryable: boolean;
  constructor(code: string, message: string, opts: { retryable: boolean; cause?: unknown }) {
    super(code, message, { cause: opts.cause });
    this.retryable = opts.retryable;
  }
}
