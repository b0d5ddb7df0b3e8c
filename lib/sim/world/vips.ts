/**
 * VIPs (shared mode's addresses): AllocateVips from explicit addresses, a range or the whole
 * vxnet (one address space with the NICs, addresses.ts), DescribeVips, and ReleaseVips, which
 * starts a job that removes them when it succeeds (jobs.ts).
 */
import { formatIp, hostRange, parseIp } from "../ip.ts";
import { invalidParameter, permissionDenied } from "../errors.ts";
import { checkExplicitIp, usedIps } from "./addresses.ts";
import { startJob } from "./jobs.ts";
import { dedupe, matchAny, owned, sortNewest, type Tables } from "./tables.ts";
import { type Job, MAX_VIPS_PER_CALL, type Vip } from "./types.ts";

export function allocateVips(w: Tables, owner: string, o: {
  vxnetId: string;
  name: string;
  range?: string;
  addrs: string[];
  count?: number;
}): { vips: Vip[]; job: Job } {
  const vx = owned(w.vxnets.get(o.vxnetId), o.vxnetId, owner);
  const used = usedIps(w, vx.id);
  const addrs: number[] = [];
  if (o.addrs.length > 0) {
    if (o.count !== undefined && o.count !== o.addrs.length) {
      throw invalidParameter(`count [${o.count}] does not match the vip_addrs given`);
    }
    o.addrs.forEach((text, i) => {
      const ip = checkExplicitIp(vx, text, used, `vip_addrs.${i + 1}`);
      used.add(ip);
      addrs.push(ip);
    });
  } else {
    let first: number;
    let last: number;
    if (o.range !== undefined) {
      const [a, b, extra] = o.range.split("-");
      const start = parseIp(a ?? "");
      const end = parseIp(b ?? "");
      if (start === undefined || end === undefined || extra !== undefined || end < start) {
        throw invalidParameter(`vip_range [${o.range}] must look like 10.0.0.10-10.0.0.20`);
      }
      for (const [ip, text] of [[start, a], [end, b]] as const) {
        const r = hostRange({ network: vx.networkAddr, prefix: vx.prefix });
        if (ip < r.first || ip > r.last) {
          throw invalidParameter(`vip_range address [${text}] is outside vxnet [${vx.id}]`);
        }
      }
      first = start;
      last = end;
    } else {
      const r = hostRange({ network: vx.networkAddr, prefix: vx.prefix });
      first = r.first;
      last = r.last;
    }
    const want = o.count ?? (o.range !== undefined ? last - first + 1 : 1);
    if (!Number.isInteger(want) || want < 1 || want > MAX_VIPS_PER_CALL) {
      throw invalidParameter(`count [${want}] must be between 1 and ${MAX_VIPS_PER_CALL}`);
    }
    for (let ip = first; ip <= last && addrs.length < want; ip++) {
      if (!used.has(ip)) addrs.push(ip);
    }
    if (addrs.length < want) {
      throw permissionDenied(`vxnet [${vx.id}] has only [${addrs.length}] free addresses`);
    }
  }
  const t = w.now();
  const vips = addrs.map((addr) => {
    const vip: Vip = {
      id: w.newId("vip-", 8),
      name: o.name,
      addr,
      vxnetId: vx.id,
      owner,
      createMs: t,
      jobId: null,
    };
    w.vips.set(vip.id, vip);
    return vip;
  });
  const job = startJob(w, {
    action: "AllocateVips",
    owner,
    resourceIds: vips.map((v) => v.id),
    directive: { vips: vips.map((v) => v.id), vxnet: vx.id },
    effect: { kind: "none" },
  });
  return { vips, job };
}

export function describeVips(w: Tables, owner: string, f: {
  ids: string[];
  vxnetIds: string[];
  name?: string;
  addrs: string[];
}): Vip[] {
  return sortNewest(
    [...w.vips.values()].filter((v) =>
      v.owner === owner &&
      matchAny(f.ids, v.id) &&
      matchAny(f.vxnetIds, v.vxnetId) &&
      (f.name === undefined || v.name === f.name) &&
      matchAny(f.addrs, formatIp(v.addr))
    ),
  );
}

export function releaseVips(w: Tables, owner: string, vipIds: string[]): Job {
  const ids = dedupe(vipIds);
  if (ids.length === 0) throw invalidParameter("parameter [vips] is required");
  const vips = ids.map((id) => owned(w.vips.get(id), id, owner));
  for (const v of vips) {
    if (v.jobId !== null) throw permissionDenied(`vip [${v.id}] is busy with job [${v.jobId}]`);
  }
  return startJob(w, {
    action: "ReleaseVips",
    owner,
    resourceIds: ids,
    directive: { vips: ids },
    effect: { kind: "release_vips", vipIds: ids },
    vips,
  });
}
