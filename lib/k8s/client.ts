/**
 * `HttpKube`: the `Kube` interface over `@kubernetes/client-node`. Loaded only by the long-running
 * modes (daemon, controller, admin) through a literal dynamic import; the CNI plugin never loads
 * it (the package costs hundreds of milliseconds to import).
 *
 * Invariants:
 * - Every reply is validated with zod before it is used; a malformed one is `KUBE_INVALID_REPLY`.
 * - Every failure is a `KubeError` whose message names the operation and the object. Messages never
 *   carry request headers, the kubeconfig's contents or a stack.
 * - Every request, watches included, says who it is: `User-Agent: hostnic/<version> (<component>)`
 *   (the library's own User-Agent is replaced), so API server audit logs and priority-and-fairness
 *   name hostnic.
 * - Every non-watch request passes a client-side token bucket (`rateLimit`, client-go's defaults:
 *   5 QPS, burst 10), retries included; a request that could not start before its deadline fails
 *   with `KUBE_THROTTLED`.
 * - `requestTimeoutMs` is the deadline of one operation, retries included: each attempt gets what
 *   is left of it, and no retry is planned past it.
 * - Idempotent requests (get, list, merge and strategic-merge patches that set absolute values)
 *   are retried on 429, 5xx and transport errors with jittered exponential backoff, honouring
 *   `Retry-After` (capped), at most `retry.maxAttempts` attempts. An event create is retried with
 *   the same client-chosen name, and 409 AlreadyExists on a retry counts as success (the earlier
 *   attempt landed). 4xx other than 429 is never retried. See request.ts and transport.ts.
 * - Watches (watch.ts) reconnect with capped backoff and resume from the last resourceVersion,
 *   relisting only after "410 Gone"; a relist delivers differences, not the whole set again.
 */
import * as k8s from "@kubernetes/client-node";
import { errorMessage } from "../errors.ts";
import { type Logger, nullLogger } from "../log.ts";
import { VERSION } from "../version.ts";
import { shareDispatcher } from "./dispatcher.ts";
import { KubeError } from "./errors.ts";
import { ApiRequester, type Options } from "./request.ts";
import { configMapSchema, listMetaSchema, toNode, toPod, validate } from "./schemas.ts";
import {
  DEFAULT_RATE_LIMIT,
  DEFAULT_RETRY,
  type RateLimit,
  type RetryPolicy,
} from "./transport.ts";
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
import { listWatch, type ListWatchSpec, longWatcher } from "./watch.ts";
import type { PolicyRef } from "./netpol.ts";
import { networkPolicyWatch } from "./netpol_watch.ts";

export type { RateLimit, RetryPolicy } from "./transport.ts";

export interface LoadKubeOptions {
  /** kubeconfig file; without it the in-cluster service account is used. */
  kubeconfig?: string;
  /** Event source component (`source.component`, `reportingComponent`). */
  component?: string;
  /** This node's name: the events' `source.host` / `reportingInstance`. */
  nodeName?: string;
  /** Deadline of each non-watch operation, its retries included (default 15 s). */
  requestTimeoutMs?: number;
  /** Client-side rate limit of non-watch requests (default 5 QPS, burst 10, as client-go). */
  rateLimit?: RateLimit;
  /** Retries of idempotent requests (default 4 attempts, 200 ms doubling to 5 s, Retry-After ≤ 10 s). */
  retry?: Partial<RetryPolicy>;
  /** Watch reconnect backoff bounds. */
  watchBackoffMs?: { min: number; max: number };
  /** Items per page of a list (default 500). */
  listPageSize?: number;
  logger?: Logger;
}

const DEFAULT_TIMEOUT_MS = 15_000;
const DEFAULT_LIST_PAGE = 500;
/** Identical events within this window bump `count` on one Event object. */
const EVENT_DEDUP_MS = 10 * 60_000;
const EVENT_CACHE_MAX = 4096;
const EVENT_MESSAGE_MAX = 1024;

/** Builds a client from a kubeconfig file, or from the pod's service account when none is given. */
export function loadKube(opts: LoadKubeOptions = {}): Kube {
  return new HttpKube(loadKubeConfig(opts.kubeconfig), opts);
}

/**
 * A kubeconfig file, or the pod's service account without one, checked for a current cluster.
 * Shared by every long-running mode (daemon, controller, the IPAM store). Messages say what is
 * wrong, never what is in the file (parser messages can quote lines holding tokens).
 */
export function loadKubeConfig(kubeconfig?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (kubeconfig !== undefined) {
    const path = kubeconfig;
    try {
      kc.loadFromFile(path);
    } catch (err) {
      const code = (err as { code?: string }).code;
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
      `Kubeconfig "${kubeconfig ?? "in-cluster"}" has no current context with a cluster server`,
    );
  }
  return shareDispatcher(kc); // one connection pool per config, not per request (issue 20)
}

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
  readonly #api: ApiRequester;
  readonly #component: string;
  readonly #host: string | undefined;
  readonly #backoff: { min: number; max: number };
  readonly #pageSize: number;
  readonly #log: Logger;
  readonly #watches = new Set<KubeWatch>();
  readonly #events = new Map<string, CachedEvent>();

  constructor(kc: k8s.KubeConfig, opts: LoadKubeOptions = {}) {
    shareDispatcher(kc);
    this.#component = opts.component ?? "hostnic";
    const userAgent = `hostnic/${VERSION} (${this.#component})`;
    // The Watch builds its request from `applySecurityAuthentication` alone: set the User-Agent
    // there. (API calls get it from the request middleware, which runs after the library's own.)
    this.#kc = Object.assign(Object.create(kc) as k8s.KubeConfig, {
      async applySecurityAuthentication(ctx: k8s.RequestContext): Promise<void> {
        await kc.applySecurityAuthentication(ctx);
        ctx.setHeaderParam("User-Agent", userAgent);
      },
    });
    this.#core = kc.makeApiClient(k8s.CoreV1Api);
    this.#host = opts.nodeName;
    this.#backoff = opts.watchBackoffMs ?? { min: 500, max: 30_000 };
    this.#pageSize = opts.listPageSize ?? DEFAULT_LIST_PAGE;
    this.#log = (opts.logger ?? nullLogger).child({ component: "k8s" });
    const retry = { ...DEFAULT_RETRY, ...opts.retry };
    if (!(retry.maxAttempts >= 1)) {
      throw new KubeError(
        "KUBE_CONFIG",
        "configure the client",
        `Invalid retry.maxAttempts ${retry.maxAttempts}: must be at least 1`,
      );
    }
    try {
      this.#api = new ApiRequester({
        server: kc.getCurrentCluster()?.server ?? "(none)",
        timeoutMs: opts.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS,
        retry,
        rateLimit: opts.rateLimit ?? DEFAULT_RATE_LIMIT,
        userAgent,
        log: this.#log,
      });
    } catch (err) {
      throw new KubeError("KUBE_CONFIG", "configure the client", errorMessage(err));
    }
  }

  async getPod(namespace: string, name: string): Promise<PodInfo | undefined> {
    const op = `get pod "${namespace}/${name}"`;
    checkName("namespace", namespace);
    checkName("pod name", name);
    const raw = await this.#api.read(
      { op },
      (o) => this.#core.readNamespacedPod({ namespace, name }, o),
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
    return await this.#paged(op, (cont, o) =>
      this.#core.listPodForAllNamespaces(
        { fieldSelector: `spec.nodeName=${nodeName}`, ...this.#page(cont) },
        o,
      ));
  }

  /** Follows `continue` tokens; returns all items and the list's resourceVersion. */
  async #paged(
    op: string,
    page: (cont: string | undefined, o: Options) => Promise<unknown>,
  ): Promise<{ items: unknown[]; resourceVersion: string | undefined }> {
    const items: unknown[] = [];
    let cont: string | undefined;
    let resourceVersion: string | undefined;
    for (let i = 0; i < 10_000; i++) {
      const raw = await this.#api.call({ op }, (o) => page(cont, o));
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
    const raw = await this.#api.read({ op }, (o) => this.#core.readNode({ name }, o));
    return raw === undefined ? undefined : toNode(raw, op);
  }

  async listNodes(): Promise<NodeInfo[]> {
    const op = "list nodes";
    const { items } = await this.#paged(op, (c, o) => this.#core.listNode(this.#page(c), o));
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
    // A merge patch of absolute values: repeating it is harmless, so it is retried.
    const raw = await this.#api.call(
      { op, contentType: k8s.PatchStrategy.MergePatch },
      (o) => this.#core.patchNode({ name, body: { metadata: { annotations } } }, o),
    );
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
    await this.#api.call(
      { op, contentType: k8s.PatchStrategy.StrategicMergePatch },
      (o) => this.#core.patchNodeStatus({ name, body }, o),
    );
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
      // `count` is set, not incremented, by the patch: repeating it is harmless.
      const patched = await this.#api.read(
        { op, contentType: k8s.PatchStrategy.MergePatch },
        (o) =>
          this.#core.patchNamespacedEvent(
            { namespace: seen.namespace, name: seen.name, body },
            o,
          ),
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
    // The name is chosen here, so a retry cannot make a second Event: AlreadyExists on a retry
    // means the first attempt landed (its reply was lost).
    const created = await this.#api.request(
      { op, repeatable: "create" },
      (o) => this.#core.createNamespacedEvent({ namespace: pod.namespace, body }, o),
    );
    if (!created.ok && created.status === 404) {
      throw new KubeError(
        "KUBE_API_ERROR",
        op,
        `Kubernetes API refused to ${op}: 404 NotFound: namespace "${pod.namespace}" does not exist`,
        { status: 404, reason: "NotFound" },
      );
    }
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
    const raw = await this.#api.read(
      { op },
      (o) => this.#core.readNamespacedConfigMap({ namespace, name }, o),
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
        this.#paged(op, (cont, o) =>
          this.#core.listNamespacedConfigMap(
            { namespace, fieldSelector, ...(cont ? { _continue: cont } : {}) },
            o,
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
    /** What the caller was told, by `namespace/name`, with the resourceVersion it came with. */
    const known = new Map<string, { pod: PodInfo; rv: string | undefined }>();
    const keyOf = (p: PodInfo) => `${p.namespace}/${p.name}`;
    const rvOf = (obj: unknown) =>
      (obj as { metadata?: { resourceVersion?: string } })?.metadata?.resourceVersion;
    return this.#listWatch({
      op,
      path: "/api/v1/pods",
      params: { fieldSelector: `spec.nodeName=${nodeName}` },
      list: () => this.#listPodsOnNode(op, nodeName),
      onList: (items) => {
        // A relist (410 Gone) reports only what changed since the caller last heard: pods gone
        // meanwhile as DELETED, new ones as ADDED, changed ones as MODIFIED.
        const listed = items.map((i) => ({ pod: toPod(i, op), rv: rvOf(i) }));
        const now = new Map(listed.map((e) => [keyOf(e.pod), e]));
        for (const [k, old] of known) {
          const cur = now.get(k);
          if (!cur || cur.pod.uid !== old.pod.uid) {
            known.delete(k);
            onEvent("DELETED", old.pod);
          }
        }
        for (const [k, cur] of now) {
          const old = known.get(k);
          known.set(k, cur);
          if (!old) onEvent("ADDED", cur.pod);
          else if (old.rv === undefined || old.rv !== cur.rv) onEvent("MODIFIED", cur.pod);
        }
      },
      onEvent: (type, obj) => {
        const pod = toPod(obj, op);
        if (type === "DELETED") known.delete(keyOf(pod));
        else known.set(keyOf(pod), { pod, rv: rvOf(obj) });
        onEvent(type, pod);
      },
      ...(opts.onSynced ? { onSynced: opts.onSynced } : {}),
    });
  }

  watchNetworkPolicies(onChange: (policies: PolicyRef[]) => void): KubeWatch {
    const net = this.#kc.makeApiClient(k8s.NetworkingV1Api);
    const list = (op: string) =>
      this.#paged(op, (c, o) => net.listNetworkPolicyForAllNamespaces(this.#page(c), o));
    return this.#listWatch(networkPolicyWatch(this.#log, onChange, list));
  }

  #page(cont: string | undefined): { limit: number; _continue?: string } {
    return { limit: this.#pageSize, ...(cont ? { _continue: cont } : {}) };
  }

  /** Starts a list-then-watch (watch.ts) with this client's watcher, log and backoff. */
  #listWatch(spec: ListWatchSpec): KubeWatch {
    const handle = listWatch({
      watcher: longWatcher(this.#kc),
      log: this.#log,
      backoff: this.#backoff,
      error: (op, err) => this.#api.error(op, err),
    }, spec);
    const tracked: KubeWatch = {
      stop: async () => {
        await handle.stop();
        this.#watches.delete(tracked);
      },
      [Symbol.asyncDispose]: () => tracked.stop(),
    };
    this.#watches.add(tracked);
    return tracked;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#watches].map((w) => w.stop()));
  }
}

function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function randomHex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}
