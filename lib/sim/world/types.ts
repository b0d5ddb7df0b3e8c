/**
 * The simulated cloud's record types and limits (reference/qingcloud-api.md §3, §4.3): what the
 * tables in tables.ts hold. Plain data; addresses are numbers (ip.ts), times ms since the epoch.
 */
import type { Scenario, ScenarioRule } from "../scenario.ts";

export const NICS_PER_INSTANCE = 64;
export const NICS_PER_VXNET = 252;
export const MAX_CREATE_COUNT = 252;
export const MAX_VIPS_PER_CALL = 253;

export type NicStatus = "available" | "in-use";
export type InstanceStatus = "pending" | "running" | "stopped" | "suspended";
export type JobStatus = "pending" | "working" | "successful" | "failed";

export interface AccessKey {
  id: string;
  secret: string;
  owner: string;
  name: string;
  status: "active" | "disabled";
  createMs: number;
}

export interface Router {
  id: string;
  name: string;
  cidr: string;
  owner: string;
  createMs: number;
}

export interface Vxnet {
  id: string;
  name: string;
  routerId: string | null;
  /** Network CIDR text, e.g. 172.20.1.0/24. */
  ipNetwork: string;
  networkAddr: number;
  prefix: number;
  managerIp: number;
  dynRange: { start: number; end: number } | null;
  tunnelType: string;
  vxnetType: 0 | 1 | 2;
  owner: string;
  createMs: number;
}

export interface Instance {
  id: string;
  name: string;
  status: InstanceStatus;
  primaryNicId: string;
  securityGroupId: string | null;
  owner: string;
  createMs: number;
  statusMs: number;
  /** Incremented by `reboot` (the Linux backend rebuilds the node's namespace). */
  bootCount: number;
}

export interface Nic {
  id: string;
  name: string;
  status: NicStatus;
  /** "" when available. */
  instanceId: string;
  vxnetId: string;
  /** null when created with disable_ip=1. */
  privateIp: number | null;
  role: 0 | 1;
  sequence: number;
  owner: string;
  createMs: number;
  statusMs: number;
  /** The attach/detach job in flight on this NIC, if any. */
  jobId: string | null;
}

export type JobEffect =
  | { kind: "attach"; nicIds: string[]; instanceId: string }
  | { kind: "detach"; nicIds: string[] }
  | { kind: "release_vips"; vipIds: string[] }
  | { kind: "apply_sg"; securityGroupId: string; instanceIds: string[] }
  | { kind: "none" };

export interface Job {
  id: string;
  action: string;
  owner: string;
  createMs: number;
  /** Until then the job reports `pending`, then `working`. */
  pendingUntilMs: number;
  /** When the job's work is done (its effect is applied at the first settle after this). */
  dueMs: number;
  /** Decided at creation (fault knob), so a failing job is reproducible. */
  willFail: boolean;
  final: "successful" | "failed" | null;
  finalMs: number | null;
  /** True while an asynchronous backend applies the effect (still reported as `working`). */
  applying: boolean;
  resourceIds: string[];
  directive: Record<string, unknown>;
  errorCodes: string;
  effect: JobEffect;
}

export interface Tag {
  id: string;
  name: string;
  color: string;
  description: string;
  owner: string;
  createMs: number;
}

export interface TagBinding {
  tagId: string;
  resourceType: string;
  resourceId: string;
  createMs: number;
}

export interface Vip {
  id: string;
  name: string;
  addr: number;
  vxnetId: string;
  owner: string;
  createMs: number;
  /** Set while a ReleaseVips job is in flight. */
  jobId: string | null;
}

export interface Rule extends ScenarioRule {
  id: string;
  securityGroupId: string;
  createMs: number;
}

export interface Cluster {
  id: string;
  securityGroupId: string;
  owner: string;
  createMs: number;
}

export interface SecurityGroup {
  id: string;
  name: string;
  isDefault: boolean;
  owner: string;
  createMs: number;
  /** Bumped by rule changes; the group is "applied" when `appliedVersion === version`. */
  version: number;
  appliedVersion: number;
}

/** How long a new job takes and whether it fails; supplied by the server from its knobs. */
export interface JobPlan {
  pendingMs: number;
  totalMs: number;
  fail: boolean;
}

export interface WorldOptions {
  scenario: Scenario;
  /** Clock in ms since the epoch. */
  now?: () => number;
  /** Default: jobs take no time and never fail. */
  planJob?: (action: string) => JobPlan;
}

/** Resource types AttachTags accepts, mapped to the table that holds them (tables.ts `taggable`). */
export const TAGGABLE = ["nic", "instance", "vxnet", "security_group", "vip", "router"] as const;
export type TaggableType = typeof TAGGABLE[number];
