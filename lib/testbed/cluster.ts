/**
 * A whole hostnic installation on one machine, made of real processes: the simulator with its
 * Linux backend (`hostnic sim serve --linux`), one `hostnic daemon start` per simulated node run
 * inside the node's network namespace, and pods as network namespaces plumbed by invoking the CNI
 * plugin the way a runtime does (env + stdin, inside the node's namespace). Used by `deno task
 * demo`, the end-to-end tests and the benchmarks.
 *
 * Everything it makes (namespaces named `<prefix>-…`, temp dir, processes) is removed by
 * `close()`, which also runs `sim down` for namespaces of a simulator that died.
 */
import { stringify as toYaml } from "yaml";
import { RpcClient } from "../rpc/client.ts";
import { RPC } from "../rpc/protocol.ts";
import type { PoolView } from "../rpc/api.ts";
import { CommandRunner } from "../linux/exec.ts";
import { deleteNamespaces, instanceNamespace, leftoverNamespaces } from "../sim/linux.ts";
import { ProcessLogs, secretLeaks } from "./logs.ts";
import { claimPrefix, releasePrefix } from "./owner.ts";
import { type CniOutcome, MAIN, runAdmin, runCni, simReady, spawnSim } from "./processes.ts";
import {
  MASTER_INSTANCE,
  MASTER_IP,
  POD_VXNET,
  TESTBED_SECRET,
  testbedScenario,
} from "./scenario.ts";

export type { CniOutcome } from "./processes.ts";
export {
  MASTER_INSTANCE,
  MASTER_IP,
  NODE_VXNET,
  POD_GATEWAY,
  POD_VXNET,
  TESTBED_SECRET,
} from "./scenario.ts";

const runner = new CommandRunner();

export interface ClusterOptions {
  /** Number of nodes (instances), default 2. */
  nodes?: number;
  /** `--PoolSize` of every daemon (default 3; not passed when `pool.poolLow` is given). */
  poolSize?: number;
  /** Simulator job latency (default 200 ms). */
  jobLatencyMs?: number;
  /** Namespace prefix; default `tb<random>`. Must be short (names are `<prefix>-<instance>`). */
  prefix?: string;
  /** Extra `pool` keys for the daemons' config file (e.g. maxNic). */
  pool?: Record<string, unknown>;
  /** Extra `daemon start` flags. */
  daemonArgs?: string[];
  /** `--vxnets` of every daemon (default `[POD_VXNET]`); `[]` leaves the flag out. */
  vxnets?: string[];
  /**
   * false: the daemons get neither `--config` nor `--PoolSize`, so their config comes from the
   * defaults or (with Kubernetes) the ConfigMap. Default true.
   */
  configFile?: boolean;
  /** false: `start` leaves the daemons to the test (`node.startDaemon(args)`). Default true. */
  startDaemons?: boolean;
  /** The daemons' `iaas` config section (e.g. `{ callsPerSecond, burst }`). */
  iaas?: Record<string, unknown>;
  /** Extra simulator knobs. */
  knobs?: Record<string, unknown>;
  /**
   * Adds the master instance (`MASTER_INSTANCE`, `MASTER_IP` in the node vxnet) that runs no
   * daemon: the Kubernetes control plane lives there (lib/testbed/kube.ts).
   */
  master?: boolean;
  /** Called with each line the processes print on stderr (default: kept in files only). */
  onLog?: (who: string, line: string) => void;
}

export interface Pod {
  name: string;
  /** Namespace name and path (`CNI_NETNS`). */
  netns: string;
  path: string;
  containerId: string;
  ifName: string;
  node: ClusterNode;
  /** Pod IP (without prefix) from the ADD result. */
  ip: string;
  result: Record<string, unknown>;
}

export class ClusterNode {
  readonly cluster: Cluster;
  readonly instanceId: string;
  readonly netns: string;
  readonly dir: string;
  readonly socket: string;
  daemon?: Deno.ChildProcess;
  #logs: Promise<void>[] = [];
  #exit?: Deno.CommandStatus;

  constructor(cluster: Cluster, instanceId: string) {
    this.cluster = cluster;
    this.instanceId = instanceId;
    this.netns = instanceNamespace(cluster.prefix, instanceId);
    this.dir = `${cluster.dir}/${instanceId}`;
    this.socket = `${this.dir}/hostnic.sock`;
  }

  get client(): RpcClient {
    return new RpcClient(this.socket, { timeoutMs: 10_000 });
  }

  /** The CNI network config the runtime passes on stdin (one plugin, cniVersion 1.0.0). */
  netConf(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      cniVersion: "1.0.0",
      name: "hostnic",
      type: "hostnic",
      socketPath: this.socket,
      journalDir: `${this.dir}/state/journal`,
      ...extra,
    };
  }

  /** Starts `hostnic daemon start` inside the node namespace. */
  async startDaemon(
    extraArgs: string[] = [],
    o: { env?: Record<string, string> } = {},
  ): Promise<void> {
    await Deno.mkdir(this.dir, { recursive: true });
    const c = this.cluster;
    const args = [
      `--net=/run/netns/${this.netns}`,
      Deno.execPath(),
      "run",
      "-A",
      "--quiet",
      MAIN,
      "daemon",
      "start",
      ...(c.options.configFile === false ? [] : ["--config", c.configFile]),
      "--QyAccessFilePath",
      c.clientConfigFile,
      "--instance-id",
      this.instanceId,
      "--state-dir",
      `${this.dir}/state`,
      "--socket",
      this.socket,
      "--manageAddr",
      "127.0.0.1:31081",
      ...((c.options.vxnets ?? [POD_VXNET]).length > 0
        ? ["--vxnets", (c.options.vxnets ?? [POD_VXNET]).join(",")]
        : []),
      // --PoolSize sets poolLow = poolHigh; left out when the test sets them in the file.
      ...(c.options.pool?.poolLow === undefined && c.options.configFile !== false
        ? ["--PoolSize", String(c.options.poolSize ?? 3)]
        : []),
      ...(c.options.daemonArgs ?? []),
      ...extraArgs,
    ];
    this.daemon = new Deno.Command("nsenter", {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...o.env },
    }).spawn();
    this.#exit = undefined;
    const child = this.daemon;
    child.status.then((st) => {
      if (this.daemon === child) this.#exit = st;
    });
    const name = `daemon-${this.instanceId}`;
    this.#logs.push(c.drain(name, this.daemon.stdout), c.drain(name, this.daemon.stderr));
  }

  /** Waits until the daemon answers ready and (optionally) holds `free` free NICs. */
  async waitReady(o: { free?: number; timeoutMs?: number } = {}): Promise<PoolView> {
    const deadline = Date.now() + (o.timeoutMs ?? 60_000);
    let last = "no answer yet";
    for (;;) {
      const status = await this.daemonExited();
      if (status) {
        throw new Error(`daemon of ${this.instanceId} exited (${status}): ${this.tail()}`);
      }
      try {
        const p = await this.client.call<PoolView>(RPC.adminPool);
        if (p.ready && (o.free === undefined || (p.free >= o.free && p.pending === 0))) return p;
        last = JSON.stringify(p);
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      if (Date.now() > deadline) {
        throw new Error(`daemon of ${this.instanceId} not ready: ${last}; log: ${this.tail()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Waits until the pool view satisfies `pred`. */
  async waitPool(pred: (p: PoolView) => boolean, timeoutMs = 60_000): Promise<PoolView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = await this.client.call<PoolView>(RPC.adminPool);
      if (pred(p)) return p;
      if (Date.now() > deadline) throw new Error(`pool never matched: ${JSON.stringify(p)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Why the daemon is not running (undefined while it runs). */
  daemonExited(): Promise<string | undefined> {
    if (!this.daemon) return Promise.resolve("not started");
    const st = this.#exit;
    return Promise.resolve(
      st ? `code ${st.code}${st.signal ? ` signal ${st.signal}` : ""}` : undefined,
    );
  }

  /** Stops the daemon with `signal` and waits for it to exit. */
  async stopDaemon(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus | undefined> {
    const d = this.daemon;
    if (!d) return undefined;
    this.daemon = undefined;
    try {
      d.kill(signal);
    } catch {
      // already gone
    }
    const st = await d.status;
    await Promise.all(this.#logs.splice(0));
    return st;
  }

  tail(): string {
    return this.cluster.logTail(`daemon-${this.instanceId}`);
  }

  /** Runs the CNI plugin inside the node namespace, as a runtime would. */
  async cni(
    command: string,
    o: {
      containerId: string;
      netns?: string;
      ifName?: string;
      args?: string;
      conf?: Record<string, unknown>;
    },
  ): Promise<CniOutcome> {
    return await runCni(command, { ...o, nodeNetns: this.netns, conf: o.conf ?? this.netConf() });
  }

  /** Creates a pod namespace and ADDs it; throws with the plugin's answer when ADD fails. */
  async addPod(
    name: string,
    o: { args?: string; ifName?: string; conf?: Record<string, unknown> } = {},
  ): Promise<Pod> {
    const netns = `${this.cluster.prefix}-p-${name}`;
    await runner.run(["ip", "netns", "add", netns]);
    this.cluster.podNamespaces.add(netns);
    const containerId = `ctr-${name}`;
    const path = `/run/netns/${netns}`;
    const args = o.args ?? `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${name}`;
    const res = await this.cni("ADD", {
      containerId,
      netns: path,
      ifName: o.ifName,
      args,
      conf: o.conf,
    });
    if (res.code !== 0 || !res.json) {
      throw new Error(`ADD of pod ${name} failed (exit ${res.code}): ${res.stdout} ${res.stderr}`);
    }
    const ips = res.json.ips as { address: string }[];
    return {
      name,
      netns,
      path,
      containerId,
      ifName: o.ifName ?? "eth0",
      node: this,
      ip: ips[0].address.split("/")[0],
      result: res.json,
    };
  }

  /** DELs a pod and removes its namespace. */
  async delPod(pod: Pod, o: { keepNetns?: boolean } = {}): Promise<CniOutcome> {
    const res = await this.cni("DEL", {
      containerId: pod.containerId,
      netns: pod.path,
      ifName: pod.ifName,
      args: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod.name}`,
    });
    if (!o.keepNetns) {
      await runner.run(["ip", "netns", "del", pod.netns]).catch(() => {});
      this.cluster.podNamespaces.delete(pod.netns);
    }
    return res;
  }

  /** `hostnic admin …` against this node's daemon. */
  async admin(args: string[]): Promise<CniOutcome> {
    return await runAdmin(this.socket, args);
  }
}

export class Cluster implements AsyncDisposable {
  readonly options: ClusterOptions;
  readonly prefix: string;
  readonly dir: string;
  readonly nodes: ClusterNode[] = [];
  readonly podNamespaces = new Set<string>();
  /** The master instance when `options.master` is set. */
  readonly master?: { id: string; ip: string; netns: string };
  simUrl = "";
  sim?: Deno.ChildProcess;
  readonly #logs: ProcessLogs;
  readonly #drains: Promise<void>[] = [];

  private constructor(options: ClusterOptions, dir: string) {
    this.options = options;
    this.prefix = options.prefix ?? `tb${crypto.randomUUID().replace(/-/g, "").slice(0, 5)}`;
    this.dir = dir;
    this.#logs = new ProcessLogs(dir, options.onLog);
    if (options.master) {
      this.master = {
        id: MASTER_INSTANCE,
        ip: MASTER_IP,
        netns: instanceNamespace(this.prefix, MASTER_INSTANCE),
      };
    }
  }

  get scenarioFile(): string {
    return `${this.dir}/scenario.yaml`;
  }
  get clientConfigFile(): string {
    return `${this.dir}/qingcloud.yaml`;
  }
  get configFile(): string {
    return `${this.dir}/hostnic.json`;
  }

  static async start(options: ClusterOptions = {}): Promise<Cluster> {
    const dir = await Deno.makeTempDir({ prefix: "hostnic-tb" });
    const c = new Cluster(options, dir);
    try {
      await claimPrefix(runner, c.prefix, dir);
    } catch (err) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw err;
    }
    try {
      await c.#startSim();
      const n = options.nodes ?? 2;
      for (let i = 1; i <= n; i++) c.nodes.push(new ClusterNode(c, `i-tbnode${i}`));
      if (options.startDaemons !== false) {
        await Promise.all(c.nodes.map((node) => node.startDaemon()));
        await Promise.all(c.nodes.map((node) => node.waitReady()));
      }
      return c;
    } catch (err) {
      await c.close();
      throw err;
    }
  }

  async #startSim(): Promise<void> {
    const scenario = testbedScenario({
      nodes: this.options.nodes ?? 2,
      master: this.master !== undefined,
      prefix: this.prefix,
      jobLatencyMs: this.options.jobLatencyMs,
      knobs: this.options.knobs,
    });
    await Deno.writeTextFile(this.scenarioFile, toYaml(scenario));
    await Deno.writeTextFile(
      this.configFile,
      JSON.stringify(
        {
          pool: { ...(this.options.pool ?? {}) },
          ...(this.options.iaas ? { iaas: this.options.iaas } : {}),
        },
        null,
        2,
      ),
    );
    this.sim = spawnSim({
      scenarioFile: this.scenarioFile,
      socket: `${this.dir}/sim.sock`,
      clientConfigFile: this.clientConfigFile,
    });
    this.#drains.push(this.drain("sim-err", this.sim.stderr));
    this.simUrl = await simReady(this.sim, { logs: this.#logs, drains: this.#drains });
  }

  /** Collects a process's stream into memory (tail for error messages) and a log file. */
  drain(name: string, stream: ReadableStream<Uint8Array>): Promise<void> {
    return this.#logs.drain(name, stream);
  }

  /** The last 2000 characters process `name` printed. */
  logTail(name: string): string {
    return this.#logs.tail(name);
  }

  /** The simulator's control API (`/_sim/...`). */
  async simControl<T = Record<string, unknown>>(
    path: string,
    body?: unknown,
  ): Promise<T> {
    const base = new URL(this.simUrl);
    const res = await fetch(`${base.origin}/_sim/${path}`, {
      method: body === undefined ? "GET" : "POST",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`sim control ${path}: ${JSON.stringify(json)}`);
    return json as T;
  }

  async counters(): Promise<Record<string, number>> {
    return (await this.simControl<{ counters: Record<string, number> }>("counters")).counters;
  }

  /** Every NIC the simulated cloud holds (primary NICs of the instances included). */
  async simNics(): Promise<SimNic[]> {
    const state = await this.simControl<{ nics: SimNic[] }>("state");
    return state.nics;
  }

  /** `ping` from a pod namespace; true when every probe was answered. */
  async ping(fromNetns: string, ip: string, count = 2): Promise<boolean> {
    try {
      await runner.run(["ping", "-c", String(count), "-i", "0.2", "-W", "2", ip], {
        netns: fromNetns,
      });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Files under the cluster's directory (daemon and simulator logs, state stores, journals) that
   * contain the simulated cloud's secret key. Only the credentials file and the simulator's
   * scenario may hold it. `close()` runs this for every cluster and fails if anything leaked.
   */
  secretLeaks(): Promise<{ scanned: string[]; leaks: string[] }> {
    return secretLeaks(this.dir, {
      secret: TESTBED_SECRET,
      allowed: new Set([this.clientConfigFile, this.scenarioFile]),
    });
  }

  async close(): Promise<void> {
    for (const node of this.nodes) await node.stopDaemon("SIGTERM").catch(() => {});
    if (this.sim) {
      try {
        this.sim.kill("SIGTERM");
      } catch {
        // gone already
      }
      await this.sim.status;
    }
    await Promise.all(this.#drains);
    await deleteNamespaces(runner, [...this.podNamespaces]).catch(() => {});
    const left = await leftoverNamespaces(runner, this.prefix).catch(() => []);
    if (left.length) await deleteNamespaces(runner, left).catch(() => {});
    const { leaks } = await this.secretLeaks();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    await releasePrefix(this.prefix);
    if (leaks.length) {
      throw new Error(`The secret access key was written to: ${leaks.join(", ")}`);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A NIC as the simulator's state snapshot shows it. */
export interface SimNic {
  id: string;
  name: string;
  status: "available" | "in-use";
  /** "" when available. */
  instanceId: string;
  vxnetId: string;
  privateIp: string | null;
  role: 0 | 1;
}
