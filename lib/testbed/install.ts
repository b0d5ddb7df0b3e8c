/**
 * hostnic installed on real kubelet nodes (lib/testbed/node.ts) the way the guides tell users, in
 * either mode, with the DaemonSet rolled out at the end:
 *
 * - `nic` (docs/install.md): each node annotated with the pod vxnet ("set pool.vxNets or plan to
 *   annotate the nodes": we annotate), the `qcsecret` Secret, `kubectl apply -f
 *   deploy/hostnic.yaml`.
 * - `shared` (docs/shared-mode.md steps 4–5): the same install on unannotated nodes, then VxNetPool
 *   `v-pool` over the pod vxnet and `hostnic-ipam-config` with `subnet-auto-assign: "on"` (every
 *   namespace gets a block), and once v-pool is ready the DaemonSet restarted as
 *   docs/operations.md's migration says (a daemon decides its mode when it starts).
 *
 * Used by the conformance cluster (lib/conformance/cluster.ts) and the real-node e2e tests.
 */
import { ANNOTATION_VXNET } from "../k8s/annotations.ts";
import { POD_VXNET } from "./cluster.ts";
import type { ControlPlane } from "./kube.ts";
import type { RealNode } from "./node.ts";
import { SHARED_MODE_OBJECTS } from "./shared.ts";

export type HostnicMode = "nic" | "shared";
export const HOSTNIC_MODES: readonly HostnicMode[] = ["nic", "shared"];

/**
 * Installs hostnic in `mode` on `nodes` (their first node's credentials file is the Secret's) and
 * waits for the DaemonSet's rollout. Returns what differs from the guides, for the log.
 */
export async function installHostnicIn(
  cp: ControlPlane,
  nodes: readonly RealNode[],
  mode: HostnicMode,
  o: { log?: (line: string) => void; readyTimeoutMs?: number } = {},
): Promise<string[]> {
  if (mode === "nic") {
    for (const n of nodes) {
      await cp.kubectlOk(["annotate", "node", n.name, `${ANNOTATION_VXNET}=${POD_VXNET}`]);
    }
  }
  const diffs = await cp.installHostnic({ credentials: nodes[0].credentials });
  if (mode === "shared") {
    await cp.waitCrds();
    for (const obj of SHARED_MODE_OBJECTS) await cp.apply(obj);
    await waitPoolReady(cp, o.readyTimeoutMs ?? 180_000);
    o.log?.("v-pool ready; restarting the DaemonSet so the daemons start in shared mode");
    await cp.kubectlOk(["-n", "kube-system", "rollout", "restart", "daemonset/hostnic-node"]);
  }
  await rollout(cp, "daemonset/hostnic-node");
  return diffs;
}

async function waitPoolReady(cp: ControlPlane, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await cp.kubectl(["get", "vxnetpool", "v-pool", "-o", "jsonpath={.status.ready}"]);
    if (r.stdout.trim() === "true") return;
    if (Date.now() > deadline) {
      const st = await cp.kubectl(["get", "vxnetpool", "v-pool", "-o", "yaml"]);
      throw new Error(`v-pool not ready after ${timeoutMs / 1000} s:\n${st.stdout}${st.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** `kubectl rollout status` of a kube-system workload; on failure, the pods in the error. */
export async function rollout(cp: ControlPlane, what: string): Promise<void> {
  const r = await cp.kubectl([
    "-n",
    "kube-system",
    "rollout",
    "status",
    what,
    "--timeout=300s",
  ]);
  if (r.code !== 0) {
    const pods = await cp.kubectl(["-n", "kube-system", "get", "pods", "-o", "wide"]);
    throw new Error(`${what} did not roll out: ${r.stderr.trim()}\n${pods.stdout}`);
  }
}
