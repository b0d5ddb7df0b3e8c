/**
 * zod schemas of the socket requests (`/v1/cni/*`, `/v1/admin/*`): everything a client sends is
 * checked here before the service sees it; the RPC server answers BAD_REQUEST naming the field.
 * Limits mirror the CNI spec and the kernel (container ids, interface names, paths).
 */
import { z } from "zod";
import { FOREIGN_MARK_BITS } from "../cni/config.ts";
import { ipv4Cidr as cidr, vxnetId } from "../config.ts";

const ipv4 = z.string().regex(
  /^((25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(25[0-5]|2[0-4]\d|1?\d?\d)$/,
  "must be an IPv4 address",
);
/** CNI spec: alphanumerics plus `_ . -`, must not be empty. */
const containerId = z.string().min(1).max(256).regex(
  /^[A-Za-z0-9][A-Za-z0-9_.\-]*$/,
  "must be letters, digits, '_', '.' or '-'",
);
/** Kernel IFNAMSIZ minus the NUL; no '/', ':' or whitespace. */
const ifName = z.string().min(1).max(15).regex(/^[^/:\s]+$/, "must be a valid interface name")
  .refine((v) => v !== "." && v !== "..", "must be a valid interface name");
const netns = z.string().max(4096).refine(
  (v) => v === "" || v.startsWith("/"),
  "must be an absolute path",
);
const k8sName = z.string().min(1).max(253).regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, {
  message: "must be a Kubernetes name",
});

export const settingsSchema = z.object({
  vethPrefix: z.string().regex(/^[A-Za-z0-9_-]{1,4}$/, "must be 1 to 4 letters, digits, _ or -"),
  mtu: z.number().int().min(68).max(65535),
  serviceCIDR: cidr.optional(),
  hairpin: z.boolean(),
  natMark: z.number().int().positive().max(0xffffffff).refine(
    (v) => (v & FOREIGN_MARK_BITS) === 0,
    "must not overlap kube-proxy's or Calico's marks",
  ),
}).strict();

const podRef = {
  containerId,
  ifName,
  netns,
  podNamespace: k8sName.optional(),
  podName: k8sName.optional(),
};

export const addSchema = z.object({
  ...podRef,
  settings: settingsSchema,
  vxnet: vxnetId.optional(),
  ip: ipv4.optional(),
  type: z.literal("passthrough").optional(),
  routes: z.array(
    z.object({
      dst: cidr,
      gw: ipv4.optional(),
      viaGatewayNic: z.boolean(),
    }).strict(),
  ).max(64).optional(),
}).strict().refine((r) => r.netns !== "", { message: "must not be empty", path: ["netns"] });

export const delSchema = z.object(podRef).strict();

export const checkSchema = z.object({ ...podRef, settings: settingsSchema }).strict();

export const statusSchema = z.object({}).strict();

export const gcSchema = z.object({
  validAttachments: z.array(z.object({ containerId, ifName }).strict()).max(100_000),
}).strict();

export const adminGcSchema = z.object({ dryRun: z.boolean().default(false) }).strict();
