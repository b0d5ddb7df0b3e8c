/**
 * Start-up of the node daemon, before it serves: check the instance and vxnets as upstream does,
 * then rebuild state store → cloud → kernel so that nothing the daemon owns is forgotten. Both
 * let throttling and transient cloud errors through unchanged, for the caller's `StartupRetry`
 * (startup_retry.ts); they never mistake a busy cloud for a missing vxnet or a foreign NIC.
 *
 * Recovery rules (a NIC is never deleted while an allocation references it):
 * - store NIC in `creating`/`attaching` that the cloud shows attached to us → `free` (or `inuse` if an
 *   allocation names it), after waiting for its attach job if that may still be running; not
 *   attached and not referenced → detach/delete via the pool's retry.
 * - store NIC the cloud no longer has → record dropped (allocations naming it are kept: DEL or GC
 *   clears them).
 * - cloud NIC named `hostnic_<instance>` that the store does not know (crash between CreateNics and
 *   the first write) → adopted as `free` if attached here, otherwise deleted.
 */
import { errorMessage, HostnicError } from "../errors.ts";
import type { IaasClient } from "../iaas/mod.ts";
import { waitJob } from "../iaas/jobs.ts";
import { describeAllNics } from "../iaas/paginate.ts";
import type { Logger } from "../log.ts";
import { describeVxnetFacts } from "../nicpool/cloud.ts";
import {
  type AllocationRecord,
  nextTable,
  nicKey,
  type NicRecord,
  ownerKey,
  withoutUndefined,
} from "../nicpool/model.ts";
import type { ServiceStore } from "./backend.ts";
import { isTransientIaas } from "./startup_retry.ts";

/** For `.catch`: undefined for a permanent error; a transient one (throttling) is rethrown. */
function unlessTransient(err: unknown): undefined {
  if (isTransientIaas(err)) throw err;
  return undefined;
}

export class StartupError extends HostnicError {
  constructor(message: string, options?: ErrorOptions) {
    super("STARTUP_CHECK_FAILED", message, options);
  }
}

/** Instance exists; every configured vxnet exists, is in the instance's VPC and has DHCP on. */
export async function checkInstanceAndVxnets(
  iaas: IaasClient,
  o: { instanceId: string; vxnets: string[] },
): Promise<{ routerId: string; nodeIp?: string }> {
  const inst = (await iaas.describeInstances({ instances: [o.instanceId], verbose: 1 })).items
    .find((i) => i.instance_id === o.instanceId);
  if (!inst) {
    throw new StartupError(
      `Instance "${o.instanceId}" does not exist in this zone; check /etc/qingcloud/instance-id ` +
        `and the zone in the QingCloud config`,
    );
  }
  const own = (inst.vxnets ?? []).map((v) => v.vxnet_id).filter(Boolean);
  let routerId = "";
  for (const id of own) {
    // A vxnet of the instance we may not see is not fatal; a busy cloud is (retried by the caller).
    const facts = await describeVxnetFacts(iaas, id).catch(unlessTransient);
    if (facts?.routerId) {
      routerId = facts.routerId;
      break;
    }
  }
  if (!routerId) {
    throw new StartupError(
      `Instance "${o.instanceId}" is not in a VPC (none of its vxnets has a router)`,
    );
  }
  for (const id of o.vxnets) {
    const f = await describeVxnetFacts(iaas, id).catch((err) => {
      if (isTransientIaas(err)) throw err;
      throw new StartupError(err instanceof Error ? err.message : String(err), { cause: err });
    });
    if (f.routerId !== routerId) {
      throw new StartupError(
        `Vxnet "${id}" belongs to router "${f.routerId}", not to the instance's VPC "${routerId}"`,
      );
    }
  }
  const nodeIp = (inst.vxnets ?? []).find((v) => v.private_ip)?.private_ip ?? undefined;
  return { routerId, nodeIp };
}

export interface Recovered {
  nics: NicRecord[];
  allocs: AllocationRecord[];
  /** What recovery did, for the log and `admin gc --dry-run`. */
  actions: string[];
}

export async function recoverState(
  deps: { iaas: IaasClient; store: ServiceStore; logger: Logger; now: () => number },
  o: {
    instanceId: string;
    nicName: string;
    routeTableBase: number;
    pooledVxnet?: string;
    /** Longest wait for an attach job a crash interrupted (default 120 s). */
    jobTimeoutMs?: number;
  },
): Promise<Recovered> {
  const { iaas, store, logger } = deps;
  const nics = new Map<string, NicRecord>();
  for (const e of await store.list<NicRecord>("nic/")) nics.set(e.value.id, { ...e.value });
  const allocs = (await store.list<AllocationRecord>("alloc/")).map((e) => e.value);
  const byNic = new Map(allocs.map((a) => [a.nicId, a] as const));
  const actions: string[] = [];
  let cloud = await describeAllNics(iaas, { nicName: o.nicName });
  // Attaches a crash interrupted may still be running in the cloud: wait for their jobs first, so
  // a NIC about to be attached here is pooled instead of being detached and deleted.
  const interrupted = new Set<string>();
  for (const rec of nics.values()) {
    if ((rec.state !== "creating" && rec.state !== "attaching") || !rec.jobId) continue;
    const c = cloud.find((x) => x.nic_id === rec.id);
    if (c && !(c.status === "in-use" && c.instance_id === o.instanceId)) interrupted.add(rec.jobId);
  }
  if (interrupted.size > 0) {
    const waits = await Promise.allSettled(
      [...interrupted].map((id) =>
        waitJob(iaas, id, { timeoutMs: o.jobTimeoutMs ?? 120_000, logger })
      ),
    );
    for (const w of waits) {
      if (w.status === "rejected") {
        logger.warn("an interrupted attach did not finish", { err: errorMessage(w.reason) });
      }
    }
    cloud = await describeAllNics(iaas, { nicName: o.nicName });
  }
  const cloudById = new Map(cloud.map((n) => [n.nic_id, n] as const));
  const ops: ({ type: "put"; key: string; value: unknown } | { type: "del"; key: string })[] = [];

  for (const rec of nics.values()) {
    const c = cloudById.get(rec.id);
    if (!c) {
      nics.delete(rec.id);
      ops.push({ type: "del", key: nicKey(rec.id) });
      actions.push(`forget NIC ${rec.id}: gone from the cloud`);
      continue;
    }
    const attachedHere = c.status === "in-use" && c.instance_id === o.instanceId;
    const alloc = byNic.get(rec.id);
    if (alloc) {
      rec.state = "inuse";
      rec.owner = ownerKey(alloc.containerId, alloc.ifName);
    } else if (
      rec.state === "inuse" && attachedHere &&
      (rec.owner?.startsWith("gateway/") || rec.owner?.startsWith("shared/"))
    ) {
      // The node's gateway NIC of a vxnet (legacy `gw: 0.0.0.0` routes), or its shared-mode NIC
      // of a vxnet (lib/daemon/shared/service.ts frees it when it has no pods): kept.
    } else if (rec.state === "inuse") {
      rec.state = attachedHere ? "free" : "detaching";
      rec.owner = undefined;
      // Its pod held this IP until moments ago: it cools down like any released IP.
      rec.releasedAt = deps.now();
      actions.push(`NIC ${rec.id} had no allocation: ${rec.state}`);
    } else if (rec.state === "creating" || rec.state === "attaching") {
      rec.state = attachedHere && !rec.dedicated ? "free" : "detaching";
      actions.push(`finish interrupted attach of NIC ${rec.id}: ${rec.state}`);
    }
    rec.jobId = undefined;
    if (c.private_ip) rec.ip = c.private_ip;
    ops.push({ type: "put", key: nicKey(rec.id), value: withoutUndefined(rec) });
  }
  for (const c of cloud) {
    if (nics.has(c.nic_id)) continue;
    const attachedHere = c.status === "in-use" && c.instance_id === o.instanceId;
    // Throttled here, the NIC must not be judged foreign (and deleted): the caller retries.
    const vx = await describeVxnetFacts(iaas, c.vxnet_id).catch(unlessTransient);
    const now = deps.now();
    const rec: NicRecord = {
      id: c.nic_id,
      vxnet: c.vxnet_id,
      ip: c.private_ip ?? "",
      cidr: vx?.cidr ?? "",
      gateway: vx?.gateway ?? "",
      table: nextTable(nics.values(), o.routeTableBase),
      state: attachedHere && vx && c.vxnet_id === o.pooledVxnet ? "free" : "detaching",
      dedicated: false,
      createdAt: now,
      updatedAt: now,
    };
    if (c.status !== "in-use" || c.instance_id === o.instanceId) {
      nics.set(rec.id, rec);
      ops.push({ type: "put", key: nicKey(rec.id), value: withoutUndefined(rec) });
      actions.push(`adopt NIC ${rec.id} found in the cloud: ${rec.state}`);
    }
  }
  if (ops.length) await store.batch(ops);
  for (const a of actions) logger.info("recovery", { action: a });
  return { nics: [...nics.values()], allocs, actions };
}
