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
}

export interface AddReply {
  mode: "nic" | "passthrough";
  ip: string;
  /** Prefix length of the pod address (32 in veth modes). */
  prefix: number;
  /** Gateway the pod uses (169.254.1.1 in veth modes, the vxnet gateway in passthrough). */
  gateway: string;
  vxnet: string;
  vxnetCidr: string;
  nicId: string;
  ifName: string;
  podMac: string;
  hostVeth?: string;
  hostVethMac?: string;
}

export type DelRequest = PodRef;

export interface CheckRequest extends PodRef {
  settings: CniSettings;
}

export interface GcRequest {
  /** Attachments the runtime still considers valid; everything else is released. */
  validAttachments: { containerId: string; ifName: string }[];
}

export interface StatusReply {
  ready: boolean;
  freeNics: number;
  reason?: string;
}
