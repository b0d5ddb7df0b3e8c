/**
 * The API actions: decode an action's parameters (params.ts), call the state model (world.ts) and
 * shape the reply exactly as reference/qingcloud-api.md §3 describes (snake_case fields, ints as
 * JSON numbers, times as `YYYY-MM-DDThh:mm:ssZ`, every field hostnic dereferences present).
 * Handlers are synchronous: the whole action runs between two event-loop turns, so concurrent
 * requests see each other's effects atomically.
 */
import { formatIp } from "./ip.ts";
import { invalidParameter, missingParameter, notFound } from "./errors.ts";
import {
  flag,
  int,
  intList,
  list,
  listOrScalar,
  objectList,
  page,
  paginate,
  type Params,
  requiredStr,
  str,
} from "./params.ts";
import type { ScenarioRule } from "./scenario.ts";
import type {
  AccessKey,
  Instance,
  Job,
  Nic,
  Rule,
  SecurityGroup,
  Tag,
  Vip,
  Vxnet,
  World,
} from "./world.ts";
import type { Knobs } from "./knobs.ts";

export interface ActionContext {
  world: World;
  /** The caller's user id (from the access key). */
  owner: string;
  params: Params;
  knobs: Readonly<Knobs>;
}

export type ActionReply = Record<string, unknown>;
export type ActionHandler = (ctx: ActionContext) => ActionReply;

export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

// ------------------------------------------------------------------ views

function tagView(t: Tag) {
  return {
    tag_id: t.id,
    tag_name: t.name,
    color: t.color,
    description: t.description,
    owner: t.owner,
    create_time: formatTime(t.createMs),
  };
}

function nicView(w: World, n: Nic) {
  return {
    nic_id: n.id,
    nic_name: n.name,
    status: n.status,
    instance_id: n.instanceId,
    vxnet_id: n.vxnetId,
    vxnet_type: w.vxnets.get(n.vxnetId)?.vxnetType ?? 1,
    private_ip: n.privateIp === null ? "" : formatIp(n.privateIp),
    role: n.role,
    sequence: n.sequence,
    security_group: "",
    tags: w.tagsOf("nic", n.id).map(tagView),
    owner: n.owner,
    root_user_id: n.owner,
    create_time: formatTime(n.createMs),
    status_time: formatTime(n.statusMs),
  };
}

function vxnetView(w: World, v: Vxnet, verbose: boolean) {
  const router = v.routerId === null ? null : w.routers.get(v.routerId);
  return {
    vxnet_id: v.id,
    vxnet_name: v.name,
    vxnet_type: v.vxnetType,
    description: "",
    create_time: formatTime(v.createMs),
    owner: v.owner,
    zone_id: w.zone,
    available_ip_count: w.availableIpCount(v.id),
    tunnel_type: v.tunnelType,
    vpc_router_id: v.routerId ?? "",
    tags: w.tagsOf("vxnet", v.id).map(tagView),
    router: router
      ? {
        router_id: router.id,
        router_name: router.name,
        manager_ip: formatIp(v.managerIp),
        ip_network: v.ipNetwork,
        dyn_ip_start: v.dynRange ? formatIp(v.dynRange.start) : "",
        dyn_ip_end: v.dynRange ? formatIp(v.dynRange.end) : "",
        mode: 0,
      }
      : null,
    ...(verbose ? { instance_ids: w.vxnetInstanceIds(v.id) } : {}),
  };
}

function jobView(w: World, j: Job) {
  return {
    job_id: j.id,
    job_action: j.action,
    status: w.jobStatus(j),
    create_time: formatTime(j.createMs),
    status_time: formatTime(j.finalMs ?? j.createMs),
    owner: j.owner,
    resource_ids: j.resourceIds.join(" "),
    error_codes: j.errorCodes,
    directive: JSON.stringify(j.directive),
  };
}

function instanceView(w: World, x: Instance, verbose: boolean) {
  return {
    instance_id: x.id,
    instance_name: x.name,
    description: "",
    instance_type: "s1.small.r1",
    vcpus_current: 1,
    memory_current: 1024,
    status: x.status,
    transition_status: "",
    create_time: formatTime(x.createMs),
    status_time: formatTime(x.statusMs),
    owner: x.owner,
    zone_id: w.zone,
    sub_code: 0,
    tags: w.tagsOf("instance", x.id).map(tagView),
    vxnets: w.instanceNics(x.id).map((n) => {
      const vx = w.vxnets.get(n.vxnetId);
      return {
        vxnet_id: n.vxnetId,
        vxnet_name: vx?.name ?? "",
        vxnet_type: vx?.vxnetType ?? 1,
        nic_id: n.id,
        private_ip: n.privateIp === null ? "" : formatIp(n.privateIp),
        role: n.role,
      };
    }),
    ...(verbose && x.securityGroupId !== null
      ? { security_group: { security_group_id: x.securityGroupId, is_default: 0 } }
      : {}),
  };
}

function sgView(w: World, g: SecurityGroup, verbose: boolean) {
  return {
    security_group_id: g.id,
    security_group_name: g.name,
    description: "",
    is_applied: g.appliedVersion === g.version ? 1 : 0,
    is_default: g.isDefault ? 1 : 0,
    create_time: formatTime(g.createMs),
    owner: g.owner,
    tags: w.tagsOf("security_group", g.id).map(tagView),
    ...(verbose
      ? {
        resources: w.securityGroupInstances(g.id).map((x) => ({
          resource_id: x.id,
          resource_name: x.name,
          resource_type: "instance",
        })),
      }
      : {}),
  };
}

function ruleView(r: Rule) {
  return {
    security_group_rule_id: r.id,
    security_group_id: r.securityGroupId,
    security_group_rule_name: r.name,
    protocol: r.protocol,
    priority: r.priority,
    action: r.action,
    direction: r.direction,
    val1: r.val1,
    val2: r.val2,
    val3: r.val3,
    disabled: 0,
  };
}

function vipView(v: Vip) {
  return {
    vip_id: v.id,
    vip_name: v.name,
    vip_addr: formatIp(v.addr),
    vxnet_id: v.vxnetId,
    owner: v.owner,
    create_time: formatTime(v.createMs),
  };
}

function accessKeyView(k: AccessKey) {
  return {
    access_key_id: k.id,
    access_key_name: k.name,
    owner: k.owner,
    root_user_id: k.owner,
    status: k.status,
    controller: "self",
    description: "",
    create_time: formatTime(k.createMs),
  };
}

// ------------------------------------------------------------------ decoding helpers

const NIC_STATUSES = ["available", "in-use"];
const JOB_STATUSES = ["pending", "working", "successful", "failed", "done with failure"];
const INSTANCE_STATUSES = [
  "pending",
  "running",
  "stopped",
  "suspended",
  "terminated",
  "ceased",
];

function oneOf(name: string, value: string, allowed: readonly string[]): string {
  if (!allowed.includes(value)) {
    throw invalidParameter(`${name} [${value}] must be one of ${allowed.join(", ")}`);
  }
  return value;
}

function described<T>(
  ctx: ActionContext,
  setName: string,
  items: T[],
  view: (t: T) => unknown,
): ActionReply {
  const { total, items: pageItems } = paginate(items, page(ctx.params));
  return { total_count: total, [setName]: pageItems.map(view) };
}

function tagPairs(p: Params) {
  return objectList(p, "resource_tag_pairs", ["tag_id", "resource_type", "resource_id"]).map(
    (o, i) => {
      const at = `resource_tag_pairs.${i + 1}`;
      if (!o.tag_id) throw missingParameter(`${at}.tag_id`);
      if (!o.resource_type) throw missingParameter(`${at}.resource_type`);
      if (!o.resource_id) throw missingParameter(`${at}.resource_id`);
      return { tagId: o.tag_id, resourceType: o.resource_type, resourceId: o.resource_id };
    },
  );
}

function rules(p: Params): ScenarioRule[] {
  const fields = [
    "protocol",
    "priority",
    "security_group_rule_name",
    "action",
    "direction",
    "val1",
    "val2",
    "val3",
  ] as const;
  return objectList(p, "rules", fields).map((o, i) => {
    const at = `rules.${i + 1}`;
    if (!o.protocol) throw missingParameter(`${at}.protocol`);
    const priority = o.priority === undefined || o.priority === "" ? 0 : Number(o.priority);
    if (!Number.isInteger(priority) || priority < 0 || priority > 100) {
      throw invalidParameter(`${at}.priority [${o.priority}] must be an integer 0-100`);
    }
    const action = oneOf(`${at}.action`, o.action || "accept", ["accept", "drop"]);
    const direction = o.direction === undefined || o.direction === "" ? 0 : Number(o.direction);
    if (direction !== 0 && direction !== 1) {
      throw invalidParameter(`${at}.direction [${o.direction}] must be 0 or 1`);
    }
    return {
      name: o.security_group_rule_name ?? "",
      protocol: o.protocol,
      priority,
      action: action as "accept" | "drop",
      direction: direction as 0 | 1,
      val1: o.val1 ?? "",
      val2: o.val2 ?? "",
      val3: o.val3 ?? "",
    };
  });
}

function requiredList(p: Params, name: string): string[] {
  const l = list(p, name);
  if (l.length === 0) throw missingParameter(`${name}.n`);
  return l;
}

// ------------------------------------------------------------------ handlers

export const ACTIONS: Readonly<Record<string, ActionHandler>> = {
  DescribeAccessKeys: (ctx) => {
    const p = ctx.params;
    const items = ctx.world.describeAccessKeys(ctx.owner, {
      ids: list(p, "access_keys"),
      statuses: list(p, "status"),
    });
    return described(ctx, "access_key_set", items, accessKeyView);
  },

  DescribeNics: (ctx) => {
    const p = ctx.params;
    const status = str(p, "status");
    const items = ctx.world.describeNics(ctx.owner, {
      ids: list(p, "nics"),
      ...(str(p, "nic_name") ? { name: str(p, "nic_name") } : {}),
      ...(status ? { status: oneOf("status", status, NIC_STATUSES) } : {}),
      vxnetIds: list(p, "vxnets"),
      vxnetTypes: intList(p, "vxnet_type"),
      instanceIds: list(p, "instances"),
      tagIds: list(p, "tags"),
    });
    return described(ctx, "nic_set", items, (n) => nicView(ctx.world, n));
  },

  CreateNics: (ctx) => {
    const p = ctx.params;
    const privateIps = list(p, "private_ips");
    const count = int(p, "count") ?? (privateIps.length > 0 ? privateIps.length : 1);
    const nics = ctx.world.createNics(ctx.owner, {
      vxnetId: requiredStr(p, "vxnet"),
      count,
      name: str(p, "nic_name") ?? "",
      privateIps,
      disableIp: flag(p, "disable_ip"),
    });
    return {
      nics: nics.map((n) => ({
        nic_id: n.id,
        private_ip: n.privateIp === null ? "" : formatIp(n.privateIp),
      })),
    };
  },

  AttachNics: (ctx) => {
    const p = ctx.params;
    const nicIds = requiredList(p, "nics");
    const job = ctx.world.attachNics(ctx.owner, {
      nicIds,
      instanceId: requiredStr(p, "instance"),
    });
    return { job_id: job.id };
  },

  DetachNics: (ctx) => {
    const job = ctx.world.detachNics(ctx.owner, { nicIds: requiredList(ctx.params, "nics") });
    return { job_id: job.id };
  },

  DeleteNics: (ctx) => {
    const ids = ctx.world.deleteNics(ctx.owner, { nicIds: requiredList(ctx.params, "nics") });
    return { nics: ids };
  },

  DescribeVxnets: (ctx) => {
    const p = ctx.params;
    const types = intList(p, "vxnet_type");
    const verbose = flag(p, "verbose");
    const items = ctx.world.describeVxnets(ctx.owner, {
      ids: list(p, "vxnets"),
      ...(types.length > 0 ? { vxnetType: types[0] } : {}),
      ...(str(p, "search_word") ? { searchWord: str(p, "search_word") } : {}),
      tagIds: list(p, "tags"),
    });
    return described(ctx, "vxnet_set", items, (v) => vxnetView(ctx.world, v, verbose));
  },

  DescribeJobs: (ctx) => {
    const p = ctx.params;
    const ids = list(p, "jobs");
    const statuses = listOrScalar(p, "status").map((s) => oneOf("status", s, JOB_STATUSES));
    const items = ctx.world.describeJobs(ctx.owner, { ids, statuses });
    if (ctx.knobs.unknownJob === "error") {
      // The docs call a nonexistent job id an error (unlike unknown NIC ids, which are omitted).
      const visible = new Set(
        ctx.world.describeJobs(ctx.owner, { ids, statuses: [] }).map((j) => j.id),
      );
      const missing = ids.find((id) => !visible.has(id));
      if (missing !== undefined) throw notFound(missing);
    }
    return described(ctx, "job_set", items, (j) => jobView(ctx.world, j));
  },

  DescribeInstances: (ctx) => {
    const p = ctx.params;
    const verbose = flag(p, "verbose");
    const items = ctx.world.describeInstances(ctx.owner, {
      ids: list(p, "instances"),
      statuses: listOrScalar(p, "status").map((s) => oneOf("status", s, INSTANCE_STATUSES)),
      ...(str(p, "vxnet") ? { vxnetId: str(p, "vxnet") } : {}),
      ...(str(p, "instance_name") ? { name: str(p, "instance_name") } : {}),
      ...(str(p, "search_word") ? { searchWord: str(p, "search_word") } : {}),
      tagIds: list(p, "tags"),
    });
    return described(ctx, "instance_set", items, (x) => instanceView(ctx.world, x, verbose));
  },

  CreateTag: (ctx) => {
    const p = ctx.params;
    const tag = ctx.world.createTag(ctx.owner, {
      name: requiredStr(p, "tag_name"),
      color: str(p, "color") ?? "#9f9bb7",
      description: str(p, "description") ?? "",
    });
    return { tag_id: tag.id };
  },

  DescribeTags: (ctx) => {
    const p = ctx.params;
    const verbose = flag(p, "verbose");
    const w = ctx.world;
    const items = w.describeTags(ctx.owner, {
      ids: list(p, "tags"),
      ...(str(p, "search_word") ? { searchWord: str(p, "search_word") } : {}),
    });
    return described(ctx, "tag_set", items, (t) => {
      const pairs = w.bindingsOf(t.id);
      const byType = new Map<string, number>();
      for (const b of pairs) byType.set(b.resourceType, (byType.get(b.resourceType) ?? 0) + 1);
      return {
        ...tagView(t),
        resource_count: pairs.length,
        resource_type_count: [...byType].map(([resource_type, count]) => ({
          resource_type,
          count,
        })),
        ...(verbose
          ? {
            resource_tag_pairs: pairs.map((b) => ({
              tag_id: b.tagId,
              resource_type: b.resourceType,
              resource_id: b.resourceId,
            })),
          }
          : {}),
      };
    });
  },

  AttachTags: (ctx) => {
    ctx.world.attachTags(ctx.owner, tagPairs(ctx.params));
    return {};
  },

  DetachTags: (ctx) => {
    ctx.world.detachTags(ctx.owner, tagPairs(ctx.params));
    return {};
  },

  DeleteTags: (ctx) => {
    const ids = ctx.world.deleteTags(ctx.owner, requiredList(ctx.params, "tags"));
    return { tags: ids };
  },

  DescribeSecurityGroups: (ctx) => {
    const p = ctx.params;
    const ids = list(p, "security_groups");
    // The docs say an unknown id is an error here (unlike DescribeNics).
    for (const id of ids) ctx.world.securityGroup(ctx.owner, id);
    const verbose = flag(p, "verbose");
    const items = ctx.world.describeSecurityGroups(ctx.owner, {
      ids,
      ...(str(p, "search_word") ? { searchWord: str(p, "search_word") } : {}),
      tagIds: list(p, "tags"),
    });
    return described(ctx, "security_group_set", items, (g) => sgView(ctx.world, g, verbose));
  },

  CreateSecurityGroup: (ctx) => {
    const g = ctx.world.createSecurityGroup(ctx.owner, {
      name: str(ctx.params, "security_group_name") ?? "",
    });
    return { security_group_id: g.id };
  },

  DescribeClusters: (ctx) => {
    const items = ctx.world.describeClusters(ctx.owner, list(ctx.params, "clusters"));
    return described(ctx, "cluster_set", items, (c) => ({
      cluster_id: c.id,
      security_group_id: c.securityGroupId,
      owner: c.owner,
    }));
  },

  AddSecurityGroupRules: (ctx) => {
    const p = ctx.params;
    const added = ctx.world.addSecurityGroupRules(
      ctx.owner,
      requiredStr(p, "security_group"),
      rules(p),
    );
    return { security_group_rules: added.map((r) => r.id) };
  },

  DescribeSecurityGroupRules: (ctx) => {
    const p = ctx.params;
    const direction = int(p, "direction");
    if (direction !== undefined && direction !== 0 && direction !== 1) {
      throw invalidParameter(`direction [${direction}] must be 0 or 1`);
    }
    const items = ctx.world.describeSecurityGroupRules(ctx.owner, {
      ...(str(p, "security_group") ? { securityGroupId: str(p, "security_group") } : {}),
      ids: list(p, "security_group_rules"),
      ...(direction !== undefined ? { direction } : {}),
    });
    return described(ctx, "security_group_rule_set", items, ruleView);
  },

  DeleteSecurityGroupRules: (ctx) => {
    const ids = ctx.world.deleteSecurityGroupRules(
      ctx.owner,
      requiredList(ctx.params, "security_group_rules"),
    );
    return { security_group_rules: ids };
  },

  ApplySecurityGroup: (ctx) => {
    const p = ctx.params;
    const job = ctx.world.applySecurityGroup(ctx.owner, {
      securityGroupId: requiredStr(p, "security_group"),
      instanceIds: list(p, "instances"),
    });
    return { job_id: job.id };
  },

  AllocateVips: (ctx) => {
    const p = ctx.params;
    const count = int(p, "count");
    const { vips, job } = ctx.world.allocateVips(ctx.owner, {
      vxnetId: requiredStr(p, "vxnet_id"),
      name: str(p, "vip_name") ?? "",
      ...(str(p, "vip_range") ? { range: str(p, "vip_range") } : {}),
      addrs: list(p, "vip_addrs"),
      ...(count !== undefined ? { count } : {}),
    });
    return { vips: vips.map((v) => v.id), job_id: job.id };
  },

  DescribeVips: (ctx) => {
    const p = ctx.params;
    const items = ctx.world.describeVips(ctx.owner, {
      ids: list(p, "vips"),
      vxnetIds: list(p, "vxnets"),
      ...(str(p, "vip_name") ? { name: str(p, "vip_name") } : {}),
      addrs: list(p, "vip_addrs"),
    });
    return described(ctx, "vip_set", items, vipView);
  },

  ReleaseVips: (ctx) => {
    const job = ctx.world.releaseVips(ctx.owner, requiredList(ctx.params, "vips"));
    return { job_id: job.id };
  },
};
