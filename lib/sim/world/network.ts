/**
 * The fixed part of the cloud a scenario describes and hostnic only reads: access keys, vxnets,
 * instances (plus the two changes the control API makes to them: status and reboot) and AppCenter
 * clusters (added through the control API, reported by DescribeClusters).
 */
import { invalidParameter, notFound } from "../errors.ts";
import { instanceNics } from "./nics.ts";
import { hasAnyTag } from "./tags.ts";
import { matchAny, matchWord, sortNewest, type Tables } from "./tables.ts";
import type { AccessKey, Cluster, Instance, InstanceStatus, Vxnet } from "./types.ts";

export function accessKey(w: Tables, id: string): AccessKey | undefined {
  return w.accessKeys.get(id);
}

export function describeAccessKeys(
  w: Tables,
  owner: string,
  f: { ids: string[]; statuses: string[] },
): AccessKey[] {
  return sortNewest(
    [...w.accessKeys.values()].filter((k) =>
      k.owner === owner && matchAny(f.ids, k.id) && matchAny(f.statuses, k.status)
    ),
  );
}

export function describeVxnets(w: Tables, owner: string, f: {
  ids: string[];
  vxnetType?: number;
  searchWord?: string;
  tagIds: string[];
}): Vxnet[] {
  return sortNewest(
    [...w.vxnets.values()].filter((v) =>
      v.owner === owner &&
      matchAny(f.ids, v.id) &&
      // Without a type filter the platform leaves out basic (type 2) vxnets; hostnic asks
      // for them in a second call with vxnet_type=2.
      (f.vxnetType === undefined ? v.vxnetType !== 2 : v.vxnetType === f.vxnetType) &&
      matchWord(f.searchWord, v.id, v.name) &&
      hasAnyTag(w, "vxnet", v.id, f.tagIds)
    ),
  );
}

/** Instances with a NIC in the vxnet (the verbose `instance_ids` view). */
export function vxnetInstanceIds(w: Tables, vxnetId: string): string[] {
  const ids = new Set<string>();
  for (const n of w.nics.values()) {
    if (n.vxnetId === vxnetId && n.instanceId !== "") ids.add(n.instanceId);
  }
  return [...ids].sort();
}

export function describeInstances(w: Tables, owner: string, f: {
  ids: string[];
  statuses: string[];
  vxnetId?: string;
  name?: string;
  searchWord?: string;
  tagIds: string[];
}): Instance[] {
  return sortNewest(
    [...w.instances.values()].filter((x) =>
      x.owner === owner &&
      matchAny(f.ids, x.id) &&
      matchAny(f.statuses, x.status) &&
      (f.vxnetId === undefined ||
        instanceNics(w, x.id).some((n) => n.vxnetId === f.vxnetId)) &&
      (f.name === undefined || x.name.includes(f.name)) &&
      matchWord(f.searchWord, x.id, x.name) &&
      hasAnyTag(w, "instance", x.id, f.tagIds)
    ),
  );
}

/** Sets an instance's status (tests: attach to a stopped instance → 1400). */
export function setInstanceStatus(w: Tables, instanceId: string, status: InstanceStatus): void {
  const inst = w.instances.get(instanceId);
  if (!inst) throw notFound(instanceId);
  inst.status = status;
  inst.statusMs = w.now();
}

/** Records a reboot; NICs stay attached (the backend rebuilds the node's kernel state). */
export function recordReboot(w: Tables, instanceId: string): Instance {
  const inst = w.instances.get(instanceId);
  if (!inst) throw notFound(instanceId);
  inst.bootCount++;
  inst.statusMs = w.now();
  return inst;
}

/** Adds a cluster (control API: clusters are made by AppCenter, not by an action we serve). */
export function addCluster(
  w: Tables,
  o: { id: string; securityGroupId: string; owner?: string },
): Cluster {
  if (!/^cl-[a-z0-9]{1,16}$/.test(o.id)) {
    throw invalidParameter(`cluster id [${o.id}] is invalid`);
  }
  const sg = w.securityGroups.get(o.securityGroupId);
  if (!sg) throw notFound(o.securityGroupId);
  const c: Cluster = {
    id: o.id,
    securityGroupId: sg.id,
    owner: o.owner ?? sg.owner,
    createMs: w.now(),
  };
  w.clusters.set(c.id, c);
  return c;
}

export function describeClusters(w: Tables, owner: string, ids: string[]): Cluster[] {
  return sortNewest(
    [...w.clusters.values()].filter((c) => c.owner === owner && matchAny(ids, c.id)),
  );
}
