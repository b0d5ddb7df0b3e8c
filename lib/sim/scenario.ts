/**
 * Scenario files: the simulated cloud's starting world (zone, access keys, VPC routers, vxnets,
 * instances, tags, security groups) plus optional knobs and the Linux backend's namespace prefix.
 * YAML, validated with zod and then cross-checked (references resolve, addresses fit their
 * CIDRs, ids and IPs are unique); every error names the offending key, e.g. `vxnets.1.cidr`.
 * Errors never quote values from credentials.
 */
import { parse as parseYaml, YAMLParseError } from "yaml";
import { z } from "zod";
import { ConfigError } from "../errors.ts";
import {
  broadcast,
  type Cidr,
  cidrContains,
  cidrWithin,
  formatIp,
  hostRange,
  parseCidr,
  parseIp,
} from "./ip.ts";
import { type Knobs, parseKnobs } from "./knobs.ts";

const cidrText = z.string().refine((s) => parseCidr(s) !== undefined, {
  message: "must be an IPv4 CIDR with no host bits, e.g. 172.20.1.0/24",
});
const ipText = z.string().refine((s) => parseIp(s) !== undefined, {
  message: "must be an IPv4 address",
});
const owner = z.string().regex(/^usr-[A-Za-z0-9]{1,16}$/, "must look like usr-AbCd1234");
const name = z.string().max(128);
const macText = z.string().regex(
  /^52:54(:[0-9a-f]{2}){4}$/,
  "must be a lowercase MAC starting 52:54",
);

const CredentialSchema = z.strictObject({
  qy_access_key_id: z.string().regex(/^[A-Za-z0-9_-]{4,64}$/, "must be 4-64 letters or digits"),
  qy_secret_access_key: z.string().min(8, "must be at least 8 characters").max(256),
  owner: owner.optional(),
  name: name.optional(),
  status: z.enum(["active", "disabled"]).default("active"),
});

const RouterSchema = z.strictObject({
  id: z.string().regex(/^rtr-[a-z0-9]{1,12}$/, "must look like rtr-abcd1234"),
  name: name.optional(),
  cidr: cidrText,
  owner: owner.optional(),
});

const VxnetSchema = z.strictObject({
  id: z.string().regex(/^vxnet-[a-z0-9]{1,12}$/, "must look like vxnet-abc1234"),
  name: name.optional(),
  vpc_router_id: z.string().optional(),
  cidr: cidrText,
  manager_ip: ipText.optional(),
  dyn_ip_start: ipText.optional(),
  dyn_ip_end: ipText.optional(),
  dhcp: z.boolean().default(true),
  tunnel_type: z.string().max(16).default("vxlan"),
  vxnet_type: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1),
  owner: owner.optional(),
});

const InstanceSchema = z.strictObject({
  id: z.string().regex(/^i-[a-z0-9]{1,20}$/, "must look like i-abcd1234"),
  name: name.optional(),
  vxnet: z.string(),
  private_ip: ipText,
  nic_id: macText.optional(),
  status: z.enum(["pending", "running", "stopped", "suspended"]).default("running"),
  security_group: z.string().optional(),
  owner: owner.optional(),
});

const ResourceRefSchema = z.strictObject({
  resource_type: z.string().min(1),
  resource_id: z.string().min(1),
});

const TagSchema = z.strictObject({
  id: z.string().regex(/^tag-[a-z0-9]{1,12}$/, "must look like tag-abcd1234").optional(),
  name: z.string().min(1).max(14, "must be shorter than 15 characters"),
  color: z.string().max(16).default("#9f9bb7"),
  description: z.string().max(256).default(""),
  owner: owner.optional(),
  resources: z.array(ResourceRefSchema).default([]),
});

const RuleSchema = z.strictObject({
  name: z.string().max(128).default(""),
  protocol: z.string().min(1).default("tcp"),
  priority: z.number().int().min(0).max(100).default(0),
  action: z.enum(["accept", "drop"]).default("accept"),
  direction: z.union([z.literal(0), z.literal(1)]).default(0),
  val1: z.string().default(""),
  val2: z.string().default(""),
  val3: z.string().default(""),
});

const SecurityGroupSchema = z.strictObject({
  id: z.string().regex(/^sg-[a-z0-9]{1,12}$/, "must look like sg-abcd1234"),
  name: name.optional(),
  is_default: z.boolean().default(false),
  owner: owner.optional(),
  rules: z.array(RuleSchema).default([]),
});

const ScenarioSchema = z.strictObject({
  zone: z.string().regex(/^[a-z0-9-]{2,32}$/, "must be a lowercase zone id such as pek3a"),
  seed: z.number().int().min(0).max(0xffffffff).default(1),
  credentials: z.array(CredentialSchema).min(1, "needs at least one access key"),
  vpc_routers: z.array(RouterSchema).default([]),
  vxnets: z.array(VxnetSchema).default([]),
  instances: z.array(InstanceSchema).default([]),
  tags: z.array(TagSchema).default([]),
  security_groups: z.array(SecurityGroupSchema).default([]),
  knobs: z.unknown().optional(),
  linux: z.strictObject({
    prefix: z.string().regex(
      /^[a-z][a-z0-9]{0,11}$/,
      "must be 1-12 lowercase letters or digits, starting with a letter",
    ).default("hns"),
  }).optional(),
});

export interface ScenarioCredential {
  accessKeyId: string;
  secretAccessKey: string;
  owner: string;
  name: string;
  status: "active" | "disabled";
}

export interface ScenarioRouter {
  id: string;
  name: string;
  cidr: Cidr;
  owner: string;
}

export interface ScenarioVxnet {
  id: string;
  name: string;
  routerId: string | null;
  cidr: Cidr;
  managerIp: number;
  /** Empty when DHCP is off: then only explicit `private_ips` can be used. */
  dynRange: { start: number; end: number } | null;
  tunnelType: string;
  vxnetType: 0 | 1 | 2;
  owner: string;
}

export interface ScenarioInstance {
  id: string;
  name: string;
  vxnetId: string;
  privateIp: number;
  nicId?: string;
  status: "pending" | "running" | "stopped" | "suspended";
  securityGroupId: string | null;
  owner: string;
}

export interface ScenarioTag {
  id?: string;
  name: string;
  color: string;
  description: string;
  owner: string;
  resources: { resourceType: string; resourceId: string }[];
}

export interface ScenarioRule {
  name: string;
  protocol: string;
  priority: number;
  action: "accept" | "drop";
  direction: 0 | 1;
  val1: string;
  val2: string;
  val3: string;
}

export interface ScenarioSecurityGroup {
  id: string;
  name: string;
  isDefault: boolean;
  owner: string;
  rules: ScenarioRule[];
}

/** A validated, normalised scenario (defaults filled in, addresses parsed). */
export interface Scenario {
  zone: string;
  seed: number;
  credentials: ScenarioCredential[];
  routers: ScenarioRouter[];
  vxnets: ScenarioVxnet[];
  instances: ScenarioInstance[];
  tags: ScenarioTag[];
  securityGroups: ScenarioSecurityGroup[];
  knobs: Partial<Knobs>;
  /** Namespace name prefix for the Linux backend. */
  linuxPrefix: string;
}

/** Parses and validates scenario YAML. Throws `ConfigError` naming the key at fault. */
export function parseScenario(yamlText: string): Scenario {
  let raw: unknown;
  try {
    raw = parseYaml(yamlText);
  } catch (err) {
    // The parser quotes source lines, which may hold a secret key: report only the position.
    const where = err instanceof YAMLParseError && err.linePos
      ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}`
      : "";
    throw new ConfigError("(scenario)", `not valid YAML${where}`);
  }
  return scenarioFromObject(raw);
}

/** Validates an already-parsed scenario object. */
export function scenarioFromObject(raw: unknown): Scenario {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError("(scenario)", "expected a mapping with zone, credentials, vxnets, …");
  }
  const res = ScenarioSchema.safeParse(raw);
  if (!res.success) {
    const issue = res.error.issues[0];
    const key = issue.path.map(String).join(".") || "(scenario)";
    const msg = issue.code === "invalid_type" && issue.input === undefined
      ? "is required"
      : issue.code === "unrecognized_keys"
      ? `has unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(", ")}`
      : issue.message;
    throw new ConfigError(key, msg);
  }
  return normalise(res.data);
}

type RawScenario = z.output<typeof ScenarioSchema>;

function normalise(s: RawScenario): Scenario {
  const fail = (key: string, msg: string): never => {
    throw new ConfigError(key, msg);
  };
  const unique = (ids: string[], list: string) => {
    const seen = new Set<string>();
    ids.forEach((id, i) => {
      if (seen.has(id)) fail(`${list}.${i}.id`, `duplicates "${id}"`);
      seen.add(id);
    });
  };

  const keys = new Set<string>();
  s.credentials.forEach((c, i) => {
    if (keys.has(c.qy_access_key_id)) {
      fail(`credentials.${i}.qy_access_key_id`, "duplicates an earlier access key id");
    }
    keys.add(c.qy_access_key_id);
  });
  const defaultOwner = s.credentials[0].owner ?? "usr-SimUser1";
  const credentials: ScenarioCredential[] = s.credentials.map((c, i) => ({
    accessKeyId: c.qy_access_key_id,
    secretAccessKey: c.qy_secret_access_key,
    owner: c.owner ?? defaultOwner,
    name: c.name ?? `key-${i + 1}`,
    status: c.status,
  }));

  unique(s.vpc_routers.map((r) => r.id), "vpc_routers");
  const routers: ScenarioRouter[] = s.vpc_routers.map((r) => ({
    id: r.id,
    name: r.name ?? r.id,
    cidr: parseCidr(r.cidr)!,
    owner: r.owner ?? defaultOwner,
  }));
  const routerById = new Map(routers.map((r) => [r.id, r]));

  unique(s.vxnets.map((v) => v.id), "vxnets");
  const vxnets: ScenarioVxnet[] = s.vxnets.map((v, i) => {
    const at = `vxnets.${i}`;
    const cidr = parseCidr(v.cidr)!;
    if (cidr.prefix > 29) fail(`${at}.cidr`, "must be /29 or larger");
    let routerId: string | null = null;
    if (v.vpc_router_id !== undefined) {
      const r = routerById.get(v.vpc_router_id);
      if (!r) fail(`${at}.vpc_router_id`, `names unknown router "${v.vpc_router_id}"`);
      if (!cidrWithin(cidr, r!.cidr)) fail(`${at}.cidr`, `is not inside router "${r!.id}"'s CIDR`);
      routerId = r!.id;
    }
    const hosts = hostRange(cidr);
    const managerIp = v.manager_ip === undefined ? hosts.first : parseIp(v.manager_ip)!;
    if (managerIp < hosts.first || managerIp > hosts.last) {
      fail(`${at}.manager_ip`, "must be a host address inside cidr");
    }
    let dynRange: ScenarioVxnet["dynRange"] = null;
    if (v.dhcp) {
      const start = v.dyn_ip_start === undefined ? managerIp + 1 : parseIp(v.dyn_ip_start)!;
      const end = v.dyn_ip_end === undefined ? hosts.last : parseIp(v.dyn_ip_end)!;
      if (start < hosts.first || start > hosts.last) {
        fail(`${at}.dyn_ip_start`, "must be a host address inside cidr");
      }
      if (end < start || end > hosts.last) {
        fail(`${at}.dyn_ip_end`, "must be inside cidr and not before dyn_ip_start");
      }
      dynRange = { start, end };
    }
    return {
      id: v.id,
      name: v.name ?? v.id,
      routerId,
      cidr,
      managerIp,
      dynRange,
      tunnelType: v.tunnel_type,
      vxnetType: v.vxnet_type,
      owner: v.owner ?? defaultOwner,
    };
  });
  const vxnetById = new Map(vxnets.map((v) => [v.id, v]));

  unique(s.security_groups.map((g) => g.id), "security_groups");
  const securityGroups: ScenarioSecurityGroup[] = s.security_groups.map((g) => ({
    id: g.id,
    name: g.name ?? g.id,
    isDefault: g.is_default,
    owner: g.owner ?? defaultOwner,
    rules: g.rules.map((r) => ({ ...r })),
  }));
  const sgIds = new Set(securityGroups.map((g) => g.id));

  unique(s.instances.map((x) => x.id), "instances");
  const usedIps = new Map<string, Set<number>>();
  const nicIds = new Set<string>();
  const instances: ScenarioInstance[] = s.instances.map((x, i) => {
    const at = `instances.${i}`;
    const vx = vxnetById.get(x.vxnet);
    if (!vx) return fail(`${at}.vxnet`, `names unknown vxnet "${x.vxnet}"`);
    const ip = parseIp(x.private_ip)!;
    if (!cidrContains(vx.cidr, ip) || ip === vx.cidr.network || ip === broadcast(vx.cidr)) {
      fail(`${at}.private_ip`, `is not a host address of vxnet "${vx.id}"`);
    }
    if (ip === vx.managerIp) fail(`${at}.private_ip`, "is the vxnet's gateway (manager_ip)");
    const used = usedIps.get(vx.id) ?? new Set<number>();
    if (used.has(ip)) fail(`${at}.private_ip`, `"${formatIp(ip)}" is already used in the vxnet`);
    used.add(ip);
    usedIps.set(vx.id, used);
    if (x.nic_id !== undefined) {
      if (nicIds.has(x.nic_id)) fail(`${at}.nic_id`, `duplicates "${x.nic_id}"`);
      nicIds.add(x.nic_id);
    }
    if (x.security_group !== undefined && !sgIds.has(x.security_group)) {
      fail(`${at}.security_group`, `names unknown security group "${x.security_group}"`);
    }
    return {
      id: x.id,
      name: x.name ?? x.id,
      vxnetId: vx.id,
      privateIp: ip,
      ...(x.nic_id !== undefined ? { nicId: x.nic_id } : {}),
      status: x.status,
      securityGroupId: x.security_group ?? null,
      owner: x.owner ?? defaultOwner,
    };
  });

  const tagNames = new Set<string>();
  const tagIds = new Set<string>();
  const tags: ScenarioTag[] = s.tags.map((t, i) => {
    if (tagNames.has(t.name)) fail(`tags.${i}.name`, `duplicates "${t.name}"`);
    tagNames.add(t.name);
    if (t.id !== undefined) {
      if (tagIds.has(t.id)) fail(`tags.${i}.id`, `duplicates "${t.id}"`);
      tagIds.add(t.id);
    }
    return {
      ...(t.id !== undefined ? { id: t.id } : {}),
      name: t.name,
      color: t.color,
      description: t.description,
      owner: t.owner ?? defaultOwner,
      resources: t.resources.map((r) => ({
        resourceType: r.resource_type,
        resourceId: r.resource_id,
      })),
    };
  });

  return {
    zone: s.zone,
    seed: s.seed,
    credentials,
    routers,
    vxnets,
    instances,
    tags,
    securityGroups,
    knobs: s.knobs === undefined ? {} : parseKnobs(s.knobs, "knobs"),
    linuxPrefix: s.linux?.prefix ?? "hns",
  };
}
