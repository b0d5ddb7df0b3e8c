/**
 * `kube-system/hostnic-ipam-config`: which blocks or pools a namespace's pods use.
 * - `ipam`: JSON object. `Default` → IPPool (vxnet) names; any other key is a namespace → IPAMBlock
 *   names, tried in order. A block belongs to at most one namespace.
 * - `subnet-auto-assign`: "on" (the controller maps namespaces to free blocks) or "off" (default).
 * Parsed with zod; every rejection names the key (`ipam`, `ipam.<namespace>[i]`,
 * `subnet-auto-assign`) and nothing is half-applied.
 */
import { z } from "zod";
import { ConfigError, HostnicError } from "../errors.ts";
import { vxnetIdSchema } from "./types.ts";

export const IPAM_CONFIG = {
  namespace: "kube-system",
  name: "hostnic-ipam-config",
  ipamKey: "ipam",
  autoAssignKey: "subnet-auto-assign",
  defaultKey: "Default",
} as const;

/** Regex sources shared with the ValidatingAdmissionPolicy (deploy/crds/). */
export const CONFIG_PATTERNS = {
  /** A namespace name (DNS label). */
  namespace: "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
  /** A block name as `blockName()` makes it: `4100-172-16-3-0-26`. */
  blockName: "^[0-9]+(-[0-9]{1,3}){4}-[0-9]{1,2}$",
} as const;

export interface IpamConfig {
  autoAssign: boolean;
  /** Namespace → its blocks, in order. */
  namespaces: Map<string, string[]>;
  /** Pools for namespaces without a mapping (used only while auto-assign is off). */
  defaultPools: string[];
}

/** Where a namespace's pods get addresses: spread into `Ipam.allocate`'s request. */
export type IpamTarget =
  | { blocks: string[] }
  | { pools: string[]; excludeBlocks: string[] };

/** The namespace has no blocks and no default applies; the controller may be about to map it. */
export class NamespaceUnmappedError extends HostnicError {
  constructor(readonly namespace: string, readonly autoAssign: boolean) {
    super(
      "IPAM_NAMESPACE_UNMAPPED",
      `Namespace "${namespace}" has no blocks in "${IPAM_CONFIG.namespace}/${IPAM_CONFIG.name}"` +
        (autoAssign
          ? " yet; subnet-auto-assign is on, so the controller should map one shortly"
          : ` and there is no "${IPAM_CONFIG.defaultKey}" entry; add one of them`),
    );
  }
}

const namespaceRe = new RegExp(CONFIG_PATTERNS.namespace);
const blockNameSchema = z.string().regex(
  new RegExp(CONFIG_PATTERNS.blockName),
  'must be an IPAMBlock name such as "4100-172-16-3-0-26"',
);

/** Parses the ConfigMap's `data` (undefined when the ConfigMap does not exist: nothing mapped). */
export function parseIpamConfig(data: Record<string, string> | undefined): IpamConfig {
  const d = data ?? {};
  for (const key of Object.keys(d)) {
    if (key !== IPAM_CONFIG.ipamKey && key !== IPAM_CONFIG.autoAssignKey) {
      throw new ConfigError(
        key,
        `unknown key; "${IPAM_CONFIG.name}" has only "${IPAM_CONFIG.ipamKey}" and ` +
          `"${IPAM_CONFIG.autoAssignKey}"`,
      );
    }
  }
  const auto = d[IPAM_CONFIG.autoAssignKey];
  if (auto !== undefined && auto !== "on" && auto !== "off") {
    throw new ConfigError(IPAM_CONFIG.autoAssignKey, `must be "on" or "off", got "${auto}"`);
  }
  const cfg: IpamConfig = { autoAssign: auto === "on", namespaces: new Map(), defaultPools: [] };
  const text = d[IPAM_CONFIG.ipamKey];
  if (text === undefined || text.trim() === "") return cfg;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(IPAM_CONFIG.ipamKey, `is not valid JSON (${(e as Error).message})`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(IPAM_CONFIG.ipamKey, "must be a JSON object of name → list of names");
  }
  const owner = new Map<string, string>();
  for (const [key, value] of Object.entries(raw)) {
    const where = `${IPAM_CONFIG.ipamKey}.${key}`;
    const isDefault = key === IPAM_CONFIG.defaultKey;
    if (!isDefault && !namespaceRe.test(key)) {
      throw new ConfigError(where, `"${key}" is neither "Default" nor a namespace name`);
    }
    const list = z.array(isDefault ? vxnetIdSchema : blockNameSchema).safeParse(value);
    if (!list.success) {
      const issue = list.error.issues[0];
      const at = issue.path.length ? `${where}[${issue.path.join(".")}]` : where;
      throw new ConfigError(
        at,
        issue.path.length ? issue.message : "must be a list of names",
      );
    }
    list.data.forEach((name, i) => {
      if (list.data.indexOf(name) !== i) {
        throw new ConfigError(`${where}[${i}]`, `"${name}" is listed twice`);
      }
    });
    if (isDefault) {
      cfg.defaultPools = list.data;
      continue;
    }
    list.data.forEach((block, i) => {
      const other = owner.get(block);
      if (other !== undefined) {
        throw new ConfigError(
          `${where}[${i}]`,
          `block "${block}" is already mapped to namespace "${other}"`,
        );
      }
      owner.set(block, key);
    });
    cfg.namespaces.set(key, list.data);
  }
  return cfg;
}

/**
 * The blocks or pools a namespace uses: its own blocks when mapped; else, with auto-assign off,
 * the `Default` pools minus every block mapped to a namespace (upstream let Default pods take
 * other namespaces' blocks; here they never do).
 */
export function resolveNamespace(cfg: IpamConfig, namespace: string): IpamTarget {
  const blocks = cfg.namespaces.get(namespace);
  if (blocks && blocks.length > 0) return { blocks: [...blocks] };
  if (!cfg.autoAssign && cfg.defaultPools.length > 0) {
    return { pools: [...cfg.defaultPools], excludeBlocks: [...cfg.namespaces.values()].flat() };
  }
  throw new NamespaceUnmappedError(namespace, cfg.autoAssign);
}
