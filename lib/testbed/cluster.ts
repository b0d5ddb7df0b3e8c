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

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const runner = new CommandRunner();
const dec = new TextDecoder();

export const POD_VXNET = "vxnet-tbpods";
export const NODE_VXNET = "vxnet-tbnodes";
export const POD_GATEWAY = "172.30.8.1";
export const MASTER_INSTANCE = "i-tbmaster";
export const MASTER_IP = "172.30.1.5";
/** The simulated cloud's secret key: tests check it never reaches a log or state file. */
export const TESTBED_SECRET = "tb-secret-key-0001-do-not-log";

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

export interface CniOutcome {
  code: number;
  stdout: string;
  stderr: string;
  /** Parsed stdout when it is JSON. */
  json?: Record<string, unknown>;
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

/** A finished process as tests read it: exit code, text, and stdout parsed when it is JSON. */
function outcome(out: Deno.CommandOutput): CniOutcome {
  const stdout = dec.decode(out.stdout);
  let json: Record<string, unknown> | undefined;
  try {
    json = stdout.trim() ? JSON.parse(stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { code: out.code, stdout, stderr: dec.decode(out.stderr), json };
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
    const env: Record<string, string> = {
      CNI_COMMAND: command,
      CNI_PATH: "/opt/cni/bin",
      NO_COLOR: "1",
      RUST_BACKTRACE: "0",
    };
    if (o.containerId) env.CNI_CONTAINERID = o.containerId;
    if (o.netns !== undefined) env.CNI_NETNS = o.netns;
    env.CNI_IFNAME = o.ifName ?? "eth0";
    if (o.args) env.CNI_ARGS = o.args;
    const child = new Deno.Command("nsenter", {
      args: [`--net=/run/netns/${this.netns}`, Deno.execPath(), "run", "-A", "--quiet", MAIN],
      env,
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(JSON.stringify(o.conf ?? this.netConf())));
    await w.close();
    return outcome(await child.output());
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
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", MAIN, "admin", "--socket", this.socket, ...args],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    return outcome(out);
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
  readonly #logText = new Map<string, string>();
  readonly #drains: Promise<void>[] = [];

  private constructor(options: ClusterOptions, dir: string) {
    this.options = options;
    this.prefix = options.prefix ?? `tb${crypto.randomUUID().replace(/-/g, "").slice(0, 5)}`;
    this.dir = dir;
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
    const n = this.options.nodes ?? 2;
    const scenario = {
      zone: "tb1",
      seed: 11,
      credentials: [{
        qy_access_key_id: "TBACCESSKEY0001",
        qy_secret_access_key: TESTBED_SECRET,
      }],
      vpc_routers: [{ id: "rtr-tb0001", cidr: "172.30.0.0/16" }],
      vxnets: [
        {
          id: NODE_VXNET,
          vpc_router_id: "rtr-tb0001",
          cidr: "172.30.1.0/24",
          manager_ip: "172.30.1.1",
          dyn_ip_start: "172.30.1.100",
          dyn_ip_end: "172.30.1.250",
        },
        {
          id: POD_VXNET,
          vpc_router_id: "rtr-tb0001",
          cidr: "172.30.8.0/22",
          manager_ip: POD_GATEWAY,
          dyn_ip_start: "172.30.8.10",
          dyn_ip_end: "172.30.11.250",
        },
        {
          id: "vxnet-tbother",
          vpc_router_id: "rtr-tb0001",
          cidr: "172.30.16.0/24",
          manager_ip: "172.30.16.1",
          dyn_ip_start: "172.30.16.10",
          dyn_ip_end: "172.30.16.250",
        },
      ],
      instances: [
        ...(this.master ? [{ id: MASTER_INSTANCE, vxnet: NODE_VXNET, private_ip: MASTER_IP }] : []),
        ...Array.from({ length: n }, (_, i) => ({
          id: `i-tbnode${i + 1}`,
          vxnet: NODE_VXNET,
          private_ip: `172.30.1.${10 + i}`,
        })),
      ],
      knobs: { jobLatencyMs: this.options.jobLatencyMs ?? 200, ...(this.options.knobs ?? {}) },
      linux: { prefix: this.prefix },
    };
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
    this.sim = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        MAIN,
        "sim",
        "serve",
        "--linux",
        "--scenario",
        this.scenarioFile,
        "--socket",
        `${this.dir}/sim.sock`,
        "--write-client-config",
        this.clientConfigFile,
        "--log-level",
        "warn",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
    }).spawn();
    this.#drains.push(this.drain("sim-err", this.sim.stderr));
    const lines = this.sim.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    const deadline = Date.now() + 60_000;
    while (!buf.includes("\n")) {
      const timer = new Promise<"timeout">((r) =>
        setTimeout(() => r("timeout"), Math.max(0, deadline - Date.now()))
      );
      const next = await Promise.race([lines.read(), timer]);
      if (next === "timeout" || next.done) {
        throw new Error(`simulator did not start: ${buf} ${this.logTail("sim-err")}`);
      }
      buf += next.value;
    }
    const m = /^ready (\S+)/m.exec(buf);
    if (!m) throw new Error(`simulator said "${buf.trim()}" instead of ready`);
    this.simUrl = m[1];
    this.#drains.push((async () => {
      for (;;) {
        const r = await lines.read();
        if (r.done) return;
      }
    })());
  }

  /** Collects a process's stream into memory (tail for error messages) and a log file. */
  drain(name: string, stream: ReadableStream<Uint8Array>): Promise<void> {
    const onLog = this.options.onLog;
    return (async () => {
      const file = await Deno.open(`${this.dir}/${name}.log`, {
        create: true,
        append: true,
      });
      try {
        for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
          await file.write(new TextEncoder().encode(chunk));
          const text = (this.#logText.get(name) ?? "") + chunk;
          this.#logText.set(name, text.slice(-8000));
          if (onLog) { for (const l of chunk.split("\n").filter(Boolean)) onLog(name, l); }
        }
      } finally {
        file.close();
      }
    })().catch(() => {});
  }

  logTail(name: string): string {
    return (this.#logText.get(name) ?? "").slice(-2000);
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
  async secretLeaks(): Promise<{ scanned: string[]; leaks: string[] }> {
    const allowed = new Set([this.clientConfigFile, this.scenarioFile]);
    const secret = new TextEncoder().encode(TESTBED_SECRET);
    const scanned: string[] = [];
    const leaks: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for await (const e of Deno.readDir(dir)) {
        const path = `${dir}/${e.name}`;
        if (e.isDirectory) await walk(path);
        else if (e.isFile && !allowed.has(path)) {
          scanned.push(path);
          if (containsBytes(await Deno.readFile(path), secret)) leaks.push(path);
        }
      }
    };
    await walk(this.dir).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    return { scanned, leaks };
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

function containsBytes(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}
