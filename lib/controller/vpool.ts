/**
 * One reconcile pass of the VxNetPool `v-pool` (upstream §2.9), idempotent and restartable at any
 * point:
 *   for each `spec.vxnets[].name`, in order:
 *     DescribeVxnets → usable range (§3.6) → VIPs over it (cloud.ts) → security-group rule when
 *     `clusterconfig` names a group → IPPool (named after the vxnet) → its IPAMBlocks
 *   IPPools of vxnets no longer in the spec → removed when no block holds an address
 *   → status (`ready`, `pools`, conditions) and IPPool status (utilization).
 * The IPPool and IPAMBlock steps (create, carve, remove, statuses) are in ippools.ts.
 * Nothing is remembered between passes: each one reads the cloud and the API server, so a crash
 * between any two steps only means the next pass redoes the reads.
 *
 * Removal order (a crash in between resumes where it stopped, because the IPPool goes last):
 * disable the IPPool (no new block claims) → re-check the blocks → delete each block with its
 * resourceVersion as precondition (a daemon allocating meanwhile makes the delete fail) → release
 * the VIPs → delete the IPPool. Security-group rules stay (upstream's choice: a rule may serve
 * other vxnets of the same CIDR and costs nothing).
 */
import { errorMessage } from "../errors.ts";
import { describeAll } from "../iaas/paginate.ts";
import type { Vxnet } from "../iaas/types.ts";
import {
  poolSpecForVxnet,
  usableRange,
  VXNET_POOL_NAME,
  type VxNetPoolSpec,
  vxnetPoolSpecSchema,
} from "../ipam/mod.ts";
import type { Logger } from "../log.ts";
import { autoAssign, type AutoAssignResult } from "./autoassign.ts";
import { CLUSTER_CONFIG, type ClusterConfig, parseClusterConfig } from "./cluster_config.ts";
import { ensureSecurityGroupRule, ensureVips } from "./cloud.ts";
import {
  describeBlocked,
  ensureBlocks,
  ensurePool,
  type PoolObserver,
  type RemovalBlock,
  removeUnwanted,
  writePoolStatuses,
} from "./ippools.ts";
import type { Condition, PoolStatus, ReconcileDeps, Step, VxNetPoolObject } from "./types.ts";
import { VxnetPrepareError } from "./types.ts";

/** What the reconcile reports for metrics; all optional. */
export interface ReconcileObserver extends PoolObserver {
  vipsAllocated?(vxnet: string, count: number): void;
}

export interface ReconcileOptions {
  logger: Logger;
  observer?: ReconcileObserver;
  /** Cooldown used when counting cooling addresses (matches the daemons'); default 0. */
  cooldownMs?: number;
  signal?: AbortSignal;
}

export interface ReconcileResult {
  /** v-pool exists. */
  present: boolean;
  ready: boolean;
  status?: PoolStatus;
  /** Sentences, one per vxnet that could not be prepared. */
  problems: string[];
  /** Removed vxnets whose IPPool is kept because addresses are in use. */
  blockedRemovals: RemovalBlock[];
  removed: string[];
  /** Namespace auto-assign of this pass (absent when v-pool is absent or invalid). */
  autoAssign?: AutoAssignResult;
}

/** Sets `next` in `conds`, keeping `lastTransitionTime` when the status did not change. */
export function setCondition(
  conds: readonly Condition[],
  next: Omit<Condition, "lastTransitionTime">,
  now: number,
): Condition[] {
  const prev = conds.find((c) => c.type === next.type);
  const lastTransitionTime = prev && prev.status === next.status
    ? prev.lastTransitionTime
    : new Date(now).toISOString().replace(/\.\d{3}Z$/, "Z");
  return [...conds.filter((c) => c.type !== next.type), { ...next, lastTransitionTime }];
}

function addressing(v: Vxnet) {
  if (!v.router) {
    throw new VxnetPrepareError(v.vxnet_id, "is not part of a VPC (no router); join it to one");
  }
  const r = v.router;
  if (!r.ip_network) throw new VxnetPrepareError(v.vxnet_id, "its router reports no network");
  if (!r.dyn_ip_start || !r.dyn_ip_end) {
    throw new VxnetPrepareError(v.vxnet_id, "has DHCP off (no dyn_ip range); turn DHCP on");
  }
  return {
    vxnet: v.vxnet_id,
    cidr: r.ip_network,
    dynStart: r.dyn_ip_start,
    dynEnd: r.dyn_ip_end,
    ...(r.manager_ip ? { gateway: r.manager_ip } : {}),
    ...(v.tunnel_type ? { tunnelType: v.tunnel_type } : {}),
  };
}

export async function reconcileVxNetPool(
  d: ReconcileDeps,
  o: ReconcileOptions,
): Promise<ReconcileResult> {
  const log = o.logger;
  const step = async (s: Step, detail: Record<string, unknown>) => {
    await d.afterStep?.(s, detail);
    // A leader that lost its Lease stops between steps, before another replica may start.
    o.signal?.throwIfAborted();
  };
  const cloudDeps = {
    cloud: d.cloud,
    logger: log,
    afterStep: step,
    onVipsAllocated: (vx: string, n: number) => o.observer?.vipsAllocated?.(vx, n),
    ...(o.signal ? { signal: o.signal } : {}),
  };
  const result: ReconcileResult = {
    present: false,
    ready: false,
    problems: [],
    blockedRemovals: [],
    removed: [],
  };
  const cache = d.cache;
  const now = d.now();
  const vp = await d.kube.getVxNetPool(VXNET_POOL_NAME);
  const parsed = vp ? vxnetPoolSpecSchema.safeParse(vp.spec) : undefined;
  const spec: VxNetPoolSpec | undefined = parsed?.success ? parsed.data : undefined;
  const wanted = new Set(spec?.vxnets.map((v) => v.name) ?? []);

  // Removals first: they only need the API server, and a spec that no longer parses must not
  // make the controller forget vxnets it prepared (so removals wait for a valid spec).
  if (spec) await removeUnwanted(d, o, { wanted, result, cloudDeps, step });
  if (!vp) return result;
  result.present = true;

  let conds: Condition[] = [...(vp.status?.conditions ?? [])];
  const pools: PoolStatus["pools"] = [];
  if (!spec) {
    const issue = parsed && !parsed.success ? parsed.error.issues[0] : undefined;
    const msg = issue ? `spec.${issue.path.join(".")}: ${issue.message}` : "spec is missing";
    result.problems.push(msg);
    conds = setCondition(conds, {
      type: "Ready",
      status: "False",
      reason: "InvalidSpec",
      message: msg,
      observedGeneration: vp.generation,
    }, now);
    await writeStatus(d, vp, { ready: false, pools: [], conditions: conds }, step, result);
    return result;
  }

  let cluster: ClusterConfig = {};
  let securityGroup: string | undefined;
  try {
    const cm = await d.kube.getConfigMap(CLUSTER_CONFIG.namespace, CLUSTER_CONFIG.name);
    cluster = parseClusterConfig(cm?.data);
    securityGroup = cluster.securityGroup;
    if (!securityGroup && cluster.clusterID) {
      const cached = cache?.clusterGroup(cluster.clusterID, now);
      if (cached) {
        securityGroup = cached;
      } else {
        if (!d.cloud.describeClusterSecurityGroup) {
          throw new Error(`cannot look up cluster "${cluster.clusterID}" (no DescribeClusters)`);
        }
        securityGroup = await d.cloud.describeClusterSecurityGroup(cluster.clusterID);
        if (!securityGroup) {
          throw new Error(`cluster "${cluster.clusterID}" has no security group`);
        }
        cache?.setClusterGroup(cluster.clusterID, securityGroup, now);
      }
    }
  } catch (err) {
    result.problems.push(
      `${CLUSTER_CONFIG.namespace}/${CLUSTER_CONFIG.name}: ${errorMessage(err)}`,
    );
  }

  const described = new Map<string, Vxnet>();
  const missing = [...wanted].filter((n) => {
    const v = cache?.vxnet(n, now);
    if (v) described.set(n, v);
    return !v;
  });
  if (result.problems.length === 0 && missing.length > 0) {
    try {
      const list = await describeAll(
        (p) => d.cloud.describeVxnets({ vxnets: missing, ...p }),
        { key: (v) => v.vxnet_id },
      );
      for (const v of list) {
        described.set(v.vxnet_id, v);
        cache?.setVxnet(v, now);
      }
      await step("describe-vxnets", { vxnets: missing });
    } catch (err) {
      result.problems.push(`DescribeVxnets failed: ${errorMessage(err)}`);
    }
  }

  const allBlocks = await d.blocks.list();
  if (result.problems.length === 0) {
    for (const { name } of spec.vxnets) {
      try {
        const v = described.get(name);
        if (!v) {
          throw new VxnetPrepareError(name, "does not exist (DescribeVxnets did not return it)");
        }
        const addr = addressing(v);
        const opts = {
          blockSize: spec.blockSize,
          ...(spec.customReservedIPCount !== undefined
            ? { customReservedIPCount: spec.customReservedIPCount }
            : {}),
        };
        const range = usableRange(addr, opts);
        const poolSpec = poolSpecForVxnet(addr, opts);
        const prepKey = JSON.stringify([
          range.rangeStart,
          range.rangeEnd,
          poolSpec.cidr,
          securityGroup,
        ]);
        if (!cache?.prepared(name, prepKey, now)) {
          await ensureVips(cloudDeps, {
            vxnet: name,
            rangeStart: range.rangeStart,
            rangeEnd: range.rangeEnd,
          });
          if (securityGroup) {
            await ensureSecurityGroupRule(cloudDeps, {
              securityGroup,
              vxnet: name,
              cidr: poolSpec.cidr,
            });
          }
          cache?.setPrepared(name, prepKey, now);
        }
        const pool = await ensurePool(d, { name, spec: poolSpec, log, step });
        const subnets = await ensureBlocks(d, {
          pool: name,
          spec: pool.spec,
          existing: allBlocks.filter((b) => b.spec.pool === name),
          step,
        });
        pools.push({ name, ippool: name, subnets });
      } catch (err) {
        const msg = errorMessage(err);
        log.warn("vxnet not prepared", { vxnet: name, error: msg });
        result.problems.push(msg);
      }
    }
  }

  result.ready = result.problems.length === 0 && pools.length === spec.vxnets.length;
  conds = setCondition(conds, {
    type: "Ready",
    status: result.ready ? "True" : "False",
    reason: result.ready ? "Prepared" : "PreparationFailed",
    message: result.ready
      ? `${pools.length} vxnet(s) prepared: VIPs reserved, IPPools and blocks created`
      : result.problems.join("; "),
    observedGeneration: vp.generation,
  }, now);
  conds = setCondition(
    conds,
    result.blockedRemovals.length > 0
      ? {
        type: "RemovalBlocked",
        status: "True",
        reason: "AddressesInUse",
        message: result.blockedRemovals.map(describeBlocked).join("; "),
        observedGeneration: vp.generation,
      }
      : {
        type: "RemovalBlocked",
        status: "False",
        reason: "NothingPending",
        message: "no removed vxnet is waiting for its addresses to be released",
        observedGeneration: vp.generation,
      },
    now,
  );
  // Namespace auto-assign works from the pools computed above, and its outcome is a condition.
  try {
    result.autoAssign = await autoAssign(d, {
      logger: log,
      status: { ready: result.ready, pools, conditions: [] },
      ready: result.ready,
    });
  } catch (err) {
    result.autoAssign = {
      enabled: true,
      written: false,
      changes: [],
      starved: [],
      problem: errorMessage(err),
    };
  }
  conds = setCondition(conds, autoAssignCondition(result.autoAssign, vp.generation), now);
  const status: PoolStatus = {
    ready: result.ready,
    ...(result.ready ? {} : { message: result.problems.join("; ") }),
    pools,
    conditions: conds,
  };
  await writeStatus(d, vp, status, step, result);
  await writePoolStatuses(d, o, [...wanted]);
  return result;
}

function autoAssignCondition(
  a: AutoAssignResult,
  generation: number,
): Omit<Condition, "lastTransitionTime"> {
  const base = { type: "AutoAssign", observedGeneration: generation };
  if (a.problem) {
    return { ...base, status: "False", reason: "CannotAssign", message: a.problem };
  }
  if (!a.enabled) {
    return {
      ...base,
      status: "False",
      reason: "Off",
      message: 'subnet-auto-assign is not "on" in kube-system/hostnic-ipam-config',
    };
  }
  if (a.starved.length > 0) {
    return {
      ...base,
      status: "False",
      reason: "NoFreeBlock",
      message: `no free block left for namespace(s) ${
        a.starved.map((n) => `"${n}"`).join(", ")
      }; add a vxnet to ${VXNET_POOL_NAME} or free a block`,
    };
  }
  return {
    ...base,
    status: "True",
    reason: "Assigned",
    message: "every namespace has a block with a free address",
  };
}

async function writeStatus(
  d: ReconcileDeps,
  vp: VxNetPoolObject,
  status: PoolStatus,
  step: (s: Step, detail: Record<string, unknown>) => Promise<void>,
  result: ReconcileResult,
): Promise<void> {
  result.status = status;
  const prev = vp.status ?? {};
  const same = JSON.stringify({
    ready: prev.ready ?? false,
    message: prev.message,
    pools: prev.pools ?? [],
    conditions: prev.conditions ?? [],
  }) === JSON.stringify({ ...status, message: status.message });
  if (same) return;
  await d.kube.writeVxNetPoolStatus(vp.name, status);
  await step("status-written", { ready: status.ready });
}
