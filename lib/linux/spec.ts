/**
 * Inputs and outputs shared by the attachment modes, and small helpers every mode's planner uses.
 */
import type { NameLocks } from "./name_locks.ts";
import type { NodeState } from "./node_state.ts";
import { InvalidSpecError } from "./errors.ts";
import { netnsPath } from "./exec.ts";
import { canonicalCidr, cidrContains, requireCidr, requireIpv4 } from "./ipv4.ts";
import type { PodIdentity } from "./names.ts";

export type PodMode = "nic" | "passthrough" | "shared";

/** Where "the node" is: hostnic's own namespace (daemon, plugin) or a named one (tests). */
export interface NodeOptions {
  /** Namespace name or path of the node; undefined = the calling process's namespace. */
  nodeNetns?: string;
  /**
   * Locks on the node's link names shared by teardowns that may run at the same time (the
   * daemon's); without it a teardown claims nothing and relies on its retries alone.
   */
  names?: NameLocks;
  /**
   * The node's state kept across requests (the daemon's): plans start from the reading the last
   * batch left instead of a read of their own (node_state.ts). Without it every plan reads.
   */
  state?: NodeState;
}

/** The cloud subnet a NIC lives in. */
export interface VxnetSpec {
  /** e.g. `172.22.1.0/24` */
  cidr: string;
  /** The vxnet's router address, e.g. `172.22.1.1`. */
  gateway: string;
}

/** What a DEL knows (the plugin without the daemon, or the daemon from its store). */
export interface PodTeardownSpec {
  mode: PodMode;
  pod: PodIdentity;
  /** CNI_IFNAME. */
  ifName: string;
  /** CNI_NETNS; may be empty or already gone. */
  netns?: string;
  /** The pod IP the daemon stored; without it, rules cannot be found and are left alone. */
  ip?: string;
  /** nic mode: the NIC's route table (its link is `hostnic_<table>`). */
  table?: number;
  /** passthrough: the NIC's MAC, to find it on the node when the pod namespace vanished. */
  nicMac?: string;
  vethPrefix?: string;
}

/** An interface for the CNI result. */
export interface ResultInterface {
  name: string;
  mac: string;
  /** The pod netns for pod-side interfaces; absent for host-side ones. */
  sandbox?: string;
}

export interface PodSetupResult {
  interfaces: ResultInterface[];
  /** The pod's address with prefix (`/32` in veth modes). */
  address: string;
  gateway: string;
  /** Index into `interfaces` of the interface carrying `address`. */
  interfaceIndex: number;
}

/** Validates a vxnet and returns it with a canonical CIDR. */
export function requireVxnet(v: VxnetSpec): VxnetSpec {
  const cidr = requireCidr("vxnet.cidr", v.cidr);
  requireIpv4("vxnet.gateway", v.gateway);
  if (!cidrContains(cidr, v.gateway)) {
    throw new InvalidSpecError("vxnet.gateway", `"${v.gateway}" is outside "${cidr}"`);
  }
  return { cidr, gateway: v.gateway };
}

/** Prefix length of a canonical CIDR. */
export function prefixLength(cidr: string): number {
  return Number(canonicalCidr(cidr).split("/")[1]);
}

/** A path `ip ... netns <ref>` can open for the node, even from inside the pod's namespace. */
export function nodeNetnsRef(nodeNetns: string | undefined): string {
  return nodeNetns ? netnsPath(nodeNetns) : `/proc/${Deno.pid}/ns/net`;
}

/** A required non-empty netns input. */
export function requireNetns(field: string, netns: string | undefined): string {
  if (!netns) throw new InvalidSpecError(field, "a network namespace name or path is required");
  return netns;
}

/** Quotes a free-form value (an alias) for an `ip -batch` line. */
export function quoteArg(value: string): string {
  if (/["\\\n]/.test(value)) throw new InvalidSpecError("alias", `"${value}" cannot be quoted`);
  return `"${value}"`;
}
