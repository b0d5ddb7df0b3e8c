/**
 * How the node daemon talks to the API server: its client limits (rate, per-request deadline),
 * which failures mean "the API server blinked", waiting those out at start-up, and the daemon's
 * own pod identity from the downward API (POD_NAMESPACE, POD_NAME in deploy/hostnic.yaml).
 */
import { z } from "zod";
import { errorMessage, HostnicError } from "../../errors.ts";
import { KubeError } from "../../k8s/errors.ts";
import { HOSTNIC_NAMESPACE } from "../../k8s/rbac.ts";

/** Deadline of each API request the daemon makes (an ADD waits at most this for the pod). */
export const REQUEST_TIMEOUT_MS = 5_000;
/** How long start-up waits out an unreachable API server before the daemon gives up. */
export const START_TIMEOUT_MS = 30_000;

/** A start-up failure of the binding; the message says what to fix. */
export class KubeStartError extends HostnicError {
  constructor(message: string, options?: ErrorOptions) {
    super("KUBE_START_FAILED", message, options);
  }
}

/**
 * The node daemon's client-side rate limit: the kubelet's defaults (kubeAPIQPS 50, burst 100), not
 * client-go's 5/10. Every ADD reads its pod (and in shared mode more), so 5 QPS capped a node at
 * ~2 pods/s of churn (docs/benchmarks.md, shared mode).
 */
export const DAEMON_RATE_LIMIT = { qps: 50, burst: 100 } as const;

/** API failures that mean "the API server blinked": worth retrying, never worth failing a pod. */
export function isTransientKubeError(err: unknown): boolean {
  if (!(err instanceof KubeError)) return false;
  if (err.code === "KUBE_UNREACHABLE" || err.code === "KUBE_THROTTLED") return true;
  const s = err.status;
  return err.code === "KUBE_API_ERROR" && s !== undefined && (s >= 500 || s === 429);
}

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

/**
 * Start-up only: waits out an API server that stays away for a while (a restart, a control-plane
 * upgrade), up to the start deadline. Blips are the client's business: each call already retries
 * 429/5xx/transport errors itself (at most 4 attempts within REQUEST_TIMEOUT_MS, lib/k8s/transport.ts)
 * and passes the client's 5 QPS token bucket, so this outer loop adds at most one such call per
 * 0.25–4 s: bounded, never a storm.
 */
export async function retryTransient<T>(deadline: number, fn: () => Promise<T>): Promise<T> {
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

/**
 * Start-up calls: `retryTransient` up to `deadline`, then a `KubeStartError` naming what could not
 * be done and what to check (reachability for outages, RBAC for 401/403).
 */
export function startupApi(
  deadline: number,
): <T>(what: string, fn: () => Promise<T>) => Promise<T> {
  return async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
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
}
