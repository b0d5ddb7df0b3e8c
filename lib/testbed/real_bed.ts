/**
 * Real kubelet nodes with hostnic installed from its DaemonSet: the simulated QingCloud, the real
 * control plane in its master instance (kube.ts), `nodes` real nodes (containerd + kubelet +
 * kube-proxy, node.ts) named `node-1`, `node-2`, … with the given image archives imported, then
 * hostnic in `mode` as the guides say (install.ts). `close()` (or `await using`) takes it all down
 * in reverse order, even after a failed start: no process, mount, namespace or directory is left.
 *
 * Also what a test or bench needs to reach the node daemon that the DaemonSet runs: its pod
 * (restart count, readiness, container id), the host PID of its process (for SIGKILL, RSS and fd
 * counts) and the host path of its socket (for `hostnic admin`).
 */
import { Cluster } from "./cluster.ts";
import { type HostnicMode, installHostnicIn } from "./install.ts";
import { ControlPlane } from "./kube.ts";
import { RealNode } from "./node.ts";

export interface RealBedOptions {
  /** Namespace prefix of the Cluster (short). */
  prefix: string;
  mode: HostnicMode;
  /** Image archives every node imports (pause, hostnic's, …). */
  images: { archive: string }[];
  /** How many real nodes (default 2). */
  nodes?: number;
  /** The kubelets' `clusterDNS` (RealNodeOptions). */
  clusterDNS?: string;
  log?: (line: string) => void;
  /** Runs each step of the set-up (to time it); steps: simulator, control plane, real nodes, hostnic. */
  phase?: <T>(name: string, step: () => Promise<T>) => Promise<T>;
}

export class RealBed implements AsyncDisposable {
  readonly nodes: RealNode[] = [];
  #c?: Cluster;
  #cp?: ControlPlane;

  get cluster(): Cluster {
    return this.#c!;
  }
  get cp(): ControlPlane {
    return this.#cp!;
  }

  static async start(o: RealBedOptions): Promise<RealBed> {
    const bed = new RealBed();
    const phase = o.phase ?? ((_name, step) => step());
    const n = o.nodes ?? 2;
    try {
      const c = bed.#c = await phase("simulator", () =>
        Cluster.start({
          nodes: n,
          prefix: o.prefix,
          master: true,
          startDaemons: false,
          configFile: false,
          vxnets: [],
          jobLatencyMs: 100,
        }));
      const cp = bed.#cp = await phase("control plane", () => ControlPlane.start(c));
      await phase(n === 2 ? "two real nodes" : `${n} real nodes`, async () => {
        for (const [i, inst] of c.nodes.entries()) {
          bed.nodes.push(
            await RealNode.start(cp, inst, {
              name: `node-${i + 1}`,
              images: o.images,
              clusterDNS: o.clusterDNS,
            }),
          );
        }
      });
      await phase(`hostnic (${o.mode} mode)`, async () => {
        for (const d of await installHostnicIn(cp, bed.nodes, o.mode, { log: o.log })) {
          o.log?.(`differs from docs/install.md: ${d}`);
        }
      });
      return bed;
    } catch (err) {
      await bed.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    for (const n of [...this.nodes].reverse()) await n.close().catch(() => {});
    await this.#cp?.close().catch(() => {});
    await this.#c?.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The DaemonSet's pod on a node, as the API server shows it. */
export interface DaemonPod {
  name: string;
  /** The `hostnic-node` container's id (without `containerd://`); "" before it first started. */
  containerId: string;
  restarts: number;
  ready: boolean;
}

/** The `hostnic-node` pod on `node` (undefined when there is none yet). */
export async function daemonPod(cp: ControlPlane, node: string): Promise<DaemonPod | undefined> {
  const list = await cp.getJson<{
    items: {
      metadata: { name: string; deletionTimestamp?: string };
      status: {
        containerStatuses?: {
          name: string;
          containerID?: string;
          restartCount: number;
          ready: boolean;
        }[];
      };
    }[];
  }>([
    "pods",
    "-n",
    "kube-system",
    "-l",
    "app=hostnic-node",
    `--field-selector=spec.nodeName=${node}`,
  ]);
  const pod = list.items.find((p) => !p.metadata.deletionTimestamp);
  if (!pod) return undefined;
  const st = pod.status.containerStatuses?.find((s) => s.name === "hostnic-node");
  return {
    name: pod.metadata.name,
    containerId: (st?.containerID ?? "").replace(/^containerd:\/\//, ""),
    restarts: st?.restartCount ?? 0,
    ready: st?.ready ?? false,
  };
}

/** The host PID of a running container's init process (`ctr tasks ls`), if it runs. */
export async function containerPid(
  node: RealNode,
  containerId: string,
): Promise<number | undefined> {
  if (!containerId) return undefined;
  const r = await node.ctr(["tasks", "ls"]);
  for (const line of r.stdout.split("\n")) {
    const [id, pid, status] = line.trim().split(/\s+/);
    if (id === containerId && status === "RUNNING" && /^\d+$/.test(pid)) return Number(pid);
  }
  return undefined;
}

/** Where the daemon's socket (/var/run/hostnic/hostnic.sock on the node) is on this machine. */
export function daemonSocket(node: RealNode): string {
  return `${node.hostDir("/run/hostnic")}/hostnic.sock`;
}
