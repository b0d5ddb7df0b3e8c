/**
 * What the NIC pool needs from the rest of the daemon (cloud, kernel links, store) and how it is
 * configured and fails: the contracts of lib/nicpool/pool.ts, which re-exports them.
 */
import { HostnicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { PoolTargets } from "./model.ts";

/** The cloud operations the pool needs (an adapter over the IaaS client implements it). */
export interface PoolCloud {
  /** CreateNics count=N in vxnet, named `nicName`, optionally with explicit private IPs. */
  /** `disableIp`: the NIC gets no primary private IP (a shared-mode NIC serves pod addresses). */
  createNics(
    o: {
      vxnet: string;
      count: number;
      nicName: string;
      privateIps?: string[];
      disableIp?: boolean;
    },
  ): Promise<
    { id: string; ip: string }[]
  >;
  /** AttachTags tag → nics. */
  tagNics(ids: string[], tag: string): Promise<void>;
  /** AttachNics; resolves with the job id. */
  attachNics(ids: string[], instance: string): Promise<string>;
  /** DetachNics; resolves with the job id. */
  detachNics(ids: string[]): Promise<string>;
  /** DeleteNics (NICs must be available). */
  deleteNics(ids: string[]): Promise<void>;
  /** Where each NIC is now: attached to an instance (which), available, or gone. */
  nicStatus(
    ids: string[],
  ): Promise<Map<string, { status: "in-use" | "available"; instance: string }>>;
  /** Waits until the job succeeded; rejects if it failed or timed out. */
  waitJob(jobId: string, timeoutMs: number): Promise<void>;
  /** Vxnet facts the datapath needs. */
  describeVxnet(id: string): Promise<{ id: string; cidr: string; gateway: string }>;
}

/** The kernel view the pool needs: is the NIC's link present on this node yet? */
export interface PoolLinks {
  /** Resolves when links with all these MACs exist on the node, or rejects at timeout. */
  waitForMacs(macs: string[], timeoutMs: number): Promise<void>;
}

export interface PoolStore {
  batch(
    ops: ({ type: "put"; key: string; value: unknown } | { type: "del"; key: string })[],
  ): Promise<
    void
  >;
}

export interface PoolDeps {
  cloud: PoolCloud;
  links: PoolLinks;
  store: PoolStore;
  logger: Logger;
  now?: () => number;
  /** Called after every state change (metrics, admin views). */
  onChange?: () => void;
}

export interface PoolOptions extends PoolTargets {
  instanceId: string;
  /** Vxnet of the warm pool; undefined = no pool (only dedicated NICs). */
  vxnet?: string;
  tag?: string;
  routeTableBase: number;
  jobTimeoutMs: number;
  allocTimeoutMs: number;
  /** Window over which pool needs are gathered into one batch (default 30 ms). */
  batchDelayMs?: number;
  /**
   * Free NICs above poolHigh are trimmed only after this long without an ADD or a release
   * (default 0): a mass deletion is trimmed in one batch once it is over, not one NIC per DEL.
   */
  trimDelayMs?: number;
  /**
   * A released NIC's IP is not handed to another pod for this long (default 0), unless the node
   * is at maxNic and no other NIC is free: then the one released longest ago is used.
   */
  ipCooldownMs?: number;
}

export class PoolError extends HostnicError {
  readonly retryable: boolean;
  constructor(code: string, message: string, opts: { retryable: boolean; cause?: unknown }) {
    super(code, message, { cause: opts.cause });
    this.retryable = opts.retryable;
  }
}
