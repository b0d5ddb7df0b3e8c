/**
 * Where IPAM objects live: a compare-and-swap store per kind, shaped like the Kubernetes API
 * (cluster-scoped objects with an opaque `resourceVersion`). The allocator relies only on:
 * - `update` and `delete` with a resourceVersion succeed only if it is still current, else
 *   `ConflictError` and nothing changes (HTTP 409 + `DeleteOptions.preconditions`);
 * - `create` of an existing name fails with `AlreadyExistsError` (HTTP 409 AlreadyExists);
 * - values are copies; `list` is sorted by name;
 * - an update that changes nothing keeps the resourceVersion (the API server skips the write).
 * `store_contract.ts` is the executable form of these rules; every implementation must pass it.
 */
import type { z } from "zod";
import {
  AlreadyExistsError,
  ConflictError,
  InvalidObjectError,
  IpamRequestError,
  NotFoundError,
} from "./errors.ts";
import {
  type BlockSpec,
  blockSpecSchema,
  type HandleSpec,
  handleSpecSchema,
  type IpPoolSpec,
  ipPoolSpecSchema,
  PATTERNS,
} from "./types.ts";

export interface Versioned<T> {
  readonly name: string;
  /** Opaque; changes on every write. Never compare two of them for order. */
  readonly resourceVersion: string;
  readonly spec: T;
}

export interface CasStore<T> {
  /** Kind named in errors (`IPAMBlock`…). */
  readonly kind: string;
  /** `kubectl get <kind> <name>`; undefined when absent. */
  get(name: string): Promise<Versioned<T> | undefined>;
  /** `kubectl get <kind>`, sorted by name. */
  list(): Promise<Versioned<T>[]>;
  /** `kubectl create`; `AlreadyExistsError` when the name is taken. */
  create(name: string, spec: T): Promise<Versioned<T>>;
  /**
   * `kubectl replace` carrying `metadata.resourceVersion`: `ConflictError` when it is stale,
   * `NotFoundError` when the object is gone.
   */
  update(obj: Versioned<T>): Promise<Versioned<T>>;
  /**
   * `kubectl delete` with `preconditions.resourceVersion` when given: `ConflictError` when stale.
   * Resolves false when there was nothing to delete (delete forgives).
   */
  delete(name: string, opts?: { resourceVersion?: string }): Promise<boolean>;
}

export type BlockStore = CasStore<BlockSpec>;
export type HandleStore = CasStore<HandleSpec>;
export type PoolStore = CasStore<IpPoolSpec>;

/** Test hooks of a memory store: interleavings and injected conflicts. */
export interface MemoryStoreHooks {
  /** Awaited at the start of every call, before state is read (lets calls interleave). */
  pause?: () => Promise<void>;
  /**
   * Asked before each update/delete is applied: true makes "someone else" write the object first
   * (its resourceVersion moves, its spec does not) so the call fails with `ConflictError`.
   */
  injectConflict?: (op: "update" | "delete", name: string) => boolean;
}

const NAME = new RegExp(PATTERNS.objectName);

/** In-memory `CasStore` with the API server's semantics (validation, CAS, copies). */
export class MemoryCasStore<T> implements CasStore<T> {
  readonly #objects = new Map<string, { rv: string; spec: T }>();
  #rv = 0;
  /** Writes applied (creates, updates, deletes), for tests that count round trips. */
  writes = 0;

  constructor(
    readonly kind: string,
    private readonly opts: { schema?: z.ZodType<T>; hooks?: MemoryStoreHooks } = {},
  ) {}

  async get(name: string): Promise<Versioned<T> | undefined> {
    await this.opts.hooks?.pause?.();
    const o = this.#objects.get(name);
    return o && { name, resourceVersion: o.rv, spec: structuredClone(o.spec) };
  }

  async list(): Promise<Versioned<T>[]> {
    await this.opts.hooks?.pause?.();
    return [...this.#objects.entries()]
      .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
      .map(([name, o]) => ({ name, resourceVersion: o.rv, spec: structuredClone(o.spec) }));
  }

  async create(name: string, spec: T): Promise<Versioned<T>> {
    await this.opts.hooks?.pause?.();
    const clean = this.#validate(name, spec);
    if (this.#objects.has(name)) throw new AlreadyExistsError(this.kind, name);
    return this.#write(name, clean);
  }

  async update(obj: Versioned<T>): Promise<Versioned<T>> {
    await this.opts.hooks?.pause?.();
    const clean = this.#validate(obj.name, obj.spec);
    const cur = this.#objects.get(obj.name);
    if (!cur) throw new NotFoundError(this.kind, obj.name);
    if (this.opts.hooks?.injectConflict?.("update", obj.name)) this.#bump(obj.name);
    const now = this.#objects.get(obj.name)!;
    if (now.rv !== obj.resourceVersion) throw new ConflictError(this.kind, obj.name);
    // Like the API server: a write that changes nothing keeps the object and its version.
    if (JSON.stringify(now.spec) === JSON.stringify(clean)) {
      return { name: obj.name, resourceVersion: now.rv, spec: structuredClone(now.spec) };
    }
    return this.#write(obj.name, clean);
  }

  async delete(name: string, opts: { resourceVersion?: string } = {}): Promise<boolean> {
    await this.opts.hooks?.pause?.();
    if (!this.#objects.has(name)) return false;
    if (this.opts.hooks?.injectConflict?.("delete", name)) this.#bump(name);
    const cur = this.#objects.get(name)!;
    if (opts.resourceVersion !== undefined && cur.rv !== opts.resourceVersion) {
      throw new ConflictError(this.kind, name);
    }
    this.#objects.delete(name);
    this.writes++;
    return true;
  }

  #validate(name: string, spec: T): T {
    if (typeof name !== "string" || name.length > 253 || !NAME.test(name)) {
      throw new InvalidObjectError(this.kind, String(name), "name must be a DNS subdomain");
    }
    if (!this.opts.schema) return structuredClone(spec);
    const r = this.opts.schema.safeParse(spec);
    if (!r.success) {
      const issue = r.error.issues[0];
      throw new InvalidObjectError(
        this.kind,
        name,
        `spec.${issue.path.join(".")}: ${issue.message}`,
      );
    }
    return structuredClone(r.data);
  }

  #write(name: string, spec: T): Versioned<T> {
    const rv = String(++this.#rv);
    this.#objects.set(name, { rv, spec });
    this.writes++;
    return { name, resourceVersion: rv, spec: structuredClone(spec) };
  }

  #bump(name: string): void {
    const cur = this.#objects.get(name);
    if (cur) this.#objects.set(name, { rv: String(++this.#rv), spec: cur.spec });
  }
}

export class MemoryBlockStore extends MemoryCasStore<BlockSpec> {
  constructor(hooks?: MemoryStoreHooks) {
    super("IPAMBlock", { schema: blockSpecSchema, hooks });
  }
}

export class MemoryHandleStore extends MemoryCasStore<HandleSpec> {
  constructor(hooks?: MemoryStoreHooks) {
    super("IPAMHandle", { schema: handleSpecSchema, hooks });
  }
}

export class MemoryPoolStore extends MemoryCasStore<IpPoolSpec> {
  constructor(hooks?: MemoryStoreHooks) {
    super("IPPool", { schema: ipPoolSpecSchema, hooks });
  }
}

/**
 * Object name of a handle. Handle IDs are `<containerID>.<ifname>`; an ifname may hold characters
 * a Kubernetes name cannot (upper case, "_"), so such IDs — and, to stay one-to-one, IDs that
 * already start with "x-" — are hex-encoded behind "x-". The real ID stays in `spec.handleID`.
 */
export function handleName(handleId: string): string {
  if (handleId.length <= 253 && NAME.test(handleId) && !handleId.startsWith("x-")) return handleId;
  const hex = [...new TextEncoder().encode(handleId)]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  const name = `x-${hex}`;
  if (name.length > 253) {
    throw new IpamRequestError("handle", `handle "${handleId.slice(0, 40)}…" is too long`);
  }
  return name;
}
