/**
 * Fills fresh tables from a parsed scenario: access keys, routers, vxnets, security groups and
 * their rules, instances with their primary NICs, tags and their bindings. Ids the scenario fixes
 * are reserved before any id is generated; a tag naming an unknown resource is a `ConfigError`.
 */
import { ConfigError } from "../../errors.ts";
import { formatIp } from "../ip.ts";
import type { Scenario } from "../scenario.ts";
import { bindingKey, type Tables, taggable } from "./tables.ts";

export function loadScenario(w: Tables, s: Scenario): void {
  const t = w.now();
  // Ids the scenario fixes are reserved first, so a generated id can never collide with one.
  for (
    const id of [
      ...s.routers.map((r) => r.id),
      ...s.vxnets.map((v) => v.id),
      ...s.securityGroups.map((g) => g.id),
      ...s.instances.flatMap((x) => (x.nicId ? [x.id, x.nicId] : [x.id])),
      ...s.tags.flatMap((tag) => (tag.id ? [tag.id] : [])),
    ]
  ) w.reserveId(id);

  for (const c of s.credentials) {
    w.accessKeys.set(c.accessKeyId, {
      id: c.accessKeyId,
      secret: c.secretAccessKey,
      owner: c.owner,
      name: c.name,
      status: c.status,
      createMs: t,
    });
  }
  for (const r of s.routers) {
    w.routers.set(r.id, {
      id: r.id,
      name: r.name,
      cidr: `${formatIp(r.cidr.network)}/${r.cidr.prefix}`,
      owner: r.owner,
      createMs: t,
    });
  }
  for (const v of s.vxnets) {
    w.vxnets.set(v.id, {
      id: v.id,
      name: v.name,
      routerId: v.routerId,
      ipNetwork: `${formatIp(v.cidr.network)}/${v.cidr.prefix}`,
      networkAddr: v.cidr.network,
      prefix: v.cidr.prefix,
      managerIp: v.managerIp,
      dynRange: v.dynRange,
      tunnelType: v.tunnelType,
      vxnetType: v.vxnetType,
      owner: v.owner,
      createMs: t,
    });
  }
  for (const g of s.securityGroups) {
    w.securityGroups.set(g.id, {
      id: g.id,
      name: g.name,
      isDefault: g.isDefault,
      owner: g.owner,
      createMs: t,
      version: 0,
      appliedVersion: 0,
    });
    for (const r of g.rules) {
      const id = w.newId("sgr-", 8);
      w.rules.set(id, { ...r, id, securityGroupId: g.id, createMs: t });
    }
  }
  for (const x of s.instances) {
    const nicId = x.nicId ?? w.newNicId();
    w.instances.set(x.id, {
      id: x.id,
      name: x.name,
      status: x.status,
      primaryNicId: nicId,
      securityGroupId: x.securityGroupId,
      owner: x.owner,
      createMs: t,
      statusMs: t,
      bootCount: 0,
    });
    w.nics.set(nicId, {
      id: nicId,
      name: "",
      status: "in-use",
      instanceId: x.id,
      vxnetId: x.vxnetId,
      privateIp: x.privateIp,
      role: 1,
      sequence: 0,
      owner: x.owner,
      createMs: t,
      statusMs: t,
      jobId: null,
    });
  }
  s.tags.forEach((tag, i) => {
    const id = tag.id ?? w.newId("tag-", 8);
    w.tags.set(id, {
      id,
      name: tag.name,
      color: tag.color,
      description: tag.description,
      owner: tag.owner,
      createMs: t,
    });
    tag.resources.forEach((r, j) => {
      if (!taggable(w, r.resourceType, r.resourceId)) {
        throw new ConfigError(
          `tags.${i}.resources.${j}`,
          `names unknown ${r.resourceType} "${r.resourceId}"`,
        );
      }
      w.bindings.set(bindingKey(id, r.resourceType, r.resourceId), {
        tagId: id,
        resourceType: r.resourceType,
        resourceId: r.resourceId,
        createMs: t,
      });
    });
  });
}
