/**
 * The real API server for the client tests: a testbed master instance running the control plane
 * (lib/testbed/kube.ts) with the fault-injecting proxy in front of it, and `HttpKube` clients in
 * this process that reach the proxy through its loopback forward. The clients authenticate with a
 * TokenRequest token of a ServiceAccount bound to cluster-admin, so tests can check that the
 * token never shows in a message.
 */
import assert from "node:assert/strict";
import { type Kube, KubeError, loadKube, type LoadKubeOptions } from "../../lib/k8s/mod.ts";
import { Cluster } from "../../lib/testbed/cluster.ts";
import type { FaultProxy } from "../../lib/testbed/fault_proxy.ts";
import { ControlPlane } from "../../lib/testbed/kube.ts";

export const COMPONENT = "hostnic-test";

export interface KubeFixture extends AsyncDisposable {
  cluster: Cluster;
  cp: ControlPlane;
  proxy: FaultProxy;
  /** Kubeconfig (ServiceAccount token) whose server is the proxy's host address. */
  kubeconfig: string;
  /** The token in `kubeconfig`. */
  token: string;
  /** A client through the proxy; closed with the fixture. */
  kube(opts?: LoadKubeOptions): Kube;
  /** Every KubeError message `assertKubeError` saw (for the no-secrets check). */
  messages: string[];
}

export async function startKube(prefix: string): Promise<KubeFixture> {
  const cluster = await Cluster.start({ nodes: 0, master: true, startDaemons: false, prefix });
  const clients: Kube[] = [];
  let cp: ControlPlane | undefined;
  try {
    cp = await ControlPlane.start(cluster);
    const proxy = await cp.faultProxy();
    await cp.kubectlOk(["-n", "default", "create", "serviceaccount", COMPONENT]);
    await cp.kubectlOk([
      "create",
      "clusterrolebinding",
      COMPONENT,
      "--clusterrole=cluster-admin",
      `--serviceaccount=default:${COMPONENT}`,
    ]);
    const kubeconfig = await cp.serviceAccountKubeconfig("default", COMPONENT, {
      server: proxy.hostServer,
      path: `${cp.dir}/client.kubeconfig`,
    });
    const token = /token: (\S+)/.exec(await Deno.readTextFile(kubeconfig))![1];
    const fx: KubeFixture = {
      cluster,
      cp,
      proxy,
      kubeconfig,
      token,
      messages: [],
      kube: (opts = {}) => {
        const k = loadKube({
          kubeconfig,
          component: COMPONENT,
          nodeName: "node-1",
          watchBackoffMs: { min: 50, max: 500 },
          retry: { baseMs: 50 },
          ...opts,
        });
        clients.push(k);
        return k;
      },
      async [Symbol.asyncDispose]() {
        try {
          for (const k of clients) await k.close().catch(() => {});
        } finally {
          try {
            await cp!.close();
          } finally {
            await cluster.close();
          }
        }
      },
    };
    return fx;
  } catch (err) {
    for (const k of clients) await k.close().catch(() => {});
    await cp?.close().catch(() => {});
    await cluster.close();
    throw err;
  }
}

export function assertKubeError(
  err: unknown,
  want: {
    code: string;
    status?: number;
    reason?: string;
    message?: RegExp;
    attempts?: number;
  },
  messages?: string[],
): true {
  assert.ok(err instanceof KubeError, `expected KubeError, got ${err}`);
  messages?.push(err.message);
  assert.equal(err.code, want.code, err.message);
  if (want.status !== undefined) assert.equal(err.status, want.status, err.message);
  if (want.reason !== undefined) assert.equal(err.reason, want.reason, err.message);
  if (want.attempts !== undefined) assert.equal(err.attempts, want.attempts, err.message);
  if (want.message) assert.match(err.message, want.message);
  assert.doesNotMatch(err.message, /\n\s+at /, "no stack in the message");
  return true;
}

/** Creates objects (`kubectl create`: no last-applied annotation on them). */
export async function apply(cp: ControlPlane, ...objects: unknown[]): Promise<void> {
  await cp.kubectlOk(["create", "-f", "-"], {
    stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }),
  });
}

/** Annotations without the ones Kubernetes' own components add (`*.kubernetes.io/…`). */
export function userAnnotations(a: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(a).filter(([k]) => !/kubernetes\.io\//.test(k)));
}

export function pod(
  o: {
    name: string;
    node?: string;
    namespace?: string;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
  },
): unknown {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: o.name,
      namespace: o.namespace ?? "default",
      annotations: o.annotations ?? {},
      labels: o.labels ?? {},
    },
    spec: {
      ...(o.node ? { nodeName: o.node } : {}),
      containers: [{ name: "main", image: "localhost/busybox:1" }],
    },
  };
}

export function node(name: string, annotations: Record<string, string> = {}): unknown {
  return { apiVersion: "v1", kind: "Node", metadata: { name, annotations } };
}

/** Deletes pods at once (no kubelet runs them, so a graceful delete would never finish). */
export async function deletePods(
  cp: ControlPlane,
  namespace: string,
  ...names: string[]
): Promise<void> {
  await cp.kubectlOk(["-n", namespace, "delete", "pod", "--grace-period=0", "--force", ...names]);
}
