/** `GET /_sim/state`: every table as plain JSON, addresses as text, secrets left out. */
import { formatIp } from "../ip.ts";
import { jobStatus } from "./jobs.ts";
import type { Tables } from "./tables.ts";

/** Everything except secrets, as plain JSON (for `GET /_sim/state`). */
export function snapshot(w: Tables): Record<string, unknown> {
  const now = w.now();
  return {
    zone: w.zone,
    access_keys: [...w.accessKeys.values()].map(({ secret: _s, ...k }) => k),
    routers: [...w.routers.values()],
    vxnets: [...w.vxnets.values()].map((v) => ({
      ...v,
      managerIp: formatIp(v.managerIp),
      dynRange: v.dynRange
        ? { start: formatIp(v.dynRange.start), end: formatIp(v.dynRange.end) }
        : null,
    })),
    instances: [...w.instances.values()],
    nics: [...w.nics.values()].map((n) => ({
      ...n,
      privateIp: n.privateIp === null ? null : formatIp(n.privateIp),
    })),
    jobs: [...w.jobs.values()].map((j) => ({ ...j, status: jobStatus(w, j, now) })),
    tags: [...w.tags.values()],
    bindings: [...w.bindings.values()],
    vips: [...w.vips.values()].map((v) => ({ ...v, addr: formatIp(v.addr) })),
    security_groups: [...w.securityGroups.values()],
    rules: [...w.rules.values()],
    clusters: [...w.clusters.values()],
  };
}
