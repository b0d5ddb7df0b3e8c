/**
 * One HTTP connection pool per kubeconfig instead of one per request.
 *
 * `@kubernetes/client-node` 2.0.x builds a new undici `Agent` in every `applySecurityAuthentication`
 * (every API call and every watch) when the cluster has TLS settings (a CA, a client certificate:
 * any real cluster, the in-cluster service account included). Each request then opens its own TCP +
 * TLS connection, which idles in its own pool until undici's keep-alive timeout closes it. Under
 * churn a daemon opened about one connection per request (bench/rss_kube.ts: 4,718 for 6,000
 * requests, docs/scale.md) and its RSS grew with them: V8's heap with the agents and sockets, glibc's heap with
 * the TLS buffers (issue 20's soak: 46 MiB/hour). `shareDispatcher` makes the config hand out one
 * agent for as long as the TLS settings it was built from stay the same (they are re-read from
 * their files on every request; a rotated certificate gets a new agent, and the old one is closed
 * once its requests, watches included, are done).
 */
import type * as k8s from "@kubernetes/client-node";

type Cluster = ReturnType<k8s.KubeConfig["getCurrentCluster"]>;
type AgentOptions = Parameters<k8s.KubeConfig["createDispatcherOptions"]>[1];
interface Closable {
  close(): Promise<void>;
}
interface WithDispatcher {
  createDispatcher?: (cluster: Cluster, agentOptions: AgentOptions) => Closable | undefined;
  [SHARED]?: true;
}
const SHARED = Symbol("hostnic.sharedDispatcher");

/** Patches `kc` (idempotent) so its dispatchers are reused; returns it. */
export function shareDispatcher(kc: k8s.KubeConfig): k8s.KubeConfig {
  const target = kc as unknown as WithDispatcher;
  if (target[SHARED]) return kc;
  const create = target.createDispatcher;
  if (typeof create !== "function") {
    throw new Error("@kubernetes/client-node's KubeConfig no longer has createDispatcher");
  }
  let last: { key: string; dispatcher: Closable | undefined } | undefined;
  target.createDispatcher = function (cluster, agentOptions) {
    const key = optionsKey(kc.createDispatcherOptions(cluster, agentOptions));
    if (last?.key === key) return last.dispatcher;
    const dispatcher = create.call(this, cluster, agentOptions);
    // Graceful: waits for the requests and watches still running on it.
    last?.dispatcher?.close().catch(() => {});
    last = { key, dispatcher };
    return dispatcher;
  };
  target[SHARED] = true;
  return kc;
}

/** A string equal for equal dispatcher options (Buffers by content, keys sorted). */
export function optionsKey(o: unknown): string {
  return JSON.stringify(o, (_k, v: unknown) => {
    if (v instanceof Uint8Array) return { bytes: Array.from(v).join(",") };
    if (v && typeof v === "object" && (v as { type?: unknown }).type === "Buffer") {
      return { bytes: JSON.stringify((v as { data?: unknown }).data) };
    }
    if (v && typeof v === "object" && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}
