/**
 * The cluster a conformance run tests: the simulated QingCloud, the real control plane in its
 * master instance and TWO real nodes (containerd + kubelet + kube-proxy, lib/testbed/node.ts) with
 * every image the suite asks for imported (lib/testbed/images_e2e.ts), hostnic installed with
 * `kubectl apply` as docs/install.md says, CoreDNS as `kube-system/kube-dns` at the kubelets'
 * clusterDNS address, and, with `policy`, kube-router's policy controller (lib/testbed/policy.ts,
 * deploy/policy/kube-router.yaml).
 *
 * Modes: `nic` (each pod its own NIC; nodes annotated with the pod vxnet, as docs/install.md's
 * "annotate the nodes") and `shared` (docs/shared-mode.md's steps: VxNetPool `v-pool` over the pod
 * vxnet, `hostnic-ipam-config` with `subnet-auto-assign: "on"` so every namespace the suite makes
 * gets a block, then the DaemonSet restarted as docs/operations.md says, since a daemon decides its
 * mode when it starts).
 */
import { Cluster, POD_VXNET } from "../testbed/cluster.ts";
import { hostnicImage } from "../testbed/images.ts";
import { conformanceImages } from "../testbed/images_e2e.ts";
import { ControlPlane } from "../testbed/kube.ts";
import { RealNode } from "../testbed/node.ts";
import { SHARED_MODE_OBJECTS } from "../testbed/shared.ts";
import { installKubeRouter } from "../testbed/policy.ts";

export type Mode = "nic" | "shared";

const REPO = new URL("../../", import.meta.url).pathname;
export const COREDNS_MANIFEST = `${REPO}conformance/coredns.yaml`;
/** The kube-dns Service address (conformance/coredns.yaml) and the kubelets' clusterDNS. */
export const CLUSTER_DNS = "10.43.0.10";
const ANNOTATION_VXNET = "hostnic.network.kubesphere.io/vxnet";

export interface ConformanceClusterOptions {
  mode: Mode;
  policy: boolean;
  log: (line: string) => void;
  prefix?: string;
}

/** Seconds each phase of the set-up took (for the summary and docs/testing.md). */
export type Timings = Record<string, number>;

export class ConformanceCluster implements AsyncDisposable {
  readonly timings: Timings = {};
  readonly nodes: RealNode[] = [];
  #c?: Cluster;
  #cp?: ControlPlane;

  get cluster(): Cluster {
    return this.#c!;
  }
  get cp(): ControlPlane {
    return this.#cp!;
  }

  static async start(o: ConformanceClusterOptions): Promise<ConformanceCluster> {
    const cc = new ConformanceCluster();
    try {
      await cc.#start(o);
      return cc;
    } catch (err) {
      await cc.close();
      throw err;
    }
  }

  async #phase<T>(name: string, log: (l: string) => void, f: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    const r = await f();
    const s = (performance.now() - t0) / 1000;
    this.timings[name] = s;
    log(`${name}: ${s.toFixed(1)} s`);
    return r;
  }

  async #start(o: ConformanceClusterOptions): Promise<void> {
    const log = o.log;
    const { hostnic, images } = await this.#phase("images", log, async () => {
      const hostnic = await hostnicImage({ log });
      const { images } = await conformanceImages({ log });
      return { hostnic, images: [...images, { archive: hostnic.archive }] };
    });
    log(`image ${hostnic.ref}: ${hostnic.built ? "built" : "cached"}`);
    this.#c = await this.#phase("simulator", log, () =>
      Cluster.start({
        nodes: 2,
        prefix: o.prefix ?? `cf${crypto.randomUUID().slice(0, 4)}`,
        master: true,
        startDaemons: false,
        configFile: false,
        vxnets: [],
        jobLatencyMs: 100,
      }));
    const c = this.#c;
    this.#cp = await this.#phase("control plane", log, () => ControlPlane.start(c));
    const cp = this.#cp;
    await this.#phase("two real nodes", log, async () => {
      for (const [i, inst] of c.nodes.entries()) {
        this.nodes.push(
          await RealNode.start(cp, inst, {
            name: `node-${i + 1}`,
            images,
            clusterDNS: CLUSTER_DNS,
          }),
        );
      }
    });
    const [n1] = this.nodes;
    await this.#phase(`hostnic (${o.mode} mode)`, log, async () => {
      if (o.mode === "nic") {
        // docs/install.md: "set pool.vxNets or plan to annotate the nodes" — we annotate.
        for (const n of this.nodes) {
          await cp.kubectlOk(["annotate", "node", n.name, `${ANNOTATION_VXNET}=${POD_VXNET}`]);
        }
      }
      for (const d of await cp.installHostnic({ credentials: n1.credentials })) {
        log(`differs from docs/install.md: ${d}`);
      }
      // Shared mode: the daemons (nodes without a vxnet yet) are restarted once v-pool is ready.
      if (o.mode === "shared") await this.#shared(log);
      await this.#rollout("daemonset/hostnic-node");
    });
    await this.#phase("CoreDNS", log, async () => {
      await cp.kubectlOk(["apply", "-f", COREDNS_MANIFEST]);
      await this.#rollout("deployment/coredns");
    });
    if (o.policy) {
      await this.#phase("kube-router", log, async () => {
        await installKubeRouter(cp, this.nodes);
      });
    }
    await this.#phase("nodes Ready", log, async () => {
      await cp.kubectlOk(["wait", "--for=condition=Ready", "node", "--all", "--timeout=180s"]);
      await cp.kubectlOk([
        "-n",
        "kube-system",
        "wait",
        "--for=condition=Ready",
        "pod",
        "--all",
        "--timeout=180s",
      ]);
    });
  }

  /** docs/shared-mode.md steps 4–5, then the restart of docs/operations.md's migration. */
  async #shared(log: (l: string) => void): Promise<void> {
    const cp = this.cp;
    await cp.kubectlOk([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/vxnetpools.network.qingcloud.com",
      "crd/ippools.network.qingcloud.com",
      "crd/ipamblocks.network.qingcloud.com",
      "crd/ipamhandles.network.qingcloud.com",
    ]);
    for (const o of SHARED_MODE_OBJECTS) await cp.apply(o);
    const deadline = Date.now() + 180_000;
    for (;;) {
      const r = await cp.kubectl(["get", "vxnetpool", "v-pool", "-o", "jsonpath={.status.ready}"]);
      if (r.stdout.trim() === "true") break;
      if (Date.now() > deadline) {
        const st = await cp.kubectl(["get", "vxnetpool", "v-pool", "-o", "yaml"]);
        throw new Error(`v-pool not ready after 180 s:\n${st.stdout}${st.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    log("v-pool ready; restarting the DaemonSet so the daemons start in shared mode");
    await cp.kubectlOk(["-n", "kube-system", "rollout", "restart", "daemonset/hostnic-node"]);
  }

  async #rollout(what: string): Promise<void> {
    const r = await this.cp.kubectl([
      "-n",
      "kube-system",
      "rollout",
      "status",
      what,
      "--timeout=300s",
    ]);
    if (r.code !== 0) {
      const pods = await this.cp.kubectl(["-n", "kube-system", "get", "pods", "-o", "wide"]);
      throw new Error(`${what} did not roll out: ${r.stderr.trim()}\n${pods.stdout}`);
    }
  }

  async close(): Promise<void> {
    for (const n of this.nodes.reverse()) await n.close().catch(() => {});
    await this.#cp?.close().catch(() => {});
    await this.#c?.close().catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
