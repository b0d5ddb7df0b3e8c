/**
 * Reply schemas and request types of the actions hostnic uses (qingcloud-api.md §3).
 *
 * Reply items keep the API's snake_case field names so they compare 1:1 with the docs and the
 * simulator. Schemas require only the fields hostnic reads and accept (and drop) anything else;
 * optional strings default to "" and optional lists to [] so callers need no null checks. A reply
 * that fails its schema becomes an `IaasReplyError` naming the action and the field.
 */
import { z } from "zod";
import { IaasReplyError } from "./errors.ts";

const int = z.number().int();
/** A string the API may omit or send as null; normalised to "". */
const optStr = z.string().nullish().transform((v) => v ?? "");
/** A list the API may omit or send as null (e.g. an empty result set); normalised to []. */
const list = <T extends z.ZodType>(item: T) =>
  z.array(item).nullish().transform((v): z.output<T>[] => v ?? []);

export const TagRefSchema = z.object({
  tag_id: z.string(),
  tag_name: optStr,
});
export type TagRef = z.output<typeof TagRefSchema>;

export const NicSchema = z.object({
  nic_id: z.string().min(1),
  nic_name: optStr,
  status: z.string(),
  instance_id: optStr,
  vxnet_id: z.string(),
  private_ip: optStr,
  role: int,
  sequence: int.optional(),
  security_group: optStr,
  owner: optStr,
  create_time: optStr,
  status_time: optStr,
  tags: list(TagRefSchema),
});
export type Nic = z.output<typeof NicSchema>;

export const RouterSchema = z.object({
  router_id: optStr,
  router_name: optStr,
  manager_ip: optStr,
  ip_network: optStr,
  dyn_ip_start: optStr,
  dyn_ip_end: optStr,
});
export type Router = z.output<typeof RouterSchema>;

export const VxnetSchema = z.object({
  vxnet_id: z.string().min(1),
  vxnet_name: optStr,
  vxnet_type: int,
  vpc_router_id: optStr,
  tunnel_type: optStr,
  owner: optStr,
  /** null when the vxnet is not part of a VPC. */
  router: RouterSchema.nullish().transform((v) => v ?? null),
  instance_ids: list(z.string()),
  available_ip_count: int.optional(),
  tags: list(TagRefSchema),
});
export type Vxnet = z.output<typeof VxnetSchema>;

export const InstanceVxnetSchema = z.object({
  vxnet_id: z.string(),
  nic_id: optStr,
  private_ip: optStr,
  role: int.optional(),
});

export const InstanceSchema = z.object({
  instance_id: z.string().min(1),
  instance_name: optStr,
  status: z.string(),
  transition_status: optStr,
  owner: optStr,
  vxnets: list(InstanceVxnetSchema),
  tags: list(TagRefSchema),
});
export type Instance = z.output<typeof InstanceSchema>;

export type JobStatus = "pending" | "working" | "successful" | "failed" | "done with failure";
export const TERMINAL_JOB_STATUSES: readonly string[] = [
  "successful",
  "failed",
  "done with failure",
];

export const JobSchema = z.object({
  job_id: z.string().min(1),
  job_action: optStr,
  /** Kept as string: an unknown future status must not make the reply unreadable. */
  status: z.string(),
  resource_ids: optStr,
  /** JSON text, e.g. `{"nics":[...],"instance":"i-..."}` for AttachNics. */
  directive: optStr,
  error_codes: optStr,
  create_time: optStr,
  status_time: optStr,
});
export type Job = z.output<typeof JobSchema>;

export const ResourceTagPairSchema = z.object({
  tag_id: z.string(),
  resource_type: z.string(),
  resource_id: z.string(),
});
export type ResourceTagPair = z.output<typeof ResourceTagPairSchema>;

export const TagSchema = z.object({
  tag_id: z.string().min(1),
  tag_name: z.string(),
  owner: optStr,
  color: optStr,
  resource_count: int.default(0),
  resource_tag_pairs: list(ResourceTagPairSchema),
});
export type Tag = z.output<typeof TagSchema>;

export const VipSchema = z.object({
  vip_id: z.string().min(1),
  vip_name: optStr,
  vip_addr: z.string(),
  vxnet_id: z.string(),
  owner: optStr,
});
export type Vip = z.output<typeof VipSchema>;

export const SecurityGroupSchema = z.object({
  security_group_id: z.string().min(1),
  security_group_name: optStr,
  is_applied: int.optional(),
  is_default: int.optional(),
  owner: optStr,
});
export type SecurityGroup = z.output<typeof SecurityGroupSchema>;

/** Rule values are documented as strings; accept numbers too and normalise to strings. */
const ruleVal = z.union([z.string(), z.number()]).nullish().transform((v) =>
  v === null || v === undefined ? "" : String(v)
);

export const SecurityGroupRuleSchema = z.object({
  security_group_rule_id: z.string().min(1),
  security_group_id: optStr,
  security_group_rule_name: optStr,
  protocol: optStr,
  action: optStr,
  priority: int.optional(),
  direction: int.optional(),
  val1: ruleVal,
  val2: ruleVal,
  val3: ruleVal,
});
export type SecurityGroupRule = z.output<typeof SecurityGroupRuleSchema>;

/** `secret_access_key` is deliberately absent: unknown fields are dropped on parse. */
export const AccessKeySchema = z.object({
  access_key_id: z.string().min(1),
  access_key_name: optStr,
  owner: z.string().min(1),
  status: optStr,
});
export type AccessKey = z.output<typeof AccessKeySchema>;

// ---- reply envelopes -------------------------------------------------------------------------

/** Common envelope: checked before any action schema, so API errors are never "malformed". */
export const EnvelopeSchema = z.object({
  ret_code: int,
  message: optStr,
});

export const JobReplySchema = z.object({ job_id: z.string().min(1) });

/** A Describe* reply (`total_count` + `<setKey>[]`) as a `Page`. */
export function describeReply<T extends z.ZodType>(
  setKey: string,
  item: T,
): z.ZodType<Page<z.output<T>>> {
  const shape: Record<string, z.ZodType> = { total_count: int.min(0), [setKey]: list(item) };
  return z.object(shape).transform((o) => ({
    items: o[setKey] as z.output<T>[],
    totalCount: o.total_count as number,
  }));
}

export const CreateNicsReplySchema = z.object({
  nics: z.array(z.object({ nic_id: z.string().min(1), private_ip: optStr })),
});
export const CreateTagReplySchema = z.object({ tag_id: z.string().min(1) });
export const AllocateVipsReplySchema = z.object({
  job_id: z.string().min(1),
  vips: list(z.string()),
});
export const AddSecurityGroupRulesReplySchema = z.object({
  security_group_rules: list(z.string()),
});

/** Parses `data` with `schema`, turning a mismatch into an `IaasReplyError` naming the field. */
export function parseReply<T extends z.ZodType>(
  action: string,
  schema: T,
  data: unknown,
): z.output<T> {
  const res = schema.safeParse(data);
  if (res.success) return res.data;
  const issue = res.error.issues[0];
  const field = issue.path.map(String).join(".") || "(reply)";
  const detail = issue.code === "invalid_type"
    ? (issue.input === undefined ? "missing" : `expected ${issue.expected}`)
    : issue.message;
  throw new IaasReplyError(action, field, detail);
}

// ---- requests (camelCase options; the client maps them to wire names) ------------------------

/** One page of a Describe* call. */
export interface Page<T> {
  items: T[];
  /** Matches before paging, as reported by the server. */
  totalCount: number;
}

export interface Paging {
  offset?: number;
  /** Server default 20, max 100 (excess is silently capped by the server). */
  limit?: number;
}

export interface DescribeInstancesRequest extends Paging {
  instances?: readonly string[];
  status?: readonly string[];
  tags?: readonly string[];
  searchWord?: string;
  verbose?: 0 | 1;
}

export interface DescribeVxnetsRequest extends Paging {
  vxnets?: readonly string[];
  /** 0 self-managed, 1 managed, 2 basic network. */
  vxnetType?: number;
  searchWord?: string;
  tags?: readonly string[];
  verbose?: 0 | 1;
}

export interface CreateNicsRequest {
  vxnet: string;
  /** 1–252; defaults to the number of `privateIps`, or 1. */
  count?: number;
  nicName?: string;
  privateIps?: readonly string[];
  /** 1: create the NIC without a private IP (hostnic's own IPAM assigns addresses). */
  disableIp?: 0 | 1;
}

export interface CreatedNic {
  nicId: string;
  privateIp: string;
}

export interface DescribeNicsRequest extends Paging {
  nics?: readonly string[];
  nicName?: string;
  status?: "available" | "in-use";
  vxnets?: readonly string[];
  vxnetType?: number;
  instances?: readonly string[];
}

export interface DescribeJobsRequest extends Paging {
  jobs?: readonly string[];
  status?: readonly string[];
}

export interface DescribeTagsRequest extends Paging {
  tags?: readonly string[];
  searchWord?: string;
  verbose?: 0 | 1;
}

export interface TagPairInput {
  tagId: string;
  resourceType: string;
  resourceId: string;
}

export interface AllocateVipsRequest {
  vxnetId: string;
  vipName?: string;
  /** `a.b.c.d-a.b.c.e` */
  vipRange?: string;
  vipAddrs?: readonly string[];
  count?: number;
}

export interface DescribeVipsRequest extends Paging {
  vips?: readonly string[];
  vxnets?: readonly string[];
  vipName?: string;
  vipAddrs?: readonly string[];
}

export interface DescribeSecurityGroupsRequest extends Paging {
  securityGroups?: readonly string[];
  searchWord?: string;
  tags?: readonly string[];
  verbose?: 0 | 1;
}

export interface DescribeSecurityGroupRulesRequest extends Paging {
  securityGroup?: string;
  securityGroupRules?: readonly string[];
  direction?: 0 | 1;
}

export interface SecurityGroupRuleInput {
  protocol: string;
  /** 0–100, lower first. */
  priority: number;
  action: "accept" | "drop";
  /** 0 ingress, 1 egress. */
  direction: 0 | 1;
  name?: string;
  val1?: string;
  val2?: string;
  val3?: string;
}

export interface DescribeAccessKeysRequest extends Paging {
  accessKeys?: readonly string[];
  status?: readonly string[];
  verbose?: 0 | 1;
}
