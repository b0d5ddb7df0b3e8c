/**
 * A real Kubernetes node on a simulated instance: Debian's containerd (CRI), a kubelet and a
 * kube-proxy (iptables mode) run inside the instance's network namespace and register with the
 * testbed's control plane (kube.ts). hostnic gets onto it the way users install it: its DaemonSet.
 *
 * Isolation: the DaemonSet mounts the standard host paths (/opt/cni/bin, /etc/cni/net.d,
 * /var/lib/hostnic, /var/run/hostnic, /etc/qingcloud, …) and containerd and the kubelet use theirs,
 * so each node gets its own persistent **mount namespace** in which those paths are bind mounts of
 * the node's private directories. Paths missing on the machine are created inside an overlay of
 * their nearest existing parent, so nothing is ever created, changed or mounted in the machine's
 * own directories. Every node process runs as `nsenter --mount=<ns file> --net=<instance netns>`.
 *
 * Invariants: everything the node makes lives under `dir` or in its namespaces; `close()` kills
 * every process in the node's mount namespace and their descendants (containers too), unmounts the
 * namespace and removes `dir`: no process, mount or file is left, even after a failed start.
 */
import { parse as fromYaml, stringify as toYaml } from "yaml";
import { CommandRunner } from "../linux/exec.ts";
import type { ClusterNode, CniOutcome } from "./cluster.ts";
import { Forward } from "./forward.ts";
import type { ControlPlane } from "./kube.ts";
import { PAUSE_REF } from "./images.ts";

const runner = new CommandRunner();
const dec = new TextDecoder();

/** Host paths a node owns privately (inside its mount namespace); key = private dir name. */
export const NODE_PATHS: Record<string, string> = {
  "opt-cni-bin": "/opt/cni/bin",
  "etc-cni-net.d": "/etc/cni/net.d",
  "var-lib-cni": "/var/lib/cni",
  "var-lib-kubelet": "/var/lib/kubelet",
  "var-lib-hostnic": "/var/lib/hostnic",
  "run-hostnic": "/run/hostnic",
  "etc-qingcloud": "/etc/qingcloud",
  "var-lib-containerd": "/var/lib/containerd",
  "run-containerd": "/run/containerd",
  "run-netns": "/run/netns",
  "var-log-pods": "/var/log/pods",
  "var-log-containers": "/var/log/containers",
  "etc-kubernetes": "/etc/kubernetes",
};

/** CNI plugins a node has besides hostnic (kubeadm's kubernetes-cni puts them in /opt/cni/bin). */
const STANDARD_PLUGINS = ["loopback", "bridge", "host-local", "portmap"];
const STANDARD_PLUGIN_DIR = "/usr/lib/cni";

export interface RealNodeOptions {
  /** Kubernetes node name (default: the instance id). */
  name?: string;
  /** Image archives to import into containerd (docker-archive tars) with extra tags. */
  images?: { archive: string; tags?: string[] }[];
  /**
   * The kubelet's `clusterDNS` (the `kube-system/kube-dns` Service address, as on a real cluster);
   * unset: pods get the machine's resolver, as a kubelet without cluster DNS does.
   */
  clusterDNS?: string;
}

interface Proc {
  name: string;
  child: Deno.ChildProcess;
}

/** The first RepoTag of a docker-archive (its manifest.json). */
async function archiveRef(archive: string): Promise<string | undefined> {
  const out = await runner.run(["tar", "-xOf", archive, "manifest.json"]);
  const tag = (JSON.parse(out.stdout) as { RepoTags?: string[] }[])[0]?.RepoTags?.[0];
  if (!tag) return undefined;
  // containerd names a short reference as docker.io/library/…; full ones stay as they are.
  const first = tag.split("/")[0];
  const domain = tag.includes("/") && (/[.:]/.test(first) || first === "localhost");
  return domain ? tag : `docker.io/library/${tag}`;
}

function sq(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

export class RealNode implements AsyncDisposable {
  readonly cp: ControlPlane;
  readonly instance: ClusterNode;
  readonly name: string;
  readonly dir: string;
  /** The file the node's mount namespace is bound to. */
  readonly mntns: string;
  /**
   * The file the node's UTS namespace is bound to: its hostname is the node name, as on a real
   * node (hostNetwork pods share it; the e2e suite checks that they report the node's name).
   */
  readonly utsns: string;
  /** The instance's VPC address (`--node-ip`). */
  ip = "";
  /**
   * A QingCloud SDK file for the `qcsecret` Secret whose endpoint the node reaches: the
   * simulator's TCP port, forwarded to the same port on the node's 127.0.0.1 (the simulator's
   * unix socket is not visible inside a pod).
   */
  credentials = "";
  readonly #procs = new Map<string, Proc>();
  #forward?: Forward;
  #mounted = false;
  #closed = false;

  private constructor(cp: ControlPlane, instance: ClusterNode, name: string) {
    this.cp = cp;
    this.instance = instance;
    this.name = name;
    this.dir = `${cp.cluster.dir}/real-${name}`;
    this.mntns = `${this.dir}/ns/mnt`;
    this.utsns = `${this.dir}/ns/uts`;
  }

  /** Private directory backing `hostPath` inside the node (e.g. `/opt/cni/bin`). */
  hostDir(hostPath: string): string {
    const key = Object.entries(NODE_PATHS).find(([, p]) => p === hostPath)?.[0];
    if (!key) throw new Error(`${hostPath} is not one of the node's private paths`);
    return `${this.dir}/fs/${key}`;
  }

  /** Starts containerd, the kubelet and kube-proxy on `instance` (whose daemon must not run). */
  static async start(
    cp: ControlPlane,
    instance: ClusterNode,
    o: RealNodeOptions = {},
  ): Promise<RealNode> {
    const node = new RealNode(cp, instance, o.name ?? instance.instanceId);
    try {
      await node.#start(o);
      return node;
    } catch (err) {
      const tails = ["containerd", "kubelet", "kube-proxy"].map((p) =>
        `--- ${p}: ${node.logTail(p)}`
      ).join("\n");
      await node.close();
      throw new Error(`real node ${node.name} did not start: ${(err as Error).message}\n${tails}`);
    }
  }

  async #start(o: RealNodeOptions): Promise<void> {
    const { dir } = this;
    const addrs = JSON.parse(
      (await runner.run(["ip", "-n", this.instance.netns, "-j", "-4", "addr", "show"])).stdout,
    ) as { ifname: string; addr_info: { local: string; scope: string }[] }[];
    this.ip = addrs.flatMap((a) => a.addr_info).find((a) => a.scope === "global")?.local ?? "";
    if (!this.ip) throw new Error(`instance ${this.instance.instanceId} has no VPC address`);

    await this.#mountNamespace();
    const simPort = Number(new URL(this.cp.cluster.simUrl).port);
    this.#forward = await Forward.create();
    await this.#forward.intoNamespace(this.instance.netns, simPort);
    const sdk = fromYaml(await Deno.readTextFile(this.cp.cluster.clientConfigFile)) as Record<
      string,
      unknown
    >;
    delete sdk.socket_path;
    this.credentials = `${dir}/qingcloud-config.yaml`;
    await Deno.writeTextFile(
      this.credentials,
      toYaml({ ...sdk, host: "127.0.0.1", port: simPort }),
      {
        mode: 0o600,
      },
    );
    await Deno.writeTextFile(
      `${this.hostDir("/etc/qingcloud")}/instance-id`,
      `${this.instance.instanceId}\n`,
    );
    for (const p of STANDARD_PLUGINS) {
      await Deno.copyFile(`${STANDARD_PLUGIN_DIR}/${p}`, `${this.hostDir("/opt/cni/bin")}/${p}`)
        .catch(() => {});
      await Deno.chmod(`${this.hostDir("/opt/cni/bin")}/${p}`, 0o755).catch(() => {});
    }

    // containerd: default paths, which are the node's private directories.
    const containerdConfig = `${dir}/containerd.toml`;
    await Deno.writeTextFile(
      containerdConfig,
      [
        "version = 2",
        'root = "/var/lib/containerd"',
        'state = "/run/containerd"',
        "oom_score = 0",
        'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]',
        "[grpc]",
        '  address = "/run/containerd/containerd.sock"',
        "[debug]",
        '  level = "warn"',
        '[plugins."io.containerd.grpc.v1.cri"]',
        `  sandbox_image = "${PAUSE_REF}"`,
        "  restrict_oom_score_adj = true",
        "  enable_selinux = false",
        '[plugins."io.containerd.grpc.v1.cri".containerd]',
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
        '  runtime_type = "io.containerd.runc.v2"',
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
        "  SystemdCgroup = false",
        '[plugins."io.containerd.grpc.v1.cri".cni]',
        '  bin_dir = "/opt/cni/bin"',
        '  conf_dir = "/etc/cni/net.d"',
        "",
      ].join("\n"),
    );
    this.#spawn("containerd", ["containerd", "--config", containerdConfig]);
    await this.#waitFor("containerd", async () => (await this.ctr(["version"])).code === 0);
    for (const img of o.images ?? []) await this.importImage(img.archive, img.tags ?? []);

    // Certificates: one for the kubelet's client identity and its serving endpoint.
    const pki = this.cp.pki;
    const cert = await pki.issue({
      name: `kubelet-${this.name}`,
      cn: `system:node:${this.name}`,
      orgs: ["system:nodes"],
      dns: [this.name],
      ips: [this.ip],
    });
    const proxyCert = await pki.issue({ name: `kube-proxy-${this.name}`, cn: "system:kube-proxy" });
    const kubeletKubeconfig = await this.cp.writeKubeconfig(`${dir}/kubelet.kubeconfig`, {
      server: this.cp.server,
      cert,
    });
    const proxyKubeconfig = await this.cp.writeKubeconfig(`${dir}/kube-proxy.kubeconfig`, {
      server: this.cp.server,
      cert: proxyCert,
    });
    const kubeletConfig = `${dir}/kubelet.yaml`;
    await Deno.writeTextFile(
      kubeletConfig,
      toYaml({
        apiVersion: "kubelet.config.k8s.io/v1beta1",
        kind: "KubeletConfiguration",
        cgroupDriver: "cgroupfs",
        cgroupsPerQOS: false,
        enforceNodeAllocatable: [],
        failSwapOn: false,
        oomScoreAdj: 0,
        containerRuntimeEndpoint: "unix:///run/containerd/containerd.sock",
        podLogsDir: "/var/log/pods",
        evictionHard: {
          "memory.available": "100Mi",
          "nodefs.available": "1%",
          "imagefs.available": "1%",
        },
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        authentication: {
          anonymous: { enabled: false },
          x509: { clientCAFile: pki.ca.cert },
          webhook: { enabled: true },
        },
        authorization: { mode: "Webhook" },
        tlsCertFile: cert.cert,
        tlsPrivateKeyFile: cert.key,
        clusterDomain: "cluster.local",
        ...(o.clusterDNS ? { clusterDNS: [o.clusterDNS] } : {}),
        resolvConf: "/etc/resolv.conf",
        healthzBindAddress: "127.0.0.1",
        healthzPort: 10248,
        serializeImagePulls: false,
        nodeStatusUpdateFrequency: "5s",
        syncFrequency: "10s",
        fileCheckFrequency: "10s",
      }),
    );
    this.#spawn("kubelet", [
      `${this.cp.bin}/kubelet`,
      `--config=${kubeletConfig}`,
      `--kubeconfig=${kubeletKubeconfig}`,
      `--hostname-override=${this.name}`,
      `--node-ip=${this.ip}`,
      "--v=1",
    ]);
    const proxyConfig = `${dir}/kube-proxy.yaml`;
    await Deno.writeTextFile(
      proxyConfig,
      toYaml({
        apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
        kind: "KubeProxyConfiguration",
        mode: "iptables",
        clientConnection: { kubeconfig: proxyKubeconfig },
        hostnameOverride: this.name,
        bindAddress: "0.0.0.0",
        healthzBindAddress: "127.0.0.1:10256",
        metricsBindAddress: "127.0.0.1:10249",
        // A network namespace cannot set nf_conntrack_max: leave conntrack sysctls alone.
        conntrack: {
          maxPerCore: 0,
          min: 0,
          tcpEstablishedTimeout: "0s",
          tcpCloseWaitTimeout: "0s",
        },
      }),
    );
    this.#spawn("kube-proxy", [`${this.cp.bin}/kube-proxy`, `--config=${proxyConfig}`, "--v=1"]);
    await this.#waitFor("the Node object", async () => {
      const r = await this.cp.kubectl(["get", "node", this.name]);
      return r.code === 0;
    }, 60_000);
  }

  /**
   * Makes the node's mount namespace: a private self-bind of `dir/ns` holds the namespace file;
   * inside, `/` becomes rshared (containerd needs shared or slave mounts for HostToContainer
   * propagation), missing parents get an overlay, and every NODE_PATHS entry a bind mount.
   */
  async #mountNamespace(): Promise<void> {
    const { dir } = this;
    await Deno.mkdir(`${dir}/ns`, { recursive: true });
    for (const key of Object.keys(NODE_PATHS)) {
      await Deno.mkdir(`${dir}/fs/${key}`, { recursive: true });
    }
    await runner.run(["mount", "--bind", `${dir}/ns`, `${dir}/ns`]);
    this.#mounted = true;
    await runner.run(["mount", "--make-private", `${dir}/ns`]);
    await Deno.writeTextFile(this.mntns, "");
    await Deno.writeTextFile(this.utsns, "");
    const lines = ["set -e", "mount --make-rshared /"];
    const overlaid = new Set<string>();
    for (const [key, target] of Object.entries(NODE_PATHS)) {
      if (!(await exists(target))) {
        let parent = target;
        while (!(await exists(parent))) parent = parent.slice(0, parent.lastIndexOf("/")) || "/";
        if (!overlaid.has(parent)) {
          overlaid.add(parent);
          const o = `${dir}/overlay/${parent.replaceAll("/", "_")}`;
          await Deno.mkdir(`${o}/upper`, { recursive: true });
          await Deno.mkdir(`${o}/work`, { recursive: true });
          lines.push(
            `mount -t overlay overlay -o ${
              sq(`lowerdir=${parent},upperdir=${o}/upper,workdir=${o}/work`)
            } ${sq(parent)}`,
          );
        }
        lines.push(`mkdir -p ${sq(target)}`);
      }
      lines.push(`mount --bind ${sq(`${dir}/fs/${key}`)} ${sq(target)}`);
    }
    // Overlays must come before the binds below them: sort so parents are mounted first.
    const overlays = lines.filter((l) => l.startsWith("mount -t overlay"));
    const rest = lines.filter((l) => !l.startsWith("mount -t overlay") && l !== "set -e");
    const script = ["set -e", `hostname ${sq(this.name)}`, rest[0], ...overlays, ...rest.slice(1)]
      .join("\n");
    await runner.run([
      "unshare",
      `--mount=${this.mntns}`,
      `--uts=${this.utsns}`,
      "--propagation",
      "private",
      "sh",
      "-c",
      script,
    ]);
  }

  /** argv run inside the node (its mount, UTS and, unless `net` is false, network namespaces). */
  argv(args: string[], net = true): string[] {
    return [
      "nsenter",
      `--mount=${this.mntns}`,
      `--uts=${this.utsns}`,
      ...(net ? [`--net=/run/netns/${this.instance.netns}`] : []),
      "--",
      ...args,
    ];
  }

  /** Runs a command inside the node; never throws for a non-zero exit. */
  async exec(args: string[], o: { stdin?: string; net?: boolean } = {}): Promise<CniOutcome> {
    const argv = this.argv(args, o.net ?? true);
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: o.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (o.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(o.stdin)).catch(() => {});
      await w.close().catch(() => {});
    }
    const out = await child.output();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  }

  /** `ctr -n k8s.io …` against the node's containerd (a unix socket: the network namespace is
   * not needed, and `close` must work when the instance's namespace is already gone). */
  ctr(args: string[]): Promise<CniOutcome> {
    return this.exec([
      "ctr",
      "--address",
      "/run/containerd/containerd.sock",
      "-n",
      "k8s.io",
      ...args,
    ], { net: false });
  }

  /** Imports a docker-archive into the node's containerd and adds `tags`. */
  async importImage(archive: string, tags: string[] = []): Promise<void> {
    const r = await this.ctr(["images", "import", "--no-unpack", archive]);
    if (r.code !== 0) throw new Error(`ctr images import ${archive} failed: ${r.stderr.trim()}`);
    const m = /^unpacking (\S+) /m.exec(r.stdout) ?? /^(\S+)\s/m.exec(r.stdout);
    // `--no-unpack` may print nothing: the archive's manifest names what it holds.
    const imported = m?.[1] ?? (tags.length ? await archiveRef(archive) : undefined);
    for (const t of tags) {
      if (!imported) throw new Error(`cannot tell what ${archive} imported: ${r.stdout}`);
      const t2 = await this.ctr(["images", "tag", "--force", imported, t]);
      if (t2.code !== 0) throw new Error(`ctr images tag ${t} failed: ${t2.stderr.trim()}`);
    }
  }

  #spawn(name: string, args: string[]): void {
    const argv = this.argv(args);
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      cwd: this.dir,
      env: { NO_COLOR: "1", HOME: "/root" },
    }).spawn();
    this.#procs.set(name, { name, child });
    this.cp.cluster.drain(`${this.name}-${name}`, child.stdout);
    this.cp.cluster.drain(`${this.name}-${name}`, child.stderr);
  }

  logTail(component: string): string {
    return this.cp.cluster.logTail(`${this.name}-${component}`);
  }

  async #waitFor(what: string, cond: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await cond())) {
      for (const p of this.#procs.values()) {
        const st = await Promise.race([p.child.status, Promise.resolve(undefined)]);
        if (st) throw new Error(`${p.name} exited with code ${st.code} while waiting for ${what}`);
      }
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Stops one component (SIGTERM, then SIGKILL after 10 s). */
  async stop(name: string): Promise<void> {
    const p = this.#procs.get(name);
    if (!p) return;
    this.#procs.delete(name);
    try {
      p.child.kill("SIGTERM");
    } catch {
      // gone
    }
    const timer = setTimeout(() => {
      try {
        p.child.kill("SIGKILL");
      } catch {
        // gone
      }
    }, 10_000);
    await p.child.status;
    clearTimeout(timer);
  }

  /**
   * Processes of this node: those in its mount namespace (containerd, shims, kubelet, …) and all
   * their descendants (containers have mount namespaces of their own).
   */
  async processes(): Promise<number[]> {
    let ino: number | null;
    try {
      ino = (await Deno.stat(this.mntns)).ino;
    } catch {
      return [];
    }
    const parent = new Map<number, number>();
    const inNs = new Set<number>();
    for await (const e of Deno.readDir("/proc")) {
      if (!/^\d+$/.test(e.name)) continue;
      const pid = Number(e.name);
      try {
        const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
        parent.set(pid, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
        const link = await Deno.readLink(`/proc/${pid}/ns/mnt`);
        if (link === `mnt:[${ino}]`) inNs.add(pid);
      } catch {
        // exited meanwhile
      }
    }
    const all = new Set(inNs);
    let grew = true;
    while (grew) {
      grew = false;
      for (const [pid, ppid] of parent) {
        if (!all.has(pid) && all.has(ppid)) {
          all.add(pid);
          grew = true;
        }
      }
    }
    return [...all];
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.stop("kube-proxy").catch(() => {});
    await this.stop("kubelet").catch(() => {});
    // runc's cgroups (cgroupfs driver, parent "k8s.io" = containerd's namespace) of our containers.
    const containers = this.#procs.has("containerd")
      ? (await this.ctr(["containers", "ls", "-q"]).catch(() => ({ stdout: "" }))).stdout
        .split("\n").filter((l) => /^[0-9a-f]{64}$/.test(l))
      : [];
    // The pods: containers and their shims, then containerd.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const pids = (await this.processes()).filter((p) => p !== Deno.pid);
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const name of [...this.#procs.keys()]) await this.stop(name).catch(() => {});
    await this.#forward?.close().catch(() => {});
    await removeCgroups(containers);
    if (this.#mounted) {
      await runner.run(["umount", this.mntns]).catch(() => {});
      await runner.run(["umount", this.utsns]).catch(() => {});
      await runner.run(["umount", `${this.dir}/ns`]).catch(() => {});
    }
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Removes the v1 cgroups runc made for `ids` under every controller's `k8s.io`, then `k8s.io`. */
async function removeCgroups(ids: string[]): Promise<void> {
  const root = "/sys/fs/cgroup";
  const ctrls: string[] = [];
  for await (const e of Deno.readDir(root)) if (e.isDirectory) ctrls.push(`${root}/${e.name}`);
  for (const c of ctrls) {
    for (const id of ids) await Deno.remove(`${c}/k8s.io/${id}`).catch(() => {});
    // Left when another node's containers still use it.
    await Deno.remove(`${c}/k8s.io`).catch(() => {});
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
