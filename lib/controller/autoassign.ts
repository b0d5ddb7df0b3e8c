/**
 * Namespace → block auto-assign (upstream §2.8 "Namespace auto-assign", seed 001 step 5): with
 * `subnet-auto-assign: "on"` in `kube-system/hostnic-ipam-config`, every namespace gets a block of
 * its own, and one more whenever all of its blocks are full; a namespace that is gone loses its
 * key, and blocks whose vxnet left `v-pool` are unmapped. A block is free when `v-pool`'s status lists it, no namespace has it, its pool is not
 * named under `Default`, and it has a free address. The mapping is computed (`planAutoAssign`,
 * pure) and then written with the ConfigMap's resourceVersion, so a concurrent edit by a user
 * wins and the next pass recomputes from it. Off: nothing is written; namespaces without a
 * mapping use `Default`.
 */
import { errorMessage } from "../errors.ts";
import { blockStats, IPAM_CONFIG, type IpamConfig, parseIpamConfig } from "../ipam/mod.ts";
import { ConflictError } from "../ipam/mod.ts";
import type { Logger } from "../log.ts";
import type { NamespaceInfo, PoolStatus, ReconcileDeps, Step } from "./types.ts";

export interface AutoAssignPlan {
  /** Namespace → blocks, `Default` kept; in the order to write. */
  mapping: [string, string[]][];
  /** Human-readable changes (`assigned block X to namespace Y`, `dropped namespace Z`). */
  changes: string[];
  /** Namespaces that needed a block and found none free. */
  starved: string[];
}

/**
 * The new `ipam` mapping. `free` says how many free addresses each existing block has (a block
 * missing from it does not exist and is never handed out).
 */
export function planAutoAssign(o: {
  config: IpamConfig;
  namespaces: readonly NamespaceInfo[];
  pools: PoolStatus["pools"];
  free: ReadonlyMap<string, number>;
  /** Pool of each block, to keep `Default` pools' blocks out. */
  poolOf: ReadonlyMap<string, string>;
}): AutoAssignPlan {
  const changes: string[] = [];
  const starved: string[] = [];
  const live = new Map(o.namespaces.map((n) => [n.name, n]));
  const known = new Set(o.pools.flatMap((p) => p.subnets));
  const mapped = new Map<string, string[]>();
  for (const [ns, blocks] of o.config.namespaces) {
    const n = live.get(ns);
    if (!n || n.terminating) {
      changes.push(`dropped namespace "${ns}" (${n ? "terminating" : "gone"})`);
      continue;
    }
    // Blocks whose vxnet left v-pool are no use for new pods (release goes by handle).
    const kept = blocks.filter((b) => known.has(b));
    for (const b of blocks.filter((x) => !known.has(x))) {
      changes.push(`removed block "${b}" from namespace "${ns}" (not in v-pool any more)`);
    }
    mapped.set(ns, kept);
  }
  const taken = new Set([...mapped.values()].flat());
  const defaultPools = new Set(o.config.defaultPools);
  const candidates = o.pools
    .filter((p) => !defaultPools.has(p.name))
    .flatMap((p) => p.subnets);
  const nextFree = () =>
    candidates.find((b) =>
      !taken.has(b) && (o.free.get(b) ?? 0) > 0 && !defaultPools.has(o.poolOf.get(b) ?? "")
    );
  const names = [...live.values()].filter((n) => !n.terminating).map((n) => n.name).sort();
  for (const ns of names) {
    const blocks = mapped.get(ns) ?? [];
    const hasRoom = blocks.some((b) => (o.free.get(b) ?? 0) > 0);
    if (hasRoom) continue;
    const b = nextFree();
    if (!b) {
      starved.push(ns);
      continue;
    }
    taken.add(b);
    mapped.set(ns, [...blocks, b]);
    changes.push(
      blocks.length === 0
        ? `assigned block "${b}" to namespace "${ns}"`
        : `assigned block "${b}" to namespace "${ns}" (its blocks are full)`,
    );
  }
  const mapping: [string, string[]][] = [];
  if (o.config.defaultPools.length > 0) {
    mapping.push([IPAM_CONFIG.defaultKey, [...o.config.defaultPools]]);
  }
  // Keep the existing order, then new namespaces by name.
  for (const ns of o.config.namespaces.keys()) {
    const v = mapped.get(ns);
    if (v && v.length > 0) mapping.push([ns, v]);
  }
  for (const ns of [...mapped.keys()].sort()) {
    if (!o.config.namespaces.has(ns) && mapped.get(ns)!.length > 0) {
      mapping.push([ns, mapped.get(ns)!]);
    }
  }
  return { mapping, changes, starved };
}

export interface AutoAssignResult {
  enabled: boolean;
  written: boolean;
  changes: string[];
  starved: string[];
  /** Why nothing could be done (bad ConfigMap…). */
  problem?: string;
}

/** One auto-assign pass: read, plan, write with the read resourceVersion. */
export async function autoAssign(
  d: ReconcileDeps,
  o: { logger: Logger; status: PoolStatus | undefined; ready: boolean },
): Promise<AutoAssignResult> {
  const cm = await d.kube.getConfigMap(IPAM_CONFIG.namespace, IPAM_CONFIG.name);
  const none = { written: false, changes: [], starved: [] };
  if (!cm) return { enabled: false, ...none };
  let config: IpamConfig;
  try {
    config = parseIpamConfig(cm.data);
  } catch (err) {
    const problem = errorMessage(err);
    o.logger.warn("hostnic-ipam-config is invalid; auto-assign skipped", { error: problem });
    return { enabled: false, ...none, problem };
  }
  if (!config.autoAssign) return { enabled: false, ...none };
  if (!o.ready || !o.status) {
    return { enabled: true, ...none, problem: "v-pool is not ready" };
  }
  const [namespaces, blocks] = await Promise.all([d.kube.listNamespaces(), d.blocks.list()]);
  const free = new Map<string, number>();
  const poolOf = new Map<string, string>();
  for (const b of blocks) {
    if (b.spec.deleted) continue;
    free.set(b.name, blockStats(b.spec, { now: d.now(), cooldownMs: 0 }).free);
    poolOf.set(b.name, b.spec.pool);
  }
  const plan = planAutoAssign({ config, namespaces, pools: o.status.pools, free, poolOf });
  for (const ns of plan.starved) {
    o.logger.warn("no free block left for namespace", { namespace: ns });
  }
  if (plan.changes.length === 0) return { enabled: true, ...none, starved: plan.starved };
  const ipam = JSON.stringify(Object.fromEntries(plan.mapping), null, 2);
  parseIpamConfig({ ...cm.data, [IPAM_CONFIG.ipamKey]: ipam }); // never write what we would refuse
  try {
    await d.kube.replaceConfigMapData({
      namespace: IPAM_CONFIG.namespace,
      name: IPAM_CONFIG.name,
      resourceVersion: cm.resourceVersion,
      data: { ...cm.data, [IPAM_CONFIG.ipamKey]: ipam },
    });
  } catch (err) {
    if (err instanceof ConflictError) {
      o.logger.info("hostnic-ipam-config changed meanwhile; auto-assign retries next pass");
      return { enabled: true, ...none, starved: plan.starved };
    }
    throw err;
  }
  for (const c of plan.changes) o.logger.info(`auto-assign: ${c}`);
  await d.afterStep?.("ipam-config-written" as Step, { changes: plan.changes });
  return { enabled: true, written: true, changes: plan.changes, starved: plan.starved };
}
