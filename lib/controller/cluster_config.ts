/**
 * `kube-system/clusterconfig`, key `qingcloud.yaml` (upstream §5.4): the QKE cluster description.
 * Only `securityGroup` and `clusterID` matter to hostnic (the security group that must let the pod
 * vxnets in); the other keys upstream's tools write (`zone`, `userID`, `defaultVxNetForLB`, `isApp`,
 * `tagIDs`, `instanceIDs`) are accepted and ignored. Unlike upstream the ConfigMap is optional:
 * without it (a non-QKE cluster) no security-group rule is written.
 */
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { ConfigError } from "../errors.ts";

export const CLUSTER_CONFIG = {
  namespace: "kube-system",
  name: "clusterconfig",
  key: "qingcloud.yaml",
} as const;

const schema = z.object({
  zone: z.string().min(1).optional(),
  clusterID: z.string().regex(/^cl-[a-z0-9]+$/, 'must look like "cl-xxxxxxxx"').optional(),
  securityGroup: z.string().regex(/^sg-[a-z0-9]+$/, 'must look like "sg-xxxxxxxx"').optional(),
  userID: z.string().optional(),
  defaultVxNetForLB: z.string().optional(),
  isApp: z.boolean().optional(),
  tagIDs: z.array(z.string()).optional(),
  instanceIDs: z.array(z.string()).optional(),
}).passthrough();

export interface ClusterConfig {
  zone?: string;
  clusterID?: string;
  securityGroup?: string;
}

/** Parses the ConfigMap's data; undefined data (no ConfigMap) is an empty config. */
export function parseClusterConfig(data: Record<string, string> | undefined): ClusterConfig {
  const text = data?.[CLUSTER_CONFIG.key];
  if (data === undefined) return {};
  if (text === undefined) {
    throw new ConfigError(
      `${CLUSTER_CONFIG.name}/${CLUSTER_CONFIG.key}`,
      `the ConfigMap has no "${CLUSTER_CONFIG.key}" key`,
    );
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    const why = (e as Error).message.split("\n")[0];
    throw new ConfigError(`${CLUSTER_CONFIG.name}/${CLUSTER_CONFIG.key}`, `is not YAML (${why})`);
  }
  if (raw === null || raw === undefined) return {};
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const at = issue.path.length ? `.${issue.path.join(".")}` : "";
    throw new ConfigError(`${CLUSTER_CONFIG.name}/${CLUSTER_CONFIG.key}${at}`, issue.message);
  }
  const out: ClusterConfig = {};
  if (r.data.zone) out.zone = r.data.zone;
  if (r.data.clusterID) out.clusterID = r.data.clusterID;
  if (r.data.securityGroup) out.securityGroup = r.data.securityGroup;
  return out;
}
