/**
 * lib/linux — the node datapath: wrappers over `ip`, `iptables`, `sysctl` and `nsenter`, and the
 * pod plumbing of every attachment mode (nic, passthrough, shared) plus node-level service
 * routing. Used by the daemon and by the CNI plugin, so it imports nothing heavy (no zod, yaml,
 * level, pino or Kubernetes client).
 *
 * Invariants:
 * - Everything is computed as data first (`Plan`: ip batch lines per namespace with their undo
 *   lines, sysctls; `TableSpec` for iptables), then applied with one spawn per namespace/step.
 * - Add means ensure: setup reads state first, adds what is missing, `replace`s the rest, and can
 *   run twice. A setup that fails reverts everything it applied (no partial state).
 * - Delete forgives: "not found" and a vanished pod namespace are success; what counts as
 *   "not found" is decided in errors.ts and nowhere else.
 * - Teardown needs only what a DEL knows (`PodTeardownSpec`): names are derived, not stored
 *   (host veth from the pod key, NIC name from its table, the NIC's old name from its alias).
 * - The node is the caller's namespace unless `nodeNetns` names another; nothing is ever changed
 *   in any other namespace than the node's and the pod's.
 * - Marks: only natMark's bits are ever set; kube-proxy's 0x4000/0x8000 are refused.
 */
export { CommandRunner, ExecError, inNetns, netnsPath } from "./exec.ts";
export type { Runner, RunOptions, RunResult } from "./exec.ts";
export {
  classifyError,
  DatapathSetupError,
  DatapathTeardownError,
  InvalidSpecError,
  LinkConflictError,
  NetnsNotFoundError,
  NicNotFoundError,
} from "./errors.ts";
export type { FailureKind } from "./errors.ts";
export {
  DEFAULT_MTU,
  DEFAULT_NAT_MARK,
  DEFAULT_ROUTE_TABLE_BASE,
  DEFAULT_SERVICE_IFNAME,
  DEFAULT_VETH_PREFIX,
  hostVethName,
  nicLinkName,
  POD_GATEWAY,
  PRIORITY,
  tableOfNicName,
  vethMacs,
} from "./names.ts";
export type { PodIdentity } from "./names.ts";
export { readNsState, runIpBatch, runIpBatchForgiving } from "./ip.ts";
export type { AddrSpec, LinkState, NeighSpec, NsState, RouteSpec, RuleSpec } from "./ip.ts";
export { deleteIptables, ensureIptables, parseIptablesSave } from "./iptables.ts";
export type { ChainSpec, JumpSpec, TableSpec } from "./iptables.ts";
export { type ProcSys, RealProcSys, writeSysctls } from "./sysctl.ts";
export type { SysctlValues } from "./sysctl.ts";
export { applyPlan, formatPlan, planClaims, runTeardownPlan } from "./plan.ts";
export { type NameClaim, NameLocks } from "./name_locks.ts";
export { NodeState } from "./node_state.ts";
export type { LinuxDeps, Plan, PlanStep } from "./plan.ts";
export type {
  NodeOptions,
  PodMode,
  PodSetupResult,
  PodTeardownSpec,
  ResultInterface,
  VxnetSpec,
} from "./spec.ts";
export type { NicPodSpec } from "./nic_mode.ts";
export type { SharedNicSpec, SharedPodSpec } from "./shared_mode.ts";
export type { PassthroughPodSpec } from "./passthrough_mode.ts";
export {
  checkPod,
  checkSharedNic,
  isNetnsMissingDiff,
  planPodSetup,
  podResult,
  setupPod,
  setupSharedNic,
  sharedNicPodIps,
  teardownPod,
  teardownSharedNic,
} from "./pod.ts";
export type { PodSpec } from "./pod.ts";
export {
  checkNatMark,
  checkServiceRouting,
  ensureServiceRouting,
  removeServiceRouting,
  setupGatewayNic,
  teardownGatewayNic,
} from "./service.ts";
export type { GatewayNicSpec, ServiceRoutingSpec } from "./service.ts";
