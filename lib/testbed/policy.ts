/**
 * NetworkPolicy on the test bed's real nodes: kube-router's policy controller installed as
 * docs/policy.md tells users (its image loaded into each node's containerd, then
 * `kubectl apply -f deploy/policy/kube-router.yaml`).
 */
import { kubeRouterImage } from "./images_policy.ts";
import type { ControlPlane } from "./kube.ts";
import type { RealNode } from "./node.ts";

const MANIFEST = new URL("../../deploy/policy/kube-router.yaml", import.meta.url).pathname;

/** Whether kube-router's first sync has hooked its chains into this node's filter table. */
async function synced(node: RealNode): Promise<boolean> {
  const r = await node.exec(["iptables", "-S", "FORWARD"]);
  if (r.code !== 0 || !/-j KUBE-ROUTER-FORWARD\b/.test(r.stdout)) return false;
  const out = await node.exec(["iptables", "-S", "OUTPUT"]);
  return out.code === 0 && /-j KUBE-ROUTER-OUTPUT\b/.test(out.stdout);
}

/**
 * Imports kube-router's image into every node, applies deploy/policy/kube-router.yaml and waits
 * until its pod runs on every node and has synced (its chains hooked into FORWARD and OUTPUT).
 */
export async function installKubeRouter(
  cp: ControlPlane,
  nodes: readonly RealNode[],
): Promise<void> {
  const img = await kubeRouterImage();
  for (const n of nodes) await n.importImage(img.archive);
  await cp.kubectlOk(["apply", "-f", MANIFEST]);
  await cp.kubectlOk([
    "-n",
    "kube-system",
    "rollout",
    "status",
    "daemonset/kube-router",
    "--timeout=180s",
  ]);
  const deadline = Date.now() + 120_000;
  for (const n of nodes) {
    while (!(await synced(n))) {
      if (Date.now() > deadline) {
        const logs = await cp.kubectl(["-n", "kube-system", "logs", "ds/kube-router", "--tail=20"]);
        throw new Error(
          `kube-router did not sync on ${n.name} within 120 s: ${logs.stdout}${logs.stderr}`,
        );
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
