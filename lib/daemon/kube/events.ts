/**
 * Kubernetes events the daemon records: the wording of the Warning event for a failed ADD (a
 * reason in UpperCamelCase and what to do), and the recorder that sends events without making
 * anyone wait, keeping track of those in flight so shutdown can let them land.
 */
import { errorMessage, HostnicError } from "../../errors.ts";
import type { Kube, KubeEvent, PodRef } from "../../k8s/types.ts";
import type { Logger } from "../../log.ts";

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

/** Waits for `p`, but not past `deadline`. */
export async function within(deadline: number, p: Promise<unknown>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    p,
    new Promise((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now())))),
  ]);
  clearTimeout(timer);
}

/** Records events in the background; `drain` waits for them (and other tracked work), bounded. */
export class EventRecorder {
  readonly #kube: Kube;
  readonly #log: Logger;
  readonly #pending = new Set<Promise<void>>();
  #closed = false;

  constructor(kube: Kube, logger: Logger) {
    this.#kube = kube;
    this.#log = logger;
  }

  /** Sends `event` about `ref`; a failure is logged. Nothing after `close()`. */
  record(ref: PodRef, event: KubeEvent): void {
    if (this.#closed) return;
    this.track(
      this.#kube.createPodEvent(ref, event).catch((err) =>
        this.#log.warn("could not record an event on the pod", {
          pod: `${ref.namespace}/${ref.name}`,
          reason: event.reason,
          err: errorMessage(err),
        })
      ),
    );
  }

  /** Work `drain` should wait for (a sync pass in flight). */
  track(p: Promise<void>): void {
    this.#pending.add(p);
    p.finally(() => this.#pending.delete(p));
  }

  /** Stops recording new events. */
  close(): void {
    this.#closed = true;
  }

  /** Waits for what is in flight, but not past `deadline`. */
  drain(deadline: number): Promise<void> {
    return within(deadline, Promise.all([...this.#pending]));
  }
}
