/**
 * The node daemon's Kubernetes binding. daemon.ts loads this module with a literal dynamic import
 * only when Kubernetes is configured (`--kubeconfig FILE`, or in a pod: KUBERNETES_SERVICE_HOST);
 * without it the daemon runs on CNI_ARGS alone and never loads @kubernetes/client-node.
 *
 * What it does:
 * - **Node vxnet** (at start): the node annotation `hostnic.network.kubesphere.io/vxnet` names the
 *   pool vxnet (it must be one of `pool.vxNets` when that list is set). Without it and with
 *   `pool.vxNets`, the daemon places itself with `assignVxnets` over all nodes (deterministic: every
 *   daemon computes the same answer) and annotates its node. Without either, the node has no pool
 *   vxnet and only pods with a vxnet annotation get NICs. Read once: changing the annotation takes
 *   effect when the daemon restarts.
 * - **Pod ADD**: the pod's hostnic annotations (`…/vxnet`, `…/ip`, `…/type`) are read through the
 *   API and applied; a value also given in CNI_ARGS must agree. A bad annotation fails the ADD
 *   naming the annotation. Every failed ADD records a Warning event on the pod: reason + what to do.
 * - **Pool health**: node annotation `hostnic.network.kubesphere.io/pool` (JSON: vxnet, free, inuse,
 *   total, ready, reason, lastError, restartNeeded), written from the sync loop only when it changed.
 * - **ConfigMap** `hostnic-cfg-cm` (in POD_NAMESPACE, default kube-system): `readConfigMap` reads it at
 *   start when no config file exists; the binding watches it and, on a change, logs, records an event
 *   on the daemon's own pod (POD_NAME) and sets `restartNeeded` in the health annotation: the change
 *   takes effect after `kubectl -n kube-system rollout restart ds/hostnic-node` (no live reload).
 * - **Live pods** (`livePods()`): this node's pods from a watch with `spec.nodeName`, for GC.
 *
 * When the API server cannot be reached (connection refused, timeout, 5xx, 429), an ADD proceeds
 * with CNI_ARGS only — a pod is never failed because the API blinked — but it is not forgotten: the
 * pod is re-read on the following sync passes and, if its annotations ask for something it did not
 * get (or are invalid), a Warning event `AnnotationsNotApplied` tells the user to recreate it. Any
 * other failure to read an existing pod (403 Forbidden, a malformed reply) fails the ADD: the
 * annotations exist but cannot be honoured, and that is a configuration error to fix (RBAC).
 * A pod the API server does not have (404: not Kubernetes, or already deleted) uses CNI_ARGS.
 *
 * Start-up needs the node: transient API failures are retried for `startTimeoutMs` (30 s), then the
 * daemon refuses to start (the DaemonSet restarts it). While the API is down kubelet gets no new pods
 * either, and DEL works without the daemon, so nothing is lost by waiting.
 */
import { z } from "zod";
import { type DaemonConfig, type FileConfig, parseConfigFile } from "../../config.ts";
import { errorMessage, HostnicError } from "../../errors.ts";
import {
  ANNOTATION_IP,
  ANNOTATION_TYPE,
  ANNOTATION_VXNET,
  assignVxnets,
  NODE_ANNOTATION_POOL,
  NODE_ANNOTATION_VXNET,
  parseNodeVxnet,
  parsePodAnnotations,
  type PodNetworkRequest,
} from "../../k8s/annotations.ts";
import { loadKube } from "../../k8s/client.ts";
import { AnnotationError, KubeError } from "../../k8s/errors.ts";
import { HOSTNIC_NAMESPACE } from "../../k8s/rbac.ts";
import type { Kube, KubeEvent, KubeWatch, NodeInfo, PodInfo, PodRef } from "../../k8s/types.ts";
import type { Logger } from "../../log.ts";
import { RpcError } from "../../rpc/protocol.ts";
import type { AddReply, AddRequest, StatusReply } from "../../rpc/api.ts";

/** The ConfigMap holding `hostnic` (daemon config) and `hostnic-cni` (CNI config). */
export const CONFIG_MAP_NAME = "hostnic-cfg-cm";
/** The keys of the ConfigMap hostnic uses; others are ignored. */
const CONFIG_MAP_KEYS = ["hostnic", "hostnic-cni"] as const;
/** Deadline of each API request the daemon makes (an ADD waits at most this for the pod). */
const REQUEST_TIMEOUT_MS = 5_000;
const START_TIMEOUT_MS = 30_000;
/** Pods networked without their annotations (API unreachable), re-read on later sync passes. */
const DEFERRED_MAX = 1000;
const DEFERRED_PER_PASS = 20;
const CLOSE_WAIT_MS = 2_000;

/** A start-up failure of the binding; the message says what to fix. */
export class KubeStartError extends HostnicError {
  constructor(message: string, options?: ErrorOptions) {
    super("KUBE_START_FAILED", message, options);
  }
}

/** A pod annotation and the runtime's CNI_ARGS ask for different things. */
export class AnnotationConflictError extends HostnicError {
  readonly annotation: string;
  constructor(pod: string, annotation: string, annotated: string, given: string) {
    super(
      "ANNOTATION_CONFLICT",
      `Pod "${pod}": annotation "${annotation}" is "${annotated}" but the runtime asked for ` +
        `"${given}" (CNI_ARGS or runtimeConfig); make them agree or drop one of them`,
    );
    this.annotation = annotation;
  }
}

/** An existing pod could not be read for a reason retrying soon will not fix (RBAC, bad reply). */
export class PodLookupError extends HostnicError {
  constructor(pod: string, cause: unknown) {
    super(
      "POD_LOOKUP_FAILED",
      `Cannot read the annotations of pod "${pod}": ${errorMessage(cause)}. The hostnic-node ` +
        `service account needs "get" on pods (ClusterRole hostnic-node in deploy/hostnic.yaml)`,
      { cause },
    );
  }
}

/** API failures that mean "the API server blinked": worth retrying, never worth failing a pod. */
/**
 * The node daemon's client-side rate limit: the kubelet's defaults (kubeAPIQPS 50, burst 100), not
 * client-go's 5/10. Every ADD reads its pod (and in shared mode more), so 5 QPS capped a node at
 * ~2 pods/s of churn (docs/benchmarks.md, shared mode).
 */
export const DAEMON_RATE_LIMIT = { qps: 50, burst: 100 } as const;

export function isTransientKubeError(err: unknown): boolean {
  if (!(err instanceof KubeError)) return false;
  if (err.code === "KUBE_UNREACHABLE" || err.code === "KUBE_THROTTLED") return true;
  const s = err.status;
  return err.code === "KUBE_API_ERROR" && s !== undefined && (s >= 500 || s === 429);
}

// ---------------------------------------------------------------------------------------------
// Pure parts (unit-tested in kube_test.ts).

const REQUEST_KEYS = [
  ["vxnet", ANNOTATION_VXNET],
  ["ip", ANNOTATION_IP],
  ["type", ANNOTATION_TYPE],
] as const;

/**
 * The ADD request with the pod's annotations applied. A key the runtime also gave (CNI_ARGS,
 * runtimeConfig) must have the same value, else `AnnotationConflictError` naming the annotation.
 */
export function mergePodRequest(
  req: AddRequest,
  annotations: PodNetworkRequest,
  pod: string,
): AddRequest {
  for (const [key, annotation] of REQUEST_KEYS) {
    const wanted = annotations[key];
    const given = req[key];
    if (wanted !== undefined && given !== undefined && wanted !== given) {
      throw new AnnotationConflictError(pod, annotation, wanted, given);
    }
  }
  const out: AddRequest = { ...req };
  if (annotations.vxnet !== undefined) out.vxnet = annotations.vxnet;
  if (annotations.ip !== undefined) out.ip = annotations.ip;
  if (annotations.type !== undefined) out.type = annotations.type;
  return out;
}

/** What an ADD reply gave, in the annotations' terms. */
export function grantedOf(reply: AddReply): PodNetworkRequest {
  const out: PodNetworkRequest = { vxnet: reply.vxnet, ip: reply.address.split("/")[0] };
  if (reply.mode === "passthrough") out.type = "passthrough";
  return out;
}

/** Annotations whose request `granted` does not satisfy (none: the pod got what it asks for). */
export function unmetAnnotations(wanted: PodNetworkRequest, granted: PodNetworkRequest): string[] {
  return REQUEST_KEYS.filter(([key]) => wanted[key] !== undefined && wanted[key] !== granted[key])
    .map(([key, annotation]) => `${annotation}=${wanted[key]} (got ${granted[key] ?? "none"})`);
}

export interface NodeVxnetChoice {
  /** The pool vxnet; undefined = none (pods need a vxnet annotation). */
  vxnet?: string;
  /** How it was chosen, for the log. */
  source: "annotation" | "assigned" | "unassigned" | "none";
  /** Set when the daemon must write the node annotation (a fresh assignment). */
  annotate?: string;
  /** Why (unassigned) or a note (kept on a full vxnet …). */
  note?: string;
}

/**
 * The node's pool vxnet from its annotation (must be in `vxNets` when that is set), else from the
 * assignment over `nodes` (only needed then: pass `undefined` when there is an annotation or no
 * `vxNets`). Throws `KubeStartError` naming the annotation when it is unusable.
 */
export function chooseNodeVxnet(o: {
  node: NodeInfo;
  vxNets: readonly string[];
  maxNic: number;
  nodes?: readonly NodeInfo[];
}): NodeVxnetChoice {
  const name = o.node.name;
  let annotated: string | undefined;
  try {
    annotated = parseNodeVxnet(o.node.annotations);
  } catch (err) {
    throw new KubeStartError(
      `Node "${name}": ${errorMessage(err)}. Fix the annotation, or remove it ` +
        `(kubectl annotate node ${name} ${NODE_ANNOTATION_VXNET}-) to let hostnic choose`,
    );
  }
  if (annotated !== undefined) {
    if (o.vxNets.length > 0 && !o.vxNets.includes(annotated)) {
      throw new KubeStartError(
        `Node "${name}": annotation "${NODE_ANNOTATION_VXNET}" names "${annotated}", which is not ` +
          `in pool.vxNets (${o.vxNets.join(", ")}). Add it to pool.vxNets, or remove the ` +
          `annotation (kubectl annotate node ${name} ${NODE_ANNOTATION_VXNET}-) to let hostnic choose`,
      );
    }
    return { vxnet: annotated, source: "annotation" };
  }
  if (o.vxNets.length === 0) return { source: "none" };
  const nodes = o.nodes ?? [o.node];
  const all = nodes.some((n) => n.name === name) ? nodes : [...nodes, o.node];
  const plan = assignVxnets({ nodes: all, vxNets: o.vxNets, maxNic: o.maxNic });
  const mine = plan.assignments.get(name);
  if (mine === undefined) {
    return { source: "unassigned", note: plan.unassigned.get(name) ?? "no vxnet has room" };
  }
  const note = plan.notes.get(name);
  return { vxnet: mine, source: "assigned", annotate: mine, ...(note ? { note } : {}) };
}

/** The node's pool health as published in `hostnic.network.kubesphere.io/pool`. */
export interface PoolHealth {
  vxnet?: string;
  free: number;
  inuse: number;
  total: number;
  ready: boolean;
  /** Why not ready. */
  reason?: string;
  /** The pool's last cloud error (cleared by the next successful batch). */
  lastError?: string;
  /** Set when hostnic-cfg-cm changed after start: what to run for it to take effect. */
  restartNeeded?: string;
}

/** What `sync` reads of the daemon (structural, so tests can pass plain objects). */
export interface HealthSource {
  pool: {
    counts(): { free: number; inuse: number; total: number };
    readonly lastError?: string;
    readonly options: { readonly vxnet?: string };
  };
  svc: { status(): StatusReply };
}

const TEXT_MAX = 300;

export function poolHealth(src: HealthSource, restartNeeded?: string): PoolHealth {
  const c = src.pool.counts();
  const st = src.svc.status();
  const h: PoolHealth = { free: c.free, inuse: c.inuse, total: c.total, ready: st.ready };
  if (src.pool.options.vxnet) h.vxnet = src.pool.options.vxnet;
  if (!st.ready && st.reason) h.reason = st.reason.slice(0, TEXT_MAX);
  if (src.pool.lastError) h.lastError = src.pool.lastError.slice(0, TEXT_MAX);
  if (restartNeeded) h.restartNeeded = restartNeeded.slice(0, TEXT_MAX);
  return h;
}

/** The annotation value: JSON with a fixed key order, so equal health gives equal text. */
export function healthAnnotation(h: PoolHealth): string {
  const ordered: Record<string, unknown> = {};
  for (
    const k of [
      "vxnet",
      "free",
      "inuse",
      "total",
      "ready",
      "reason",
      "lastError",
      "restartNeeded",
    ] as const
  ) {
    if (h[k] !== undefined) ordered[k] = h[k];
  }
  return JSON.stringify(ordered);
}

/** The Warning event for a failed ADD: a reason (UpperCamelCase) and a message with what to do. */
export function describeAddFailure(err: unknown): KubeEvent {
  const code = err instanceof HostnicError ? err.code : "";
  const msg = errorMessage(err).replace(/\.?\s*$/, ".");
  const ev = (reason: string, advice: string): KubeEvent => ({
    type: "Warning",
    reason,
    message: advice ? `${msg} ${advice}` : msg,
  });
  switch (code) {
    case "INVALID_ANNOTATION":
      return ev(
        "InvalidAnnotation",
        "Fix or remove the annotation (for a Deployment or StatefulSet, in its pod template); " +
          "the kubelet retries the pod.",
      );
    case "ANNOTATION_CONFLICT":
      return ev("ConflictingNetworkRequest", "The kubelet retries the pod once they agree.");
    case "POD_LOOKUP_FAILED":
      return ev("PodLookupFailed", "");
    case "POOL_TIMEOUT":
    case "POOL_EMPTY":
      return ev(
        "NicPoolTimeout",
        "The kubelet retries. If this persists, check `hostnic admin pool ls` and the " +
          "hostnic-node log on this node (cloud quota, NIC attach jobs).",
      );
    case "MAX_NIC":
      return ev(
        "NicLimitReached",
        "Raise pool.maxNic (at most 63) in ConfigMap hostnic-cfg-cm, or run the pod elsewhere.",
      );
    case "NO_POOL_VXNET":
      return ev("NoPoolVxnet", "");
    case "IAAS_FAILED":
    case "IAAS_ERROR":
      return ev(
        "CloudApiError",
        "A fixed IP must be free and inside the vxnet's range, the vxnet must be in the " +
          "node's VPC, and the NIC quota must allow another NIC; the kubelet retries the pod.",
      );
    case "NOT_READY":
    case "SHUTTING_DOWN":
      return ev(
        "HostnicNotReady",
        "The hostnic daemon on this node is starting or stopping; the kubelet retries the pod.",
      );
    case "IPAM_IP_IN_USE":
      return ev("IPInUse", "Free the address or change the pod's fixed IP; the kubelet retries.");
    case "IPAM_EXHAUSTED":
    case "IPAM_NAMESPACE_UNMAPPED":
      return ev(
        "NoPodAddress",
        "Map the namespace to blocks with room in hostnic-ipam-config; the kubelet retries.",
      );
    case "NETNS_NOT_FOUND":
      return ev("SandboxGone", "The pod sandbox went away during setup; nothing to do.");
    case "DATAPATH_SETUP_FAILED":
    case "INVALID_DATAPATH_SPEC":
    case "NIC_NOT_FOUND":
    case "LINK_NAME_CONFLICT":
      return ev(
        "DataplaneFailure",
        "See the hostnic-node log on this node; the kubelet retries the pod.",
      );
    default:
      return ev(
        "FailedHostnicNetwork",
        "See the hostnic-node log on this node; the kubelet retries the pod.",
      );
  }
}

/** The error the plugin gets for a binding failure (daemon.ts maps the service's own errors). */
function toRpc(err: unknown): unknown {
  if (err instanceof AnnotationError) {
    return new RpcError("BAD_REQUEST", err.message, { cniCode: 103 });
  }
  if (err instanceof AnnotationConflictError) {
    return new RpcError("CONFLICT", err.message, { cniCode: 103 });
  }
  if (err instanceof PodLookupError) return new RpcError("INTERNAL", err.message);
  return err;
}

// ---------------------------------------------------------------------------------------------
// Environment (downward API in deploy/hostnic.yaml).

const dnsLabel = z.string().regex(
  /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/,
  "must be a Kubernetes namespace name",
);
const dnsSubdomain = z.string().regex(
  /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/,
  "must be a Kubernetes pod name",
);
const envSchema = z.object({
  POD_NAMESPACE: dnsLabel.optional(),
  POD_NAME: dnsSubdomain.optional(),
});

export type EnvReader = (name: string) => string | undefined;

const denoEnv: EnvReader = (name) => Deno.env.get(name);

/** The daemon's own namespace (ConfigMap, events) and pod name (for its events), validated. */
export function daemonPodEnv(env: EnvReader = denoEnv): { namespace: string; podName?: string } {
  const raw = {
    POD_NAMESPACE: env("POD_NAMESPACE") || undefined,
    POD_NAME: env("POD_NAME") || undefined,
  };
  const res = envSchema.safeParse(raw);
  if (!res.success) {
    const issue = res.error.issues[0];
    const key = String(issue.path[0]);
    throw new KubeStartError(
      `Invalid environment variable ${key}=${JSON.stringify(raw[key as keyof typeof raw])}: ` +
        issue.message,
    );
  }
  return {
    namespace: res.data.POD_NAMESPACE ?? HOSTNIC_NAMESPACE,
    ...(res.data.POD_NAME ? { podName: res.data.POD_NAME } : {}),
  };
}

// ---------------------------------------------------------------------------------------------

/**
 * Start-up only: waits out an API server that stays away for a while (a restart, a control-plane
 * upgrade), up to the start deadline. Blips are the client's business: each call already retries
 * 429/5xx/transport errors itself (at most 4 attempts within REQUEST_TIMEOUT_MS, lib/k8s/transport.ts)
 * and passes the client's 5 QPS token bucket, so this outer loop adds at most one such call per
 * 0.25–4 s: bounded, never a storm.
 */
async function retryTransient<T>(deadline: number, fn: () => Promise<T>): Promise<T> {
  let delay = 250;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransientKubeError(err) || Date.now() + delay > deadline) throw err;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 4_000);
    }
  }
}

export interface ReadConfigMapOptions {
  kubeconfig?: string;
  logger: Logger;
  /** Test seam: an existing client (not closed here). */
  kube?: Kube;
  env?: EnvReader;
  timeoutMs?: number;
}

/**
 * The daemon config from ConfigMap `hostnic-cfg-cm` (key `hostnic`) through the API, validated with
 * the config file's schema. Used at start when no config file exists. Undefined when the ConfigMap
 * or its key is absent (defaults apply). Transient API failures are retried for `timeoutMs`.
 */
export async function readConfigMap(
  o: ReadConfigMapOptions,
): Promise<{ config: FileConfig; source: string } | undefined> {
  const { namespace } = daemonPodEnv(o.env);
  const kube = o.kube ?? loadKube({
    ...(o.kubeconfig !== undefined ? { kubeconfig: o.kubeconfig } : {}),
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    logger: o.logger,
  });
  const source = `ConfigMap "${namespace}/${CONFIG_MAP_NAME}" key "hostnic"`;
  try {
    const deadline = Date.now() + (o.timeoutMs ?? START_TIMEOUT_MS);
    let data: Record<string, string> | undefined;
    try {
      data = await retryTransient(deadline, () => kube.getConfigMap(namespace, CONFIG_MAP_NAME));
    } catch (err) {
      throw new KubeStartError(
        `Cannot read ${source} (no config file was found): ${errorMessage(err)}`,
        { cause: err },
      );
    }
    if (data === undefined || data.hostnic === undefined) {
      o.logger.info("no config file and no daemon config in the cluster; using defaults", {
        source,
        configMap: data === undefined ? "absent" : "no hostnic key",
      });
      return undefined;
    }
    try {
      return { config: parseConfigFile(data.hostnic, source), source };
    } catch (err) {
      throw new HostnicError("INVALID_CONFIG", `${source}: ${errorMessage(err)}`, { cause: err });
    }
  } finally {
    if (!o.kube) await kube.close();
  }
}

export interface KubeBindingOptions {
  config: Pick<DaemonConfig, "kubeconfig" | "nodeName" | "pool">;
  instanceId: string;
  logger: Logger;
  /** Test seam: an existing client (closed by `close()`). */
  kube?: Kube;
  env?: EnvReader;
  /** How long start-up retries an unreachable API server before giving up (default 30 s). */
  startTimeoutMs?: number;
}

/** The binding daemon.ts uses; see the module comment. */
export interface KubeBinding {
  /** The Kubernetes node name: `--node-name`, else the instance id. */
  readonly nodeName: string;
  /** The client (shared mode reads its ConfigMap, pods and nodes through it). */
  readonly kube: Kube;
  /** The node's pool vxnet chosen at start; undefined = none. */
  readonly poolVxnet: string | undefined;
  /**
   * Wraps the service's ADD: applies the pod's annotations to `req` before `next`, and records a
   * Warning event on the pod when the ADD fails. Errors of its own are `RpcError`s (invalid
   * annotation: BAD_REQUEST, CNI code 103; annotation ⇄ CNI_ARGS conflict: CONFLICT, 103).
   */
  add(
    req: AddRequest,
    next: (req: AddRequest) => Promise<AddReply>,
    opts?: { ipAlone?: boolean },
  ): Promise<AddReply>;
  /**
   * One sync pass: publishes the pool health annotation when it changed, and re-reads pods that
   * were networked while the API server was unreachable. Never rejects (API failures are logged),
   * so callers need not wait for it; a call while the previous one runs returns that one.
   */
  sync(src: HealthSource): Promise<void>;
  /**
   * `namespace/name` of every pod Kubernetes has on this node (any phase, from a watch with
   * fieldSelector spec.nodeName), or undefined while that is not known: before the first list,
   * and after the watch broke until it lists or resumes again. A pod that has just been bound may
   * be missing for the watch's latency, and a silently dead connection is noticed within ~35 s:
   * callers releasing the allocations of absent pods should apply a grace period longer than that.
   * Force-deleted pods vanish from the API before the kubelet's DEL; that DEL still comes.
   */
  livePods(): ReadonlySet<string> | undefined;
  /** Stops the watches, waits briefly for events in flight, and marks the pool not ready. */
  close(): Promise<void>;
}

/** Reads the node, settles its pool vxnet and starts the watches. */
export async function startKubeBinding(o: KubeBindingOptions): Promise<KubeBinding> {
  const env = daemonPodEnv(o.env);
  const nodeName = o.config.nodeName ?? o.instanceId;
  const logger = o.logger.child({ component: "k8s" });
  const kube = o.kube ?? loadKube({
    ...(o.config.kubeconfig !== undefined ? { kubeconfig: o.config.kubeconfig } : {}),
    nodeName,
    component: "hostnic-node",
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    rateLimit: DAEMON_RATE_LIMIT,
    logger,
  });
  try {
    const deadline = Date.now() + (o.startTimeoutMs ?? START_TIMEOUT_MS);
    const api = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      try {
        return await retryTransient(deadline, fn);
      } catch (err) {
        const advice = isTransientKubeError(err)
          ? "check that the API server is up and reachable from this node"
          : err instanceof KubeError && (err.status === 401 || err.status === 403)
          ? "check the hostnic-node RBAC in deploy/hostnic.yaml"
          : "";
        throw new KubeStartError(
          `Cannot ${what}: ${errorMessage(err)}${advice ? `; ${advice}` : ""}`,
          { cause: err },
        );
      }
    };
    const node = await api(`read node "${nodeName}"`, () => kube.getNode(nodeName));
    if (!node) {
      throw new KubeStartError(
        `Node "${nodeName}" does not exist in Kubernetes: give the node's name with --node-name ` +
          `(default: the instance id "${o.instanceId}")`,
      );
    }
    const { vxNets, maxNic } = o.config.pool;
    const needsList = vxNets.length > 0 && node.annotations[NODE_ANNOTATION_VXNET] === undefined;
    const nodes = needsList ? await api("list nodes", () => kube.listNodes()) : undefined;
    const choice = chooseNodeVxnet({ node, vxNets, maxNic, ...(nodes ? { nodes } : {}) });
    if (choice.annotate !== undefined) {
      const value = choice.annotate;
      try {
        await retryTransient(
          deadline,
          () => kube.annotateNode(nodeName, { [NODE_ANNOTATION_VXNET]: value }),
        );
      } catch (err) {
        // Every daemon computes the same assignment, so the pool is still right; the annotation
        // only records it. Retried at the next start.
        logger.warn("could not annotate the node with its assigned vxnet", {
          node: nodeName,
          vxnet: value,
          err: errorMessage(err),
        });
      }
    }
    const fields = {
      node: nodeName,
      vxnet: choice.vxnet,
      ...(choice.note ? { note: choice.note } : {}),
    };
    if (choice.source === "annotation") logger.info("pool vxnet from the node annotation", fields);
    else if (choice.source === "assigned") logger.info("pool vxnet assigned to this node", fields);
    else if (choice.source === "unassigned") {
      logger.warn(
        "no vxnet in pool.vxNets has room for this node; pods need a vxnet annotation",
        fields,
      );
    } else {
      logger.info(
        "no pool vxnet (no node annotation, no pool.vxNets); pods need a vxnet annotation",
        fields,
      );
    }
    return new Binding({
      kube,
      logger,
      nodeName,
      poolVxnet: choice.vxnet,
      namespace: env.namespace,
      ...(env.podName ? { podName: env.podName } : {}),
      published: node.annotations[NODE_ANNOTATION_POOL],
    });
  } catch (err) {
    await kube.close().catch(() => {});
    throw err;
  }
}

/** Waits for `p`, but not past `deadline`. */
async function within(deadline: number, p: Promise<unknown>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    p,
    new Promise((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now())))),
  ]);
  clearTimeout(timer);
}

interface Deferred {
  ref: PodRef;
  granted: PodNetworkRequest;
}

class Binding implements KubeBinding {
  readonly nodeName: string;
  readonly kube: Kube;
  readonly poolVxnet: string | undefined;
  readonly #kube: Kube;
  readonly #log: Logger;
  readonly #namespace: string;
  readonly #podName: string | undefined;
  readonly #pending = new Set<Promise<void>>();
  readonly #deferred = new Map<string, Deferred>();
  readonly #live = new Set<string>();
  readonly #watches: KubeWatch[] = [];
  #synced = false;
  #syncing: Promise<void> | undefined;
  #published: string | undefined;
  #lastHealth: PoolHealth | undefined;
  #publishFailing = false;
  /** The ConfigMap's hostnic keys when first seen (null: absent); undefined = not seen yet. */
  #cmBaseline: string | null | undefined;
  #restartNeeded: string | undefined;
  #closed = false;

  constructor(o: {
    kube: Kube;
    logger: Logger;
    nodeName: string;
    poolVxnet: string | undefined;
    namespace: string;
    podName?: string;
    published: string | undefined;
  }) {
    this.#kube = o.kube;
    this.kube = o.kube;
    this.#log = o.logger;
    this.nodeName = o.nodeName;
    this.poolVxnet = o.poolVxnet;
    this.#namespace = o.namespace;
    this.#podName = o.podName;
    this.#published = o.published;
    this.#watches.push(
      o.kube.watchPodsOnNode(o.nodeName, (type, pod) => {
        const key = `${pod.namespace}/${pod.name}`;
        if (type === "DELETED") this.#live.delete(key);
        else this.#live.add(key);
      }, { onSynced: (synced) => (this.#synced = synced) }),
      o.kube.watchConfigMap(o.namespace, CONFIG_MAP_NAME, (data) => this.#onConfigMap(data)),
    );
  }

  livePods(): ReadonlySet<string> | undefined {
    return this.#synced ? new Set(this.#live) : undefined;
  }

  async add(
    req: AddRequest,
    next: (req: AddRequest) => Promise<AddReply>,
    opts: { ipAlone?: boolean } = {},
  ): Promise<AddReply> {
    const ref: PodRef | undefined = req.podName && req.podNamespace
      ? { namespace: req.podNamespace, name: req.podName }
      : undefined;
    const key = ref ? `${ref.namespace}/${ref.name}` : "";
    let pod: PodInfo | undefined;
    let deferred = false;
    try {
      let effective = req;
      if (ref) {
        try {
          pod = await this.#kube.getPod(ref.namespace, ref.name);
        } catch (err) {
          if (!isTransientKubeError(err)) throw new PodLookupError(key, err);
          deferred = true;
          this.#log.warn(
            "cannot read the pod's annotations; networking it with CNI_ARGS only, the annotations " +
              "are checked once the API server answers",
            { pod: key, err: errorMessage(err) },
          );
        }
        if (pod) {
          effective = mergePodRequest(req, parsePodAnnotations(pod.annotations, opts), key);
        }
      }
      const reply = await next(effective);
      if (ref && deferred) this.#defer(key, { ref, granted: grantedOf(reply) });
      return reply;
    } catch (err) {
      if (ref) {
        const event = describeAddFailure(err);
        this.#log.info("ADD failed; recording an event on the pod", {
          pod: key,
          reason: event.reason,
        });
        this.#event(pod ? { ...ref, uid: pod.uid } : ref, event);
      }
      throw toRpc(err);
    }
  }

  sync(src: HealthSource): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#syncing) return this.#syncing;
    const health = this.#lastHealth = poolHealth(src, this.#restartNeeded);
    const run = (async () => {
      await this.#publish(health);
      await this.#recheckDeferred();
    })().catch((err) => this.#log.warn("kubernetes sync failed", { err: errorMessage(err) }))
      .finally(() => (this.#syncing = undefined));
    this.#syncing = run;
    this.#track(run);
    return run;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#watches.map((w) => w.stop().catch(() => {})));
    // Events and a sync in flight first, then "stopped" (so it lands last); both bounded.
    const deadline = Date.now() + CLOSE_WAIT_MS;
    await within(deadline, Promise.all([...this.#pending]));
    if (this.#lastHealth) {
      const stopped = { ...this.#lastHealth, ready: false, reason: "hostnic daemon stopped" };
      await within(deadline, this.#publish(stopped));
    }
    await this.#kube.close().catch(() => {});
  }

  #defer(key: string, d: Deferred): void {
    this.#deferred.delete(key);
    if (this.#deferred.size >= DEFERRED_MAX) {
      const oldest = this.#deferred.keys().next().value!;
      this.#deferred.delete(oldest);
      this.#log.warn("too many pods await an annotation check; dropping the oldest", {
        pod: oldest,
      });
    }
    this.#deferred.set(key, d);
  }

  /** Re-reads pods networked while the API was unreachable; warns where annotations were missed. */
  async #recheckDeferred(): Promise<void> {
    for (const [key, d] of [...this.#deferred].slice(0, DEFERRED_PER_PASS)) {
      let pod: PodInfo | undefined;
      try {
        pod = await this.#kube.getPod(d.ref.namespace, d.ref.name);
      } catch (err) {
        if (isTransientKubeError(err)) return; // still down: next pass
        this.#deferred.delete(key);
        this.#log.warn("cannot check a pod's annotations", { pod: key, err: errorMessage(err) });
        continue;
      }
      if (this.#deferred.get(key) !== d) continue; // ADDed again meanwhile
      this.#deferred.delete(key);
      if (!pod) continue;
      const ref = { ...d.ref, uid: pod.uid };
      const later = "The pod was networked while the Kubernetes API server was unreachable, " +
        "without its hostnic annotations";
      let wanted: PodNetworkRequest;
      try {
        wanted = parsePodAnnotations(pod.annotations);
      } catch (err) {
        const ev = describeAddFailure(err);
        this.#event(ref, {
          ...ev,
          message: `${ev.message} ${later}; fix it, then delete the pod.`,
        });
        continue;
      }
      const unmet = unmetAnnotations(wanted, d.granted);
      if (unmet.length === 0) continue;
      this.#log.warn("a pod did not get what its annotations ask for", { pod: key, unmet });
      this.#event(ref, {
        type: "Warning",
        reason: "AnnotationsNotApplied",
        message: `${later}: ${unmet.join(", ")}. Delete the pod to have it recreated with them.`,
      });
    }
  }

  async #publish(h: PoolHealth): Promise<void> {
    const value = healthAnnotation(h);
    if (value === this.#published) return;
    try {
      await this.#kube.annotateNode(this.nodeName, { [NODE_ANNOTATION_POOL]: value });
      this.#published = value;
      if (this.#publishFailing) this.#log.info("pool health annotation published again");
      this.#publishFailing = false;
    } catch (err) {
      if (!this.#publishFailing) {
        this.#log.warn("could not publish the pool health annotation; retrying every sync", {
          node: this.nodeName,
          err: errorMessage(err),
        });
      }
      this.#publishFailing = true;
    }
  }

  #onConfigMap(data: Record<string, string> | undefined): void {
    if (this.#closed) return;
    const picked = data === undefined ? null : JSON.stringify(
      Object.fromEntries(CONFIG_MAP_KEYS.map((k) => [k, data[k] ?? null])),
    );
    if (this.#cmBaseline === undefined) {
      this.#cmBaseline = picked;
      return;
    }
    const where = `ConfigMap "${this.#namespace}/${CONFIG_MAP_NAME}"`;
    if (picked === this.#cmBaseline) {
      if (this.#restartNeeded) {
        this.#log.info(`${where} is back to the values this daemon runs with`);
        this.#restartNeeded = undefined;
      }
      return;
    }
    const before = this.#cmBaseline === null
      ? {}
      : JSON.parse(this.#cmBaseline) as Record<string, string | null>;
    const changed = CONFIG_MAP_KEYS.filter((k) => (before[k] ?? null) !== (data?.[k] ?? null));
    const restart = `kubectl -n ${this.#namespace} rollout restart ds/hostnic-node`;
    let event: KubeEvent;
    if (data === undefined) {
      event = {
        type: "Warning",
        reason: "ConfigDeleted",
        message: `${where} was deleted. This daemon keeps the configuration it started with; ` +
          `recreate it before the next restart.`,
      };
    } else {
      let problem: string | undefined;
      if (data.hostnic !== undefined) {
        try {
          parseConfigFile(data.hostnic, `${where} key "hostnic"`);
        } catch (err) {
          problem = errorMessage(err);
        }
      }
      const keys = changed.map((k) => `"${k}"`).join(" and ") || "keys";
      event = problem
        ? {
          type: "Warning",
          reason: "InvalidConfig",
          message: `${where} changed (${keys}) and is now invalid: ${problem}. This daemon keeps ` +
            `the configuration it started with; fix the ConfigMap, then run "${restart}".`,
        }
        : {
          type: "Normal",
          reason: "ConfigChanged",
          message: `${where} changed (${keys}). It takes effect when the daemons restart: ` +
            `run "${restart}".`,
        };
    }
    this.#restartNeeded = event.message;
    this.#log.warn(event.message, { reason: event.reason });
    if (this.#podName) {
      this.#event({ namespace: this.#namespace, name: this.#podName }, event);
    }
  }

  #event(ref: PodRef, event: KubeEvent): void {
    if (this.#closed) return;
    this.#track(
      this.#kube.createPodEvent(ref, event).catch((err) =>
        this.#log.warn("could not record an event on the pod", {
          pod: `${ref.namespace}/${ref.name}`,
          reason: event.reason,
          err: errorMessage(err),
        })
      ),
    );
  }

  #track(p: Promise<void>): void {
    this.#pending.add(p);
    p.finally(() => this.#pending.delete(p));
  }
}
