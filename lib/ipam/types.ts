/**
 * The shared-mode IPAM objects, mirroring the CRDs of `network.qingcloud.com/v1alpha1` (see
 * deploy/crds/network.qingcloud.com_crds.yaml, whose schemas tests/deploy/crds_test.ts checks
 * against the constants here). Field names follow upstream hostnic where it has them (`handle_id`,
 * `secondary`, `unallocated`), so blocks written by upstream's controller stay readable.
 */
import { z } from "zod";

export const GROUP = "network.qingcloud.com";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

/** Kind → plural resource name (all cluster-scoped). */
export const KINDS = {
  VxNetPool: "vxnetpools",
  IPPool: "ippools",
  IPAMBlock: "ipamblocks",
  IPAMHandle: "ipamhandles",
} as const;
export type Kind = keyof typeof KINDS;

/** The only VxNetPool the controller honours (upstream's name). */
export const VXNET_POOL_NAME = "v-pool";
/** Label on IPPools and IPAMBlocks naming the pool (upstream's key). */
export const POOL_NAME_LABEL = "ippool.network.qingcloud.com/name";

/**
 * blockSize is a prefix length. 20..30 keeps a block between 4 and 4096 addresses: the allocation
 * array of a /20 is the largest an IPAMBlock object should carry, and a /31 or /32 block is all
 * network and broadcast.
 */
export const BLOCK_SIZE_MIN = 20;
export const BLOCK_SIZE_MAX = 30;

/** Upstream's pool IDs per pool type; only `local` pools are created by hostnic. */
export const POOL_IDS = { local: 4100, porter: 4098, pod: 0 } as const;
export const POOL_TYPES = ["local", "vlan", "porter", "pod"] as const;

/** Handle of the pre-allocated (never usable) ordinals; upstream's name, so its blocks agree. */
export const RESERVED_HANDLE = "kubesphere-reserved-handle";

/** Regex sources shared with the CRD schemas (Go RE2 and JavaScript agree on them). */
export const PATTERNS = {
  vxnetId: "^vxnet-[a-z0-9]+$",
  ipv4:
    "^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
  ipv4Cidr:
    "^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(3[0-2]|[12]?[0-9])$",
  /** `host:<node name>`, a Kubernetes node name being a DNS subdomain. */
  affinity: "^host:[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
  /** A Kubernetes object name (DNS subdomain). */
  objectName: "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
} as const;

const re = (source: string) => new RegExp(source);
export const vxnetIdSchema = z.string().regex(
  re(PATTERNS.vxnetId),
  'must look like "vxnet-xxxxxxx"',
);
export const ipv4Schema = z.string().regex(re(PATTERNS.ipv4), "must be an IPv4 address");
export const cidrSchema = z.string().regex(
  re(PATTERNS.ipv4Cidr),
  "must be an IPv4 CIDR such as 172.16.3.0/24",
);
export const objectNameSchema = z.string().max(253).regex(
  re(PATTERNS.objectName),
  "must be a Kubernetes object name (lower-case letters, digits, '-' and '.')",
);
export const blockSizeSchema = z.number().int().min(BLOCK_SIZE_MIN).max(BLOCK_SIZE_MAX);
const count = z.number().int().min(0);

// ---------------------------------------------------------------------------------------------
// VxNetPool: the user's request ("these vxnets, carved in blocks of this size").

export const vxnetPoolSpecSchema = z.object({
  vxnets: z.array(z.object({ name: vxnetIdSchema }).strict()).min(1),
  blockSize: blockSizeSchema,
  /** vlan vxnets only: addresses left to the IaaS on top of the computed reservation (§3.6). */
  customReservedIPCount: count.optional(),
}).strict();
export type VxNetPoolSpec = z.output<typeof vxnetPoolSpecSchema>;

export interface VxNetPoolStatus {
  ready: boolean;
  message?: string;
  /** One entry per vxnet: its IPPool and the blocks (IPAMBlock names) carved from it. */
  pools: { name: string; ippool: string; subnets: string[] }[];
}

// ---------------------------------------------------------------------------------------------
// IPPool: one per vxnet, named after it; the usable range is [rangeStart, rangeEnd].

export const ipPoolSpecSchema = z.object({
  type: z.enum(POOL_TYPES),
  cidr: cidrSchema,
  rangeStart: ipv4Schema.optional(),
  rangeEnd: ipv4Schema.optional(),
  disabled: z.boolean().optional(),
  blockSize: blockSizeSchema,
  customReservedIPCount: count.optional(),
  /** The vxnet's gateway (VPC router `manager_ip`); never handed to a pod. */
  gateway: ipv4Schema.optional(),
}).strict();
export type IpPoolSpec = z.output<typeof ipPoolSpecSchema>;

// ---------------------------------------------------------------------------------------------
// IPAMBlock: 2^(32-blockSize) addresses; the unit of compare-and-swap.

export const attributeSchema = z.object({
  /** Owner of the address: `<containerID>.<ifname>`, or RESERVED_HANDLE. */
  handle_id: z.string().min(1),
  /** `namespace`, `pod`, `node` for pods; `note` for reserved addresses. */
  secondary: z.record(z.string(), z.string()),
  /** Block sequence number at allocation time: a release carrying another one frees nothing. */
  sequence: count,
}).strict();
export type Attribute = z.output<typeof attributeSchema>;

export const blockSpecSchema = z.object({
  /** Pool ID (4100 for `local`), the prefix of the block's name. */
  id: count,
  /** Name of the IPPool this block was carved from. */
  pool: objectNameSchema,
  cidr: cidrSchema,
  /** `host:<node>` once a node claimed the block; null while unclaimed. */
  affinity: z.string().regex(re(PATTERNS.affinity)).nullable(),
  /** Ordinal → index into `attributes`, or null when free. */
  allocations: z.array(count.nullable()),
  /** Free ordinals in reuse order: released ones are appended, the front is reused first. */
  unallocated: z.array(count),
  attributes: z.array(attributeSchema),
  /** Next sequence number (monotonic per block, never reused). */
  sequenceNumber: count,
  /** Ordinal (decimal text) → unix ms of its last release: the cooldown clock. */
  releasedAt: z.record(z.string().regex(/^(0|[1-9]\d*)$/), count),
  /** Upstream's tombstone: a deleted block is being removed and must not be allocated from. */
  deleted: z.boolean(),
}).strict();
export type BlockSpec = z.output<typeof blockSpecSchema>;

// ---------------------------------------------------------------------------------------------
// IPAMHandle: one per pod interface; where its addresses are, so release is O(1).

export const handleSpecSchema = z.object({
  handleID: z.string().min(1),
  /** Block name → number of addresses this handle holds there. */
  block: z.record(z.string(), count),
  deleted: z.boolean(),
}).strict();
export type HandleSpec = z.output<typeof handleSpecSchema>;

/** `host:<node>` affinity value for a node. */
export function hostAffinity(node: string): string {
  return `host:${node}`;
}
