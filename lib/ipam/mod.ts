/**
 * Shared-mode block IPAM (issue 15): pod addresses of many namespaces come from IPAMBlocks, slices
 * of a vxnet's IPPool, shared cluster-wide through a compare-and-swap store. No Kubernetes import:
 * the Kubernetes-backed `CasStore`s live in kube_store.ts (not re-exported here: it imports the
 * Kubernetes client); `MemoryCasStore` serves tests and single-process use. `store_contract.ts`
 * keeps the two honest (kube_store_test.ts runs it against a real kube-apiserver).
 *
 * Invariants:
 * - An address is held by at most one handle (`<containerID>.<ifname>`), ever: every change to a
 *   block is a CAS on its resourceVersion, recomputed from a fresh read after a conflict.
 * - One `Ipam` (one daemon) writes each block through one group-commit writer (block_writer.ts):
 *   its own concurrent calls never conflict with each other. It reads blocks from its copies
 *   (block_cache.ts), which may be stale; the CAS is the arbiter, and refusals are made on fresh
 *   reads only.
 * - Reserved addresses (network, broadcast, gateway, outside [rangeStart, rangeEnd]) are
 *   pre-allocated to RESERVED_HANDLE and never handed out or released.
 * - A release names its handle and optionally the allocation's sequence number; a stale sequence
 *   frees nothing. Release of an unknown handle succeeds and frees nothing.
 * - Nodes allocate from their own (affine) blocks, claim unclaimed ones when full, and borrow from
 *   other nodes' blocks only when no block is left. Released addresses rest `cooldownMs` (FIFO)
 *   but count as free capacity.
 * - The handle object is written before the block, so a crash leaves at worst a handle pointing
 *   at nothing, never an address nobody can release by handle.
 */
export * from "./types.ts";
export * from "./errors.ts";
export {
  type Cidr,
  cidrContains,
  cidrSize,
  formatCidr,
  formatIp,
  parseCidr,
  parseIp,
} from "./ip.ts";
export {
  blockName,
  carveBlocks,
  poolSpecForVxnet,
  reservedOrdinals,
  reservedReason,
  type UsableRange,
  usableRange,
  VXLAN_RESERVED,
  type VxnetAddressing,
} from "./reserve.ts";
export {
  allocationsOf,
  assignOrdinal,
  type BlockStats,
  blockStats,
  checkBlock,
  type HeldAddress,
  holderOf,
  ipOf,
  newBlock,
  ordinalOf,
  type Pick,
  pickOrdinal,
  releaseOrdinals,
  type ReleaseOutcome,
  sumBlockStats,
} from "./block.ts";
export {
  type BlockStore,
  type CasStore,
  handleName,
  type HandleStore,
  MemoryBlockStore,
  MemoryCasStore,
  MemoryHandleStore,
  MemoryPoolStore,
  type MemoryStoreHooks,
  type PoolStore,
  type Versioned,
} from "./store.ts";
export {
  type AllocateRequest,
  type Allocation,
  Ipam,
  IpamCounters,
  type IpamDeps,
  type IpamOptions,
  type ReleasedAddress,
  type ReleaseResult,
} from "./ipam.ts";
export {
  CONFIG_PATTERNS,
  IPAM_CONFIG,
  type IpamConfig,
  type IpamTarget,
  NamespaceUnmappedError,
  parseIpamConfig,
  resolveNamespace,
} from "./config.ts";
