/**
 * The cluster controller of shared mode (`hostnic controller`, issue 15):
 * - `v-pool` (VxNetPool) → per vxnet: DescribeVxnets, the usable range (lib/ipam reserve maths),
 *   VIPs `hostnic_<vxnet>` over it, the security-group rule from `kube-system/clusterconfig`, one
 *   IPPool and its IPAMBlocks; status `ready`, `pools`, conditions (vpool.ts, cloud.ts).
 * - A vxnet removed from `v-pool` gives its blocks, VIPs and IPPool back only when no block holds
 *   an address; otherwise the `RemovalBlocked` condition names the blocks.
 * - `subnet-auto-assign: "on"`: every namespace gets a free block, and another when its blocks are
 *   full (autoassign.ts).
 * - Leader election on a Lease (lease.ts), so replicas never act together.
 *
 * Invariants:
 * - Every step looks before it acts; no state is kept between passes. A crash after any step, then
 *   a restart, converges without a second VIP, rule, pool or block (tests/e2e/controller_test.ts
 *   kills it after each of `STEPS`).
 * - Only the leader writes. A leader that cannot renew its Lease stops working before the Lease
 *   can expire for others.
 * - Objects are written with compare-and-swap (resourceVersion) and deleted with preconditions.
 */
export * from "./types.ts";
export { CloudCache } from "./cache.ts";
export { CLUSTER_CONFIG, type ClusterConfig, parseClusterConfig } from "./cluster_config.ts";
export {
  controllerCloud,
  ensureSecurityGroupRule,
  ensureVips,
  MAX_VIPS_PER_CALL,
  planVipRuns,
  releaseAllVips,
  ruleName,
  vipName,
} from "./cloud.ts";
export {
  type ReconcileObserver,
  type ReconcileOptions,
  type ReconcileResult,
  reconcileVxNetPool,
  setCondition,
} from "./vpool.ts";
export { type RemovalBlock } from "./ippools.ts";
export { autoAssign, type AutoAssignPlan, planAutoAssign } from "./autoassign.ts";
export {
  LeaderElector,
  type LeaderElectorOptions,
  type LeaseApi,
  type LeaseRecord,
  microTime,
  type StoredLease,
} from "./lease.ts";
export { MemoryControllerKube, MemoryLeaseApi } from "./memory.ts";
export { CONTROLLER_PERMISSIONS, CONTROLLER_SERVICE_ACCOUNT } from "./rbac.ts";
