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
import type { Cluster } from "../testbed/cluster.ts";
import { hostnicImage } from "../testbed/images.ts";
import { conformanceImages } from "../testbed/images_e2e.ts";
import type { ControlPlane } from "../testbed/kube.ts";
import type { RealNode } from "../testbed/node.ts";
import { type HostnicMode, rollout } from "../testbed/install.ts";
import { RealBed } from "../testbed/real_bed.ts";
import { installKubeRouter } from "../testbed/policy.ts";

export type Mode = HostnicMode;

const REPO = new URL("../../", import.meta.url).pathname;
export const COREDNS_MANIFEST = `${REPO}conformance/coredns.yaml`;
/** The kube-dns Service address (conformance/coredns.yaml) and the kubelets' clusterDNS. */
export const CLUSTER_DNS = "10.43.0.10";

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
  #bed?: RealBed;

  get cluster(): Cluster {
    return this.#bed!.cluster;
  }
  get cp(): ControlPlane {
    return this.#bed!.cp;
  }
  get nodes(): RealNode[] {
    return this.#bed?.nodes ?? [];
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
    this.#bed = await RealBed.start({
      prefix: o.prefix ?? `cf${crypto.randomUUID().slice(0, 4)}`,
      mode: o.mode,
      images,
      clusterDNS: CLUSTER_DNS,
      log,
      phase: (name, step) => this.#phase(name, log, step),
    });
    const cp = this.cp;
    await this.#phase("CoreDNS", log, async () => {
      await cp.kubectlOk(["apply", "-f", COREDNS_MANIFEST]);
      await rollout(cp, "deployment/coredns");
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

  async close(): Promise<void> {
    await this.#bed?.close().catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
