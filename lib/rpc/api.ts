/**
 * Bodies of the plugin ⇄ daemon requests (`/v1/cni/*`). Types only, so the CNI plugin can import
 * them without pulling zod; the daemon validates with `schemas.ts`.
 */

import type { HostnicNetConf } from "../cni/config.ts";

/** Per-call datapath settings: the `hostnic-cni` keys of the plugin's CNI config. */
export type CniSettings = Pick<
  HostnicNetConf,
  "vethPrefix" | "mtu" | "serviceCIDR" | "hairpin" | "natMark"
>;

export interface PodRef {
  containerId: string;
  ifName: string;
  /** CNI_NETNS; may be empty on DEL. */
  netns: string;
  podNamespace?: string;
  podName?: string;
}

export interface AddRequest extends PodRef {
  settings: CniSettings;
  /** Requested attachment: pod annotations or CNI args (`hostnic.network.kubesphere.io/*`). */
  vxnet?: string;
  ip?: string;
  type?: "passthrough";
  /**
   * Passthrough only: extra pod routes from `ipam.routes`. `viaGatewayNic` (legacy `gw: 0.0.0.0`)
   * routes `dst` through the node's gateway NIC in the pod's vxnet.
   */
  routes?: { dst: string; gw?: string; viaGatewayNic: boolean }[];
}

/** An interface of the CNI result (`sandbox` set for pod-side ones). */
export interface ReplyInterface {
  name: string;
  mac: string;
  sandbox?: string;
}

export interface AddReply {
  mode: "nic" | "passthrough";
  /** The pod's address with prefix (`/32` in nic mode, the vxnet prefix in passthrough). */
  address: string;
  /** Gateway the pod uses (169.254.1.1 in nic mode, the vxnet gateway in passthrough). */
  gateway: string;
  interfaces: ReplyInterface[];
  /** Index into `interfaces` of the interface carrying `address`. */
  interfaceIndex: number;
  /** Pod routes besides the default route (passthrough `ipam.routes`). */
  routes: { dst: string; gw: string }[];
  vxnet: string;
  vxnetCidr: string;
  nicId: string;
}

export type DelRequest = PodRef;

export interface CheckRequest extends PodRef {
  settings: CniSettings;
}

export interface GcRequest {
  /** Attachments the runtime still considers valid; everything else is released. */
  validAttachments: { containerId: string; ifName: string }[];
}

/** `POST /v1/admin/gc`: what a GC pass did (or, dry, would do) and why. */
export interface GcView {
  applied: boolean;
  /** Each action with its kind, target and reason, plus `text`, one line for people. */
  actions: ({ kind: string; reason: string; text: string } & Record<string, unknown>)[];
  failed: { action: string; error: string }[];
}

export interface StatusReply {
  ready: boolean;
  freeNics: number;
  reason?: string;
}

/** `GET /v1/admin/pool`: the node's pool and its targets. */
export interface PoolView {
  instanceId: string;
  nodeName?: string;
  vxnet?: string;
  poolLow: number;
  poolHigh: number;
  maxNic: number;
  free: number;
  /** Free NICs whose IP is still in cooldown after a pod released it. */
  cooling: number;
  pending: number;
  inuse: number;
  detaching: number;
  total: number;
  waiters: number;
  ready: boolean;
  reason?: string;
  lastError?: string;
}

/** `GET /v1/admin/nics`: one row per NIC this node holds. */
export interface NicView {
  id: string;
  vxnet: string;
  ip: string;
  state: "creating" | "attaching" | "free" | "inuse" | "detaching";
  table: number;
  dedicated: boolean;
  /** `<containerId>/<ifName>` while in use (or `gateway/<vxnet>` for a gateway NIC). */
  owner?: string;
  /** `namespace/name` of the pod using it, when known. */
  pod?: string;
  jobId?: string;
}

/** `GET /v1/admin/pods`: one row per pod attachment. */
export interface PodView {
  containerId: string;
  ifName: string;
  pod?: string;
  netns: string;
  mode: "nic" | "passthrough" | "shared";
  ip: string;
  nicId: string;
  vxnet: string;
  table: number;
  createdAt: string;
  /** Shared mode: the IPAMBlock, the allocation's sequence number and the record's state. */
  block?: string;
  sequence?: number;
  state?: string;
}
