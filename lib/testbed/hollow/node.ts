/**
 * A hollow node (after kubemark's hollow kubelet): the product's node daemon — `startDaemon` from
 * lib/daemon/daemon.ts with its own config (defaults < ConfigMap `hostnic-cfg-cm` read through
 * the API, as `hostnic daemon start` does < flags), own state directory and LevelDB store, own
 * socket, own management server, own Kubernetes client (its Node, its pods' watches and writes),
 * own QingCloud client against the simulator, real IPAM and NIC pool — with only the Linux
 * datapath replaced by a `HollowRunner` over a `HollowKernel`. Many hollow nodes share one
 * process; nothing is shared between them but the process (and its environment variables).
 *
 * The simulator runs in this process (`startSim`, no Linux backend): a NIC the cloud attaches to
 * the node's instance appears as a link `eth<N>` (down, with the NIC's MAC) before the next
 * command the daemon runs, and disappears from wherever it is when the cloud detaches it — what
 * a hypervisor's hot-plug does. The instance's primary NIC is `eth0`, up, with the node's IP.
 *
 * Pods: `add` makes the pod's namespace in the model and runs the CNI plugin's own code
 * (`runCni` with `daemonHandlers`, lib/plugin) in process, env and stdin as a runtime gives them,
 * so the ADD reaches the daemon through its socket exactly as the plugin binary's would.
 */
import { type DaemonFlags, type FileConfig, parseConfigFile, resolveConfig } from "../../config.ts";
import { runCni } from "../../cni/dispatch.ts";
import { type Daemon, startDaemon } from "../../daemon/daemon.ts";
import { readConfigMap } from "../../daemon/kube/mod.ts";
import type { Logger } from "../../log.ts";
import { daemonHandlers } from "../../plugin/handlers.ts";
import type { SimServer } from "../../sim/server.ts";
import { HollowKernel, NODE_NS } from "./kernel.ts";
import { HollowRunner } from "./runner.ts";

export interface HollowNodeOptions {
  sim: SimServer;
  instanceId: string;
  nodeName: string;
  /** The node's own directory (state, socket, config); created. */
  dir: string;
  /** The QingCloud SDK file the daemon reads (`--QyAccessFilePath`). */
  credentials: string;
  kubeconfig: string;
  logger: Logger;
  /** A config file instead of the ConfigMap (JSON text of /etc/hostnic/hostnic.json). */
  configText?: string;
  /** Keep every datapath command (tests); default true. */
  keepLog?: boolean;
}

export interface HollowPod {
  namespace: string;
  name: string;
  containerId: string;
  netns: string;
  ip: string;
  result: Record<string, unknown>;
}

/** What one CNI call printed, as a runtime would see it. */
export interface HollowCniOutcome {
  code: number;
  stdout: string;
  stderr: string;
  json?: Record<string, unknown>;
}

export class HollowNode {
  readonly options: HollowNodeOptions;
  readonly kernel = new HollowKernel();
  readonly runner: HollowRunner;
  readonly socket: string;
  daemon?: Daemon;

  constructor(o: HollowNodeOptions) {
    this.options = o;
    this.socket = `${o.dir}/hostnic.sock`;
    this.runner = new HollowRunner({
      kernel: this.kernel,
      beforeRun: () => this.hotplug(),
      keepLog: o.keepLog ?? true,
    });
  }

  get name(): string {
    return this.options.nodeName;
  }

  get instanceId(): string {
    return this.options.instanceId;
  }

  /** `http://host:port` of the daemon's management server (`/metrics`). */
  get manageUrl(): string {
    return `http://${this.daemon!.manageAddr}`;
  }

  /** Plugs NICs the cloud attached to the instance, unplugs those it detached. */
  hotplug(): void {
    const world = this.options.sim.world;
    const attached = new Map<string, { primary: boolean; ip: number | null }>();
    for (const nic of world.nics.values()) {
      if (nic.instanceId === this.instanceId && nic.status === "in-use") {
        attached.set(nic.id.toLowerCase(), { primary: nic.role === 1, ip: nic.privateIp });
      }
    }
    const present = this.kernel.physicalMacs();
    for (const [mac, nic] of attached) {
      if (present.has(mac)) continue;
      const link = this.kernel.addLink(NODE_NS, {
        name: nic.primary ? "eth0" : this.kernel.freeEthName(NODE_NS),
        mac,
        mtu: 1500,
        up: nic.primary,
      });
      if (nic.primary && nic.ip !== null) this.#primaryAddress(link.name, nic.ip);
    }
    for (const mac of present) if (!attached.has(mac)) this.kernel.unplug(mac);
  }

  /** The node's own address and default route on eth0 (DHCP's work on a real instance). */
  #primaryAddress(dev: string, ip: number): void {
    const vx = [...this.options.sim.world.vxnets.values()].find((v) =>
      v.networkAddr <= ip && ip < v.networkAddr + 2 ** (32 - v.prefix)
    );
    const dotted = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
    this.kernel.line(NODE_NS, `address replace ${dotted(ip)}/${vx?.prefix ?? 24} dev ${dev}`);
    if (vx) {
      this.kernel.line(NODE_NS, `route replace default via ${dotted(vx.managerIp)} dev ${dev}`);
    }
  }

  /** Starts the daemon as `hostnic daemon start` would with these flags; resolves when ready. */
  async start(): Promise<void> {
    const o = this.options;
    await Deno.mkdir(`${o.dir}/state`, { recursive: true });
    this.hotplug();
    const configPath = `${o.dir}/hostnic.json`;
    const flags: DaemonFlags = {
      qyAccessFilePath: o.credentials,
      manageAddr: "127.0.0.1:0",
      instanceId: o.instanceId,
      stateDir: `${o.dir}/state`,
      socket: this.socket,
      nodeName: o.nodeName,
      kubeconfig: o.kubeconfig,
      ...(o.configText !== undefined ? { config: configPath } : {}),
    };
    let file: FileConfig;
    if (o.configText !== undefined) {
      await Deno.writeTextFile(configPath, o.configText);
      file = parseConfigFile(o.configText, configPath);
    } else {
      const fromCluster = await readConfigMap({ kubeconfig: o.kubeconfig, logger: o.logger });
      file = fromCluster?.config ?? parseConfigFile("", configPath);
    }
    const config = resolveConfig(file, flags, configPath);
    this.daemon = await startDaemon({
      config,
      logger: o.logger.child({ node: o.nodeName }),
      runner: this.runner,
    });
  }

  /** Stops the daemon as SIGTERM would (state kept; a later `start` recovers from it). */
  async stop(): Promise<void> {
    const d = this.daemon;
    this.daemon = undefined;
    await d?.close();
  }

  /** The network config a runtime passes on stdin. */
  netConf(): Record<string, unknown> {
    return {
      cniVersion: "1.0.0",
      name: "hostnic",
      type: "hostnic",
      socketPath: this.socket,
      journalDir: `${this.options.dir}/state/journal`,
    };
  }

  /** One CNI invocation of the plugin's own code, in process. */
  async cni(env: Record<string, string>, conf = this.netConf()): Promise<HollowCniOutcome> {
    const enc = new TextEncoder();
    let stdout = "";
    let stderr = "";
    const code = await runCni({
      env: (k) => env[k],
      readStdin: () => Promise.resolve(enc.encode(JSON.stringify(conf))),
      writeStdout: (t) => {
        stdout += t;
        return Promise.resolve();
      },
      writeStderr: (t) => {
        stderr += t;
        return Promise.resolve();
      },
      // The pod's namespace is a model namespace: it exists when the kernel has it.
      handlers: daemonHandlers({
        netnsKind: (p) => Promise.resolve(this.kernel.namespaces.has(p) ? "netns" : "missing"),
      }),
    });
    let json: Record<string, unknown> | undefined;
    try {
      json = stdout.trim() ? JSON.parse(stdout) : undefined;
    } catch {
      json = undefined;
    }
    return { code, stdout, stderr, ...(json ? { json } : {}) };
  }

  /** ADD of pod `namespace/name` (a new sandbox with its own namespace); throws on failure. */
  async add(namespace: string, name: string): Promise<HollowPod> {
    const containerId = `c${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
    const netns = `/var/run/netns/hollow-${containerId}`;
    this.kernel.createNetns(netns);
    const out = await this.cni(this.#env("ADD", { containerId, netns, namespace, name }));
    if (out.code !== 0) {
      this.kernel.deleteNetns(netns);
      throw new HollowCniError(`ADD ${namespace}/${name} on ${this.name}`, out);
    }
    const ips = (out.json?.ips ?? []) as { address: string }[];
    return {
      namespace,
      name,
      containerId,
      netns,
      ip: ips[0]?.address.split("/")[0] ?? "",
      result: out.json!,
    };
  }

  /** DEL of a pod; the runtime then removes its namespace. Throws on failure. */
  async del(p: HollowPod): Promise<void> {
    const out = await this.cni(this.#env("DEL", { ...p }));
    if (out.code !== 0) {
      throw new HollowCniError(`DEL ${p.namespace}/${p.name} on ${this.name}`, out);
    }
    this.kernel.deleteNetns(p.netns);
  }

  #env(
    command: string,
    p: { containerId: string; netns: string; namespace: string; name: string },
  ): Record<string, string> {
    return {
      CNI_COMMAND: command,
      CNI_CONTAINERID: p.containerId,
      CNI_NETNS: p.netns,
      CNI_IFNAME: "eth0",
      CNI_PATH: "/opt/cni/bin",
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${p.namespace};K8S_POD_NAME=${p.name}`,
    };
  }
}

export class HollowCniError extends Error {
  readonly outcome: HollowCniOutcome;
  constructor(what: string, outcome: HollowCniOutcome) {
    const msg = (outcome.json?.msg as string | undefined) ?? outcome.stderr.trim();
    super(`${what} failed (exit ${outcome.code}): ${msg} ${outcome.json?.details ?? ""}`.trim());
    this.outcome = outcome;
  }
}
