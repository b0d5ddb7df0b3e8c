/**
 * `KubeCasStore`: the IPAM `CasStore`s (IPAMBlock, IPAMHandle, IPPool) over the real Kubernetes
 * API — `@kubernetes/client-node`'s CustomObjectsApi, group `network.qingcloud.com/v1alpha1`,
 * cluster-scoped. Not re-exported by lib/ipam/mod.ts: only long-running modes (daemon, controller,
 * admin) load it, so the pure allocator stays free of npm imports.
 *
 * Invariants (the `CasStore` contract, proven by store_contract.ts against a real kube-apiserver):
 * - `update` is a PUT carrying the object's `metadata.resourceVersion`; a stale one is HTTP 409 →
 *   `ConflictError`; a missing object is 404 → `NotFoundError`. Labels, annotations, finalizers
 *   and owner references the object had when it was read are carried over (a PUT replaces them).
 * - `create` of a taken name is 409 AlreadyExists → `AlreadyExistsError`.
 * - `delete` sends `preconditions.resourceVersion` when given (409 → `ConflictError`); 404 → false.
 * - Names and specs are validated before they are sent and every reply is validated with the
 *   lib/ipam zod schemas; a refused object (422) is `InvalidObjectError`.
 * - Every other failure is a `KubeError` naming the operation and the object, never the request's
 *   headers (they carry the bearer token).
 */
import * as k8s from "@kubernetes/client-node";
import { z } from "zod";
import { loadKubeConfig } from "../k8s/client.ts";
import { KubeError } from "../k8s/errors.ts";
import { AlreadyExistsError, ConflictError, InvalidObjectError, NotFoundError } from "./errors.ts";
import type { BlockStore, CasStore, HandleStore, PoolStore, Versioned } from "./store.ts";
import {
  API_VERSION,
  blockSpecSchema,
  GROUP,
  handleSpecSchema,
  ipPoolSpecSchema,
  type Kind,
  KINDS,
  PATTERNS,
  POOL_NAME_LABEL,
  VERSION,
  VXNET_POOL_NAME,
  type VxNetPoolSpec,
  vxnetPoolSpecSchema,
} from "./types.ts";

const DEFAULT_TIMEOUT_MS = 15_000;
const LIST_PAGE = 500;
const NAME = new RegExp(PATTERNS.objectName);

type Options = k8s.ConfigurationOptions<k8s.ObservableMiddleware>;
/** The part of an undici Dispatcher used here (undici is the client's transport). */
interface Dispatcher {
  destroy?: () => Promise<void>;
}

export interface KubeIpamOptions {
  /** kubeconfig file; without it the in-cluster service account is used. */
  kubeconfig?: string;
  /** Or an already loaded config (tests, callers that hold one). */
  kubeConfig?: k8s.KubeConfig;
  /** Deadline of each request. */
  requestTimeoutMs?: number;
  /**
   * Reuse an IPPool read for this long (default 0). IPPools change rarely (the controller writes
   * them) while a shared-mode ADD reads its pool several times: the daemon sets a minute.
   */
  poolCacheMs?: number;
}

const stringMap = z.record(z.string(), z.string()).nullish();
const objectMetaSchema = z.object({
  name: z.string().min(1),
  resourceVersion: z.string().min(1),
  labels: stringMap,
  annotations: stringMap,
  finalizers: z.array(z.string()).nullish(),
  ownerReferences: z.array(z.record(z.string(), z.unknown())).nullish(),
});
const listSchema = z.object({
  metadata: z.object({ continue: z.string().nullish() }).nullish(),
  items: z.array(z.unknown()),
});
const statusBodySchema = z.object({
  kind: z.literal("Status"),
  message: z.string().optional(),
  reason: z.string().optional(),
});

/** The metadata a PUT must carry over so it does not erase what others put on the object. */
interface KeptMeta {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: Record<string, unknown>[];
}

function statusOf(body: unknown): { message?: string; reason?: string } | undefined {
  let raw = body;
  if (typeof raw === "string") {
    try {
      raw = JSON.parse(raw);
    } catch {
      return undefined;
    }
  }
  const r = statusBodySchema.safeParse(raw);
  return r.success ? r.data : undefined;
}

/** The shared plumbing of every kind: request deadline, error mapping, paging. */
class CustomObjects {
  readonly api: k8s.CustomObjectsApi;
  readonly server: string;
  readonly timeoutMs: number;
  readonly #kc: k8s.KubeConfig;
  #dispatcher: Promise<Dispatcher> | undefined;

  constructor(kc: k8s.KubeConfig, timeoutMs: number) {
    this.#kc = kc;
    this.api = kc.makeApiClient(k8s.CustomObjectsApi);
    this.server = kc.getCurrentCluster()?.server ?? "(none)";
    this.timeoutMs = timeoutMs;
  }

  /**
   * One connection pool for every request, HTTP/1.1 only. The client builds a new undici Agent
   * per request (a TLS handshake per compare-and-swap) and undici 8 negotiates HTTP/2, whose
   * GOAWAY on an API server restart aborts the Deno process (an nghttp2 assertion).
   */
  #shared(perRequest: Dispatcher): Promise<Dispatcher> {
    this.#dispatcher ??= (async () => {
      const o: Record<string, unknown> = {};
      await this.#kc.applyToHTTPSOptions(o);
      const connect: Record<string, unknown> = { keepAlive: true, keepAliveInitialDelay: 30_000 };
      for (const k of ["ca", "cert", "key", "rejectUnauthorized", "servername"]) {
        if (o[k] !== undefined) connect[k] = o[k];
      }
      const Agent = perRequest.constructor as new (o: Record<string, unknown>) => Dispatcher;
      return new Agent({ connect, allowH2: false });
    })();
    return this.#dispatcher;
  }

  /** Closes the shared connection pool (open requests fail). */
  async close(): Promise<void> {
    const d = await this.#dispatcher?.catch(() => undefined);
    this.#dispatcher = undefined;
    await d?.destroy?.();
  }

  options(): Options {
    const timeoutMs = this.timeoutMs;
    const shared = (d: Dispatcher) => this.#shared(d);
    const deadline: k8s.ObservableMiddleware = {
      pre(ctx) {
        ctx.setSignal(AbortSignal.timeout(timeoutMs));
        const own = ctx.getDispatcher() as Dispatcher | undefined;
        if (!own) return new k8s.Observable(Promise.resolve(ctx));
        return new k8s.Observable(
          shared(own).then((d) => {
            ctx.setDispatcher(d as never);
            return ctx;
          }),
        );
      },
      post(ctx) {
        return new k8s.Observable(Promise.resolve(ctx));
      },
    };
    return { middleware: [deadline], middlewareMergeStrategy: "append" };
  }

  /** A failure that is not one of the store's own errors, as a `KubeError` naming `op`. */
  error(op: string, err: unknown): Error {
    if (err instanceof k8s.ApiException) {
      const status = statusOf(err.body);
      const text = status?.message ??
        (err.code === 401 ? "the credentials were rejected" : `HTTP ${err.code}`);
      return new KubeError(
        "KUBE_API_ERROR",
        op,
        `Kubernetes API refused to ${op}: ${err.code}${
          status?.reason ? ` ${status.reason}` : ""
        }: ${text}`,
        { status: err.code, ...(status?.reason ? { reason: status.reason } : {}) },
      );
    }
    if (err instanceof SyntaxError) {
      return new KubeError("KUBE_INVALID_REPLY", op, `The API server's reply to ${op} is not JSON`);
    }
    const e = err as { name?: string; message?: string; cause?: { code?: string } };
    const detail = e?.name === "TimeoutError" || e?.name === "AbortError"
      ? `no answer within ${this.timeoutMs} ms`
      : e?.cause?.code ?? e?.message ?? String(err);
    return new KubeError(
      "KUBE_UNREACHABLE",
      op,
      `Cannot reach the Kubernetes API server at "${this.server}" to ${op}: ${detail}`,
    );
  }
}

function httpCode(err: unknown): number | undefined {
  return err instanceof k8s.ApiException ? err.code : undefined;
}

/** A `CasStore` of one cluster-scoped kind of `network.qingcloud.com/v1alpha1`. */
export class KubeCasStore<T> implements CasStore<T> {
  readonly #co: CustomObjects;
  readonly #plural: string;
  readonly #schema: z.ZodType<T>;
  readonly #labels: (spec: T) => Record<string, string>;
  /** name → metadata seen with a resourceVersion, carried over by the next update. */
  readonly #meta = new Map<string, { rv: string; meta: KeptMeta }>();
  /** Requests that returned 409 Conflict (stale resourceVersion). */
  conflicts = 0;
  /** `get` answers younger than this are reused (0: never); this store's writes drop them. */
  readonly #cacheMs: number;
  readonly #cache = new Map<string, { at: number; obj: Versioned<T> | undefined }>();

  constructor(
    co: CustomObjects,
    readonly kind: Kind,
    schema: z.ZodType<T>,
    labels: (spec: T) => Record<string, string> = () => ({}),
    o: { cacheGetsMs?: number } = {},
  ) {
    this.#co = co;
    this.#plural = KINDS[kind];
    this.#schema = schema;
    this.#labels = labels;
    this.#cacheMs = o.cacheGetsMs ?? 0;
  }

  #req() {
    return { group: GROUP, version: VERSION, plural: this.#plural };
  }

  #what(name: string): string {
    return `${this.kind} "${name}"`;
  }

  /** A reply object → `Versioned`, or `KUBE_INVALID_REPLY` naming the field. */
  #parse(raw: unknown, op: string): Versioned<T> {
    const o = z.object({ metadata: objectMetaSchema, spec: z.unknown() }).safeParse(raw);
    const fail = (at: string, msg: string) =>
      new KubeError(
        "KUBE_INVALID_REPLY",
        op,
        `The API server's reply to ${op} is not a valid ${this.kind}: ${at}: ${msg}`,
      );
    if (!o.success) {
      const i = o.error.issues[0];
      throw fail(i.path.map(String).join(".") || "(root)", i.message);
    }
    const s = this.#schema.safeParse(o.data.spec);
    if (!s.success) {
      const i = s.error.issues[0];
      throw fail(["spec", ...i.path.map(String)].join("."), i.message);
    }
    const m = o.data.metadata;
    const kept: KeptMeta = {};
    if (m.labels) kept.labels = m.labels;
    if (m.annotations) kept.annotations = m.annotations;
    if (m.finalizers) kept.finalizers = m.finalizers;
    if (m.ownerReferences) kept.ownerReferences = m.ownerReferences;
    this.#remember(m.name, m.resourceVersion, kept);
    return { name: m.name, resourceVersion: m.resourceVersion, spec: s.data };
  }

  #remember(name: string, rv: string, meta: KeptMeta): void {
    this.#meta.delete(name);
    this.#meta.set(name, { rv, meta });
    // Bounded: the oldest entries go first (Map keeps insertion order).
    while (this.#meta.size > 8192) this.#meta.delete(this.#meta.keys().next().value!);
  }

  #validate(name: string, spec: T): T {
    if (typeof name !== "string" || name.length > 253 || !NAME.test(name)) {
      throw new InvalidObjectError(this.kind, String(name), "name must be a DNS subdomain");
    }
    const r = this.#schema.safeParse(spec);
    if (!r.success) {
      const issue = r.error.issues[0];
      throw new InvalidObjectError(
        this.kind,
        name,
        `spec.${issue.path.join(".")}: ${issue.message}`,
      );
    }
    return r.data;
  }

  #body(name: string, spec: T, meta: KeptMeta, resourceVersion?: string) {
    const labels = { ...meta.labels, ...this.#labels(spec) };
    return {
      apiVersion: API_VERSION,
      kind: this.kind,
      metadata: {
        name,
        ...(resourceVersion ? { resourceVersion } : {}),
        ...(Object.keys(labels).length ? { labels } : {}),
        ...(meta.annotations ? { annotations: meta.annotations } : {}),
        ...(meta.finalizers ? { finalizers: meta.finalizers } : {}),
        ...(meta.ownerReferences ? { ownerReferences: meta.ownerReferences } : {}),
      },
      spec,
    };
  }

  /** 422 → `InvalidObjectError` with the server's reason; anything else → `KubeError`. */
  #fail(op: string, name: string, err: unknown): Error {
    if (httpCode(err) === 422) {
      const st = statusOf((err as k8s.ApiException<unknown>).body);
      return new InvalidObjectError(this.kind, name, st?.message ?? "refused by the API server");
    }
    return this.#co.error(op, err);
  }

  async get(name: string): Promise<Versioned<T> | undefined> {
    if (this.#cacheMs <= 0) return await this.#get(name);
    const hit = this.#cache.get(name);
    if (hit && Date.now() - hit.at < this.#cacheMs) return hit.obj && structuredClone(hit.obj);
    const obj = await this.#get(name);
    this.#cache.set(name, { at: Date.now(), obj: obj && structuredClone(obj) });
    return obj;
  }

  async #get(name: string): Promise<Versioned<T> | undefined> {
    const op = `get ${this.#what(name)}`;
    let raw: unknown;
    try {
      raw = await this.#co.api.getClusterCustomObject(
        { ...this.#req(), name },
        this.#co.options(),
      );
    } catch (err) {
      if (httpCode(err) === 404) return undefined;
      throw this.#fail(op, name, err);
    }
    return this.#parse(raw, op);
  }

  async list(): Promise<Versioned<T>[]> {
    const op = `list ${this.kind} objects`;
    const out: Versioned<T>[] = [];
    let cont: string | undefined;
    do {
      let raw: unknown;
      try {
        raw = await this.#co.api.listClusterCustomObject(
          { ...this.#req(), limit: LIST_PAGE, ...(cont ? { _continue: cont } : {}) },
          this.#co.options(),
        );
      } catch (err) {
        throw this.#co.error(op, err);
      }
      const page = listSchema.safeParse(raw);
      if (!page.success) {
        throw new KubeError(
          "KUBE_INVALID_REPLY",
          op,
          `The API server's reply to ${op} is not a list`,
        );
      }
      for (const item of page.data.items) out.push(this.#parse(item, op));
      cont = page.data.metadata?.continue ?? undefined;
    } while (cont);
    return out.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  }

  async create(name: string, spec: T): Promise<Versioned<T>> {
    this.#cache.delete(name);
    const clean = this.#validate(name, spec);
    const op = `create ${this.#what(name)}`;
    let raw: unknown;
    try {
      raw = await this.#co.api.createClusterCustomObject(
        { ...this.#req(), body: this.#body(name, clean, {}) },
        this.#co.options(),
      );
    } catch (err) {
      if (httpCode(err) === 409) throw new AlreadyExistsError(this.kind, name);
      throw this.#fail(op, name, err);
    }
    return this.#parse(raw, op);
  }

  async update(obj: Versioned<T>): Promise<Versioned<T>> {
    this.#cache.delete(obj.name);
    const clean = this.#validate(obj.name, obj.spec);
    const op = `update ${this.#what(obj.name)}`;
    let seen = this.#meta.get(obj.name);
    if (!seen || seen.rv !== obj.resourceVersion) {
      // Metadata of this version unknown here: read it, so the PUT does not erase labels etc.
      const cur = await this.get(obj.name);
      if (!cur) throw new NotFoundError(this.kind, obj.name);
      if (cur.resourceVersion !== obj.resourceVersion) {
        this.conflicts++;
        throw new ConflictError(this.kind, obj.name);
      }
      seen = this.#meta.get(obj.name);
    }
    let raw: unknown;
    try {
      raw = await this.#co.api.replaceClusterCustomObject(
        {
          ...this.#req(),
          name: obj.name,
          body: this.#body(obj.name, clean, seen?.meta ?? {}, obj.resourceVersion),
        },
        this.#co.options(),
      );
    } catch (err) {
      const code = httpCode(err);
      if (code === 409) {
        this.conflicts++;
        throw new ConflictError(this.kind, obj.name);
      }
      if (code === 404) throw new NotFoundError(this.kind, obj.name);
      throw this.#fail(op, obj.name, err);
    }
    return this.#parse(raw, op);
  }

  async delete(name: string, opts: { resourceVersion?: string } = {}): Promise<boolean> {
    this.#cache.delete(name);
    const op = `delete ${this.#what(name)}`;
    try {
      await this.#co.api.deleteClusterCustomObject(
        {
          ...this.#req(),
          name,
          ...(opts.resourceVersion !== undefined
            ? { body: { preconditions: { resourceVersion: opts.resourceVersion } } }
            : {}),
        },
        this.#co.options(),
      );
    } catch (err) {
      const code = httpCode(err);
      if (code === 404) return false;
      if (code === 409) {
        this.conflicts++;
        throw new ConflictError(this.kind, name);
      }
      throw this.#co.error(op, err);
    }
    this.#meta.delete(name);
    return true;
  }
}

/** `v-pool` as the daemon needs it: the spec and whether the controller called it ready. */
export interface VxNetPoolView {
  spec: VxNetPoolSpec;
  ready: boolean;
  message?: string;
  pools: { name: string; ippool: string; subnets: string[] }[];
}

const vxnetPoolStatusSchema = z.object({
  ready: z.boolean().nullish(),
  message: z.string().nullish(),
  pools: z.array(z.object({
    name: z.string(),
    ippool: z.string(),
    subnets: z.array(z.string()).nullish(),
  })).nullish(),
}).nullish();

/** The IPAM stores of one cluster, sharing one client. */
export class KubeIpamStores implements AsyncDisposable {
  readonly blocks: BlockStore & KubeCasStore<z.output<typeof blockSpecSchema>>;
  readonly handles: HandleStore & KubeCasStore<z.output<typeof handleSpecSchema>>;
  readonly pools: PoolStore & KubeCasStore<z.output<typeof ipPoolSpecSchema>>;
  readonly #co: CustomObjects;

  constructor(opts: KubeIpamOptions = {}) {
    const kc = opts.kubeConfig ?? loadKubeConfig(opts.kubeconfig);
    this.#co = new CustomObjects(kc, opts.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.blocks = new KubeCasStore(
      this.#co,
      "IPAMBlock",
      blockSpecSchema,
      (s) => ({ [POOL_NAME_LABEL]: s.pool }),
    );
    this.handles = new KubeCasStore(this.#co, "IPAMHandle", handleSpecSchema);
    this.pools = new KubeCasStore(this.#co, "IPPool", ipPoolSpecSchema, undefined, {
      cacheGetsMs: opts.poolCacheMs ?? 0,
    });
  }

  /** Closes the connections (tests; a process that stops using the API). */
  close(): Promise<void> {
    return this.#co.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Stale-version refusals seen by all three stores. */
  get conflicts(): number {
    return this.blocks.conflicts + this.handles.conflicts + this.pools.conflicts;
  }

  /** VxNetPool `name` (default `v-pool`), undefined when absent. */
  async getVxNetPool(name = VXNET_POOL_NAME): Promise<VxNetPoolView | undefined> {
    const op = `get VxNetPool "${name}"`;
    let raw: unknown;
    try {
      raw = await this.#co.api.getClusterCustomObject(
        { group: GROUP, version: VERSION, plural: KINDS.VxNetPool, name },
        this.#co.options(),
      );
    } catch (err) {
      if (httpCode(err) === 404) return undefined;
      throw this.#co.error(op, err);
    }
    const r = z.object({ spec: vxnetPoolSpecSchema, status: vxnetPoolStatusSchema })
      .safeParse(raw);
    if (!r.success) {
      const i = r.error.issues[0];
      throw new KubeError(
        "KUBE_INVALID_REPLY",
        op,
        `The API server's reply to ${op} is not a valid VxNetPool: ${
          i.path.map(String).join(".") || "(root)"
        }: ${i.message}`,
      );
    }
    const st = r.data.status;
    return {
      spec: r.data.spec,
      ready: st?.ready === true,
      ...(st?.message ? { message: st.message } : {}),
      pools: (st?.pools ?? []).map((p) => ({
        name: p.name,
        ippool: p.ippool,
        subnets: p.subnets ?? [],
      })),
    };
  }
}
