/**
 * Pod annotations on ADD: the pod's hostnic annotations (`…/vxnet`, `…/ip`, `…/type`) are read
 * through the API and applied; a value also given in CNI_ARGS must agree. A bad annotation fails
 * the ADD naming the annotation. Every failed ADD records a Warning event on the pod.
 *
 * When the API server cannot be reached (connection refused, timeout, 5xx, 429), an ADD proceeds
 * with CNI_ARGS only — a pod is never failed because the API blinked — but it is not forgotten: the
 * pod is re-read on the following sync passes and, if its annotations ask for something it did not
 * get (or are invalid), a Warning event `AnnotationsNotApplied` tells the user to recreate it. Any
 * other failure to read an existing pod (403 Forbidden, a malformed reply) fails the ADD: the
 * annotations exist but cannot be honoured, and that is a configuration error to fix (RBAC).
 * A pod the API server does not have (404: not Kubernetes, or already deleted) uses CNI_ARGS.
 *
 * The pod is read once per ADD, live, after the ADD arrived (`readOf` hands that read to the
 * backend). The node's pod watch is not used for annotations: it may lag the kubelet, and a pod
 * recreated under the same name (a StatefulSet's) could show its predecessor's fixed IP.
 */
import { errorMessage, HostnicError } from "../../errors.ts";
import {
  ANNOTATION_IP,
  ANNOTATION_TYPE,
  ANNOTATION_VXNET,
  parsePodAnnotations,
  type PodNetworkRequest,
} from "../../k8s/annotations.ts";
import { AnnotationError } from "../../k8s/errors.ts";
import type { Kube, PodInfo, PodRef } from "../../k8s/types.ts";
import type { Logger } from "../../log.ts";
import type { AddReply, AddRequest } from "../../rpc/api.ts";
import { RpcError } from "../../rpc/protocol.ts";
import { isTransientKubeError } from "./client.ts";
import { describeAddFailure, type EventRecorder } from "./events.ts";

/** Pods networked without their annotations (API unreachable), re-read on later sync passes. */
const DEFERRED_MAX = 1000;
const DEFERRED_PER_PASS = 20;

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

/** The error the plugin gets for a binding failure (daemon.ts maps the service's own errors). */
export function bindingRpcError(err: unknown): unknown {
  if (err instanceof AnnotationError) {
    return new RpcError("BAD_REQUEST", err.message, { cniCode: 103 });
  }
  if (err instanceof AnnotationConflictError) {
    return new RpcError("CONFLICT", err.message, { cniCode: 103 });
  }
  if (err instanceof PodLookupError) return new RpcError("INTERNAL", err.message);
  return err;
}

interface Deferred {
  ref: PodRef;
  granted: PodNetworkRequest;
}

/** ADD with the pod's annotations, and the later check of pods networked without them. */
export class PodAnnotations {
  readonly #kube: Kube;
  readonly #log: Logger;
  readonly #events: EventRecorder;
  readonly #deferred = new Map<string, Deferred>();
  /** `containerId/ifName` of ADDs in flight → the pod as their read found it. */
  readonly #reads = new Map<string, { pod: PodInfo | undefined }>();

  constructor(o: { kube: Kube; logger: Logger; events: EventRecorder }) {
    this.#kube = o.kube;
    this.#log = o.logger;
    this.#events = o.events;
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
      const readKey = `${req.containerId}/${req.ifName}`;
      if (ref && !deferred) this.#reads.set(readKey, { pod });
      let reply: AddReply;
      try {
        reply = await next(effective);
      } finally {
        this.#reads.delete(readKey);
      }
      if (ref && deferred) this.#defer(key, { ref, granted: grantedOf(reply) });
      return reply;
    } catch (err) {
      if (ref) {
        const event = describeAddFailure(err);
        this.#log.info("ADD failed; recording an event on the pod", {
          pod: key,
          reason: event.reason,
        });
        this.#events.record(pod ? { ...ref, uid: pod.uid } : ref, event);
      }
      throw bindingRpcError(err);
    }
  }

  /**
   * The pod as the ADD in flight for this container read it (`pod` undefined: the API server
   * has no such pod); undefined when that ADD made no read (no pod in CNI_ARGS, API unreachable).
   * Lets the backend use the ADD's one read of the pod instead of a second one.
   */
  readOf(containerId: string, ifName: string): { pod: PodInfo | undefined } | undefined {
    return this.#reads.get(`${containerId}/${ifName}`);
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
  async recheckDeferred(): Promise<void> {
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
        this.#events.record(ref, {
          ...ev,
          message: `${ev.message} ${later}; fix it, then delete the pod.`,
        });
        continue;
      }
      const unmet = unmetAnnotations(wanted, d.granted);
      if (unmet.length === 0) continue;
      this.#log.warn("a pod did not get what its annotations ask for", { pod: key, unmet });
      this.#events.record(ref, {
        type: "Warning",
        reason: "AnnotationsNotApplied",
        message: `${later}: ${unmet.join(", ")}. Delete the pod to have it recreated with them.`,
      });
    }
  }
}
