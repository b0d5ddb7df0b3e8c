/**
 * `hostnic demo --kubernetes` (`deno task demo:k8s`): hostnic on real Kubernetes nodes on a
 * simulated QingCloud. Starts the simulator, a real control plane in the master instance, two real
 * nodes (containerd + kubelet + kube-proxy, lib/testbed/node.ts), installs hostnic as
 * docs/install.md says (`kubectl apply -f deploy/hostnic.yaml`, images built locally the first
 * time: lib/testbed/images.ts), runs a Deployment on each node and a NodePort Service, checks the
 * traffic, and tears everything down. Prints PASS/FAIL lines; exits 0 only if every check held.
 * Needs the packages and the built Kubernetes of docs/testing.md#real-nodes.
 */
import { errorMessage } from "../lib/errors.ts";
import { Cluster, POD_GATEWAY, POD_VXNET } from "../lib/testbed/cluster.ts";
import { busyboxImage, hostnicImage, pauseImage } from "../lib/testbed/images.ts";
import { ControlPlane } from "../lib/testbed/kube.ts";
import { RealNode } from "../lib/testbed/node.ts";
import { busyboxDeployment, httpGet } from "../lib/testbed/workloads.ts";

const ANNOTATION_VXNET = "hostnic.network.kubesphere.io/vxnet";

interface PodJson {
  metadata: { name: string };
  status: { podIP?: string };
}

async function run(argv: string[]): Promise<{ ok: boolean; out: string }> {
  const r = await new Deno.Command(argv[0], { args: argv.slice(1), stderr: "null" }).output();
  return { ok: r.code === 0, out: new TextDecoder().decode(r.stdout) };
}

export async function main(_args: string[]): Promise<number> {
  let failed = 0;
  const check = (name: string, ok: boolean, detail = "") => {
    if (!ok) failed++;
    console.log(`${ok ? "PASS" : "FAIL"}  ${name}${detail ? `  (${detail})` : ""}`);
  };
  const t0 = performance.now();
  try {
    console.log("hostnic demo --kubernetes: building or loading the images (cached per machine)");
    const pause = await pauseImage();
    const busybox = await busyboxImage();
    const hostnic = await hostnicImage({ log: (l) => console.log(`  ${l}`) });
    const images = [pause, busybox, hostnic].map((i) => ({ archive: i.archive }));
    await using c = await Cluster.start({
      nodes: 2,
      prefix: `hk${crypto.randomUUID().slice(0, 4)}`,
      master: true,
      startDaemons: false,
      configFile: false,
      vxnets: [],
      jobLatencyMs: 100,
    });
    await using cp = await ControlPlane.start(c);
    check("control plane ready in the master instance", true, cp.server);
    await using n1 = await RealNode.start(cp, c.nodes[0], { name: "node-1", images });
    await using n2 = await RealNode.start(cp, c.nodes[1], { name: "node-2", images });
    check(
      "two real nodes registered (containerd + kubelet + kube-proxy)",
      true,
      `${n1.ip}, ${n2.ip}`,
    );
    for (const n of ["node-1", "node-2"]) {
      await cp.kubectlOk(["annotate", "node", n, `${ANNOTATION_VXNET}=${POD_VXNET}`]);
    }
    for (const d of await cp.installHostnic({ credentials: n1.credentials })) {
      console.log(`  differs from docs/install.md: ${d}`);
    }
    const rollout = await cp.kubectl([
      "-n",
      "kube-system",
      "rollout",
      "status",
      "daemonset/hostnic-node",
      "--timeout=300s",
    ]);
    check("kubectl apply -f deploy/hostnic.yaml: DaemonSet rolled out", rollout.code === 0);
    await cp.apply(
      busyboxDeployment({ name: "web-1", node: "node-1", replicas: 2, labels: { tier: "web" } }),
    );
    await cp.apply(
      busyboxDeployment({ name: "web-2", node: "node-2", replicas: 1, labels: { tier: "web" } }),
    );
    for (const d of ["web-1", "web-2"]) {
      const r = await cp.kubectl(["rollout", "status", `deployment/${d}`, "--timeout=180s"]);
      check(`Deployment ${d} available`, r.code === 0);
    }
    console.log(await cp.kubectlOk(["get", "pods", "-o", "wide"]));
    const pods = (await cp.getJson<{ items: PodJson[] }>(["pods", "-l", "tier=web"])).items;
    for (const p of pods) {
      const ip = p.status.podIP ?? "";
      check(`${p.metadata.name} has a pod-vxnet address`, /^172\.30\.(8|9|10|11)\./.test(ip), ip);
      const gw = await cp.kubectl([
        "exec",
        p.metadata.name,
        "--",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        POD_GATEWAY,
      ]);
      check(`${p.metadata.name} → vxnet gateway ${POD_GATEWAY}`, gw.code === 0);
      check(`master (outside the cluster) → ${p.metadata.name}`, await c.ping(c.master!.netns, ip));
    }
    const a = pods.find((p) => p.metadata.name.startsWith("web-1"))!;
    const b = pods.find((p) => p.metadata.name.startsWith("web-2"))!;
    const cross = await cp.kubectl([
      "exec",
      a.metadata.name,
      "--",
      "ping",
      "-c",
      "1",
      "-W",
      "2",
      b.status.podIP!,
    ]);
    check(
      `pod on node-1 → pod on node-2`,
      cross.code === 0,
      `${a.status.podIP} → ${b.status.podIP}`,
    );
    await cp.apply(JSON.stringify({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web", namespace: "default" },
      spec: {
        type: "NodePort",
        selector: { tier: "web" },
        ports: [{ port: 80, targetPort: 8080 }],
      },
    }));
    const svc = await cp.getJson<{ spec: { clusterIP: string; ports: { nodePort: number }[] } }>(
      ["service", "web"],
    );
    const names = new Set(pods.map((p) => p.metadata.name));
    const seen = new Set<string>();
    const fromMaster = new Set<string>();
    const deadline = Date.now() + 60_000;
    while ((seen.size < names.size || fromMaster.size < names.size) && Date.now() < deadline) {
      const r = await cp.kubectl([
        "exec",
        a.metadata.name,
        "--",
        "sh",
        "-c",
        httpGet(svc.spec.clusterIP, 80),
      ]);
      if (names.has(r.stdout.trim())) seen.add(r.stdout.trim());
      const m = await run([
        "nsenter",
        `--net=/run/netns/${c.master!.netns}`,
        "sh",
        "-c",
        httpGet(n1.ip, svc.spec.ports[0].nodePort),
      ]);
      if (names.has(m.out.trim())) fromMaster.add(m.out.trim());
    }
    check(
      `ClusterIP ${svc.spec.clusterIP} reaches every backend from a pod`,
      seen.size === names.size,
      `${seen.size}/${names.size}`,
    );
    check(
      `NodePort ${n1.ip}:${svc.spec.ports[0].nodePort} reaches every backend from the master`,
      fromMaster.size === names.size,
      `${fromMaster.size}/${names.size}`,
    );
    await cp.kubectl(["delete", "service", "web"]);
    await cp.kubectl(["delete", "deployment", "web-1", "web-2", "--wait=true"]);
  } catch (err) {
    check("demo ran to the end", false, errorMessage(err));
  }
  console.log(
    `\n${failed === 0 ? "all checks passed" : `${failed} check(s) failed`}; everything torn ` +
      `down (${((performance.now() - t0) / 1000).toFixed(0)} s)`,
  );
  return failed === 0 ? 0 : 1;
}
