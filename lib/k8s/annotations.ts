/**
 * hostnic's annotations (upstream's names, so existing manifests keep working) and the node → vxnet
 * assignment. Pure: no I/O, no npm imports.
 *
 * Pod annotations
 *   hostnic.network.kubesphere.io/vxnet  take the pod's NIC from this vxnet (`vxnet-xxxxxxx`)
 *   hostnic.network.kubesphere.io/ip     fixed pod IP; needs /vxnet (the vxnet it belongs to)
 *   hostnic.network.kubesphere.io/type   `passthrough`: move the NIC itself into the pod
 * Node annotations
 *   hostnic.network.kubesphere.io/vxnet  the vxnet of the node's warm pool; set by hand or, when
 *                                        `pool.vxNets` is configured, by `assignVxnets`
 *   hostnic.network.kubesphere.io/pool   written by the daemon: its pool's health (JSON)
 *
 * A vxnet holds at most 252 NICs, so it can serve floor(252 / maxNic) nodes.
 */
import { ConfigError } from "../errors.ts";
import { AnnotationError } from "./errors.ts";

export const ANNOTATION_PREFIX = "hostnic.network.kubesphere.io/";
export const ANNOTATION_VXNET = `${ANNOTATION_PREFIX}vxnet`;
export const ANNOTATION_IP = `${ANNOTATION_PREFIX}ip`;
export const ANNOTATION_TYPE = `${ANNOTATION_PREFIX}type`;
/** On nodes, the same key as the pod's: the node's pool vxnet. */
export const NODE_ANNOTATION_VXNET = ANNOTATION_VXNET;
/** On nodes, written by the daemon: its pool's health as JSON (free, inuse, total, ready …). */
export const NODE_ANNOTATION_POOL = `${ANNOTATION_PREFIX}pool`;

/** NICs one vxnet can hold (QingCloud limit). */
export const NICS_PER_VXNET = 252;
/** Largest `maxNic` (NICs per instance besides the primary one). */
export const MAX_NIC_LIMIT = 63;

/** What a pod's annotations ask of hostnic. Absent keys were not asked for. */
export interface PodNetworkRequest {
  vxnet?: string;
  ip?: string;
  type?: "passthrough";
}

const VXNET_RE = /^vxnet-[a-z0-9]+$/;
const OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const IPV4_RE = new RegExp(`^${OCTET}(\\.${OCTET}){3}$`);

export function isVxnetId(s: string): boolean {
  return VXNET_RE.test(s);
}

/** A dotted-quad IPv4 address without leading zeros. */
export function isIpv4(s: string): boolean {
  return IPV4_RE.test(s);
}

/**
 * An address a pod can own: not 0/8, loopback, link-local (169.254/16, the pods' gateway lives
 * there), multicast or reserved/broadcast.
 */
export function isUnicastIpv4(s: string): boolean {
  if (!isIpv4(s)) return false;
  const [a, b] = s.split(".").map(Number);
  return a !== 0 && a !== 127 && a < 224 && !(a === 169 && b === 254);
}

function checkVxnet(annotation: string, value: string): string {
  if (!isVxnetId(value)) {
    throw new AnnotationError(
      annotation,
      value,
      'must be a vxnet ID like "vxnet-abc1234" (lower-case letters and digits after "vxnet-")',
    );
  }
  return value;
}

/** Reads hostnic's pod annotations; throws `AnnotationError` naming the first bad one. */
export function parsePodAnnotations(
  annotations: Readonly<Record<string, string>> | undefined,
  opts: { ipAlone?: boolean } = {},
): PodNetworkRequest {
  const out: PodNetworkRequest = {};
  if (!annotations) return out;
  const vxnet = annotations[ANNOTATION_VXNET];
  const ip = annotations[ANNOTATION_IP];
  const type = annotations[ANNOTATION_TYPE];
  if (vxnet !== undefined) out.vxnet = checkVxnet(ANNOTATION_VXNET, vxnet);
  if (ip !== undefined) {
    if (!isIpv4(ip)) {
      throw new AnnotationError(ANNOTATION_IP, ip, 'must be an IPv4 address like "172.22.0.88"');
    }
    if (!isUnicastIpv4(ip)) {
      throw new AnnotationError(
        ANNOTATION_IP,
        ip,
        "is not an address a pod can own (0/8, loopback, link-local, multicast and broadcast are not)",
      );
    }
    // Shared mode (ipAlone) takes a fixed IP from the namespace's blocks: no vxnet needed.
    if (out.vxnet === undefined && !opts.ipAlone) {
      throw new AnnotationError(
        ANNOTATION_IP,
        ip,
        `needs "${ANNOTATION_VXNET}" too: a fixed IP is taken from the vxnet named there`,
      );
    }
    out.ip = ip;
  }
  if (type !== undefined) {
    if (type !== "passthrough") {
      throw new AnnotationError(ANNOTATION_TYPE, type, 'must be "passthrough" (or be left out)');
    }
    out.type = type;
  }
  return out;
}

/** The node's pool vxnet from its annotation; undefined when unset, `AnnotationError` when bad. */
export function parseNodeVxnet(
  annotations: Readonly<Record<string, string>> | undefined,
): string | undefined {
  const v = annotations?.[NODE_ANNOTATION_VXNET];
  return v === undefined ? undefined : checkVxnet(NODE_ANNOTATION_VXNET, v);
}

/** Nodes one vxnet can serve when each node may hold `maxNic` NICs. */
export function nodesPerVxnet(maxNic: number): number {
  checkMaxNic(maxNic);
  return Math.floor(NICS_PER_VXNET / maxNic);
}

function checkMaxNic(maxNic: number): void {
  if (!Number.isInteger(maxNic) || maxNic < 1 || maxNic > MAX_NIC_LIMIT) {
    throw new ConfigError(
      "pool.maxNic",
      `must be a whole number from 1 to ${MAX_NIC_LIMIT}, got ${JSON.stringify(maxNic)}`,
    );
  }
}

/** A node as the assignment sees it: a name, or a name and its current annotations. */
export type NodeLike = string | {
  readonly name: string;
  readonly annotations?: Readonly<Record<string, string>>;
};

export interface AssignVxnetsInput {
  nodes: readonly NodeLike[];
  /** `pool.vxNets`, in the operator's order of preference. */
  vxNets: readonly string[];
  maxNic: number;
}

export interface VxnetAssignment {
  /** Nodes per vxnet: floor(252 / maxNic). */
  perVxnet: number;
  /** The vxnet each node should use, by node name (sorted). Nodes in `unassigned` are absent. */
  assignments: Map<string, string>;
  /** The node annotations to write (new or moved nodes), a subset of `assignments`. */
  changes: Map<string, string>;
  /** Nodes left without a vxnet, with why. */
  unassigned: Map<string, string>;
  /** Nodes kept where they are although something is off (a full vxnet, an unlisted vxnet). */
  notes: Map<string, string>;
}

const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Spreads nodes over `vxNets`, at most floor(252 / maxNic) per vxnet. Deterministic: nodes are taken
 * in name order and each new node gets the first listed vxnet with room. A node's existing valid
 * annotation is kept, so adding a node never moves another; the exceptions are annotations that are
 * not vxnet IDs (reassigned) and nodes beyond a vxnet's capacity (the later names move to a vxnet
 * with room, or stay, with a note, when there is none). An annotation naming a vxnet that is not in
 * `vxNets` is the operator's choice and is kept, with a note.
 */
export function assignVxnets(input: AssignVxnetsInput): VxnetAssignment {
  const perVxnet = nodesPerVxnet(input.maxNic);
  const vxNets: string[] = [];
  input.vxNets.forEach((v, i) => {
    if (!isVxnetId(v)) {
      throw new ConfigError(
        `pool.vxNets[${i}]`,
        `${JSON.stringify(v)} must look like "vxnet-xxxxxxx"`,
      );
    }
    if (!vxNets.includes(v)) vxNets.push(v);
  });

  const current = new Map<string, string | undefined>();
  for (const n of input.nodes) {
    const name = typeof n === "string" ? n : n.name;
    if (typeof name !== "string" || name === "") {
      throw new TypeError("assignVxnets: every node needs a non-empty name");
    }
    if (!current.has(name)) {
      current.set(name, typeof n === "string" ? undefined : n.annotations?.[NODE_ANNOTATION_VXNET]);
    }
  }
  const names = [...current.keys()].sort(byCodeUnits);

  const used = new Map<string, number>(vxNets.map((v) => [v, 0]));
  const assignments = new Map<string, string>();
  const changes = new Map<string, string>();
  const unassigned = new Map<string, string>();
  const notes = new Map<string, string>();
  const pending: { name: string; why?: string; stayOn?: string }[] = [];

  // Pass 1: keep what is already there and valid, in name order, up to capacity.
  for (const name of names) {
    const value = current.get(name);
    if (value === undefined) {
      pending.push({ name });
    } else if (!isVxnetId(value)) {
      pending.push({ name, why: `its annotation ${JSON.stringify(value)} is not a vxnet ID` });
    } else if (!used.has(value)) {
      assignments.set(name, value);
      notes.set(name, `kept on "${value}", which is not in pool.vxNets (set by hand)`);
    } else if (used.get(value)! < perVxnet) {
      used.set(value, used.get(value)! + 1);
      assignments.set(name, value);
    } else {
      pending.push({
        name,
        stayOn: value,
        why: `"${value}" already serves ${perVxnet} nodes, its limit with maxNic ${input.maxNic}`,
      });
    }
  }

  // Pass 2: place the rest on the first listed vxnet with room.
  for (const p of pending) {
    const free = vxNets.find((v) => used.get(v)! < perVxnet);
    if (free !== undefined) {
      used.set(free, used.get(free)! + 1);
      assignments.set(p.name, free);
      changes.set(p.name, free);
      continue;
    }
    const full = vxNets.length === 0
      ? "pool.vxNets is empty"
      : `every vxnet in pool.vxNets is full (${vxNets.length} × ${perVxnet} nodes with maxNic ${input.maxNic})`;
    const advice = "add vxnets to pool.vxNets or lower pool.maxNic";
    if (p.stayOn !== undefined) {
      assignments.set(p.name, p.stayOn);
      notes.set(p.name, `${p.why}; kept there because ${full}; ${advice}`);
    } else {
      unassigned.set(p.name, `${p.why ? p.why + "; " : ""}no vxnet for it: ${full}; ${advice}`);
    }
  }

  const sorted = new Map([...assignments].sort(([a], [b]) => byCodeUnits(a, b)));
  return { perVxnet, assignments: sorted, changes, unassigned, notes };
}
