/**
 * The simulated cloud's state: access keys, routers, vxnets, instances, NICs, jobs, tags, VIPs,
 * security groups. Pure and synchronous, with an injected clock and PRNG; the HTTP layer decodes
 * parameters and formats replies, the Linux backend mirrors attachments into namespaces.
 *
 * Invariants (reference/qingcloud-api.md §5), each enforced here and raised as `SimApiError`:
 * - NIC ids are unique lowercase MACs 52:54:xx:xx:xx:xx, never reissued.
 * - available → (attach job succeeds) → in-use → (detach job succeeds) → available → deleted.
 *   An in-use NIC has exactly one instance; available NICs have none. The state changes when the
 *   job completes; a failed job changes nothing.
 * - While an attach/detach job is in flight on a NIC, other attach/detach/delete calls on it → 1400.
 * - In-use or primary (role 1) NICs cannot be deleted or (primary) detached → 1400.
 * - Attach needs a running instance; at most 64 NICs per instance (incl. primary and attaches in
 *   flight), at most 252 NICs per vxnet, `count` 1–252 → otherwise 1400 / 1100.
 * - IPs are unique per vxnet across NICs and VIPs, never the gateway, network or broadcast;
 *   explicit IPs outside the network → 1100, taken → 1400. Deleting a NIC frees its IP.
 * - Every batch is validated in full before anything changes.
 * - Resources of another owner are invisible to Describe* and give 1400 when mutated.
 * - Deleting a resource or a tag removes its tag bindings.
 */
import { ConfigError } from "../errors.ts";
import { cidrContains, formatIp, hostRange, parseIp } from "./ip.ts";
import { createRng, deriveSeed, type Rng } from "./prng.ts";
import type { Scenario, ScenarioRule } from "./scenario.ts";
import { invalidParameter, notFound, permissionDenied, SimApiError } from "./errors.ts";

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

const LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789";
const HEX = "0123456789abcdef";

/** Resource types AttachTags accepts, mapped to the table that holds them. */
const TAGGABLE = ["nic", "instance", "vxnet", "security_group", "vip", "router"] as const;
type TaggableType = typeof TAGGABLE[number];

export class World {
  readonly zone: string;
  readonly now: () => number;
  #planJob: (action: string) => JobPlan;
  #ids: Rng;
  #issued = new Set<string>();

  readonly accessKeys = new Map<string, AccessKey>();
  readonly routers = new Map<string, Router>();
  readonly vxnets = new Map<string, Vxnet>();
  readonly instances = new Map<string, Instance>();
  readonly nics = new Map<string, Nic>();
  readonly jobs = new Map<string, Job>();
  readonly tags = new Map<string, Tag>();
  /** Keyed by `tagId|resourceType|resourceId`. */
  readonly bindings = new Map<string, TagBinding>();
  readonly vips = new Map<string, Vip>();
  readonly securityGroups = new Map<string, SecurityGroup>();
  readonly rules = new Map<string, Rule>();
  /** AppCenter clusters (QKE): only what DescribeClusters reports to hostnic. */
  readonly clusters = new Map<string, Cluster>();

  constructor(o: WorldOptions) {
    const s = o.scenario;
    this.zone = s.zone;
    this.now = o.now ?? (() => Date.now());
    this.#planJob = o.planJob ?? (() => ({ pendingMs: 0, totalMs: 0, fail: false }));
    this.#ids = createRng(deriveSeed(s.seed, 0));
    const t = this.now();
    // Ids the scenario fixes are reserved first, so a generated id can never collide with one.
    for (
      const id of [
        ...s.routers.map((r) => r.id),
        ...s.vxnets.map((v) => v.id),
        ...s.securityGroups.map((g) => g.id),
        ...s.instances.flatMap((x) => (x.nicId ? [x.id, x.nicId] : [x.id])),
        ...s.tags.flatMap((tag) => (tag.id ? [tag.id] : [])),
      ]
    ) this.#issued.add(id);

    for (const c of s.credentials) {
      this.accessKeys.set(c.accessKeyId, {
        id: c.accessKeyId,
        secret: c.secretAccessKey,
        owner: c.owner,
        name: c.name,
        status: c.status,
        createMs: t,
      });
    }
    for (const r of s.routers) {
      this.routers.set(r.id, {
        id: r.id,
        name: r.name,
        cidr: `${formatIp(r.cidr.network)}/${r.cidr.prefix}`,
        owner: r.owner,
        createMs: t,
      });
    }
    for (const v of s.vxnets) {
      this.vxnets.set(v.id, {
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
      this.securityGroups.set(g.id, {
        id: g.id,
        name: g.name,
        isDefault: g.isDefault,
        owner: g.owner,
        createMs: t,
        version: 0,
        appliedVersion: 0,
      });
      for (const r of g.rules) {
        const id = this.#newId("sgr-", 8);
        this.rules.set(id, { ...r, id, securityGroupId: g.id, createMs: t });
      }
    }
    for (const x of s.instances) {
      const nicId = x.nicId ?? this.#newNicId();
      this.instances.set(x.id, {
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
      this.nics.set(nicId, {
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
      const id = tag.id ?? this.#newId("tag-", 8);
      this.tags.set(id, {
        id,
        name: tag.name,
        color: tag.color,
        description: tag.description,
        owner: tag.owner,
        createMs: t,
      });
      tag.resources.forEach((r, j) => {
        if (!this.#taggable(r.resourceType, r.resourceId)) {
          throw new ConfigError(
            `tags.${i}.resources.${j}`,
            `names unknown ${r.resourceType} "${r.resourceId}"`,
          );
        }
        this.bindings.set(bindingKey(id, r.resourceType, r.resourceId), {
          tagId: id,
          resourceType: r.resourceType,
          resourceId: r.resourceId,
          createMs: t,
        });
      });
    });
  }

  // ---------------------------------------------------------------- ids

  #newId(prefix: string, n: number): string {
    for (;;) {
      const id = prefix + this.#ids.chars(n, LOWER_ALNUM);
      if (!this.#issued.has(id)) {
        this.#issued.add(id);
        return id;
      }
    }
  }

  #newNicId(): string {
    for (;;) {
      const id = "52:54:" + [0, 1, 2, 3].map(() => this.#ids.chars(2, HEX)).join(":");
      if (!this.#issued.has(id)) {
        this.#issued.add(id);
        return id;
      }
    }
  }

  // ---------------------------------------------------------------- shared checks

  #owned<T extends { owner: string }>(res: T | undefined, id: string, owner: string): T {
    if (!res) throw notFound(id);
    if (res.owner !== owner) throw permissionDenied(`resource [${id}] does not belong to you`);
    return res;
  }

  #taggable(type: string, id: string): { owner: string } | undefined {
    switch (type as TaggableType) {
      case "nic":
        return this.nics.get(id);
      case "instance":
        return this.instances.get(id);
      case "vxnet":
        return this.vxnets.get(id);
      case "security_group":
        return this.securityGroups.get(id);
      case "vip":
        return this.vips.get(id);
      case "router":
        return this.routers.get(id);
      default:
        return undefined;
    }
  }

  /** IPs taken in a vxnet: NICs (incl. primaries), VIPs and the gateway. */
  usedIps(vxnetId: string): Set<number> {
    const vx = this.vxnets.get(vxnetId);
    const used = new Set<number>();
    if (vx) used.add(vx.managerIp);
    for (const n of this.nics.values()) {
      if (n.vxnetId === vxnetId && n.privateIp !== null) used.add(n.privateIp);
    }
    for (const v of this.vips.values()) if (v.vxnetId === vxnetId) used.add(v.addr);
    return used;
  }

  nicCountInVxnet(vxnetId: string): number {
    let n = 0;
    for (const nic of this.nics.values()) if (nic.vxnetId === vxnetId) n++;
    return n;
  }

  /** Free addresses left in the vxnet's DHCP range. */
  availableIpCount(vxnetId: string): number {
    const vx = this.vxnets.get(vxnetId);
    if (!vx?.dynRange) return 0;
    const used = this.usedIps(vxnetId);
    let free = 0;
    for (let ip = vx.dynRange.start; ip <= vx.dynRange.end; ip++) if (!used.has(ip)) free++;
    return free;
  }

  /** Validates an explicit address for a vxnet against network, reserved and used addresses. */
  #checkExplicitIp(vx: Vxnet, text: string, used: Set<number>, param: string): number {
    const ip = parseIp(text);
    if (ip === undefined) throw invalidParameter(`${param} [${text}] is not an IPv4 address`);
    const cidr = { network: vx.networkAddr, prefix: vx.prefix };
    if (!cidrContains(cidr, ip)) {
      throw invalidParameter(`${param} [${text}] is outside vxnet [${vx.id}] (${vx.ipNetwork})`);
    }
    const range = hostRange(cidr);
    if (ip < range.first || ip > range.last) {
      throw invalidParameter(`${param} [${text}] is the network or broadcast address`);
    }
    if (ip === vx.managerIp) {
      throw permissionDenied(`ip [${text}] is the gateway of vxnet [${vx.id}]`);
    }
    if (used.has(ip)) throw permissionDenied(`ip [${text}] is already in use in vxnet [${vx.id}]`);
    return ip;
  }

  /** Attaches in flight count against the instance's limit before they complete. */
  #nicsOnInstance(instanceId: string): number {
    let n = 0;
    for (const nic of this.nics.values()) if (nic.instanceId === instanceId) n++;
    for (const job of this.jobs.values()) {
      if (
        job.final === null && job.effect.kind === "attach" && job.effect.instanceId === instanceId
      ) {
        n += job.effect.nicIds.length;
      }
    }
    return n;
  }

  // ---------------------------------------------------------------- access keys

  accessKey(id: string): AccessKey | undefined {
    return this.accessKeys.get(id);
  }

  describeAccessKeys(owner: string, f: { ids: string[]; statuses: string[] }): AccessKey[] {
    return sortNewest(
      [...this.accessKeys.values()].filter((k) =>
        k.owner === owner && matchAny(f.ids, k.id) && matchAny(f.statuses, k.status)
      ),
    );
  }

  // ---------------------------------------------------------------- NICs

  describeNics(owner: string, f: {
    ids: string[];
    name?: string;
    status?: string;
    vxnetIds: string[];
    vxnetTypes: number[];
    instanceIds: string[];
    tagIds: string[];
  }): Nic[] {
    return sortNewest(
      [...this.nics.values()].filter((n) =>
        n.owner === owner &&
        matchAny(f.ids, n.id) &&
        (f.name === undefined || n.name === f.name) &&
        (f.status === undefined || n.status === f.status) &&
        matchAny(f.vxnetIds, n.vxnetId) &&
        (f.vxnetTypes.length === 0 ||
          f.vxnetTypes.includes(this.vxnets.get(n.vxnetId)?.vxnetType ?? -1)) &&
        matchAny(f.instanceIds, n.instanceId) &&
        this.#hasAnyTag("nic", n.id, f.tagIds)
      ),
    );
  }

  createNics(owner: string, o: {
    vxnetId: string;
    count: number;
    name: string;
    privateIps: string[];
    disableIp: boolean;
  }): Nic[] {
    const vx = this.#owned(this.vxnets.get(o.vxnetId), o.vxnetId, owner);
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
    const have = this.nicCountInVxnet(vx.id);
    if (have + o.count > NICS_PER_VXNET) {
      throw permissionDenied(
        `vxnet [${vx.id}] can hold at most [${NICS_PER_VXNET}] NICs, it has [${have}]`,
      );
    }
    const used = this.usedIps(vx.id);
    const ips: (number | null)[] = [];
    if (o.disableIp) {
      for (let i = 0; i < o.count; i++) ips.push(null);
    } else if (o.privateIps.length > 0) {
      o.privateIps.forEach((text, i) => {
        const ip = this.#checkExplicitIp(vx, text, used, `private_ips.${i + 1}`);
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
    const t = this.now();
    return ips.map((ip) => {
      const nic: Nic = {
        id: this.#newNicId(),
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
      this.nics.set(nic.id, nic);
      return nic;
    });
  }

  #busyCheck(nic: Nic) {
    if (nic.jobId !== null) {
      throw permissionDenied(`nic [${nic.id}] is busy with job [${nic.jobId}], try later`);
    }
  }

  attachNics(owner: string, o: { nicIds: string[]; instanceId: string }): Job {
    const ids = dedupe(o.nicIds);
    if (ids.length === 0) throw invalidParameter("parameter [nics] is required");
    const nics = ids.map((id) => this.#owned(this.nics.get(id), id, owner));
    const inst = this.#owned(this.instances.get(o.instanceId), o.instanceId, owner);
    for (const nic of nics) {
      this.#busyCheck(nic);
      if (nic.status !== "available") {
        throw permissionDenied(`nic [${nic.id}] is [${nic.status}], it must be available`);
      }
    }
    if (inst.status !== "running") {
      throw permissionDenied(`instance [${inst.id}] is not running, can not attach nics`);
    }
    const have = this.#nicsOnInstance(inst.id);
    if (have + nics.length > NICS_PER_INSTANCE) {
      throw permissionDenied(
        `you can only attach [${NICS_PER_INSTANCE}] nics to one instance at most`,
      );
    }
    return this.#startJob({
      action: "AttachNics",
      owner,
      resourceIds: [...ids, inst.id],
      directive: { nics: ids, instance: inst.id },
      effect: { kind: "attach", nicIds: ids, instanceId: inst.id },
      nics,
    });
  }

  detachNics(owner: string, o: { nicIds: string[] }): Job {
    const ids = dedupe(o.nicIds);
    if (ids.length === 0) throw invalidParameter("parameter [nics] is required");
    const nics = ids.map((id) => this.#owned(this.nics.get(id), id, owner));
    for (const nic of nics) {
      this.#busyCheck(nic);
      if (nic.role === 1) throw permissionDenied(`nic [${nic.id}] is a primary nic`);
      if (nic.status !== "in-use") {
        throw permissionDenied(`nic [${nic.id}] is not attached to any instance`);
      }
    }
    return this.#startJob({
      action: "DetachNics",
      owner,
      resourceIds: ids,
      directive: { nics: ids },
      effect: { kind: "detach", nicIds: ids },
      nics,
    });
  }

  deleteNics(owner: string, o: { nicIds: string[] }): string[] {
    const ids = dedupe(o.nicIds);
    if (ids.length === 0) throw invalidParameter("parameter [nics] is required");
    const nics = ids.map((id) => this.#owned(this.nics.get(id), id, owner));
    for (const nic of nics) {
      this.#busyCheck(nic);
      if (nic.role === 1) throw permissionDenied(`nic [${nic.id}] is a primary nic`);
      if (nic.status === "in-use") {
        throw permissionDenied(
          `nic [${nic.id}] is in use by instance [${nic.instanceId}], detach it first`,
        );
      }
    }
    for (const nic of nics) {
      this.nics.delete(nic.id);
      this.#dropBindings("nic", nic.id);
    }
    return ids;
  }

  /** In-use NICs of an instance, primary first then by sequence. */
  instanceNics(instanceId: string): Nic[] {
    return [...this.nics.values()]
      .filter((n) => n.instanceId === instanceId)
      .sort((a, b) => a.sequence - b.sequence);
  }

  // ---------------------------------------------------------------- vxnets, routers, instances

  describeVxnets(owner: string, f: {
    ids: string[];
    vxnetType?: number;
    searchWord?: string;
    tagIds: string[];
  }): Vxnet[] {
    return sortNewest(
      [...this.vxnets.values()].filter((v) =>
        v.owner === owner &&
        matchAny(f.ids, v.id) &&
        // Without a type filter the platform leaves out basic (type 2) vxnets; hostnic asks
        // for them in a second call with vxnet_type=2.
        (f.vxnetType === undefined ? v.vxnetType !== 2 : v.vxnetType === f.vxnetType) &&
        matchWord(f.searchWord, v.id, v.name) &&
        this.#hasAnyTag("vxnet", v.id, f.tagIds)
      ),
    );
  }

  /** Instances with a NIC in the vxnet (the verbose `instance_ids` view). */
  vxnetInstanceIds(vxnetId: string): string[] {
    const ids = new Set<string>();
    for (const n of this.nics.values()) {
      if (n.vxnetId === vxnetId && n.instanceId !== "") ids.add(n.instanceId);
    }
    return [...ids].sort();
  }

  describeInstances(owner: string, f: {
    ids: string[];
    statuses: string[];
    vxnetId?: string;
    name?: string;
    searchWord?: string;
    tagIds: string[];
  }): Instance[] {
    return sortNewest(
      [...this.instances.values()].filter((x) =>
        x.owner === owner &&
        matchAny(f.ids, x.id) &&
        matchAny(f.statuses, x.status) &&
        (f.vxnetId === undefined ||
          this.instanceNics(x.id).some((n) => n.vxnetId === f.vxnetId)) &&
        (f.name === undefined || x.name.includes(f.name)) &&
        matchWord(f.searchWord, x.id, x.name) &&
        this.#hasAnyTag("instance", x.id, f.tagIds)
      ),
    );
  }

  /** Sets an instance's status (tests: attach to a stopped instance → 1400). */
  setInstanceStatus(instanceId: string, status: InstanceStatus): void {
    const inst = this.instances.get(instanceId);
    if (!inst) throw notFound(instanceId);
    inst.status = status;
    inst.statusMs = this.now();
  }

  /** Records a reboot; NICs stay attached (the backend rebuilds the node's kernel state). */
  recordReboot(instanceId: string): Instance {
    const inst = this.instances.get(instanceId);
    if (!inst) throw notFound(instanceId);
    inst.bootCount++;
    inst.statusMs = this.now();
    return inst;
  }

  // ---------------------------------------------------------------- jobs

  #startJob(o: {
    action: string;
    owner: string;
    resourceIds: string[];
    directive: Record<string, unknown>;
    effect: JobEffect;
    nics?: Nic[];
    vips?: Vip[];
  }): Job {
    const plan = this.#planJob(o.action);
    const t = this.now();
    const job: Job = {
      id: this.#newId("j-", 8),
      action: o.action,
      owner: o.owner,
      createMs: t,
      pendingUntilMs: t + Math.min(plan.pendingMs, plan.totalMs),
      dueMs: t + plan.totalMs,
      willFail: plan.fail,
      final: null,
      finalMs: null,
      applying: false,
      resourceIds: o.resourceIds,
      directive: o.directive,
      errorCodes: "",
      effect: o.effect,
    };
    this.jobs.set(job.id, job);
    for (const n of o.nics ?? []) n.jobId = job.id;
    for (const v of o.vips ?? []) v.jobId = job.id;
    return job;
  }

  jobStatus(job: Job, now = this.now()): JobStatus {
    if (job.final) return job.final;
    return now < job.pendingUntilMs ? "pending" : "working";
  }

  /** Jobs whose time is up and whose effect has not been applied or claimed yet. */
  dueJobs(now = this.now()): Job[] {
    return [...this.jobs.values()]
      .filter((j) => j.final === null && !j.applying && j.dueMs <= now)
      .sort((a, b) => a.dueMs - b.dueMs || a.createMs - b.createMs);
  }

  /** Earliest due time of an unfinished job (for the server's timer). */
  nextDueMs(): number | undefined {
    let min: number | undefined;
    for (const j of this.jobs.values()) {
      if (j.final === null && !j.applying && (min === undefined || j.dueMs < min)) min = j.dueMs;
    }
    return min;
  }

  /**
   * Completes a job: on success its effect is applied to the tables; on failure (planned by the
   * fault knob, or `ok: false` from the backend) nothing changes. Busy marks are cleared.
   */
  finishJob(jobId: string, o: { ok: boolean; errorCode?: string }): Job {
    const job = this.jobs.get(jobId);
    if (!job) throw notFound(jobId);
    if (job.final) return job;
    const t = this.now();
    const ok = o.ok && !job.willFail;
    const e = job.effect;
    if (ok) {
      if (e.kind === "attach") {
        for (const id of e.nicIds) {
          const nic = this.nics.get(id);
          if (!nic) continue;
          nic.status = "in-use";
          nic.instanceId = e.instanceId;
          nic.sequence = this.#lowestFreeSequence(e.instanceId);
          nic.statusMs = t;
        }
      } else if (e.kind === "detach") {
        for (const id of e.nicIds) {
          const nic = this.nics.get(id);
          if (!nic) continue;
          nic.status = "available";
          nic.instanceId = "";
          nic.sequence = 0;
          nic.statusMs = t;
        }
      } else if (e.kind === "release_vips") {
        for (const id of e.vipIds) {
          this.vips.delete(id);
          this.#dropBindings("vip", id);
        }
      } else if (e.kind === "apply_sg") {
        const sg = this.securityGroups.get(e.securityGroupId);
        if (sg) sg.appliedVersion = sg.version;
        for (const id of e.instanceIds) {
          const inst = this.instances.get(id);
          if (inst) inst.securityGroupId = e.securityGroupId;
        }
      }
    }
    for (const n of this.nics.values()) if (n.jobId === job.id) n.jobId = null;
    for (const v of this.vips.values()) if (v.jobId === job.id) v.jobId = null;
    job.final = ok ? "successful" : "failed";
    job.finalMs = t;
    job.applying = false;
    if (!ok) job.errorCodes = o.errorCode ?? "5000";
    return job;
  }

  /** Marks a due job as being applied by an asynchronous backend (so it is not claimed twice). */
  claimJob(jobId: string): Job {
    const job = this.jobs.get(jobId);
    if (!job) throw notFound(jobId);
    job.applying = true;
    return job;
  }

  /** Finishes every due job at once (no backend): the pure model's notion of time passing. */
  settle(now = this.now()): Job[] {
    return this.dueJobs(now).map((j) => this.finishJob(j.id, { ok: true }));
  }

  #lowestFreeSequence(instanceId: string): number {
    const taken = new Set(this.instanceNics(instanceId).map((n) => n.sequence));
    let s = 1;
    while (taken.has(s)) s++;
    return s;
  }

  describeJobs(owner: string, f: { ids: string[]; statuses: string[] }): Job[] {
    const now = this.now();
    return sortNewest(
      [...this.jobs.values()].filter((j) =>
        j.owner === owner && matchAny(f.ids, j.id) && matchAny(f.statuses, this.jobStatus(j, now))
      ),
    );
  }

  // ---------------------------------------------------------------- tags

  #hasAnyTag(type: string, id: string, tagIds: string[]): boolean {
    return tagIds.length === 0 || tagIds.some((t) => this.bindings.has(bindingKey(t, type, id)));
  }

  #dropBindings(type: string, id: string) {
    for (const [k, b] of this.bindings) {
      if (b.resourceType === type && b.resourceId === id) this.bindings.delete(k);
    }
  }

  /** Tags bound to a resource. */
  tagsOf(type: string, id: string): Tag[] {
    const out: Tag[] = [];
    for (const b of this.bindings.values()) {
      if (b.resourceType === type && b.resourceId === id) {
        const tag = this.tags.get(b.tagId);
        if (tag) out.push(tag);
      }
    }
    return out;
  }

  bindingsOf(tagId: string): TagBinding[] {
    return [...this.bindings.values()].filter((b) => b.tagId === tagId);
  }

  createTag(owner: string, o: { name: string; color: string; description: string }): Tag {
    if (o.name.length === 0) throw invalidParameter("parameter [tag_name] is required");
    if (o.name.length >= 15) {
      throw invalidParameter(`tag_name [${o.name}] must be shorter than 15 characters`);
    }
    for (const t of this.tags.values()) {
      if (t.owner === owner && t.name === o.name) {
        throw new SimApiError(2110, `ResourceAlreadyExists, tag name [${o.name}] already exists`);
      }
    }
    const tag: Tag = { id: this.#newId("tag-", 8), ...o, owner, createMs: this.now() };
    this.tags.set(tag.id, tag);
    return tag;
  }

  describeTags(owner: string, f: { ids: string[]; searchWord?: string }): Tag[] {
    return sortNewest(
      [...this.tags.values()].filter((t) =>
        t.owner === owner && matchAny(f.ids, t.id) && matchWord(f.searchWord, t.id, t.name)
      ),
    );
  }

  #checkPairs(
    owner: string,
    pairs: { tagId: string; resourceType: string; resourceId: string }[],
  ) {
    if (pairs.length === 0) throw invalidParameter("parameter [resource_tag_pairs] is required");
    for (const p of pairs) {
      this.#owned(this.tags.get(p.tagId), p.tagId, owner);
      if (!(TAGGABLE as readonly string[]).includes(p.resourceType)) {
        throw invalidParameter(
          `resource_type [${p.resourceType}] is not one of ${TAGGABLE.join(", ")}`,
        );
      }
      this.#owned(this.#taggable(p.resourceType, p.resourceId), p.resourceId, owner);
    }
  }

  attachTags(
    owner: string,
    pairs: { tagId: string; resourceType: string; resourceId: string }[],
  ): void {
    this.#checkPairs(owner, pairs);
    const t = this.now();
    for (const p of pairs) {
      const k = bindingKey(p.tagId, p.resourceType, p.resourceId);
      if (!this.bindings.has(k)) this.bindings.set(k, { ...p, createMs: t });
    }
  }

  detachTags(
    owner: string,
    pairs: { tagId: string; resourceType: string; resourceId: string }[],
  ): void {
    this.#checkPairs(owner, pairs);
    for (const p of pairs) this.bindings.delete(bindingKey(p.tagId, p.resourceType, p.resourceId));
  }

  deleteTags(owner: string, tagIds: string[]): string[] {
    const ids = dedupe(tagIds);
    if (ids.length === 0) throw invalidParameter("parameter [tags] is required");
    for (const id of ids) this.#owned(this.tags.get(id), id, owner);
    for (const id of ids) {
      this.tags.delete(id);
      for (const [k, b] of this.bindings) if (b.tagId === id) this.bindings.delete(k);
    }
    return ids;
  }

  // ---------------------------------------------------------------- VIPs

  allocateVips(owner: string, o: {
    vxnetId: string;
    name: string;
    range?: string;
    addrs: string[];
    count?: number;
  }): { vips: Vip[]; job: Job } {
    const vx = this.#owned(this.vxnets.get(o.vxnetId), o.vxnetId, owner);
    const used = this.usedIps(vx.id);
    const addrs: number[] = [];
    if (o.addrs.length > 0) {
      if (o.count !== undefined && o.count !== o.addrs.length) {
        throw invalidParameter(`count [${o.count}] does not match the vip_addrs given`);
      }
      o.addrs.forEach((text, i) => {
        const ip = this.#checkExplicitIp(vx, text, used, `vip_addrs.${i + 1}`);
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
    const t = this.now();
    const vips = addrs.map((addr) => {
      const vip: Vip = {
        id: this.#newId("vip-", 8),
        name: o.name,
        addr,
        vxnetId: vx.id,
        owner,
        createMs: t,
        jobId: null,
      };
      this.vips.set(vip.id, vip);
      return vip;
    });
    const job = this.#startJob({
      action: "AllocateVips",
      owner,
      resourceIds: vips.map((v) => v.id),
      directive: { vips: vips.map((v) => v.id), vxnet: vx.id },
      effect: { kind: "none" },
    });
    return { vips, job };
  }

  describeVips(owner: string, f: {
    ids: string[];
    vxnetIds: string[];
    name?: string;
    addrs: string[];
  }): Vip[] {
    return sortNewest(
      [...this.vips.values()].filter((v) =>
        v.owner === owner &&
        matchAny(f.ids, v.id) &&
        matchAny(f.vxnetIds, v.vxnetId) &&
        (f.name === undefined || v.name === f.name) &&
        matchAny(f.addrs, formatIp(v.addr))
      ),
    );
  }

  releaseVips(owner: string, vipIds: string[]): Job {
    const ids = dedupe(vipIds);
    if (ids.length === 0) throw invalidParameter("parameter [vips] is required");
    const vips = ids.map((id) => this.#owned(this.vips.get(id), id, owner));
    for (const v of vips) {
      if (v.jobId !== null) throw permissionDenied(`vip [${v.id}] is busy with job [${v.jobId}]`);
    }
    return this.#startJob({
      action: "ReleaseVips",
      owner,
      resourceIds: ids,
      directive: { vips: ids },
      effect: { kind: "release_vips", vipIds: ids },
      vips,
    });
  }

  // ---------------------------------------------------------------- security groups

  describeSecurityGroups(owner: string, f: {
    ids: string[];
    searchWord?: string;
    tagIds: string[];
  }): SecurityGroup[] {
    return sortNewest(
      [...this.securityGroups.values()].filter((g) =>
        g.owner === owner &&
        matchAny(f.ids, g.id) &&
        matchWord(f.searchWord, g.id, g.name) &&
        this.#hasAnyTag("security_group", g.id, f.tagIds)
      ),
    );
  }

  /** Security group with an existence/ownership check (DescribeSecurityGroups errors on ids). */
  securityGroup(owner: string, id: string): SecurityGroup {
    return this.#owned(this.securityGroups.get(id), id, owner);
  }

  securityGroupInstances(sgId: string): Instance[] {
    return [...this.instances.values()].filter((x) => x.securityGroupId === sgId);
  }

  addSecurityGroupRules(owner: string, sgId: string, rules: ScenarioRule[]): Rule[] {
    const sg = this.#owned(this.securityGroups.get(sgId), sgId, owner);
    if (rules.length === 0) throw invalidParameter("parameter [rules] is required");
    const t = this.now();
    const out = rules.map((r) => {
      const rule: Rule = { ...r, id: this.#newId("sgr-", 8), securityGroupId: sg.id, createMs: t };
      this.rules.set(rule.id, rule);
      return rule;
    });
    sg.version++;
    return out;
  }

  describeSecurityGroupRules(owner: string, f: {
    securityGroupId?: string;
    ids: string[];
    direction?: number;
  }): Rule[] {
    if (f.securityGroupId !== undefined) {
      this.#owned(this.securityGroups.get(f.securityGroupId), f.securityGroupId, owner);
    }
    return sortNewest(
      [...this.rules.values()].filter((r) =>
        this.securityGroups.get(r.securityGroupId)?.owner === owner &&
        (f.securityGroupId === undefined || r.securityGroupId === f.securityGroupId) &&
        matchAny(f.ids, r.id) &&
        (f.direction === undefined || r.direction === f.direction)
      ),
    );
  }

  deleteSecurityGroupRules(owner: string, ruleIds: string[]): string[] {
    const ids = dedupe(ruleIds);
    if (ids.length === 0) throw invalidParameter("parameter [security_group_rules] is required");
    const rules = ids.map((id) => {
      const r = this.rules.get(id);
      if (!r) throw notFound(id);
      this.#owned(this.securityGroups.get(r.securityGroupId), r.securityGroupId, owner);
      return r;
    });
    for (const r of rules) {
      this.rules.delete(r.id);
      const sg = this.securityGroups.get(r.securityGroupId);
      if (sg) sg.version++;
    }
    return ids;
  }

  applySecurityGroup(owner: string, o: { securityGroupId: string; instanceIds: string[] }): Job {
    const sg = this.#owned(this.securityGroups.get(o.securityGroupId), o.securityGroupId, owner);
    const ids = dedupe(o.instanceIds);
    for (const id of ids) this.#owned(this.instances.get(id), id, owner);
    return this.#startJob({
      action: "ApplySecurityGroup",
      owner,
      resourceIds: [sg.id, ...ids],
      directive: { security_group: sg.id, instances: ids },
      effect: { kind: "apply_sg", securityGroupId: sg.id, instanceIds: ids },
    });
  }

  /** CreateSecurityGroup: an empty, applied group. */
  createSecurityGroup(owner: string, o: { name: string }): SecurityGroup {
    const g: SecurityGroup = {
      id: this.#newId("sg-", 8),
      name: o.name,
      isDefault: false,
      owner,
      createMs: this.now(),
      version: 0,
      appliedVersion: 0,
    };
    this.securityGroups.set(g.id, g);
    return g;
  }

  // ---------------------------------------------------------------- clusters (AppCenter/QKE)

  /** Adds a cluster (control API: clusters are made by AppCenter, not by an action we serve). */
  addCluster(o: { id: string; securityGroupId: string; owner?: string }): Cluster {
    if (!/^cl-[a-z0-9]{1,16}$/.test(o.id)) {
      throw invalidParameter(`cluster id [${o.id}] is invalid`);
    }
    const sg = this.securityGroups.get(o.securityGroupId);
    if (!sg) throw notFound(o.securityGroupId);
    const c: Cluster = {
      id: o.id,
      securityGroupId: sg.id,
      owner: o.owner ?? sg.owner,
      createMs: this.now(),
    };
    this.clusters.set(c.id, c);
    return c;
  }

  describeClusters(owner: string, ids: string[]): Cluster[] {
    return sortNewest(
      [...this.clusters.values()].filter((c) => c.owner === owner && matchAny(ids, c.id)),
    );
  }

  // ---------------------------------------------------------------- dump

  /** Everything except secrets, as plain JSON (for `GET /_sim/state`). */
  snapshot(): Record<string, unknown> {
    const now = this.now();
    return {
      zone: this.zone,
      access_keys: [...this.accessKeys.values()].map(({ secret: _s, ...k }) => k),
      routers: [...this.routers.values()],
      vxnets: [...this.vxnets.values()].map((v) => ({
        ...v,
        managerIp: formatIp(v.managerIp),
        dynRange: v.dynRange
          ? { start: formatIp(v.dynRange.start), end: formatIp(v.dynRange.end) }
          : null,
      })),
      instances: [...this.instances.values()],
      nics: [...this.nics.values()].map((n) => ({
        ...n,
        privateIp: n.privateIp === null ? null : formatIp(n.privateIp),
      })),
      jobs: [...this.jobs.values()].map((j) => ({ ...j, status: this.jobStatus(j, now) })),
      tags: [...this.tags.values()],
      bindings: [...this.bindings.values()],
      vips: [...this.vips.values()].map((v) => ({ ...v, addr: formatIp(v.addr) })),
      security_groups: [...this.securityGroups.values()],
      rules: [...this.rules.values()],
      clusters: [...this.clusters.values()],
    };
  }
}

function bindingKey(tagId: string, type: string, id: string): string {
  return `${tagId}|${type}|${id}`;
}

function dedupe(ids: string[]): string[] {
  return [...new Set(ids)];
}

/** An empty filter list matches everything; otherwise OR within the list. */
function matchAny<T>(list: readonly T[], value: T): boolean {
  return list.length === 0 || list.includes(value);
}

function matchWord(word: string | undefined, ...fields: string[]): boolean {
  if (word === undefined || word === "") return true;
  const w = word.toLowerCase();
  return fields.some((f) => f.toLowerCase().includes(w));
}

/** Stable order: newest first, then id (the API documents no order; clients must not rely on it). */
function sortNewest<T extends { createMs: number; id: string }>(list: T[]): T[] {
  return list.sort((a, b) => b.createMs - a.createMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
