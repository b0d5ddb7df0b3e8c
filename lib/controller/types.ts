/**
 * What the controller needs from the outside world, as narrow interfaces (real ones in kube.ts and
 * the IaaS client; memory ones in memory.ts for unit tests), plus its error classes.
 */
import { HostnicError } from "../errors.ts";
import type { IaasClient } from "../iaas/mod.ts";
import type { BlockStore, PoolStore, VxNetPoolStatus } from "../ipam/mod.ts";
import type { CloudCache } from "./cache.ts";

/** The cloud calls of the controller (a subset of `IaasClient`; `describeClusters` is optional). */
export type ControllerCloud =
  & Pick<
    IaasClient,
    | "describeVxnets"
    | "allocateVips"
    | "describeVips"
    | "releaseVips"
    | "describeSecurityGroups"
    | "describeSecurityGroupRules"
    | "addSecurityGroupRules"
    | "applySecurityGroup"
    | "describeJobs"
  >
  & {
    /** DescribeClusters (clusters.1) → the cluster's security group, for QKE (`clusterID`). */
    describeClusterSecurityGroup?(clusterId: string): Promise<string | undefined>;
  };

/** A metav1.Condition as the controller writes it on the VxNetPool status. */
export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** The status the controller writes on `v-pool` (the CRD's fields plus `conditions`). */
export interface PoolStatus extends VxNetPoolStatus {
  conditions: Condition[];
}

export interface VxNetPoolObject {
  name: string;
  generation: number;
  /** Unvalidated: the reconcile parses it (the CRD schema should have refused bad ones). */
  spec: unknown;
  status?: Partial<PoolStatus>;
}

export interface ConfigMapObject {
  resourceVersion: string;
  data: Record<string, string>;
}

export interface NamespaceInfo {
  name: string;
  /** `metadata.deletionTimestamp` set (phase Terminating). */
  terminating: boolean;
}

/** IPPool status (upstream's fields), written by the controller from its blocks. */
export interface IpPoolStatus {
  capacity: number;
  allocations: number;
  unallocated: number;
  reserved: number;
  synced: boolean;
}

/** The Kubernetes calls of the controller (besides IPPool/IPAMBlock specs, which are CasStores). */
export interface ControllerKube {
  /** `kubectl get vxnetpool <name>`; undefined when absent. */
  getVxNetPool(name: string): Promise<VxNetPoolObject | undefined>;
  /** `kubectl patch vxnetpool <name> --subresource status --type merge`. */
  writeVxNetPoolStatus(name: string, status: PoolStatus): Promise<void>;
  /** `kubectl get configmap -n <ns> <name>`; undefined when absent. */
  getConfigMap(namespace: string, name: string): Promise<ConfigMapObject | undefined>;
  /**
   * `kubectl replace configmap` carrying the resourceVersion read: `ConflictError` (lib/ipam) when
   * someone wrote it meanwhile.
   */
  replaceConfigMapData(o: {
    namespace: string;
    name: string;
    resourceVersion: string;
    data: Record<string, string>;
  }): Promise<void>;
  /** `kubectl get namespaces`. */
  listNamespaces(): Promise<NamespaceInfo[]>;
  /** `kubectl patch ippool <name> --subresource status --type merge`. */
  writeIpPoolStatus(name: string, status: IpPoolStatus): Promise<void>;
}

/** Everything a reconcile pass touches. */
export interface ReconcileDeps {
  cloud: ControllerCloud;
  kube: ControllerKube;
  pools: PoolStore;
  blocks: BlockStore;
  /**
   * What this process already verified in the cloud (cache.ts). Without it every pass re-reads
   * the cloud; with it a steady-state pass makes no IaaS call until the entries age out.
   */
  cache?: CloudCache;
  /** Wall clock (unix ms): condition times and cooldown maths. */
  now(): number;
  /**
   * Test hook: called after each step of the v-pool preparation with the step's name (see
   * `STEPS`); the real controller SIGKILLs itself there when HOSTNIC_CONTROLLER_EXIT_AFTER names it.
   */
  afterStep?(step: Step, detail: Record<string, unknown>): void | Promise<void>;
}

/** The steps of preparing (and removing) one vxnet, in order. */
export const STEPS = [
  "describe-vxnets",
  "allocate-vips",
  "vips-ready",
  "sg-rule-added",
  "sg-applied",
  "ippool-created",
  "block-created",
  "status-written",
  "blocks-deleted",
  "vips-released",
  "ippool-deleted",
  "ipam-config-written",
] as const;
export type Step = typeof STEPS[number];

/** A vxnet of the pool that cannot be prepared (missing, not in a VPC, DHCP off, bad range…). */
export class VxnetPrepareError extends HostnicError {
  constructor(readonly vxnet: string, message: string, options?: ErrorOptions) {
    super("VXNET_PREPARE_FAILED", `Vxnet "${vxnet}": ${message}`, options);
  }
}

/** The Lease could not be read or written, or leadership was lost. */
export class LeaderElectionError extends HostnicError {
  constructor(message: string, options?: ErrorOptions) {
    super("LEADER_ELECTION", message, options);
  }
}
