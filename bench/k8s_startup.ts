/**
 * Pod start-up as users see it, on a real node (lib/testbed/node.ts): the time from `kubectl
 * create` of a 20-replica Deployment to all its pods Ready, first with Debian's `bridge` +
 * `host-local` conflist, then with hostnic installed from deploy/hostnic.yaml (pool pre-warmed to
 * the replica count: the "warm pool" case), on the same node in the same run. Prints both times
 * and the ratio (target: hostnic ≤ 1.3 × bridge).
 *
 *   deno task bench --only k8s_startup       (opt-in: also part of --full)
 *   deno run -A bench/k8s_startup.ts [--replicas N]
 *
 * Needs what tests/e2e/k8s_node_test.ts needs (docs/testing.md#real-nodes); cleans up after
 * itself like the test.
 */
import { ANNOTATION_VXNET, NODE_ANNOTATION_POOL } from "../lib/k8s/annotations.ts";
import { Cluster, POD_VXNET } from "../lib/testbed/cluster.ts";
import { busyboxImage, hostnicImage, pauseImage } from "../lib/testbed/images.ts";
import { ControlPlane } from "../lib/testbed/kube.ts";
import { RealNode } from "../lib/testbed/node.ts";
import { busyboxDeployment } from "../lib/testbed/workloads.ts";
import type { Benchmark } from "./lib/context.ts";
import { type Figure, figure, formatFigure } from "./lib/figure.ts";

async function until(what: string, cond: () => Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Seconds from `kubectl create` of the Deployment to all replicas Ready; then deletes it. */
async function startup(cp: ControlPlane, name: string, replicas: number): Promise<number> {
  const t0 = performance.now();
  await cp.kubectlOk(["create", "-f", "-"], {
    stdin: busyboxDeployment({ name, replicas, node: "node-1", serve: false }),
  });
  await until(`${replicas} ${name} pods Ready`, async () => {
    const d = await cp.getJson<{ status: { readyReplicas?: number } }>(["deployment", name]);
    return (d.status.readyReplicas ?? 0) >= replicas;
  }, 300_000);
  const seconds = (performance.now() - t0) / 1000;
  await cp.kubectlOk(["delete", "deployment", name, "--wait=true"]);
  await until(`${name} pods gone`, async () => {
    const l = await cp.getJson<{ items: unknown[] }>(["pods", "-l", `app=${name}`]);
    return l.items.length === 0;
  }, 120_000);
  return seconds;
}

/** Both start-up times on one real node, in one run, as a figure with its target. */
async function measure(replicas: number): Promise<Figure> {
  const pause = await pauseImage();
  const busybox = await busyboxImage();
  const hostnic = await hostnicImage({ log: (l) => console.error(`image: ${l}`) });
  await using c = await Cluster.start({
    nodes: 1,
    prefix: "bk",
    master: true,
    startDaemons: false,
    configFile: false,
    vxnets: [],
    jobLatencyMs: 100,
  });
  await using cp = await ControlPlane.start(c);
  await using n1 = await RealNode.start(cp, c.nodes[0], {
    name: "node-1",
    images: [{ archive: pause.archive }, { archive: busybox.archive }, {
      archive: hostnic.archive,
    }],
  });

  // 1. Debian's bridge + host-local (the node's only conflist).
  const bridgeConf = `${n1.hostDir("/etc/cni/net.d")}/10-bridge.conflist`;
  await Deno.writeTextFile(
    bridgeConf,
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "bench-bridge",
      plugins: [{
        type: "bridge",
        bridge: "cni0",
        isGateway: true,
        ipMasq: false,
        ipam: { type: "host-local", ranges: [[{ subnet: "10.244.0.0/24" }]] },
      }],
    }),
  );
  await until("node-1 Ready with the bridge network", async () => {
    const n = await cp.getJson<{ status: { conditions: { type: string; status: string }[] } }>(
      ["node", "node-1"],
    );
    return n.status.conditions.some((x) => x.type === "Ready" && x.status === "True");
  }, 120_000);
  const bridge = await startup(cp, "bench-bridge", replicas);
  console.error(`bridge + host-local: ${replicas} pods Ready in ${bridge.toFixed(1)} s`);
  await Deno.remove(bridgeConf);

  // 2. hostnic from its DaemonSet, pool warmed to the replica count.
  await cp.kubectlOk(["annotate", "node", "node-1", `${ANNOTATION_VXNET}=${POD_VXNET}`]);
  await cp.installHostnic({ credentials: n1.credentials });
  const cm = await cp.getJson<{ data: Record<string, string> }>([
    "-n",
    "kube-system",
    "configmap",
    "hostnic-cfg-cm",
  ]);
  const daemonConf = JSON.parse(cm.data.hostnic);
  daemonConf.pool.poolLow = replicas;
  daemonConf.pool.poolHigh = replicas + 2;
  await cp.setHostnicConfig({
    hostnic: JSON.stringify(daemonConf, null, 2),
    "hostnic-cni": cm.data["hostnic-cni"],
  });
  await cp.kubectlOk(["-n", "kube-system", "rollout", "restart", "daemonset/hostnic-node"]);
  await cp.kubectlOk([
    "-n",
    "kube-system",
    "rollout",
    "status",
    "daemonset/hostnic-node",
    "--timeout=300s",
  ]);
  await until(`a warm pool of ${replicas} NICs`, async () => {
    const n = await cp.getJson<{ metadata: { annotations?: Record<string, string> } }>(
      ["node", "node-1"],
    );
    const text = n.metadata.annotations?.[NODE_ANNOTATION_POOL];
    const pool = text ? JSON.parse(text) : undefined;
    return pool?.ready === true && pool.free >= replicas;
  }, 300_000);
  const withHostnic = await startup(cp, "bench-hostnic", replicas);
  console.error(`hostnic (warm pool): ${replicas} pods Ready in ${withHostnic.toFixed(1)} s`);
  await cp.kubectl(["delete", "-f", new URL("../deploy/hostnic.yaml", import.meta.url).pathname]);
  return figure({
    name: `k8s_pod_startup_${replicas}`,
    value: withHostnic,
    unit: "s",
    baseline: { name: "bridge+host-local", value: bridge },
    target: { of: "ratio", op: "<=", value: 1.3 },
    note: "kubectl create of a Deployment to all pods Ready, real kubelet, warm pool",
  });
}

export const k8sStartup: Benchmark = {
  name: "k8s_startup",
  description: "20-replica Deployment to Ready on a real node: hostnic vs bridge+host-local",
  optIn: true,
  run: async () => [await measure(20)],
};

if (import.meta.main) {
  const i = Deno.args.indexOf("--replicas");
  console.log(formatFigure(await measure(i >= 0 ? Number(Deno.args[i + 1]) : 20)));
}
