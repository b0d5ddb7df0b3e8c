/**
 * NICs: Describe/Create/Attach/Detach/DeleteNics against the tables. Every batch is validated in
 * full before anything changes; a NIC with a job in flight is busy (1400); primary (role 1) NICs
 * are never detached or deleted; at most NICS_PER_INSTANCE per instance (attaches in flight
 * count) and NICS_PER_VXNET per vxnet. Attach and detach only start a job (jobs.ts applies them).
 */
import { invalidParameter, permissionDenied } from "../errors.ts";
import { checkExplicitIp, nicCountInVxnet, usedIps } from "./addresses.ts";
import { startJob } from "./jobs.ts";
import { dropBindings, hasAnyTag } from "./tags.ts";
import { dedupe, matchAny, owned, sortNewest, type Tables } from "./tables.ts";
import {
  type Job,
  MAX_CREATE_COUNT,
  type Nic,
  NICS_PER_INSTANCE,
  NICS_PER_VXNET,
} from "./types.ts";

export function describeNics(w: Tables, owner: string, f: {
  ids: string[];
  name?: string;
  status?: string;
  vxnetIds: string[];
  vxnetTypes: number[];
  instanceIds: string[];
  tagIds: string[];
}): Nic[] {
  return sortNewest(
    [...w.nics.values()].filter((n) =>
      n.owner === owner &&
      matchAny(f.ids, n.id) &&
      (f.name === undefined || n.name === f.name) &&
      (f.status === undefined || n.status === f.status) &&
      matchAny(f.vxnetIds, n.vxnetId) &&
      (f.vxnetTypes.length === 0 ||
        f.vxnetTypes.includes(w.vxnets.get(n.vxnetId)?.vxnetType ?? -1)) &&
      matchAny(f.instanceIds, n.instanceId) &&
      hasAnyTag(w, "nic", n.id, f.tagIds)
    ),
  );
}

export function createNics(w: Tables, owner: string, o: {
  vxnetId: string;
  count: number;
  name: string;
  privateIps: string[];
  disableIp: boolean;
}): Nic[] {
  const vx = owned(w.vxnets.get(o.vxnetId), o.vxnetId, owner);
  if (!Number.isInteger(o.count) || o.count < 1 || o.count > MAX_CREATE_COUNT) {
    throw invalidParameter(`count [${o.count}] must be between 1 and ${MAX_CREATE_COUNT}`);
  }
  if (o.privateIps.length > 0 && o.privateIps.length !== o.count) {
    throw invalidParameter(
      `count [${o.count}] does not match the ${o.privateIps.length} private_ips given`,
    );
  }
  if (o.privateIps.length > 0 && o.disableIp) {
    throw invalidParameter("private_ips cannot be combined with disable_ip=1");
  }
  const have = nicCountInVxnet(w, vx.id);
  if (have + o.count > NICS_PER_VXNET) {
    throw permissionDenied(
      `vxnet [${vx.id}] can hold at most [${NICS_PER_VXNET}] NICs, it has [${have}]`,
    );
  }
  const used = usedIps(w, vx.id);
  const ips: (number | null)[] = [];
  if (o.disableIp) {
    for (let i = 0; i < o.count; i++) ips.push(null);
  } else if (o.privateIps.length > 0) {
    o.privateIps.forEach((text, i) => {
      const ip = checkExplicitIp(vx, text, used, `private_ips.${i + 1}`);
      used.add(ip); // a duplicate inside the same request is "in use" too
      ips.push(ip);
    });
  } else {
    if (!vx.dynRange) {
      throw permissionDenied(`vxnet [${vx.id}] has DHCP disabled, give private_ips`);
    }
    for (let ip = vx.dynRange.start; ip <= vx.dynRange.end && ips.length < o.count; ip++) {
      if (!used.has(ip)) ips.push(ip);
    }
    if (ips.length < o.count) {
      // 1400, not 2500: clients treat 2500 as throttling and would retry a full vxnet forever.
      throw permissionDenied(`vxnet [${vx.id}] has only [${ips.length}] free IP addresses`);
    }
  }
  const t = w.now();
  return ips.map((ip) => {
    const nic: Nic = {
      id: w.newNicId(),
      name: o.name,
      status: "available",
      instanceId: "",
      vxnetId: vx.id,
      privateIp: ip,
      role: 0,
      sequence: 0,
      owner,
      createMs: t,
      statusMs: t,
      jobId: null,
    };
    w.nics.set(nic.id, nic);
    return nic;
  });
}

function busyCheck(nic: Nic) {
  if (nic.jobId !== null) {
    throw permissionDenied(`nic [${nic.id}] is busy with job [${nic.jobId}], try later`);
  }
}

/** Attaches in flight count against the instance's limit before they complete. */
function nicsOnInstance(w: Tables, instanceId: string): number {
  let n = 0;
  for (const nic of w.nics.values()) if (nic.instanceId === instanceId) n++;
  for (const job of w.jobs.values()) {
    if (
      job.final === null && job.effect.kind === "attach" && job.effect.instanceId === instanceId
    ) {
      n += job.effect.nicIds.length;
    }
  }
  return n;
}

export function attachNics(
  w: Tables,
  owner: string,
  o: { nicIds: string[]; instanceId: string },
): Job {
  const ids = dedupe(o.nicIds);
  if (ids.length === 0) throw invalidParameter("parameter [nics] is required");
  const nics = ids.map((id) => owned(w.nics.get(id), id, owner));
  const inst = owned(w.instances.get(o.instanceId), o.instanceId, owner);
  for (const nic of nics) {
    busyCheck(nic);
    if (nic.status !== "available") {
      throw permissionDenied(`nic [${nic.id}] is [${nic.status}], it must be available`);
    }
  }
  if (inst.status !== "running") {
    throw permissionDenied(`instance [${inst.id}] is not running, can not attach nics`);
  }
  const have = nicsOnInstance(w, inst.id);
  if (have + nics.length > NICS_PER_INSTANCE) {
    throw permissionDenied(
      `you can only attach [${NICS_PER_INSTANCE}] nics to one instance at most`,
    );
  }
  return startJob(w, {
    action: "AttachNics",
    owner,
    resourceIds: [...ids, inst.id],
    directive: { nics: ids, instance: inst.id },
    effect: { kind: "attach", nicIds: ids, instanceId: inst.id },
    nics,
  });
}

export function detachNics(w: Tables, owner: string, o: { nicIds: string[] }): Job {
  const ids = dedupe(o.nicIds);
  if (ids.length === 0) throw invalidParameter("parameter [nics] is required");
  const nics = ids.map((id) => owned(w.nics.get(id), id, owner));
  for (const nic of nics) {
    busyCheck(nic);
    if (nic.role === 1) throw permissionDenied(`nic [${nic.id}] is a primary nic`);
    if (nic.status !== "in-use") {
      throw permissionDenied(`nic [${nic.id}] is not attached to any instance`);
    }
  }
  return startJob(w, {
    action: "DetachNics",
    owner,
    resourceIds: ids,
    directive: { nics: ids },
    effect: { kind: "detach", nicIds: ids },
    nics,
  });
}

export function deleteNics(w: Tables, owner: string, o: { nicIds: string[] }): string[] {
  const ids = dedupe(o.nicIds);
  if (ids.length === 0) throw invalidParameter("parameter [nics] is required");
  const nics = ids.map((id) => owned(w.nics.get(id), id, owner));
  for (const nic of nics) {
    busyCheck(nic);
    if (nic.role === 1) throw permissionDenied(`nic [${nic.id}] is a primary nic`);
    if (nic.status === "in-use") {
      throw permissionDenied(
        `nic [${nic.id}] is in use by instance [${nic.instanceId}], detach it first`,
      );
    }
  }
  for (const nic of nics) {
    w.nics.delete(nic.id);
    dropBindings(w, "nic", nic.id);
  }
  return ids;
}

/** In-use NICs of an instance, primary first then by sequence. */
export function instanceNics(w: Tables, instanceId: string): Nic[] {
  return [...w.nics.values()]
    .filter((n) => n.instanceId === instanceId)
    .sort((a, b) => a.sequence - b.sequence);
}
