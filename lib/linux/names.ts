/**
 * Names and well-known values of the node datapath. Everything a DEL needs to find is derived
 * from what a DEL knows (pod key or container id, route table), never stored on the side:
 *
 * - host veth: `<vethPrefix>` + first 11 hex of SHA-1(`<k8sNamespace>.<podName>`), or of the
 *   container id when no pod name is known; at most 15 chars (IFNAMSIZ - 1).
 * - the veth ends' MACs: derived from the same hash, so the pod's permanent neighbour entry can be
 *   planned before the link exists (no read-back spawn).
 * - a pod's / vxnet's NIC: `hostnic_<table>`; its original name is kept in its alias.
 */
import { InvalidSpecError } from "./errors.ts";
import { sha1Hex } from "./sha1.ts";

export const DEFAULT_VETH_PREFIX = "vnic";
export const DEFAULT_MTU = 1500;
export const DEFAULT_ROUTE_TABLE_BASE = 260;
export const DEFAULT_NAT_MARK = 0x10000;
/** Link-local next hop every veth-mode pod routes through (answered by a permanent neighbour). */
export const POD_GATEWAY = "169.254.1.1";
/** Pod-side name of the passthrough pod's second link that carries host-bound routes. */
export const DEFAULT_SERVICE_IFNAME = "hostnic-svc";
export const NIC_NAME_PREFIX = "hostnic_";

/** ip rule priorities (upstream's 1535/1536, plus the node-level mark rule just before them). */
export const PRIORITY = {
  /** `fwmark <natMark>/<natMark> lookup main`: replies of NodePort/service connections. */
  natMark: 1534,
  /** `to <podIP> lookup main`: traffic to a local pod goes down its veth. */
  toPod: 1535,
  /** `from <podIP|vxnet cidr> lookup <table>`: pod egress leaves through its NIC. */
  fromPod: 1536,
} as const;

const IFNAMSIZ = 16;
const NAME_RE = /^[A-Za-z0-9_.-]+$/;

/** Who a pod is, as far as naming goes. */
export interface PodIdentity {
  containerId: string;
  /** Kubernetes namespace and name, when known (K8S_POD_NAMESPACE / K8S_POD_NAME). */
  k8sNamespace?: string;
  podName?: string;
  /**
   * CNI_IFNAME of the attachment. A second interface of the same pod (Multus `net1`) must not get
   * the first one's host veth, so any name other than `eth0` is part of the hash.
   */
  ifName?: string;
}

/** The string hashed for a pod's names: `<ns>.<pod>` or the container id, plus `/<if>` if not eth0. */
export function podHashKey(pod: PodIdentity): string {
  const suffix = pod.ifName && pod.ifName !== "eth0" ? `/${pod.ifName}` : "";
  if (pod.podName) return `${pod.k8sNamespace ?? "default"}.${pod.podName}${suffix}`;
  if (!pod.containerId) throw new InvalidSpecError("containerId", "empty, and no pod name given");
  return pod.containerId + suffix;
}

/** Validates a link name (1..15 chars of [A-Za-z0-9_.-]); `field` names the input. */
export function requireLinkName(field: string, name: string): string {
  if (name.length === 0 || name.length >= IFNAMSIZ || !NAME_RE.test(name)) {
    throw new InvalidSpecError(
      field,
      `"${name}" is not a usable interface name (1-${IFNAMSIZ - 1} chars of A-Z a-z 0-9 _ . -)`,
    );
  }
  return name;
}

/** Host-side veth name for a pod: `<prefix>` + 11 hex of the pod hash. */
export function hostVethName(pod: PodIdentity, prefix: string = DEFAULT_VETH_PREFIX): string {
  const name = prefix + sha1Hex(podHashKey(pod)).slice(0, 11);
  return requireLinkName("vethPrefix", name);
}

/** MACs of the veth ends: host `ee:…` (like Calico's well-known ee), pod `02:…`; both local. */
export function vethMacs(pod: PodIdentity): { host: string; pod: string } {
  const h = sha1Hex(`mac:${podHashKey(pod)}`);
  const bytes = (from: number) =>
    Array.from({ length: 5 }, (_, i) => h.slice(from + 2 * i, from + 2 * i + 2));
  return { host: ["ee", ...bytes(0)].join(":"), pod: ["02", ...bytes(10)].join(":") };
}

/** `hostnic_<table>`: the name a NIC gets while hostnic uses it. */
export function nicLinkName(table: number): string {
  if (!Number.isInteger(table) || table < 1 || table > 0xfffffffe || table === 253) {
    throw new InvalidSpecError("table", `${table} is not a usable route table number`);
  }
  if (table === 254 || table === 255) {
    throw new InvalidSpecError("table", `${table} is a kernel table (main/local)`);
  }
  return requireLinkName("table", `${NIC_NAME_PREFIX}${table}`);
}

/** Table number encoded in a `hostnic_<table>` name, or undefined. */
export function tableOfNicName(name: string): number | undefined {
  const m = /^hostnic_(\d+)$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Normalised MAC (lowercase, colon-separated); throws on anything else. */
export function requireMac(field: string, mac: string): string {
  const m = mac.toLowerCase();
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(m)) {
    throw new InvalidSpecError(field, `"${mac}" is not a MAC address`);
  }
  return m;
}
