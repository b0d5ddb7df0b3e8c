/**
 * `HttpKube`: the `Kube` interface over `@kubernetes/client-node`. Loaded only by the long-running
 * modes (daemon, controller, admin) through a literal dynamic import; the CNI plugin never loads
 * it (the package costs hundreds of milliseconds to import).
 *
 * Invariants:
 * - Every reply is validated with zod before it is used; a malformed one is `KUBE_INVALID_REPLY`.
 * - Every failure is a `KubeError` whose message names the operation and the object. Messages never
 *   carry request headers, the kubeconfig's contents or a stack.
 * - Every request has a deadline (`requestTimeoutMs`); watches reconnect with capped backoff and
 *   resume from the last resourceVersion, relisting after "410 Gone".
 */
import * as k8s from "@kubernetes/client-node";
import { z } from "zod";
import { errorMessage } from "../errors.ts";
import { type Logger, nullLogger } from "../log.ts";
import { KubeError } from "./errors.ts";
import type {
  Kube,
  KubeEvent,
  KubeWatch,
  NodeCondition,
  NodeInfo,
  PodInfo,
  PodRef,
  WatchEventType,
  WatchPodsOptions,
} from "./types.ts";

export interface LoadKubeOptions {
  /** kubeconfig file; without it the in-cluster service account is used. */
  kubeconfig?: string;
  /** Event source component (`source.component`, `reportingComponent`). */
  component?: string;
  /** This node's name: the events' `source.host` / `reportingInstance`. */
  nodeName?: string;
  /** Deadline of each non-watch request. */
  requestTimeoutMs?: number;
  /** Watch reconnect backoff bounds. */
  watchBackoffMs?: { min: number; max: number };
  logger?: Logger;
}

const DEFAULT_TIMEOUT_MS = 15_000;
const LIST_PAGE = 500;
/** Identical events within this window bump `count` on one Event object. */
const EVENT_DEDUP_MS = 10 * 60_000;
const EVENT_CACHE_MAX = 4096;
const EVENT_MESSAGE_MAX = 1024;

/** Builds a client from a kubeconfig file, or from the pod's service account when none is given. */
export function loadKube(opts: LoadKubeOptions = {}): Kube {
  const kc = new k8s.KubeConfig();
  if (opts.kubeconfig !== undefined) {
    const path = opts.kubeconfig;
    try {
      kc.loadFromFile(path);
    } catch (err) {
      const code = (err as { code?: string }).code;
      // Parser messages can quote lines of the file (tokens): say what is wrong, not what is in it.
      const why = code === "ENOENT"
        ? "no such file"
        : code === "EACCES"
        ? "permission denied"
        : code === "EISDIR"
        ? "it is a directory"
        : "not a valid kubeconfig (YAML with clusters, users and contexts)";
      throw new KubeError(
        "KUBE_CONFIG",
        "load kubeconfig",
        `Cannot load kubeconfig "${path}": ${why}`,
      );
    }
  } else {
    const host = Deno.env.get("KUBERNETES_SERVICE_HOST");
    const port = Deno.env.get("KUBERNETES_SERVICE_PORT");
    if (!host || !port) {
      throw new KubeError(
        "KUBE_CONFIG",
        "load in-cluster config",
        "Not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT " +
          "are not set) and no kubeconfig was given; pass --kubeconfig",
      );
    }
    try {
      kc.loadFromCluster();
    } catch (err) {
      throw new KubeError(
        "KUBE_CONFIG",
        "load in-cluster config",
        `Cannot load the in-cluster config: ${errorMessage(err)}`,
      );
    }
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster || !cluster.server) {
    throw new KubeError(
      "KUBE_CONFIG",
      "load kubeconfig",
      `Kubeconfig "${
        opts.kubeconfig ?? "in-cluster"
      }" has no current context with a cluster server`,
    );
  }
  return new HttpKube(kc, opts);
}

// ---------------------------------------------------------------------------------------------
// Reply schemas. The client hands back deserialized objects (timestamps as Date); watch events
// are raw JSON (timestamps as strings). Both pass.

const stringMap = z.record(z.string(), z.string()).nullish().transform((v) => v ?? {});
const timestamp = z.union([z.date(), z.string()]).nullish().transform((v) =>
  v instanceof Date ? v.toISOString() : v ?? undefined
);
const metaSchema = z.object({
  name: z.string().min(1),
  namespace: z.string().nullish(),
  uid: z.string().nullish(),
  resourceVersion: z.string().nullish(),
  creationTimestamp: timestamp,
  annotations: stringMap,
  labels: stringMap,
});

const podSchema = z.object({
  metadata: metaSchema.extend({ namespace: z.string().min(1), uid: z.string().min(1) }),
  spec: z.object({ nodeName: z.string().nullish() }).nullish(),
  status: z.object({ phase: z.string().nullish(), podIP: z.string().nullish() }).nullish(),
});

const conditionSchema = z.object({
  type: z.string().min(1),
  status: z.enum(["True", "False", "Unknown"]),
  reason: z.string().nullish(),
  message: z.string().nullish(),
  lastTransitionTime: timestamp,
  lastHeartbeatTime: timestamp,
});

const nodeSchema = z.object({
  metadata: metaSchema,
  spec: z.object({ providerID: z.string().nullish() }).nullish(),
  status: z.object({
    addresses: z.array(z.object({ type: z.string(), address: z.string() })).nullish(),
    conditions: z.array(conditionSchema).nullish(),
  }).nullish(),
});

const configMapSchema = z.object({ metadata: metaSchema, data: stringMap });

const listMetaSchema = z.object({
  metadata: z.object({
    resourceVersion: z.string().nullish(),
    _continue: z.string().nullish(),
    continue: z.string().nullish(),
  }).nullish(),
  items: z.array(z.unknown()),
});

const statusBodySchema = z.object({
  kind: z.literal("Status"),
  message: z.string().optional(),
  reason: z.string().optional(),
  code: z.number().optional(),
});

function validate<T extends z.ZodType>(schema: T, value: unknown, op: string, what: string) {
  const res = schema.safeParse(value);
  if (res.success) return res.data as z.output<T>;
  const issue = res.error.issues[0];
  const at = issue.path.length > 0 ? issue.path.map(String).join(".") : "(root)";
  throw new KubeError(
    "KUBE_INVALID_REPLY",
    op,
    `The API server's reply to ${op} is not a valid ${what}: ${at}: ${issue.message}`,
  );
}

function toPod(raw: unknown, op: string): PodInfo {
  const p = validate(podSchema, raw, op, "Pod");
  const pod: PodInfo = {
    namespace: p.metadata.namespace,
    name: p.metadata.name,
    uid: p.metadata.uid,
    annotations: p.metadata.annotations,
    labels: p.metadata.labels,
  };
  if (p.spec?.nodeName) pod.nodeName = p.spec.nodeName;
  if (p.status?.phase) pod.phase = p.status.phase;
  if (p.status?.podIP) pod.podIP = p.status.podIP;
  return pod;
}

function toCondition(c: z.output<typeof conditionSchema>): NodeCondition {
  const out: NodeCondition = { type: c.type, status: c.status };
  if (c.reason) out.reason = c.reason;
  if (c.message) out.message = c.message;
  if (c.lastTransitionTime) out.lastTransitionTime = c.lastTransitionTime;
  if (c.lastHeartbeatTime) out.lastHeartbeatTime = c.lastHeartbeatTime;
  return out;
}

function toNode(raw: unknown, op: string): NodeInfo {
  const n = validate(nodeSchema, raw, op, "Node");
  const node: NodeInfo = {
    name: n.metadata.name,
    annotations: n.metadata.annotations,
    labels: n.metadata.labels,
    conditions: (n.status?.conditions ?? []).map(toCondition),
  };
  if (n.metadata.uid) node.uid = n.metadata.uid;
  if (n.metadata.creationTimestamp) node.createdAt = n.metadata.creationTimestamp;
  if (n.spec?.providerID) node.providerId = n.spec.providerID;
  const ip = n.status?.addresses?.find((a) => a.type === "InternalIP")?.address;
  if (ip) node.internalIp = ip;
  return node;
}

// ---------------------------------------------------------------------------------------------
// Input checks: names go into URLs and field selectors, so they are held to Kubernetes' rules.

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const QUALIFIED_NAME =
  /^(?:[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const EVENT_REASON = /^[A-Z][A-Za-z0-9]{0,127}$/;
const CONDITION_TYPE = /^[A-Za-z][A-Za-z0-9.]{0,62}$/;

function checkName(what: string, value: string): string {
  if (typeof value !== "string" || !DNS_SUBDOMAIN.test(value)) {
    throw new KubeError(
      "KUBE_INVALID_REQUEST",
      `name ${what}`,
      `Invalid ${what} ${
        JSON.stringify(value)
      }: must be a lower-case DNS name (a-z, 0-9, "-", ".")`,
    );
  }
  return value;
}

// ---------------------------------------------------------------------------------------------

type Options = k8s.ConfigurationOptions<k8s.ObservableMiddleware>;

interface CachedEvent {
  namespace: string;
  name: string;
  count: number;
  firstTimestamp: Date;
  until: number;
}

export class HttpKube implements Kube {
  readonly #kc: k8s.KubeConfig;
  readonly #core: k8s.CoreV1Api;
  readonly #server: string;
  readonly #component: string;
  readonly #host: string | undefined;
  readonly #timeoutMs: number;
  readonly #backoff: { min: number; max: number };
  readonly #log: Logger;
  readonly #watches = new Set<KubeWatch>();
  readonly #events = new Map<string, CachedEvent>();

  constructor(kc: k8s.KubeConfig, opts: LoadKubeOptions = {}) {
    this.#kc = kc;
    this.#core = kc.makeApiClient(k8s.CoreV1Api);
    this.#server = kc.getCurrentCluster()?.server ?? "(none)";
    this.#component = opts.component ?? "hostnic";
    this.#host = opts.nodeName;
    this.#timeoutMs = opts.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#backoff = opts.watchBackoffMs ?? { min: 500, max: 30_000 };
    this.#log = (opts.logger ?? nullLogger).child({ component: "k8s" });
  }

  /** Request options: a deadline, plus a Content-Type for patches. */
  #options(contentType?: string): Options {
    const timeoutMs = this.#timeoutMs;
    const deadline: k8s.ObservableMiddleware = {
      pre(ctx) {
        ctx.setSignal(AbortSignal.timeout(timeoutMs));
        return new k8s.Observable(Promise.resolve(ctx));
      },
      post(ctx) {
        return new k8s.Observable(Promise.resolve(ctx));
      },
    };
    const base: Options = { middleware: [deadline], middlewareMergeStrategy: "append" };
    return contentType ? k8s.setHeaderOptions("Content-Type", contentType, base) : base;
  }

  /** Runs one API call; maps every failure to a `KubeError`. 404 → undefined when `allow404`. */
  async #call<T>(op: string, fn: () => Promise<T>, allow404: true): Promise<T | undefined>;
  async #call<T>(op: string, fn: () => Promise<T>, allow404?: false): Promise<T>;
  async #call<T>(op: string, fn: () => Promise<T>, allow404 = false): Promise<T | undefined> {
    try {
      return await fn();
    } catch (err) {
      if (allow404 && err instanceof k8s.ApiException && err.code === 404) return undefined;
      throw this.#error(op, err);
    }
  }

  #error(op: string, err: unknown): KubeError {
    if (err instanceof KubeError) return err;
    if (err instanceof k8s.ApiException) {
      const code = err.code;
      const status = parseStatusBody(err.body);
      const text = status?.message ??
        (code === 401
          ? "the credentials were rejected (token or client certificate)"
          : `HTTP ${code}`);
      return new KubeError(
        "KUBE_API_ERROR",
        op,
        `Kubernetes API refused to ${op}: ${code}${
          status?.reason ? ` ${status.reason}` : ""
        }: ${text}`,
        { status: code, ...(status?.reason ? { reason: status.reason } : {}) },
      );
    }
    if (err instanceof SyntaxError) {
      return new KubeError(
        "KUBE_INVALID_REPLY",
        op,
        `The API server's reply to ${op} is not valid JSON`,
      );
    }
    const e = err as {
      name?: string;
      message?: string;
      cause?: { code?: string; message?: string };
    };
    const detail = e?.name === "TimeoutError" || e?.name === "AbortError"
      ? `no answer within ${this.#timeoutMs} ms`
      : e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
    return new KubeError(
      "KUBE_UNREACHABLE",
      op,
      `Cannot reach the Kubernetes API server at "${this.#server}" to ${op}: ${detail}`,
    );
  }

  async getPod(namespace: string, name: string): Promise<PodInfo | undefined> {
    const op = `get pod "${namespace}/${name}"`;
    checkName("namespace", namespace);
    checkName("pod name", name);
    const raw = await this.#call(
      op,
      () => this.#core.readNamespacedPod({ namespace, name }, this.#options()),
      true,
    );
    return raw === undefined ? undefined : toPod(raw, op);
  }

  async listPodsOnNode(nodeName: string): Promise<PodInfo[]> {
    checkName("node name", nodeName);
    const op = `list pods on node "${nodeName}"`;
    const { items } = await this.#listPodsOnNode(op, nodeName);
    return items.map((p) => toPod(p, op));
  }

  async #listPodsOnNode(op: string, nodeName: string) {
    return await this.#paged(op, (cont) =>
      this.#core.listPodForAllNamespaces(
        {
          fieldSelector: `spec.nodeName=${nodeName}`,
          limit: LIST_PAGE,
          ...(cont ? { _continue: cont } : {}),
        },
        this.#options(),
      ));
  }

  /** Follows `continue` tokens; returns all items and the list's resourceVersion. */
  async #paged(
    op: string,
    page: (cont: string | undefined) => Promise<unknown>,
  ): Promise<{ items: unknown[]; resourceVersion: string | undefined }> {
    const items: unknown[] = [];
    let cont: string | undefined;
    let resourceVersion: string | undefined;
    for (let i = 0; i < 10_000; i++) {
      const raw = await this.#call(op, () => page(cont));
      const list = validate(listMetaSchema, raw, op, "list");
      items.push(...list.items);
      resourceVersion = list.metadata?.resourceVersion ?? resourceVersion;
      cont = list.metadata?._continue ?? list.metadata?.continue ?? undefined;
      if (!cont) return { items, resourceVersion };
    }
    throw new KubeError("KUBE_INVALID_REPLY", op, `The API server's reply to ${op} never ends`);
  }

  async getNode(name: string): Promise<NodeInfo | undefined> {
    checkName("node name", name);
    const op = `get node "${name}"`;
    const raw = await this.#call(op, () => this.#core.readNode({ name }, this.#options()), true);
    return raw === undefined ? undefined : toNode(raw, op);
  }

  async listNodes(): Promise<NodeInfo[]> {
    const op = "list nodes";
    const { items } = await this.#paged(op, (cont) =>
      this.#core.listNode(
        { limit: LIST_PAGE, ...(cont ? { _continue: cont } : {}) },
        this.#options(),
      ));
    return items.map((n) => toNode(n, op));
  }

  async annotateNode(name: string, annotations: Record<string, string | null>): Promise<NodeInfo> {
    checkName("node name", name);
    const op = `annotate node "${name}"`;
    for (const [key, value] of Object.entries(annotations)) {
      if (!QUALIFIED_NAME.test(key)) {
        throw new KubeError(
          "KUBE_INVALID_REQUEST",
          op,
          `Invalid annotation key ${JSON.stringify(key)}: must be [prefix/]name`,
        );
      }
      if (value !== null && typeof value !== "string") {
        throw new KubeError(
          "KUBE_INVALID_REQUEST",
          op,
          `Invalid value for annotation "${key}": must be a string or null (to remove it)`,
        );
      }
    }
    const raw = await this.#call(op, () =>
      this.#core.patchNode(
        { name, body: { metadata: { annotations } } },
        this.#options(k8s.PatchStrategy.MergePatch),
      ));
    return toNode(raw, op);
  }

  async setNodeCondition(name: string, condition: NodeCondition): Promise<void> {
    checkName("node name", name);
    const op = `set condition "${condition.type}" on node "${name}"`;
    if (!CONDITION_TYPE.test(condition.type)) {
      throw new KubeError(
        "KUBE_INVALID_REQUEST",
        op,
        `Invalid condition type ${
          JSON.stringify(condition.type)
        }: must be a word like "HostnicReady"`,
      );
    }
    if (condition.reason !== undefined && !EVENT_REASON.test(condition.reason)) {
      throw new KubeError(
        "KUBE_INVALID_REQUEST",
        op,
        `Invalid condition reason ${
          JSON.stringify(condition.reason)
        }: must be UpperCamelCase letters and digits`,
      );
    }
    const node = await this.getNode(name);
    if (!node) {
      throw new KubeError("KUBE_API_ERROR", op, `Cannot ${op}: the node does not exist`, {
        status: 404,
        reason: "NotFound",
      });
    }
    const now = new Date().toISOString();
    const prev = node.conditions.find((c) => c.type === condition.type);
    const body = {
      status: {
        conditions: [{
          type: condition.type,
          status: condition.status,
          reason: condition.reason ?? "",
          message: (condition.message ?? "").slice(0, EVENT_MESSAGE_MAX),
          lastHeartbeatTime: now,
          lastTransitionTime: prev && prev.status === condition.status && prev.lastTransitionTime
            ? prev.lastTransitionTime
            : now,
        }],
      },
    };
    // Strategic merge: conditions merge by `type`, so kubelet's own conditions stay.
    await this.#call(op, () =>
      this.#core.patchNodeStatus(
        { name, body },
        this.#options(k8s.PatchStrategy.StrategicMergePatch),
      ));
  }

  async createPodEvent(pod: PodRef, event: KubeEvent): Promise<void> {
    checkName("namespace", pod.namespace);
    checkName("pod name", pod.name);
    const op = `record event "${event.reason}" on pod "${pod.namespace}/${pod.name}"`;
    if (event.type !== "Normal" && event.type !== "Warning") {
      throw new KubeError(
        "KUBE_INVALID_REQUEST",
        op,
        `Invalid event type ${JSON.stringify(event.type)}: must be "Normal" or "Warning"`,
      );
    }
    if (!EVENT_REASON.test(event.reason)) {
      throw new KubeError(
        "KUBE_INVALID_REQUEST",
        op,
        `Invalid event reason ${
          JSON.stringify(event.reason)
        }: must be UpperCamelCase letters and digits, at most 128`,
      );
    }
    const message = event.message.slice(0, EVENT_MESSAGE_MAX);
    const key = JSON.stringify([
      pod.namespace,
      pod.name,
      pod.uid,
      event.type,
      event.reason,
      message,
    ]);
    const now = new Date();
    const seen = this.#events.get(key);
    if (seen && seen.until > now.getTime()) {
      const body = { count: seen.count + 1, lastTimestamp: now.toISOString() };
      const patched = await this.#call(
        op,
        () =>
          this.#core.patchNamespacedEvent(
            { namespace: seen.namespace, name: seen.name, body },
            this.#options(k8s.PatchStrategy.MergePatch),
          ),
        true,
      );
      if (patched !== undefined) {
        seen.count++;
        seen.until = now.getTime() + EVENT_DEDUP_MS;
        return;
      }
      // Gone (expired server-side): record a fresh one.
    }
    const name = `${pod.name.slice(0, 230)}.${now.getTime().toString(16)}${randomHex(4)}`;
    const body: k8s.CoreV1Event = {
      metadata: { name, namespace: pod.namespace },
      involvedObject: {
        apiVersion: "v1",
        kind: "Pod",
        namespace: pod.namespace,
        name: pod.name,
        ...(pod.uid ? { uid: pod.uid } : {}),
      },
      type: event.type,
      reason: event.reason,
      message,
      source: { component: this.#component, ...(this.#host ? { host: this.#host } : {}) },
      reportingComponent: this.#component,
      reportingInstance: this.#host ?? this.#component,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    await this.#call(
      op,
      () => this.#core.createNamespacedEvent({ namespace: pod.namespace, body }, this.#options()),
    );
    if (this.#events.size >= EVENT_CACHE_MAX) {
      this.#events.delete(this.#events.keys().next().value!);
    }
    this.#events.set(key, {
      namespace: pod.namespace,
      name,
      count: 1,
      firstTimestamp: now,
      until: now.getTime() + EVENT_DEDUP_MS,
    });
  }

  async getConfigMap(namespace: string, name: string): Promise<Record<string, string> | undefined> {
    checkName("namespace", namespace);
    checkName("ConfigMap name", name);
    const op = `get ConfigMap "${namespace}/${name}"`;
    const raw = await this.#call(
      op,
      () => this.#core.readNamespacedConfigMap({ namespace, name }, this.#options()),
      true,
    );
    return raw === undefined ? undefined : validate(configMapSchema, raw, op, "ConfigMap").data;
  }

  watchConfigMap(
    namespace: string,
    name: string,
    onChange: (data: Record<string, string> | undefined) => void,
  ): KubeWatch {
    checkName("namespace", namespace);
    checkName("ConfigMap name", name);
    const op = `watch ConfigMap "${namespace}/${name}"`;
    let last: string | undefined = undefined;
    let delivered = false;
    const deliver = (data: Record<string, string> | undefined) => {
      const text = data === undefined ? undefined : JSON.stringify(sortKeys(data));
      if (delivered && text === last) return;
      delivered = true;
      last = text;
      onChange(data);
    };
    const fieldSelector = `metadata.name=${name}`;
    return this.#listWatch({
      op,
      path: `/api/v1/namespaces/${namespace}/configmaps`,
      params: { fieldSelector },
      list: () =>
        this.#paged(op, (cont) =>
          this.#core.listNamespacedConfigMap(
            { namespace, fieldSelector, ...(cont ? { _continue: cont } : {}) },
            this.#options(),
          )),
      onList: (items) => {
        const cm = items.map((i) => validate(configMapSchema, i, op, "ConfigMap"))
          .find((c) => c.metadata.name === name);
        deliver(cm?.data);
      },
      onEvent: (type, obj) => {
        const cm = validate(configMapSchema, obj, op, "ConfigMap");
        if (cm.metadata.name !== name) return;
        deliver(type === "DELETED" ? undefined : cm.data);
      },
    });
  }

  watchPodsOnNode(
    nodeName: string,
    onEvent: (type: WatchEventType, pod: PodInfo) => void,
    opts: WatchPodsOptions = {},
  ): KubeWatch {
    checkName("node name", nodeName);
    const op = `watch pods on node "${nodeName}"`;
    const known = new Map<string, PodInfo>();
    const keyOf = (p: PodInfo) => `${p.namespace}/${p.name}`;
    return this.#listWatch({
      op,
      path: "/api/v1/pods",
      params: { fieldSelector: `spec.nodeName=${nodeName}` },
      list: () => this.#listPodsOnNode(op, nodeName),
      onList: (items) => {
        const pods = items.map((i) => toPod(i, op));
        const now = new Set(pods.map(keyOf));
        // Pods deleted while we were not watching.
        for (const [k, p] of known) {
          if (!now.has(k)) {
            known.delete(k);
            onEvent("DELETED", p);
          }
        }
        for (const p of pods) {
          known.set(keyOf(p), p);
          onEvent("ADDED", p);
        }
      },
      onEvent: (type, obj) => {
        const pod = toPod(obj, op);
        if (type === "DELETED") known.delete(keyOf(pod));
        else known.set(keyOf(pod), pod);
        onEvent(type, pod);
      },
      ...(opts.onSynced ? { onSynced: opts.onSynced } : {}),
    });
  }

  /**
   * List, then watch from the list's resourceVersion; on a dropped stream resume from the last
   * seen version, on 410 Gone list again. Callbacks never run after `stop()` resolves.
   */
  #listWatch(spec: {
    op: string;
    path: string;
    params: Record<string, string>;
    list: () => Promise<{ items: unknown[]; resourceVersion: string | undefined }>;
    onList: (items: unknown[]) => void;
    onEvent: (type: WatchEventType, obj: unknown) => void;
    /** true after a list, or once a resumed watch flows again; false when changes may be lost. */
    onSynced?: (synced: boolean) => void;
  }): KubeWatch {
    const log = this.#log.child({ watch: spec.op });
    const watcher = new k8s.Watch(this.#kc);
    let stopped = false;
    let current: AbortController | undefined;
    /** Ends the current watch from our side. (Aborting the client's controller closes the stream
     * but, under Deno, does not always reach the client's `done` callback.) */
    let finish: ((err?: unknown) => void) | undefined;
    let wake: (() => void) | undefined;
    const guard = (what: string, fn: () => void) => {
      try {
        fn();
      } catch (err) {
        log.warn(`watch ${what} handler failed`, { error: errorMessage(err) });
      }
    };
    let synced: boolean | undefined;
    const setSynced = (value: boolean) => {
      if (stopped || synced === value || !spec.onSynced) return;
      synced = value;
      guard("sync", () => spec.onSynced!(value));
    };
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          wake = undefined;
          resolve();
        }, ms);
        wake = () => {
          clearTimeout(t);
          wake = undefined;
          resolve();
        };
      });

    const loop = async () => {
      let rv: string | undefined;
      let backoff = this.#backoff.min;
      while (!stopped) {
        let failure: unknown;
        let gone = false;
        let gotEvents = false;
        let started = Date.now();
        try {
          if (rv === undefined) {
            const listed = await spec.list();
            if (stopped) break;
            rv = listed.resourceVersion ?? "";
            guard("list", () => spec.onList(listed.items));
            setSynced(true);
          }
          const done = Promise.withResolvers<unknown>();
          finish = (err?: unknown) => done.resolve(err);
          // The server ends the watch before the client's 30 s inactivity timer would; jitter
          // keeps a fleet of daemons from reconnecting in step.
          const timeoutSeconds = 15 + Math.floor(Math.random() * 10);
          const params = {
            ...spec.params,
            resourceVersion: rv,
            allowWatchBookmarks: true,
            timeoutSeconds,
          };
          started = Date.now();
          const ctrl = await watcher.watch(
            spec.path,
            params,
            (type: string, obj: unknown) => {
              if (stopped) return;
              const version = (obj as { metadata?: { resourceVersion?: string } })?.metadata
                ?.resourceVersion;
              if (type === "ERROR") {
                const code = (obj as { code?: number })?.code;
                if (code === 410) gone = true;
                else failure = new Error(`watch error ${JSON.stringify(obj)}`);
                return;
              }
              if (type === "BOOKMARK") {
                if (version) rv = version;
                setSynced(true);
                return;
              }
              if (type !== "ADDED" && type !== "MODIFIED" && type !== "DELETED") return;
              gotEvents = true;
              guard("event", () => spec.onEvent(type, obj));
              if (version) rv = version;
              setSynced(true);
            },
            (err: unknown) => done.resolve(err),
          );
          current = ctrl;
          if (stopped) {
            ctrl.abort();
            finish();
          }
          // Watchdog: a server that neither sends nor closes past its own timeout is dead.
          const watchdog = setTimeout(() => {
            ctrl.abort();
            finish?.(
              Object.assign(new Error("the watch stream went silent"), { name: "TimeoutError" }),
            );
          }, (timeoutSeconds + 10) * 1000);
          const err = await done.promise;
          clearTimeout(watchdog);
          ctrl.abort();
          current = undefined;
          finish = undefined;
          if (err && !stopped) failure = failure ?? err;
        } catch (err) {
          failure = err;
        }
        if (stopped) break;
        if (gone) {
          setSynced(false);
          log.info("watch expired (410 Gone); listing again");
          rv = undefined;
          continue;
        }
        // A watch that ran a while and ended quietly is the normal cycle: resume at once.
        const quiet = failure === undefined ||
          (failure as { name?: string })?.name === "TimeoutError";
        if (quiet && (gotEvents || Date.now() - started >= 1000)) {
          // The stream ran and ended in order: nothing was missed (the resume replays the rest).
          setSynced(true);
          backoff = this.#backoff.min;
          continue;
        }
        if (failure !== undefined) {
          setSynced(false);
          // A caller that tracks completeness gets a fresh list instead of a resume, so the gap is
          // closed (and reported synced) as soon as the server answers again.
          if (spec.onSynced) rv = undefined;
          const e = failure instanceof KubeError ? failure : this.#error(spec.op, failure);
          log.warn("watch interrupted; retrying", { error: e.message, retryInMs: backoff });
          if (e.status === 410) rv = undefined;
        }
        await sleep(backoff);
        backoff = Math.min(backoff * 2, this.#backoff.max);
      }
    };

    const running = loop();
    const handle: KubeWatch = {
      stop: async () => {
        stopped = true;
        current?.abort();
        finish?.();
        wake?.();
        await running;
        this.#watches.delete(handle);
      },
      [Symbol.asyncDispose]: () => handle.stop(),
    };
    this.#watches.add(handle);
    return handle;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#watches].map((w) => w.stop()));
  }
}

function parseStatusBody(body: unknown): z.output<typeof statusBodySchema> | undefined {
  let value = body;
  if (typeof body === "string") {
    try {
      value = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  const res = statusBodySchema.safeParse(value);
  return res.success ? res.data : undefined;
}

function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function randomHex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}
