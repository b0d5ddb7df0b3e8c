/**
 * The node daemon's Kubernetes binding: its life cycle (start, sync pass, close) over the job
 * modules beside it. daemon.ts loads this folder (mod.ts) with a literal dynamic import only when
 * Kubernetes is configured (`--kubeconfig FILE`, or in a pod: KUBERNETES_SERVICE_HOST); without it
 * the daemon runs on CNI_ARGS alone and never loads @kubernetes/client-node.
 *
 * - node_vxnet.ts: the node's pool vxnet, settled at start (annotation or assignment);
 * - pod_annotations.ts: an ADD with the pod's annotations, re-checked when the API was away;
 * - pool_health.ts: the pool health node annotation, written from the sync loop;
 * - events.ts: the wording of ADD failure events and their recorder;
 * - config_map.ts: `hostnic-cfg-cm` read at start and watched for changes (restartNeeded);
 * - client.ts: rate limit, deadlines, transient failures, the daemon's own pod (downward API);
 * - here: **live pods** (`livePods()`): this node's pods from a watch with `spec.nodeName`, for GC.
 *
 * Start-up needs the node: transient API failures are retried for `startTimeoutMs` (30 s), then the
 * daemon refuses to start (the DaemonSet restarts it). While the API is down kubelet gets no new pods
 * either, and DEL works without the daemon, so nothing is lost by waiting.
 */
import type { DaemonConfig } from "../../config.ts";
import { errorMessage } from "../../errors.ts";
import { NODE_ANNOTATION_POOL } from "../../k8s/annotations.ts";
import { loadKube } from "../../k8s/client.ts";
import type { Kube, KubeWatch, PodInfo } from "../../k8s/types.ts";
import type { Logger } from "../../log.ts";
import type { AddReply, AddRequest } from "../../rpc/api.ts";
import {
  DAEMON_RATE_LIMIT,
  daemonPodEnv,
  type EnvReader,
  KubeStartError,
  REQUEST_TIMEOUT_MS,
  START_TIMEOUT_MS,
  startupApi,
} from "./client.ts";
import { CONFIG_MAP_NAME, ConfigMapChanges } from "./config_map.ts";
import { EventRecorder, within } from "./events.ts";
import { settleNodeVxnet } from "./node_vxnet.ts";
import { PodAnnotations } from "./pod_annotations.ts";
import { HealthPublisher, type HealthSource, type PoolHealth, poolHealth } from "./pool_health.ts";

const CLOSE_WAIT_MS = 2_000;

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
   * The pod as the ADD in flight for this container read it (`add` reads it once); undefined
   * when that ADD made no read. Backends use it instead of reading the pod again.
   */
  podRead(containerId: string, ifName: string): { pod: PodInfo | undefined } | undefined;
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
    const api = startupApi(deadline);
    const node = await api(`read node "${nodeName}"`, () => kube.getNode(nodeName));
    if (!node) {
      throw new KubeStartError(
        `Node "${nodeName}" does not exist in Kubernetes: give the node's name with --node-name ` +
          `(default: the instance id "${o.instanceId}")`,
      );
    }
    const poolVxnet = await settleNodeVxnet({ kube, node, pool: o.config.pool, deadline, logger });
    return new Binding({
      kube,
      logger,
      nodeName,
      poolVxnet,
      namespace: env.namespace,
      ...(env.podName ? { podName: env.podName } : {}),
      published: node.annotations[NODE_ANNOTATION_POOL],
    });
  } catch (err) {
    await kube.close().catch(() => {});
    throw err;
  }
}

class Binding implements KubeBinding {
  readonly nodeName: string;
  readonly kube: Kube;
  readonly poolVxnet: string | undefined;
  readonly #log: Logger;
  readonly #namespace: string;
  readonly #podName: string | undefined;
  readonly #events: EventRecorder;
  readonly #pods: PodAnnotations;
  readonly #health: HealthPublisher;
  readonly #config: ConfigMapChanges;
  readonly #live = new Set<string>();
  readonly #watches: KubeWatch[] = [];
  #synced = false;
  #syncing: Promise<void> | undefined;
  #lastHealth: PoolHealth | undefined;
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
    this.kube = o.kube;
    this.#log = o.logger;
    this.nodeName = o.nodeName;
    this.poolVxnet = o.poolVxnet;
    this.#namespace = o.namespace;
    this.#podName = o.podName;
    this.#events = new EventRecorder(o.kube, o.logger);
    this.#pods = new PodAnnotations({ kube: o.kube, logger: o.logger, events: this.#events });
    this.#health = new HealthPublisher({
      kube: o.kube,
      logger: o.logger,
      nodeName: o.nodeName,
      published: o.published,
    });
    this.#config = new ConfigMapChanges(o.namespace, o.logger);
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

  add(
    req: AddRequest,
    next: (req: AddRequest) => Promise<AddReply>,
    opts: { ipAlone?: boolean } = {},
  ): Promise<AddReply> {
    return this.#pods.add(req, next, opts);
  }

  podRead(containerId: string, ifName: string): { pod: PodInfo | undefined } | undefined {
    return this.#pods.readOf(containerId, ifName);
  }

  sync(src: HealthSource): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#syncing) return this.#syncing;
    const health = this.#lastHealth = poolHealth(src, this.#config.restartNeeded);
    const run = (async () => {
      await this.#health.publish(health);
      await this.#pods.recheckDeferred();
    })().catch((err) => this.#log.warn("kubernetes sync failed", { err: errorMessage(err) }))
      .finally(() => (this.#syncing = undefined));
    this.#syncing = run;
    this.#events.track(run);
    return run;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#events.close();
    await Promise.all(this.#watches.map((w) => w.stop().catch(() => {})));
    // Events and a sync in flight first, then "stopped" (so it lands last); both bounded.
    const deadline = Date.now() + CLOSE_WAIT_MS;
    await this.#events.drain(deadline);
    if (this.#lastHealth) {
      const stopped = { ...this.#lastHealth, ready: false, reason: "hostnic daemon stopped" };
      await within(deadline, this.#health.publish(stopped));
    }
    await this.kube.close().catch(() => {});
  }

  #onConfigMap(data: Record<string, string> | undefined): void {
    if (this.#closed) return;
    const event = this.#config.update(data);
    if (event && this.#podName) {
      this.#events.record({ namespace: this.#namespace, name: this.#podName }, event);
    }
  }
}
