/**
 * The narrow view of Kubernetes that hostnic's long-running modes need. The daemon, the controller
 * and the admin CLI take a `Kube` through their deps; `HttpKube` (client.ts) implements it over
 * `@kubernetes/client-node`; tests/k8s/client_test.ts runs it against the real kube-apiserver.
 *
 * Types only: importing this file loads nothing.
 */
import type { PolicyRef } from "./netpol.ts";

/** What hostnic reads of a pod. */
export interface PodInfo {
  namespace: string;
  name: string;
  uid: string;
  /** `spec.nodeName`; absent while the pod is unscheduled. */
  nodeName?: string;
  annotations: Record<string, string>;
  labels: Record<string, string>;
  /** `status.phase`: Pending, Running, Succeeded, Failed, Unknown. */
  phase?: string;
  /** `status.podIP`. */
  podIP?: string;
}

/** A node condition as hostnic reads and writes it. */
export interface NodeCondition {
  /** Condition type, e.g. `Ready`, or hostnic's own `HostnicReady`. */
  type: string;
  status: "True" | "False" | "Unknown";
  /** UpperCamelCase machine-readable reason. */
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  lastHeartbeatTime?: string;
}

/** What hostnic reads of a node. */
export interface NodeInfo {
  name: string;
  uid?: string;
  annotations: Record<string, string>;
  labels: Record<string, string>;
  /** The first `status.addresses` entry of type InternalIP. */
  internalIp?: string;
  /** `spec.providerID`, when a cloud controller set one. */
  providerId?: string;
  /** ISO 8601 `metadata.creationTimestamp`. */
  createdAt?: string;
  conditions: NodeCondition[];
}

/** The object an event is about. */
export interface PodRef {
  namespace: string;
  name: string;
  uid?: string;
}

/** An event to record on a pod (`kubectl describe pod` shows it). */
export interface KubeEvent {
  type: "Normal" | "Warning";
  /** UpperCamelCase, at most 128 chars, e.g. `NoFreeNic`. */
  reason: string;
  /** Human-readable; cut to 1024 chars. */
  message: string;
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

/** A running watch. `stop()` is idempotent and resolves once no callback can run anymore. */
export interface KubeWatch extends AsyncDisposable {
  stop(): Promise<void>;
}

export interface WatchPodsOptions {
  /**
   * Told whether the pods delivered so far are the complete current set: true after each list
   * (including an empty one) and once a resumed watch flows again, false when the watch broke and
   * changes may have been missed (until it lists or resumes).
   */
  onSynced?: (synced: boolean) => void;
}

export interface Kube {
  /** `kubectl get pod -n <ns> <name>`; undefined when it does not exist. */
  getPod(namespace: string, name: string): Promise<PodInfo | undefined>;
  /** `kubectl get pods -A --field-selector spec.nodeName=<node>`. */
  listPodsOnNode(nodeName: string): Promise<PodInfo[]>;
  /** `kubectl get node <name>`; undefined when it does not exist. */
  getNode(name: string): Promise<NodeInfo | undefined>;
  /** `kubectl get nodes`. */
  listNodes(): Promise<NodeInfo[]>;
  /**
   * `kubectl annotate node <name> k=v k2-` as one JSON merge patch: a string sets, null removes.
   * Returns the node as the server stored it.
   */
  annotateNode(name: string, annotations: Record<string, string | null>): Promise<NodeInfo>;
  /**
   * Sets one condition in `status.conditions` (strategic merge by `type`, so kubelet's own
   * conditions are untouched). `lastTransitionTime` moves only when the status changes.
   */
  setNodeCondition(name: string, condition: NodeCondition): Promise<void>;
  /**
   * Records an event on a pod. Repeats of the same (pod, type, reason, message) within ten
   * minutes bump the existing event's count instead of adding another object.
   */
  createPodEvent(pod: PodRef, event: KubeEvent): Promise<void>;
  /** `kubectl get configmap -n <ns> <name> -o jsonpath={.data}`; undefined when absent. */
  getConfigMap(namespace: string, name: string): Promise<Record<string, string> | undefined>;
  /**
   * Calls `onChange` with the ConfigMap's data now and after every change (undefined while it does
   * not exist). Reconnects by itself after errors and server-side timeouts.
   */
  watchConfigMap(
    namespace: string,
    name: string,
    onChange: (data: Record<string, string> | undefined) => void,
  ): KubeWatch;
  /**
   * Calls `onEvent` for every pod on `nodeName`: ADDED for each existing pod at start, then
   * changes as they happen. After a break the watch resumes where it was; when it must list again
   * (410 Gone) only the differences are delivered (DELETED, ADDED, MODIFIED), never the
   * unchanged pods again.
   */
  watchPodsOnNode(
    nodeName: string,
    onEvent: (type: WatchEventType, pod: PodInfo) => void,
    opts?: WatchPodsOptions,
  ): KubeWatch;
  /**
   * Calls `onChange` with every NetworkPolicy in the cluster (namespace, name, podSelector) after
   * the first list and after every change. Optional: only the daemon's passthrough warning uses it.
   */
  watchNetworkPolicies?(onChange: (policies: PolicyRef[]) => void): KubeWatch;
  /** Stops every watch this client started. */
  close(): Promise<void>;
}
