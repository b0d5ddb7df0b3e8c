/**
 * The simulated cloud's tables: one map per resource, the clock, the job planner and the id
 * generator, plus the small helpers every resource module shares (ownership check, tag-target
 * lookup, filters, ordering). The resource modules beside this file (nics.ts, network.ts,
 * addresses.ts, jobs.ts, tags.ts, vips.ts, security_groups.ts) are functions over a `Tables`;
 * ../world.ts composes them into the `World` the HTTP layer and the Linux backend use.
 */
import { createRng, deriveSeed, type Rng } from "../prng.ts";
import { notFound, permissionDenied } from "../errors.ts";
import type {
  AccessKey,
  Cluster,
  Instance,
  Job,
  JobPlan,
  Nic,
  Router,
  Rule,
  SecurityGroup,
  Tag,
  TagBinding,
  TaggableType,
  Vip,
  Vxnet,
  WorldOptions,
} from "./types.ts";

const LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789";
const HEX = "0123456789abcdef";

export class Tables {
  readonly zone: string;
  readonly now: () => number;
  /** How long a new job of an action takes and whether it fails (the server's fault knobs). */
  readonly planJob: (action: string) => JobPlan;
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
    this.zone = o.scenario.zone;
    this.now = o.now ?? (() => Date.now());
    this.planJob = o.planJob ?? (() => ({ pendingMs: 0, totalMs: 0, fail: false }));
    this.#ids = createRng(deriveSeed(o.scenario.seed, 0));
  }

  /** Marks an id the scenario fixes as taken, so a generated id can never collide with it. */
  reserveId(id: string): void {
    this.#issued.add(id);
  }

  /** A fresh `<prefix><n lowercase alphanumerics>` id, never issued before. */
  newId(prefix: string, n: number): string {
    for (;;) {
      const id = prefix + this.#ids.chars(n, LOWER_ALNUM);
      if (!this.#issued.has(id)) {
        this.#issued.add(id);
        return id;
      }
    }
  }

  /** A fresh NIC id: a lowercase MAC 52:54:xx:xx:xx:xx, never issued before. */
  newNicId(): string {
    for (;;) {
      const id = "52:54:" + [0, 1, 2, 3].map(() => this.#ids.chars(2, HEX)).join(":");
      if (!this.#issued.has(id)) {
        this.#issued.add(id);
        return id;
      }
    }
  }
}

/** The resource, if it exists (else 2100) and belongs to `owner` (else 1400). */
export function owned<T extends { owner: string }>(
  res: T | undefined,
  id: string,
  owner: string,
): T {
  if (!res) throw notFound(id);
  if (res.owner !== owner) throw permissionDenied(`resource [${id}] does not belong to you`);
  return res;
}

export function taggable(w: Tables, type: string, id: string): { owner: string } | undefined {
  switch (type as TaggableType) {
    case "nic":
      return w.nics.get(id);
    case "instance":
      return w.instances.get(id);
    case "vxnet":
      return w.vxnets.get(id);
    case "security_group":
      return w.securityGroups.get(id);
    case "vip":
      return w.vips.get(id);
    case "router":
      return w.routers.get(id);
    default:
      return undefined;
  }
}

export function bindingKey(tagId: string, type: string, id: string): string {
  return `${tagId}|${type}|${id}`;
}

export function dedupe(ids: string[]): string[] {
  return [...new Set(ids)];
}

/** An empty filter list matches everything; otherwise OR within the list. */
export function matchAny<T>(list: readonly T[], value: T): boolean {
  return list.length === 0 || list.includes(value);
}

export function matchWord(word: string | undefined, ...fields: string[]): boolean {
  if (word === undefined || word === "") return true;
  const w = word.toLowerCase();
  return fields.some((f) => f.toLowerCase().includes(w));
}

/** Stable order: newest first, then id (the API documents no order; clients must not rely on it). */
export function sortNewest<T extends { createMs: number; id: string }>(list: T[]): T[] {
  return list.sort((a, b) => b.createMs - a.createMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
