/**
 * A small Kubernetes API server for tests: a real HTTP server on 127.0.0.1 speaking the JSON of the
 * resources hostnic uses, so the real `@kubernetes/client-node` is exercised through
 * `loadKube({ kubeconfig: fake.kubeconfig })`.
 *
 * Served (core/v1 unless noted):
 *   pods        get, list, watch (namespaced and all-namespaces; fieldSelector spec.nodeName …)
 *   nodes       get, list, watch, patch, patch status
 *   configmaps  get, list, watch
 *   secrets     get
 *   events      create, get, list, patch; events.k8s.io/v1 events: create, list
 * with resourceVersion bumps, list pagination (limit/continue), label and field selectors, and
 * `?watch=true` streams of newline-delimited `{"type","object"}` that start from the current state
 * (no resourceVersion) or replay history after a resourceVersion (410 Expired once forgotten).
 * Patches: JSON merge patch; strategic merge patch is merge patch except that `status.conditions`
 * and `status.addresses` merge by `type`, like the real server. A PATCH on the main resource drops
 * status changes; a PATCH on `/status` keeps only them. Errors are `Status` objects.
 *
 * Tests seed and inspect state with the methods below; `failNext` injects one error reply;
 * `dropWatches` ends every open watch as a server restart would.
 */
import { stringify as toYaml } from "yaml";

// deno-lint-ignore no-explicit-any
export type KubeObject = Record<string, any>;

interface ResourceDef {
  group: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  verbs: ReadonlySet<string>;
  /** Field selector labels the real server accepts for this resource. */
  fields: ReadonlySet<string>;
  hasStatus: boolean;
}

const COMMON_FIELDS = ["metadata.name", "metadata.namespace"];

const RESOURCES: readonly ResourceDef[] = [
  {
    group: "",
    plural: "pods",
    kind: "Pod",
    namespaced: true,
    verbs: new Set(["get", "list", "watch"]),
    fields: new Set([...COMMON_FIELDS, "spec.nodeName", "status.phase"]),
    hasStatus: true,
  },
  {
    group: "",
    plural: "nodes",
    kind: "Node",
    namespaced: false,
    verbs: new Set(["get", "list", "watch", "patch"]),
    fields: new Set([...COMMON_FIELDS, "spec.unschedulable"]),
    hasStatus: true,
  },
  {
    group: "",
    plural: "configmaps",
    kind: "ConfigMap",
    namespaced: true,
    verbs: new Set(["get", "list", "watch"]),
    fields: new Set(COMMON_FIELDS),
    hasStatus: false,
  },
  {
    group: "",
    plural: "secrets",
    kind: "Secret",
    namespaced: true,
    verbs: new Set(["get"]),
    fields: new Set([...COMMON_FIELDS, "type"]),
    hasStatus: false,
  },
  {
    group: "",
    plural: "events",
    kind: "Event",
    namespaced: true,
    verbs: new Set(["get", "list", "create", "patch"]),
    fields: new Set([...COMMON_FIELDS, "involvedObject.name", "reason", "type"]),
    hasStatus: false,
  },
  {
    group: "events.k8s.io",
    plural: "events",
    kind: "Event",
    namespaced: true,
    verbs: new Set(["list", "create"]),
    fields: new Set([...COMMON_FIELDS, "regarding.name", "reason", "type"]),
    hasStatus: false,
  },
];

/** Lists whose items a strategic merge patch merges by key instead of replacing. */
const STRATEGIC_MERGE_KEYS: Record<string, string> = {
  "status.conditions": "type",
  "status.addresses": "type",
};

export type ResourceName = "pods" | "nodes" | "configmaps" | "secrets" | "events";

export interface PatchRecord {
  resource: string;
  namespace?: string;
  name: string;
  subresource?: string;
  contentType: string;
  body: unknown;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: string;
}

interface Fault {
  method?: string;
  path: RegExp;
  /** 0: never answer (until the server closes). */
  status: number;
  reason: string;
  message: string;
  times: number;
}

interface HistoryEntry {
  rv: number;
  key: string;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: KubeObject;
  old?: KubeObject;
}

interface Watcher {
  key: string;
  namespace?: string;
  matches: (o: KubeObject) => boolean;
  send: (type: string, object: KubeObject) => void;
  close: () => void;
}

class HttpError extends Error {
  constructor(readonly status: number, readonly reason: string, message: string) {
    super(message);
  }
}

const clone = <T>(v: T): T => structuredClone(v);
const enc = new TextEncoder();

function isPlainObject(v: unknown): v is KubeObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** RFC 7386 JSON merge patch; with `strategic`, keyed lists merge item by item. */
export function mergePatch(target: unknown, patch: unknown, strategic = false, path = ""): unknown {
  if (!isPlainObject(patch)) {
    if (strategic && Array.isArray(patch) && STRATEGIC_MERGE_KEYS[path] && Array.isArray(target)) {
      const key = STRATEGIC_MERGE_KEYS[path];
      const out = target.map((x) => clone(x));
      for (const item of patch) {
        const i = out.findIndex((x) => isPlainObject(x) && x[key] === item?.[key]);
        if (i >= 0) out[i] = mergePatch(out[i], item, strategic, `${path}[]`);
        else out.push(clone(item));
      }
      return out;
    }
    return clone(patch);
  }
  const out: KubeObject = isPlainObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v, strategic, path ? `${path}.${k}` : k);
  }
  return out;
}

function fieldValue(o: KubeObject, field: string): string {
  let v: unknown = o;
  for (const part of field.split(".")) v = isPlainObject(v) ? v[part] : undefined;
  return v === undefined || v === null ? "" : String(v);
}

function parseSelector(
  text: string | null,
  kind: "field" | "label",
  allowed?: ReadonlySet<string>,
): (o: KubeObject) => boolean {
  if (!text) return () => true;
  const terms = text.split(",").filter((t) => t !== "").map((term) => {
    const m = /^([^!=]+?)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!m) throw new HttpError(400, "BadRequest", `invalid ${kind} selector term "${term}"`);
    const [, key, op, value] = m;
    if (kind === "field" && allowed && !allowed.has(key)) {
      throw new HttpError(400, "BadRequest", `field label not supported: ${key}`);
    }
    return { key, neg: op === "!=", value };
  });
  return (o) =>
    terms.every((t) => {
      const actual = kind === "field"
        ? fieldValue(o, t.key)
        : (o.metadata?.labels?.[t.key] as string | undefined) ?? "";
      return t.neg ? actual !== t.value : actual === t.value;
    });
}

export interface FakeKubeOptions {
  /** Bearer token clients must present (default: random). */
  token?: string;
  /** Watch history kept for resumes (events). */
  historyLimit?: number;
}

export class FakeKube implements AsyncDisposable {
  readonly url: string;
  /** Path of a kubeconfig (plain http, token auth) pointing at this server. */
  readonly kubeconfig: string;
  readonly token: string;
  readonly #dir: string;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #store = new Map<string, Map<string, KubeObject>>();
  #history: HistoryEntry[] = [];
  readonly #historyLimit: number;
  readonly #watchers = new Set<Watcher>();
  readonly #faults: Fault[] = [];
  #rv = 100;
  #closed = false;
  readonly #closing = Promise.withResolvers<void>();
  /** Every patch the server applied, in order. */
  readonly patches: PatchRecord[] = [];
  /** Every request the server received, in order. */
  readonly requests: RequestRecord[] = [];

  private constructor(
    server: Deno.HttpServer<Deno.NetAddr>,
    dir: string,
    token: string,
    historyLimit: number,
  ) {
    this.#server = server;
    this.#dir = dir;
    this.token = token;
    this.#historyLimit = historyLimit;
    this.url = `http://127.0.0.1:${server.addr.port}`;
    this.kubeconfig = `${dir}/kubeconfig`;
  }

  static async start(opts: FakeKubeOptions = {}): Promise<FakeKube> {
    const dir = await Deno.makeTempDir({ prefix: "fake-kube-" });
    const token = opts.token ?? crypto.randomUUID();
    // The handler needs the instance, which needs the server's port: fill it in once known.
    const ref: { self?: FakeKube } = {};
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (req) => ref.self!.#handle(req),
    );
    const self = ref.self = new FakeKube(server, dir, token, opts.historyLimit ?? 1000);
    try {
      await Deno.writeTextFile(
        self.kubeconfig,
        toYaml({
          apiVersion: "v1",
          kind: "Config",
          clusters: [{
            name: "fake",
            cluster: { server: self.url, "insecure-skip-tls-verify": true },
          }],
          users: [{ name: "fake", user: { token } }],
          contexts: [{ name: "fake", context: { cluster: "fake", user: "fake" } }],
          "current-context": "fake",
        }),
        { mode: 0o600 },
      );
    } catch (err) {
      await self.close();
      throw err;
    }
    return self;
  }

  // ------------------------------------------------------------------ seeding and inspection

  /** Creates or replaces an object (ADDED or MODIFIED for watchers); returns the stored copy. */
  put(resource: ResourceName, object: KubeObject): KubeObject {
    const def = this.#def("", resource);
    const meta = object.metadata ?? {};
    if (!meta.name) throw new Error("put: metadata.name is required");
    const ns = def.namespaced ? (meta.namespace ?? "default") : undefined;
    const existing = this.#bucket(def).get(this.#objKey(ns, meta.name));
    const obj: KubeObject = { apiVersion: "v1", kind: def.kind, ...clone(object) };
    obj.metadata = { ...obj.metadata, ...(ns !== undefined ? { namespace: ns } : {}) };
    if (existing) {
      obj.metadata.uid = existing.metadata.uid;
      obj.metadata.creationTimestamp = existing.metadata.creationTimestamp;
      return this.#store_(def, obj, "MODIFIED", existing);
    }
    return this.#create(def, obj);
  }

  addPod(p: {
    namespace?: string;
    name: string;
    uid?: string;
    nodeName?: string;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
    phase?: string;
    podIP?: string;
  }): KubeObject {
    return this.put("pods", {
      metadata: {
        name: p.name,
        namespace: p.namespace ?? "default",
        ...(p.uid ? { uid: p.uid } : {}),
        ...(p.annotations ? { annotations: p.annotations } : {}),
        ...(p.labels ? { labels: p.labels } : {}),
      },
      spec: {
        ...(p.nodeName ? { nodeName: p.nodeName } : {}),
        containers: [{ name: "main", image: "busybox" }],
      },
      status: { phase: p.phase ?? "Running", ...(p.podIP ? { podIP: p.podIP } : {}) },
    });
  }

  addNode(n: {
    name: string;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
    internalIp?: string;
    conditions?: KubeObject[];
  }): KubeObject {
    return this.put("nodes", {
      metadata: {
        name: n.name,
        ...(n.annotations ? { annotations: n.annotations } : {}),
        labels: { "kubernetes.io/hostname": n.name, ...n.labels },
      },
      spec: {},
      status: {
        addresses: [
          ...(n.internalIp ? [{ type: "InternalIP", address: n.internalIp }] : []),
          { type: "Hostname", address: n.name },
        ],
        conditions: n.conditions ?? [{
          type: "Ready",
          status: "True",
          reason: "KubeletReady",
          message: "kubelet is posting ready status",
          lastHeartbeatTime: new Date().toISOString(),
          lastTransitionTime: new Date().toISOString(),
        }],
      },
    });
  }

  setConfigMap(namespace: string, name: string, data: Record<string, string>): KubeObject {
    return this.put("configmaps", { metadata: { namespace, name }, data });
  }

  /** Stores `stringData` base64-encoded under `data`, as the real server does. */
  setSecret(namespace: string, name: string, stringData: Record<string, string>): KubeObject {
    const data = Object.fromEntries(
      Object.entries(stringData).map(([k, v]) => [k, btoa(String.fromCharCode(...enc.encode(v)))]),
    );
    return this.put("secrets", { metadata: { namespace, name }, type: "Opaque", data });
  }

  /** Changes an object in place through `fn` (MODIFIED for watchers). */
  modify(
    resource: ResourceName,
    namespace: string | undefined,
    name: string,
    fn: (o: KubeObject) => void,
  ): KubeObject {
    const def = this.#def("", resource);
    const existing = this.#bucket(def).get(this.#objKey(namespace, name));
    if (!existing) throw new Error(`modify: ${resource} ${namespace ?? ""}/${name} does not exist`);
    const next = clone(existing);
    fn(next);
    return this.#store_(def, next, "MODIFIED", existing);
  }

  /** Deletes an object (DELETED for watchers); false when it did not exist. */
  remove(resource: ResourceName, namespace: string | undefined, name: string): boolean {
    const def = this.#def("", resource);
    const bucket = this.#bucket(def);
    const key = this.#objKey(def.namespaced ? namespace : undefined, name);
    const existing = bucket.get(key);
    if (!existing) return false;
    bucket.delete(key);
    const gone = clone(existing);
    gone.metadata.resourceVersion = String(++this.#rv);
    this.#record(def, "DELETED", gone, existing);
    return true;
  }

  get(resource: ResourceName, namespace: string | undefined, name: string): KubeObject | undefined {
    const def = this.#def("", resource);
    const o = this.#bucket(def).get(this.#objKey(def.namespaced ? namespace : undefined, name));
    return o ? clone(o) : undefined;
  }

  /** Stored core/v1 events (optionally of one namespace), oldest first. */
  events(namespace?: string): KubeObject[] {
    return this.#list(this.#def("", "events"), namespace);
  }

  /** events.k8s.io/v1 events. */
  eventsV1(namespace?: string): KubeObject[] {
    return this.#list(this.#def("events.k8s.io", "events"), namespace);
  }

  /** Open watch streams. */
  get openWatches(): number {
    return this.#watchers.size;
  }

  /** The next `times` requests matching `method`/`path` get no answer until the server closes. */
  stallNext(f: { method?: string; path: RegExp; times?: number }): void {
    this.failNext({ ...f, status: 0 });
  }

  /** The next `times` requests matching `method`/`path` get this error. */
  failNext(f: {
    method?: string;
    path: RegExp;
    status: number;
    reason?: string;
    message?: string;
    times?: number;
  }): void {
    this.#faults.push({
      method: f.method,
      path: f.path,
      status: f.status,
      reason: f.reason ?? "InternalError",
      message: f.message ?? "injected failure",
      times: f.times ?? 1,
    });
  }

  /** Ends every open watch stream (as an API server restart would). */
  dropWatches(): void {
    for (const w of [...this.#watchers]) w.close();
  }

  /** Forgets watch history: resuming from an older resourceVersion gets 410 Expired. */
  compactHistory(): void {
    this.#history = [];
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.resolve();
    this.dropWatches();
    await this.#server.shutdown();
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ------------------------------------------------------------------ storage

  #def(group: string, plural: string): ResourceDef {
    const d = RESOURCES.find((r) => r.group === group && r.plural === plural);
    if (!d) throw new Error(`unknown resource ${group}/${plural}`);
    return d;
  }

  #resKey(def: ResourceDef): string {
    return `${def.group}/${def.plural}`;
  }

  #bucket(def: ResourceDef): Map<string, KubeObject> {
    const key = this.#resKey(def);
    let b = this.#store.get(key);
    if (!b) this.#store.set(key, b = new Map());
    return b;
  }

  #objKey(namespace: string | undefined, name: string): string {
    return namespace === undefined ? name : `${namespace}/${name}`;
  }

  #list(def: ResourceDef, namespace?: string): KubeObject[] {
    return [...this.#bucket(def).values()]
      .filter((o) => namespace === undefined || o.metadata.namespace === namespace)
      .sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion))
      .map(clone);
  }

  #create(def: ResourceDef, obj: KubeObject): KubeObject {
    const meta = obj.metadata;
    if (!meta.name && meta.generateName) {
      meta.name = `${meta.generateName}${crypto.randomUUID().slice(0, 5)}`;
    }
    const key = this.#objKey(def.namespaced ? meta.namespace : undefined, meta.name);
    if (this.#bucket(def).has(key)) {
      throw new HttpError(409, "AlreadyExists", `${def.plural} "${meta.name}" already exists`);
    }
    meta.uid ??= crypto.randomUUID();
    meta.creationTimestamp ??= new Date().toISOString().replace(/\.\d+Z$/, "Z");
    return this.#store_(def, obj, "ADDED");
  }

  #store_(
    def: ResourceDef,
    obj: KubeObject,
    type: "ADDED" | "MODIFIED",
    old?: KubeObject,
  ): KubeObject {
    obj.metadata.resourceVersion = String(++this.#rv);
    const key = this.#objKey(
      def.namespaced ? obj.metadata.namespace : undefined,
      obj.metadata.name,
    );
    this.#bucket(def).set(key, obj);
    this.#record(def, type, obj, old);
    return clone(obj);
  }

  #record(
    def: ResourceDef,
    type: "ADDED" | "MODIFIED" | "DELETED",
    obj: KubeObject,
    old?: KubeObject,
  ): void {
    const entry: HistoryEntry = {
      rv: Number(obj.metadata.resourceVersion),
      key: this.#resKey(def),
      type,
      object: clone(obj),
      ...(old ? { old: clone(old) } : {}),
    };
    this.#history.push(entry);
    if (this.#history.length > this.#historyLimit) this.#history.shift();
    for (const w of this.#watchers) this.#deliver(w, entry);
  }

  /** Sends a change as the watcher sees it: leaving its selector is DELETED, entering is ADDED. */
  #deliver(w: Watcher, e: HistoryEntry): void {
    if (w.key !== e.key) return;
    const inNs = (o: KubeObject) =>
      w.namespace === undefined || o.metadata.namespace === w.namespace;
    const now = inNs(e.object) && w.matches(e.object);
    const before = e.old !== undefined && inNs(e.old) && w.matches(e.old);
    if (e.type === "MODIFIED") {
      if (now && before) w.send("MODIFIED", e.object);
      else if (now) w.send("ADDED", e.object);
      else if (before) w.send("DELETED", e.object);
    } else if (now) {
      w.send(e.type, e.object);
    }
  }

  // ------------------------------------------------------------------ HTTP

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    this.requests.push({ method: req.method, path: url.pathname, query: url.search });
    try {
      if (req.headers.get("authorization") !== `Bearer ${this.token}`) {
        throw new HttpError(401, "Unauthorized", "Unauthorized");
      }
      const fault = this.#faults.find((f) =>
        (!f.method || f.method === req.method) && f.path.test(url.pathname)
      );
      if (fault) {
        if (--fault.times <= 0) this.#faults.splice(this.#faults.indexOf(fault), 1);
        if (fault.status === 0) {
          await this.#closing.promise;
          throw new HttpError(503, "ServiceUnavailable", "the server is shutting down");
        }
        throw new HttpError(fault.status, fault.reason, fault.message);
      }
      return await this.#route(req, url);
    } catch (err) {
      if (err instanceof HttpError) return this.#status(err.status, err.reason, err.message);
      return this.#status(500, "InternalError", err instanceof Error ? err.message : String(err));
    }
  }

  #status(code: number, reason: string, message: string, details?: KubeObject): Response {
    return Response.json({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message,
      reason,
      ...(details ? { details } : {}),
      code,
    }, { status: code });
  }

  async #route(req: Request, url: URL): Promise<Response> {
    const parts = url.pathname.split("/").filter((p) => p !== "").map(decodeURIComponent);
    let group: string;
    let rest: string[];
    if (parts[0] === "api" && parts[1] === "v1") {
      group = "";
      rest = parts.slice(2);
    } else if (parts[0] === "apis" && parts[2] === "v1") {
      group = parts[1];
      rest = parts.slice(3);
    } else {
      throw new HttpError(404, "NotFound", "the server could not find the requested resource");
    }
    let namespace: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const [plural, name, sub, ...extra] = rest;
    const def = RESOURCES.find((r) => r.group === group && r.plural === plural);
    if (!def || extra.length > 0 || (namespace !== undefined && !def.namespaced)) {
      throw new HttpError(404, "NotFound", "the server could not find the requested resource");
    }
    if (sub !== undefined && !(sub === "status" && def.hasStatus)) {
      throw new HttpError(404, "NotFound", "the server could not find the requested resource");
    }
    const need = (verb: string) => {
      if (!def.verbs.has(verb)) {
        throw new HttpError(
          405,
          "MethodNotAllowed",
          `the server does not allow this method on the requested resource (${verb} ${plural})`,
        );
      }
    };
    const notFound = () => new HttpError(404, "NotFound", `${def.plural} "${name}" not found`);

    if (req.method === "GET" && name !== undefined) {
      need("get");
      const o = this.#bucket(def).get(this.#objKey(namespace, name));
      if (!o || (def.namespaced && namespace === undefined)) throw notFound();
      return Response.json(o);
    }
    if (req.method === "GET") {
      const watch = url.searchParams.get("watch");
      const matches = this.#matcher(def, url);
      if (watch === "true" || watch === "1") {
        need("watch");
        return this.#watch(def, namespace, matches, url);
      }
      need("list");
      return this.#listResponse(def, namespace, matches, url);
    }
    if (req.method === "POST" && name === undefined) {
      need("create");
      if (def.namespaced && namespace === undefined) {
        throw new HttpError(404, "NotFound", "the server could not find the requested resource");
      }
      const body = await this.#json(req);
      this.#validateCreate(def, namespace, body);
      const created = this.#create(def, {
        ...body,
        apiVersion: def.group ? `${def.group}/v1` : "v1",
        kind: def.kind,
        metadata: { ...body.metadata, namespace },
      });
      return Response.json(created, { status: 201 });
    }
    if (req.method === "PATCH" && name !== undefined) {
      need("patch");
      return await this.#patch(req, def, namespace, name, sub);
    }
    throw new HttpError(
      405,
      "MethodNotAllowed",
      "the server does not allow this method on the requested resource",
    );
  }

  #matcher(def: ResourceDef, url: URL): (o: KubeObject) => boolean {
    const fields = parseSelector(url.searchParams.get("fieldSelector"), "field", def.fields);
    const labels = parseSelector(url.searchParams.get("labelSelector"), "label");
    return (o) => fields(o) && labels(o);
  }

  async #json(req: Request): Promise<KubeObject> {
    let body: unknown;
    try {
      body = await req.json();
    } catch {
      throw new HttpError(400, "BadRequest", "the request body is not valid JSON");
    }
    if (!isPlainObject(body)) {
      throw new HttpError(400, "BadRequest", "the request body must be a JSON object");
    }
    return body;
  }

  #validateCreate(def: ResourceDef, namespace: string | undefined, body: KubeObject): void {
    const meta = body.metadata;
    if (!isPlainObject(meta) || (!meta.name && !meta.generateName)) {
      throw new HttpError(422, "Invalid", `${def.kind} is invalid: metadata.name: Required value`);
    }
    if (meta.namespace !== undefined && meta.namespace !== namespace) {
      throw new HttpError(
        400,
        "BadRequest",
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    }
    if (def.kind === "Event" && def.group === "") {
      const inv = body.involvedObject;
      if (!isPlainObject(inv) || !inv.kind || !inv.name) {
        throw new HttpError(422, "Invalid", "Event is invalid: involvedObject: Required value");
      }
      if (inv.namespace !== undefined && inv.namespace !== namespace) {
        throw new HttpError(
          422,
          "Invalid",
          `Event "${meta.name}" is invalid: involvedObject.namespace: does not match event.namespace`,
        );
      }
    }
  }

  #listResponse(
    def: ResourceDef,
    namespace: string | undefined,
    matches: (o: KubeObject) => boolean,
    url: URL,
  ): Response {
    const all = [...this.#bucket(def).values()]
      .filter((o) => namespace === undefined || o.metadata.namespace === namespace)
      .filter(matches)
      .sort((a, b) => {
        const ka = this.#objKey(a.metadata.namespace, a.metadata.name);
        const kb = this.#objKey(b.metadata.namespace, b.metadata.name);
        return ka < kb ? -1 : ka > kb ? 1 : 0;
      });
    const start = Number(url.searchParams.get("continue") ?? "0");
    if (!Number.isInteger(start) || start < 0) {
      throw new HttpError(400, "BadRequest", "invalid continue token");
    }
    const limitText = url.searchParams.get("limit");
    const limit = limitText ? Number(limitText) : 0;
    const end = limit > 0 ? start + limit : all.length;
    const items = all.slice(start, end);
    return Response.json({
      apiVersion: def.group ? `${def.group}/v1` : "v1",
      kind: `${def.kind}List`,
      metadata: {
        resourceVersion: String(this.#rv),
        ...(end < all.length ? { continue: String(end) } : {}),
      },
      items,
    });
  }

  #watch(
    def: ResourceDef,
    namespace: string | undefined,
    matches: (o: KubeObject) => boolean,
    url: URL,
  ): Response {
    const key = this.#resKey(def);
    const rvText = url.searchParams.get("resourceVersion");
    const from = rvText === null || rvText === "" || rvText === "0" ? undefined : Number(rvText);
    if (from !== undefined && !Number.isFinite(from)) {
      throw new HttpError(400, "BadRequest", `invalid resourceVersion "${rvText}"`);
    }
    const timeout = Number(url.searchParams.get("timeoutSeconds") ?? "0");
    let watcher: Watcher | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stream = new ReadableStream<Uint8Array>({
      start: (ctrl) => {
        let open = true;
        const w: Watcher = {
          key,
          namespace,
          matches,
          send: (type, object) => {
            if (open) ctrl.enqueue(enc.encode(JSON.stringify({ type, object }) + "\n"));
          },
          close: () => {
            if (!open) return;
            open = false;
            this.#watchers.delete(w);
            clearTimeout(timer);
            try {
              ctrl.close();
            } catch { /* already cancelled */ }
          },
        };
        watcher = w;
        if (from === undefined) {
          for (const o of this.#bucket(def).values()) {
            if ((namespace === undefined || o.metadata.namespace === namespace) && matches(o)) {
              w.send("ADDED", o);
            }
          }
        } else {
          // Every change bumps the version by one, so history is contiguous: a resume works while
          // the change right after `from` is still remembered.
          const forgotten = from < this.#rv &&
            (this.#history.length === 0 || this.#history[0].rv > from + 1);
          if (forgotten) {
            w.send("ERROR", {
              kind: "Status",
              apiVersion: "v1",
              metadata: {},
              status: "Failure",
              message: `too old resource version: ${from} (${this.#rv})`,
              reason: "Expired",
              code: 410,
            });
            w.close();
            return;
          }
          for (const e of this.#history) if (e.rv > from) this.#deliver(w, e);
        }
        this.#watchers.add(w);
        if (timeout > 0) timer = setTimeout(() => w.close(), timeout * 1000);
      },
      cancel: () => watcher?.close(),
    });
    return new Response(stream, {
      headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
    });
  }

  async #patch(
    req: Request,
    def: ResourceDef,
    namespace: string | undefined,
    name: string,
    sub: string | undefined,
  ): Promise<Response> {
    const contentType = (req.headers.get("content-type") ?? "").split(";")[0].trim();
    const strategic = contentType === "application/strategic-merge-patch+json";
    if (contentType !== "application/merge-patch+json" && !strategic) {
      throw new HttpError(
        415,
        "UnsupportedMediaType",
        `the body of the request was in an unknown format - accepted media types include: ` +
          `application/merge-patch+json, application/strategic-merge-patch+json (got "${contentType}")`,
      );
    }
    const body = await this.#json(req);
    const existing = this.#bucket(def).get(this.#objKey(namespace, name));
    if (!existing) throw new HttpError(404, "NotFound", `${def.plural} "${name}" not found`);
    const wantRv = body.metadata?.resourceVersion;
    if (wantRv !== undefined && wantRv !== existing.metadata.resourceVersion) {
      throw new HttpError(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${def.plural} "${name}": the object has been modified`,
      );
    }
    const merged = mergePatch(existing, body, strategic) as KubeObject;
    // Identity is not patchable; the status subresource changes only status, the main one never.
    merged.metadata = {
      ...merged.metadata,
      name: existing.metadata.name,
      uid: existing.metadata.uid,
      creationTimestamp: existing.metadata.creationTimestamp,
      ...(def.namespaced ? { namespace: existing.metadata.namespace } : {}),
    };
    let next: KubeObject = merged;
    if (def.hasStatus && sub === "status") {
      next = { ...clone(existing), status: merged.status };
    } else if (def.hasStatus) {
      next = { ...merged, status: clone(existing.status) };
      if (existing.status === undefined) delete next.status;
    }
    this.patches.push({
      resource: def.group ? `${def.group}/${def.plural}` : def.plural,
      ...(namespace !== undefined ? { namespace } : {}),
      name,
      ...(sub ? { subresource: sub } : {}),
      contentType,
      body,
    });
    return Response.json(this.#store_(def, next, "MODIFIED", existing));
  }
}
