/**
 * Bodies of the plugin ⇄ daemon requests (`/v1/cni/*`). Types only, so the CNI plugin can import
 * them without pulling zod; the daemon validates with `schemas.ts`.
 */

/** Per-call datapath settings, from the plugin's CNI config (`hostnic-cni` keys). */
export interface CniSettings {
  vethPrefix: string;
  mtu: number;
  serviceCIDR?: string;
  hairpin: boolean;
  natMark: number;
}

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
