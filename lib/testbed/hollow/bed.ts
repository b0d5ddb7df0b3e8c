/**
 * A bed of hollow nodes (node.ts) on one real control plane: etcd, kube-apiserver,
 * kube-controller-manager and kube-scheduler in the master instance of a master-only testbed
 * `Cluster` (lib/testbed/kube.ts), and hostnic installed from deploy/hostnic.yaml (RBAC, CRDs,
 * ConfigMap). The hollow nodes' cloud is a simulator in this process (no Linux backend) with one
 * instance per node; their daemons reach the API server through the control plane's loopback
 * forward as the `hostnic-node` ServiceAccount, each with its own client and Node object.
 *
 * Shared mode: VxNetPool `v-pool` over the pod vxnet (`blockSize` from the options) with
 * `Default` → that vxnet in `hostnic-ipam-config`, and the real controller (`hostnic controller`,
 * a process) making its IPPool, IPAMBlocks and VIPs. Nic mode: pod vxnets `vxnet-hnic1…`, each
 * node annotated with one of them (nodes spread evenly), no VxNetPool.
 *
 * `close()` stops the daemons, the controller, the control plane and the simulator, and removes
 * the directory.
 */
import { stringify as toYaml } from "yaml";
import { type Logger, nullLogger } from "../../log.ts";
import type { Knobs } from "../../sim/knobs.ts";
import { scenarioFromObject } from "../../sim/scenario.ts";
import { type SimServer, startSim } from "../../sim/server.ts";
import { Cluster } from "../cluster.ts";
import { ControlPlane } from "../kube.ts";
import { MAIN } from "../processes.ts";
import { HollowNode } from "./node.ts";

export const HOLLOW_POD_VXNET = "vxnet-hpods";
export const HOLLOW_NODE_VXNET = "vxnet-hnodes";
const NODE_VXNET_ANNOTATION = "hostnic.network.kubesphere.io/vxnet";
/**
 * Longest one hollow daemon's close may take before the bed names it in `hungCloses` and goes on
 * (a SIGTERM'd daemon gets the kubelet's 30 s grace period; this is twice that).
 */
const DAEMON_CLOSE_MS = 60_000;
/** Daemons stopped at once by `close()`. */
const CLOSE_CONCURRENCY = 20;

/** Longer than undici's default keep-alive timeout (4 s). */
const CLIENT_IDLE_MS = 5_000;
const SECRET = "hollow-secret-key-do-not-log";

export interface HollowBedOptions {
  nodes: number;
  mode: "shared" | "nic";
  /** Shared mode: IPAM block prefix length (VxNetPool `blockSize`, default 26). */
  blockSize?: number;
  /** Nic mode: how many pod vxnets (252 NICs each), default enough for 200 NICs per vxnet. */
  nicVxnets?: number;
  /** `pool` keys of `hostnic-cfg-cm` (merged over the bed's). */
  pool?: Record<string, unknown>;
  /** `iaas` keys of `hostnic-cfg-cm` (the daemons' client rate limit). */
  iaas?: Record<string, unknown>;
  /** Simulator knobs (job latency, `rateLimit`...). */
  knobs?: Partial<Knobs>;
  /** Extra kube-apiserver flags. */
  apiserverArgs?: string[];
  /** Hollow daemons started at once (default 8). */
  startConcurrency?: number;
  keepLog?: boolean;
  logger?: Logger;
  /** false: the nodes are made but their daemons left to `startNodes` (default true). */
  startDaemons?: boolean;
  /** Controller `--sync-period` in seconds (default 10). */
  controllerSyncS?: number;
}

const dotted = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");

/** Instance `i-hollow<k>` at 10.1.<k div 250>.<k mod 250 + 4>. */
function instanceOf(k: number): { id: string; ip: string } {
  return {
    id: `i-hollow${k}`,
    ip: dotted((10 << 24) + (1 << 16) + Math.floor(k / 250) * 256 + (k % 250) + 4),
  };
}

/** The simulator's scenario: a router, the node vxnet (/20), the pod vxnet(s), N instances. */
export function hollowScenario(o: HollowBedOptions): Record<string, unknown> {
  const vxnet = (id: string, cidr: string, gw: string, start: string, end: string) => ({
    id,
    vpc_router_id: "rtr-hollow1",
    cidr,
    manager_ip: gw,
    dyn_ip_start: start,
    dyn_ip_end: end,
  });
  const nicVxnets = nicVxnetIds(o);
  return {
    zone: "hollow1",
    seed: 7,
    credentials: [{ qy_access_key_id: "HOLLOWKEY0001", qy_secret_access_key: SECRET }],
    vpc_routers: [{ id: "rtr-hollow1", cidr: "10.0.0.0/8" }],
    vxnets: [
      vxnet(HOLLOW_NODE_VXNET, "10.1.0.0/20", "10.1.0.1", "10.1.14.1", "10.1.15.250"),
      // /18: 256 blocks of /26, enough for 200 nodes of 30 pods each with a block per node.
      vxnet(HOLLOW_POD_VXNET, "10.64.0.0/18", "10.64.0.1", "10.64.0.2", "10.64.63.250"),
      ...nicVxnets.map((id, i) =>
        vxnet(id, `10.80.${i}.0/24`, `10.80.${i}.1`, `10.80.${i}.2`, `10.80.${i}.254`)
      ),
    ],
    instances: Array.from({ length: o.nodes }, (_, k) => {
      const inst = instanceOf(k + 1);
      return { id: inst.id, vxnet: HOLLOW_NODE_VXNET, private_ip: inst.ip };
    }),
    knobs: { jobLatencyMs: [100, 400], ...(o.knobs ?? {}) },
  };
}

function nicVxnetIds(o: HollowBedOptions): string[] {
  if (o.mode !== "nic") return [];
  const n = o.nicVxnets ?? Math.max(1, Math.ceil(o.nodes / 4));
  return Array.from({ length: n }, (_, i) => `vxnet-hnic${i + 1}`);
}

export class HollowBed implements AsyncDisposable {
  readonly options: HollowBedOptions;
  readonly dir: string;
  readonly nodes: HollowNode[] = [];
  sim!: SimServer;
  cluster!: Cluster;
  cp!: ControlPlane;
  /** `http://127.0.0.1:<port>` of the controller's /metrics (shared mode). */
  controllerUrl = "";
  credentials = "";
  nodeKubeconfig = "";
  #controller?: Deno.ChildProcess;
  #closed = false;
  /** Nodes whose daemon did not finish closing within `DAEMON_CLOSE_MS` (see `close()`). */
  readonly hungCloses: string[] = [];

  private constructor(o: HollowBedOptions, dir: string) {
    this.options = o;
    this.dir = dir;
  }

  get logger(): Logger {
    return this.options.logger ?? nullLogger;
  }

  /** Pod vxnets of nic mode (node k pools from `nicVxnets[k % n]`). */
  get nicVxnets(): string[] {
    return nicVxnetIds(this.options);
  }

  static async start(o: HollowBedOptions): Promise<HollowBed> {
    const bed = new HollowBed(o, await Deno.makeTempDir({ prefix: "hostnic-hollow" }));
    try {
      await bed.#start();
      return bed;
    } catch (err) {
      await bed.close();
      throw err;
    }
  }

  async #start(): Promise<void> {
    const o = this.options;
    this.sim = await startSim({ scenario: scenarioFromObject(hollowScenario(o)) });
    this.credentials = `${this.dir}/qingcloud.yaml`;
    await Deno.writeTextFile(this.credentials, toYaml(this.sim.clientConfig()), { mode: 0o600 });
    this.cluster = await Cluster.start({ nodes: 0, master: true, startDaemons: false });
    this.cp = await ControlPlane.start(this.cluster, { apiserverArgs: o.apiserverArgs ?? [] });
    const cp = this.cp;
    await cp.installHostnic({ credentials: this.credentials });
    await cp.waitCrds();
    const host = `https://127.0.0.1:${cp.hostPort}`;
    if (o.mode === "shared") await this.#sharedMode(host);
    await cp.setHostnicConfig({
      hostnic: JSON.stringify({
        pool: { maxNic: 63, ...(o.mode === "nic" ? { poolLow: 2, poolHigh: 6 } : {}), ...o.pool },
        ...(o.iaas ? { iaas: o.iaas } : {}),
      }),
      "hostnic-cni": '{"cniVersion":"1.0.0","name":"hostnic","plugins":[{"type":"hostnic"}]}',
    });
    const vx = this.nicVxnets;
    const names = Array.from({ length: o.nodes }, (_, k) => `hollow-${k + 1}`);
    await cp.kubectlOk(["apply", "-f", "-"], {
      stdin: JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: names.map((name, k) => ({
          apiVersion: "v1",
          kind: "Node",
          metadata: {
            name,
            labels: { "kubernetes.io/hostname": name },
            annotations: vx.length ? { [NODE_VXNET_ANNOTATION]: vx[k % vx.length] } : {},
          },
        })),
      }),
    });
    this.nodeKubeconfig = await cp.serviceAccountKubeconfig("kube-system", "hostnic-node", {
      server: host,
      path: `${this.dir}/node.kubeconfig`,
    });
    for (let k = 0; k < o.nodes; k++) {
      this.nodes.push(
        new HollowNode({
          sim: this.sim,
          instanceId: instanceOf(k + 1).id,
          nodeName: names[k],
          dir: `${this.dir}/${names[k]}`,
          credentials: this.credentials,
          kubeconfig: this.nodeKubeconfig,
          logger: this.logger,
          keepLog: o.keepLog ?? false,
        }),
      );
    }
    if (o.startDaemons !== false) await this.startNodes(this.nodes);
  }

  /** Starts (or restarts) daemons, `startConcurrency` at a time. */
  startNodes(nodes: readonly HollowNode[]): Promise<void> {
    return eachLimit(nodes, this.options.startConcurrency ?? 8, (n) => n.start());
  }

  async #sharedMode(host: string): Promise<void> {
    const cp = this.cp;
    await cp.apply(JSON.stringify({
      apiVersion: "network.qingcloud.com/v1alpha1",
      kind: "VxNetPool",
      metadata: { name: "v-pool" },
      spec: { vxnets: [{ name: HOLLOW_POD_VXNET }], blockSize: this.options.blockSize ?? 26 },
    }));
    await cp.apply(JSON.stringify({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "hostnic-ipam-config", namespace: "kube-system" },
      data: { ipam: JSON.stringify({ Default: [HOLLOW_POD_VXNET] }) },
    }));
    const kubeconfig = await cp.serviceAccountKubeconfig("kube-system", "hostnic-controller", {
      server: host,
      path: `${this.dir}/controller.kubeconfig`,
    });
    const port = 32000 + Math.floor(Math.random() * 2000);
    this.controllerUrl = `http://127.0.0.1:${port}`;
    this.#controller = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        MAIN,
        "controller",
        "--kubeconfig",
        kubeconfig,
        "--QyAccessFilePath",
        this.credentials,
        "--manageAddr",
        `127.0.0.1:${port}`,
        "--sync-period",
        String(this.options.controllerSyncS ?? 10),
        "--leader-elect=false",
        "--loglevel",
        "info",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", POD_NAME: "hostnic-controller-hollow" },
    }).spawn();
    this.cluster.drain("controller", this.#controller.stdout);
    this.cluster.drain("controller", this.#controller.stderr);
    const deadline = Date.now() + 180_000;
    for (;;) {
      const r = await cp.kubectl(["get", "vxnetpool", "v-pool", "-o", "jsonpath={.status.ready}"]);
      if (r.stdout.trim() === "true") break;
      if (Date.now() > deadline) {
        throw new Error(`v-pool not ready after 180 s: ${this.cluster.logTail("controller")}`);
      }
      await new Promise((res) => setTimeout(res, 500));
    }
  }

  /** kube-apiserver's /metrics text. */
  apiserverMetrics(): Promise<string> {
    return this.cp.kubectlOk(["get", "--raw", "/metrics"]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#stopNodes();
    // The daemons' Kubernetes clients (undici over Deno's node TLS) keep idle connections for
    // their keep-alive timeout (4 s). Deno 2.9.6 segfaults when the API server side of such a
    // pooled connection goes away first (seen on every close of a 3-node bed with concurrent
    // ADDs), so the control plane is stopped only once the clients have let them go.
    if (this.nodes.length) await new Promise((r) => setTimeout(r, CLIENT_IDLE_MS));
    if (this.#controller) {
      try {
        this.#controller.kill("SIGTERM");
      } catch {
        // gone already
      }
      await this.#controller.status;
    }
    await this.cp?.close().catch(() => {});
    await this.cluster?.close().catch(() => {});
    await this.sim?.close().catch(() => {});
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /**
   * Stops the daemons, `CLOSE_CONCURRENCY` at once; one whose close has not finished within
   * `DAEMON_CLOSE_MS` is named in `hungCloses` and left behind (one at a time, 200 daemons of which
   * some hung held an N = 200 run for 100 minutes after its figures).
   */
  #stopNodes(): Promise<void> {
    return eachLimit(this.nodes, CLOSE_CONCURRENCY, async (node) => {
      const daemon = node.daemon;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const hung = new Promise<"hung">((r) => timer = setTimeout(() => r("hung"), DAEMON_CLOSE_MS));
      const done = node.stop().then(() => "done" as const, () => "done" as const);
      if (await Promise.race([done, hung]) === "hung") {
        this.hungCloses.push(`${node.name} (waiting for its ${daemon?.closingStep || "?"})`);
      }
      clearTimeout(timer);
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Runs `fn` over `items`, at most `limit` at once (the bed's start-up and close). */
async function eachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const queue = [...items];
  const worker = async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
  };
  await Promise.all(Array.from({ length: Math.min(limit, queue.length) }, worker));
}
