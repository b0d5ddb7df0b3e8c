/**
 * Security groups and their rules: describe, create, add/delete rules (each change bumps the
 * group's version) and ApplySecurityGroup, a job that marks the version applied and moves the
 * instances to the group when it succeeds (jobs.ts).
 */
import { invalidParameter, notFound } from "../errors.ts";
import type { ScenarioRule } from "../scenario.ts";
import { startJob } from "./jobs.ts";
import { hasAnyTag } from "./tags.ts";
import { dedupe, matchAny, matchWord, owned, sortNewest, type Tables } from "./tables.ts";
import type { Instance, Job, Rule, SecurityGroup } from "./types.ts";

export function describeSecurityGroups(w: Tables, owner: string, f: {
  ids: string[];
  searchWord?: string;
  tagIds: string[];
}): SecurityGroup[] {
  return sortNewest(
    [...w.securityGroups.values()].filter((g) =>
      g.owner === owner &&
      matchAny(f.ids, g.id) &&
      matchWord(f.searchWord, g.id, g.name) &&
      hasAnyTag(w, "security_group", g.id, f.tagIds)
    ),
  );
}

/** Security group with an existence/ownership check (DescribeSecurityGroups errors on ids). */
export function securityGroup(w: Tables, owner: string, id: string): SecurityGroup {
  return owned(w.securityGroups.get(id), id, owner);
}

export function securityGroupInstances(w: Tables, sgId: string): Instance[] {
  return [...w.instances.values()].filter((x) => x.securityGroupId === sgId);
}

export function addSecurityGroupRules(
  w: Tables,
  owner: string,
  sgId: string,
  rules: ScenarioRule[],
): Rule[] {
  const sg = owned(w.securityGroups.get(sgId), sgId, owner);
  if (rules.length === 0) throw invalidParameter("parameter [rules] is required");
  const t = w.now();
  const out = rules.map((r) => {
    const rule: Rule = { ...r, id: w.newId("sgr-", 8), securityGroupId: sg.id, createMs: t };
    w.rules.set(rule.id, rule);
    return rule;
  });
  sg.version++;
  return out;
}

export function describeSecurityGroupRules(w: Tables, owner: string, f: {
  securityGroupId?: string;
  ids: string[];
  direction?: number;
}): Rule[] {
  if (f.securityGroupId !== undefined) {
    owned(w.securityGroups.get(f.securityGroupId), f.securityGroupId, owner);
  }
  return sortNewest(
    [...w.rules.values()].filter((r) =>
      w.securityGroups.get(r.securityGroupId)?.owner === owner &&
      (f.securityGroupId === undefined || r.securityGroupId === f.securityGroupId) &&
      matchAny(f.ids, r.id) &&
      (f.direction === undefined || r.direction === f.direction)
    ),
  );
}

export function deleteSecurityGroupRules(w: Tables, owner: string, ruleIds: string[]): string[] {
  const ids = dedupe(ruleIds);
  if (ids.length === 0) throw invalidParameter("parameter [security_group_rules] is required");
  const rules = ids.map((id) => {
    const r = w.rules.get(id);
    if (!r) throw notFound(id);
    owned(w.securityGroups.get(r.securityGroupId), r.securityGroupId, owner);
    return r;
  });
  for (const r of rules) {
    w.rules.delete(r.id);
    const sg = w.securityGroups.get(r.securityGroupId);
    if (sg) sg.version++;
  }
  return ids;
}

export function applySecurityGroup(
  w: Tables,
  owner: string,
  o: { securityGroupId: string; instanceIds: string[] },
): Job {
  const sg = owned(w.securityGroups.get(o.securityGroupId), o.securityGroupId, owner);
  const ids = dedupe(o.instanceIds);
  for (const id of ids) owned(w.instances.get(id), id, owner);
  return startJob(w, {
    action: "ApplySecurityGroup",
    owner,
    resourceIds: [sg.id, ...ids],
    directive: { security_group: sg.id, instances: ids },
    effect: { kind: "apply_sg", securityGroupId: sg.id, instanceIds: ids },
  });
}

/** CreateSecurityGroup: an empty, applied group. */
export function createSecurityGroup(w: Tables, owner: string, o: { name: string }): SecurityGroup {
  const g: SecurityGroup = {
    id: w.newId("sg-", 8),
    name: o.name,
    isDefault: false,
    owner,
    createMs: w.now(),
    version: 0,
    appliedVersion: 0,
  };
  w.securityGroups.set(g.id, g);
  return g;
}
