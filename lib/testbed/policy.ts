/**
 * NetworkPolicy on real nodes (node.ts): kube-router's policy controller installed the way
 * docs/install.md's "NetworkPolicy" section tells users, `kubectl apply -f
 * deploy/policy/kube-router.yaml`, with its image built here (images_policy.ts) and imported into
 * every node's containerd under the manifest's name, so kubelet never pulls.
 *
 * Two lines of the manifest differ, both values the manifest tells users to adapt: the Service CIDR
 * (the testbed's, kube.ts `SERVICE_CIDR`), and the xtables lock's host path, which moves into the
 * node's private /run/hostnic (a node's /run is the machine's, and the testbed never creates files
 * in the machine's directories; the nf_tables backend the nodes use takes no xtables lock anyway).
 */
import type { ControlPlane } from "./kube.ts";
import { SERVICE_CIDR } from "./kube.ts";
import type { RealNode } from "./node.ts";
import { kubeRouterImage } from "./images_policy.ts";

const MANIFEST = new URL("../../deploy/policy/kube-router.yaml", import.meta.url).pathname;
const DEFAULT_SERVICE_RANGE = "--service-cluster-ip-range=10.96.0.0/12";
const XTABLES_HOST_PATH = "path: /run/xtables.lock";

/** deploy/policy/kube-router.yaml with the two testbed values (see the module comment). */
export async function kubeRouterManifest(): Promise<string> {
  const text = await Deno.readTextFile(MANIFEST);
  for (const needle of [DEFAULT_SERVICE_RANGE, XTABLES_HOST_PATH]) {
    if (!text.includes(needle)) throw new Error(`${MANIFEST} no longer contains "${needle}"`);
  }
  return text
    .replace(DEFAULT_SERVICE_RANGE, `--service-cluster-ip-range=${SERVICE_CIDR}`)
    .replace(XTABLES_HOST_PATH, "path: /run/hostnic/xtables.lock");
}

/** Whether kube-router has installed its top-level filter chains and jumps on `node`. */
export async function kubeRouterSynced(node: RealNode): Promise<boolean> {
  const r = await node.exec(["iptables-save", "-t", "filter"]);
  if (r.code !== 0) return false;
  return ["FORWARD", "OUTPUT", "INPUT"].every((c) =>
    new RegExp(`^-A ${c} .*-j KUBE-ROUTER-${c}$`, "m").test(r.stdout)
  ) && /^:KUBE-NWPLCY-DEFAULT /m.test(r.stdout);
}

/**
 * Imports the kube-router image into every node's containerd, applies deploy/policy/kube-router.yaml
 * and waits until kube-router runs (Ready) on every node and has synced its rules there (its
 * FORWARD / OUTPUT / INPUT jumps and default policy chain are in the node's filter table).
 */
export async function installKubeRouter(
  cp: ControlPlane,
  nodes: readonly RealNode[],
): Promise<void> {
  const img = await kubeRouterImage();
  for (const n of nodes) await n.importImage(img.archive);
  await cp.apply(await kubeRouterManifest());
  const r = await cp.kubectl([
    "-n",
    "kube-system",
    "rollout",
    "status",
    "daemonset/kube-router",
    "--timeout=180s",
  ]);
  if (r.code !== 0) {
    const pods = await cp.kubectl([
      "-n",
      "kube-system",
      "describe",
      "pods",
      "-l",
      "app=kube-router",
    ]);
    const logs = await cp.kubectl(["-n", "kube-system", "logs", "ds/kube-router", "--tail=40"]);
    throw new Error(
      `kube-router did not roll out: ${r.stderr.trim()}\n${pods.stdout}\n--- kube-router: ${logs.stdout}${logs.stderr}`,
    );
  }
  const deadline = Date.now() + 120_000;
  for (const n of nodes) {
    while (!(await kubeRouterSynced(n))) {
      if (Date.now() > deadline) {
        const logs = await cp.kubectl([
          "-n",
          "kube-system",
          "logs",
          "-l",
          "app=kube-router",
          "--tail=30",
        ]);
        throw new Error(
          `kube-router's chains did not appear on ${n.name} within 120 s: ${logs.stdout}${logs.stderr}`,
        );
      }
      await new Promise((res) => setTimeout(res, 500));
    }
  }
}
