/**
 * The controller's Kubernetes calls over `@kubernetes/client-node`: VxNetPool and IPPool status,
 * ConfigMaps, namespaces and the leader-election Lease. Loaded only by `hostnic controller`.
 * Replies are validated with zod; failures become `KubeError`s naming the operation, except the
 * two a caller branches on: 409 Conflict → `ConflictError`, 409 AlreadyExists →
 * `AlreadyExistsError` (lib/ipam's classes, shared with the CasStores). The Lease goes through the
 * generic object API with plain JSON so its MicroTime fields keep their microseconds.
 */
import * as k8s from "@kubernetes/client-node";
import { z } from "zod";
import { KubeError } from "../k8s/errors.ts";
export { loadKubeConfig } from "../k8s/client.ts";
import { AlreadyExistsError, ConflictError, GROUP, KINDS, VERSION } from "../ipam/mod.ts";
import type { LeaseApi, LeaseRecord, StoredLease } from "./lease.ts";
import type {
  ConfigMapObject,
  ControllerKube,
  IpPoolStatus,
  NamespaceInfo,
  PoolStatus,
  VxNetPoolObject,
} from "./types.ts";

type Options = k8s.ConfigurationOptions;
const TIMEOUT_MS = 15_000;

function options(contentType?: string): Options {
  const deadline: k8s.ObservableMiddleware = {
    pre(ctx) {
      ctx.setSignal(AbortSignal.timeout(TIMEOUT_MS));
      return new k8s.Observable(Promise.resolve(ctx));
    },
    post(ctx) {
      return new k8s.Observable(Promise.resolve(ctx));
    },
  };
  const base: Options = { middleware: [deadline], middlewareMergeStrategy: "append" };
  return contentType ? k8s.setHeaderOptions("Content-Type", contentType, base) : base;
}

function statusReason(body: unknown): { reason?: string; message?: string } {
  try {
    const v = typeof body === "string" ? JSON.parse(body) : body;
    return { reason: v?.reason, message: v?.message };
  } catch {
    return {};
  }
}

/** Runs a call; 404 → undefined when allowed; 409 → ConflictError / AlreadyExistsError. */
async function call<T>(
  o: { op: string; kind: string; name: string; allow404?: boolean },
  fn: () => Promise<T>,
): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof k8s.ApiException) {
      if (err.code === 404 && o.allow404) return undefined;
      const s = statusReason(err.body);
      if (err.code === 409) {
        if (s.reason === "AlreadyExists") throw new AlreadyExistsError(o.kind, o.name);
        throw new ConflictError(o.kind, o.name);
      }
      throw new KubeError(
        "KUBE_API_ERROR",
        o.op,
        `Kubernetes API refused to ${o.op}: ${err.code}${s.reason ? ` ${s.reason}` : ""}: ${
          s.message ?? `HTTP ${err.code}`
        }`,
        { status: err.code, ...(s.reason ? { reason: s.reason } : {}) },
      );
    }
    const e = err as { name?: string; message?: string; cause?: { code?: string } };
    const detail = e?.name === "TimeoutError" || e?.name === "AbortError"
      ? `no answer within ${TIMEOUT_MS} ms`
      : e?.cause?.code ?? e?.message ?? String(err);
    throw new KubeError(
      "KUBE_UNREACHABLE",
      o.op,
      `Cannot reach the API server to ${o.op}: ${detail}`,
    );
  }
}

const metaSchema = z.object({
  name: z.string(),
  resourceVersion: z.string().nullish(),
  generation: z.number().nullish(),
  deletionTimestamp: z.unknown().nullish(),
});

const vxnetPoolSchema = z.object({
  metadata: metaSchema,
  spec: z.unknown(),
  status: z.object({
    ready: z.boolean().optional(),
    message: z.string().optional(),
    pools: z.array(z.object({
      name: z.string(),
      ippool: z.string(),
      subnets: z.array(z.string()).nullish().transform((v) => v ?? []),
    })).optional(),
    conditions: z.array(z.object({
      type: z.string(),
      status: z.enum(["True", "False", "Unknown"]),
      reason: z.string(),
      message: z.string(),
      lastTransitionTime: z.string(),
      observedGeneration: z.number().optional(),
    })).optional(),
  }).nullish(),
});

const leaseSchema = z.object({
  metadata: metaSchema.extend({ resourceVersion: z.string() }),
  spec: z.object({
    holderIdentity: z.string().nullish(),
    leaseDurationSeconds: z.number().nullish(),
    acquireTime: z.string().nullish(),
    renewTime: z.string().nullish(),
    leaseTransitions: z.number().nullish(),
  }).nullish(),
});

function invalid(op: string, what: string, err: z.ZodError): KubeError {
  const issue = err.issues[0];
  return new KubeError(
    "KUBE_INVALID_REPLY",
    op,
    `The API server's reply to ${op} is not a valid ${what}: ${
      issue.path.join(".")
    }: ${issue.message}`,
  );
}

export class HttpControllerKube implements ControllerKube {
  readonly #core: k8s.CoreV1Api;
  readonly #custom: k8s.CustomObjectsApi;

  constructor(kc: k8s.KubeConfig) {
    this.#core = kc.makeApiClient(k8s.CoreV1Api);
    this.#custom = kc.makeApiClient(k8s.CustomObjectsApi);
  }

  async getVxNetPool(name: string): Promise<VxNetPoolObject | undefined> {
    const op = `get vxnetpool "${name}"`;
    const raw = await call(
      { op, kind: "VxNetPool", name, allow404: true },
      () =>
        this.#custom.getClusterCustomObject({
          group: GROUP,
          version: VERSION,
          plural: KINDS.VxNetPool,
          name,
        }, options()),
    );
    if (raw === undefined) return undefined;
    const r = vxnetPoolSchema.safeParse(raw);
    if (!r.success) throw invalid(op, "VxNetPool", r.error);
    const out: VxNetPoolObject = {
      name: r.data.metadata.name,
      generation: r.data.metadata.generation ?? 0,
      spec: r.data.spec,
    };
    if (r.data.status) out.status = r.data.status as Partial<PoolStatus>;
    return out;
  }

  async writeVxNetPoolStatus(name: string, status: PoolStatus): Promise<void> {
    const op = `update status of vxnetpool "${name}"`;
    // A merge patch replaces lists whole; `message: null` removes a stale message.
    const body = { status: { message: null, ...status } };
    await call(
      { op, kind: "VxNetPool", name },
      () =>
        this.#custom.patchClusterCustomObjectStatus({
          group: GROUP,
          version: VERSION,
          plural: KINDS.VxNetPool,
          name,
          body,
        }, options(k8s.PatchStrategy.MergePatch)),
    );
  }

  async writeIpPoolStatus(name: string, status: IpPoolStatus): Promise<void> {
    const op = `update status of ippool "${name}"`;
    await call(
      { op, kind: "IPPool", name },
      () =>
        this.#custom.patchClusterCustomObjectStatus({
          group: GROUP,
          version: VERSION,
          plural: KINDS.IPPool,
          name,
          body: { status },
        }, options(k8s.PatchStrategy.MergePatch)),
    );
  }

  async getConfigMap(namespace: string, name: string): Promise<ConfigMapObject | undefined> {
    const op = `get configmap "${namespace}/${name}"`;
    const cm = await call(
      { op, kind: "ConfigMap", name, allow404: true },
      () => this.#core.readNamespacedConfigMap({ namespace, name }, options()),
    );
    if (!cm) return undefined;
    return { resourceVersion: cm.metadata?.resourceVersion ?? "", data: { ...(cm.data ?? {}) } };
  }

  async replaceConfigMapData(o: {
    namespace: string;
    name: string;
    resourceVersion: string;
    data: Record<string, string>;
  }): Promise<void> {
    const op = `update configmap "${o.namespace}/${o.name}"`;
    const cur = await call(
      { op, kind: "ConfigMap", name: o.name },
      () => this.#core.readNamespacedConfigMap({ namespace: o.namespace, name: o.name }, options()),
    );
    if (!cur || cur.metadata?.resourceVersion !== o.resourceVersion) {
      throw new ConflictError("ConfigMap", o.name);
    }
    await call(
      { op, kind: "ConfigMap", name: o.name },
      () =>
        this.#core.replaceNamespacedConfigMap({
          namespace: o.namespace,
          name: o.name,
          body: { ...cur, data: o.data },
        }, options()),
    );
  }

  async listNamespaces(): Promise<NamespaceInfo[]> {
    const op = "list namespaces";
    const out: NamespaceInfo[] = [];
    let cont: string | undefined;
    do {
      const page = await call(
        { op, kind: "Namespace", name: "" },
        () =>
          this.#core.listNamespace({ limit: 500, ...(cont ? { _continue: cont } : {}) }, options()),
      );
      for (const ns of page?.items ?? []) {
        if (!ns.metadata?.name) continue;
        out.push({
          name: ns.metadata.name,
          terminating: Boolean(ns.metadata.deletionTimestamp) || ns.status?.phase === "Terminating",
        });
      }
      cont = page?.metadata?._continue || undefined;
    } while (cont);
    return out;
  }
}

/** `coordination.k8s.io/v1` Leases through the generic object API (JSON kept as written). */
export class HttpLeaseApi implements LeaseApi {
  readonly #custom: k8s.CustomObjectsApi;

  constructor(kc: k8s.KubeConfig) {
    this.#custom = kc.makeApiClient(k8s.CustomObjectsApi);
  }

  #parse(op: string, raw: unknown): StoredLease {
    const r = leaseSchema.safeParse(raw);
    if (!r.success) throw invalid(op, "Lease", r.error);
    const s = r.data.spec ?? {};
    const record: LeaseRecord = {
      holderIdentity: s.holderIdentity ?? "",
      leaseDurationSeconds: s.leaseDurationSeconds ?? 15,
      leaseTransitions: s.leaseTransitions ?? 0,
    };
    if (s.acquireTime) record.acquireTime = s.acquireTime;
    if (s.renewTime) record.renewTime = s.renewTime;
    return { resourceVersion: r.data.metadata.resourceVersion, record };
  }

  #body(namespace: string, name: string, record: LeaseRecord, resourceVersion?: string) {
    return {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name, namespace, ...(resourceVersion ? { resourceVersion } : {}) },
      spec: record,
    };
  }

  async get(namespace: string, name: string): Promise<StoredLease | undefined> {
    const op = `get lease "${namespace}/${name}"`;
    const raw = await call(
      { op, kind: "Lease", name, allow404: true },
      () =>
        this.#custom.getNamespacedCustomObject({
          group: "coordination.k8s.io",
          version: "v1",
          namespace,
          plural: "leases",
          name,
        }, options()),
    );
    return raw === undefined ? undefined : this.#parse(op, raw);
  }

  async create(namespace: string, name: string, record: LeaseRecord): Promise<StoredLease> {
    const op = `create lease "${namespace}/${name}"`;
    const raw = await call(
      { op, kind: "Lease", name },
      () =>
        this.#custom.createNamespacedCustomObject({
          group: "coordination.k8s.io",
          version: "v1",
          namespace,
          plural: "leases",
          body: this.#body(namespace, name, record),
        }, options()),
    );
    return this.#parse(op, raw);
  }

  async replace(
    namespace: string,
    name: string,
    o: { resourceVersion: string; record: LeaseRecord },
  ): Promise<StoredLease> {
    const op = `update lease "${namespace}/${name}"`;
    const raw = await call(
      { op, kind: "Lease", name },
      () =>
        this.#custom.replaceNamespacedCustomObject({
          group: "coordination.k8s.io",
          version: "v1",
          namespace,
          plural: "leases",
          name,
          body: this.#body(namespace, name, o.record, o.resourceVersion),
        }, options()),
    );
    return this.#parse(op, raw);
  }
}
