/**
 * A real Kubernetes control plane for the testbed: etcd, kube-apiserver, kube-controller-manager
 * and kube-scheduler (built by `deno task k8s:build`, see k8s/build.sh) run inside the simulator's
 * master instance namespace, so the API server has a real VPC address that every simulated node
 * reaches through the simulated SDN, as on QingCloud.
 *
 * Per run it makes a throw-away CA and certificates, an admin kubeconfig for use inside the
 * simulated VPC (`kubeconfig`) and one for this process through a loopback forward
 * (`hostKubeconfig`), and service-account kubeconfigs from the TokenRequest API. `close()` stops
 * every process it started and removes its directory; the master's namespace belongs to the
 * `Cluster` and goes with it.
 */
import { stringify as toYaml } from "yaml";
import type { Cluster, CniOutcome } from "./cluster.ts";
import { FaultProxy } from "./fault_proxy.ts";
import { Forward } from "./forward.ts";
import { Pki } from "./pki.ts";

const CRDS_FILE = new URL("../../deploy/crds/network.qingcloud.com_crds.yaml", import.meta.url)
  .pathname;

const BUILD_SCRIPT = new URL("../../k8s/build.sh", import.meta.url).pathname;
const REPO = new URL("../../", import.meta.url).pathname;
const dec = new TextDecoder();

export const API_PORT = 6443;
/** The Service network; the `kubernetes` Service takes its first address. */
export const SERVICE_CIDR = "10.43.0.0/16";
export const KUBERNETES_SERVICE_IP = "10.43.0.1";
export const K8S_COMPONENTS = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kubectl",
] as const;

/** The directory holding the built binaries; throws naming the command that builds them. */
export async function kubernetesBinDir(): Promise<string> {
  const fromEnv = Deno.env.get("HOSTNIC_K8S_BIN");
  if (fromEnv) return fromEnv;
  const out = await new Deno.Command("bash", {
    args: [BUILD_SCRIPT, "--print-dir"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) {
    throw new Error(
      "The Kubernetes binaries are not built: run `deno task k8s:build` (k8s/build.sh) first",
    );
  }
  return dec.decode(out.stdout).trim();
}

export interface ControlPlaneOptions {
  /** Extra kube-apiserver flags. */
  apiserverArgs?: string[];
}

interface Proc {
  name: string;
  argv: string[];
  child?: Deno.ChildProcess;
}

export class ControlPlane implements AsyncDisposable {
  readonly cluster: Cluster;
  readonly bin: string;
  readonly dir: string;
  readonly pki: Pki;
  /** The master's VPC address. */
  readonly address: string;
  /** `https://<master VPC address>:6443`. */
  readonly server: string;
  /** Admin kubeconfig with the VPC address (for processes inside simulated instances). */
  readonly kubeconfig: string;
  /** Admin kubeconfig through a loopback forward (for this process and host-side kubectl). */
  hostKubeconfig = "";
  hostPort = 0;
  readonly #procs = new Map<string, Proc>();
  readonly #proxies: FaultProxy[] = [];
  readonly #forward: Forward;
  #closed = false;

  private constructor(
    o: { cluster: Cluster; bin: string; dir: string; pki: Pki; forward: Forward },
  ) {
    this.cluster = o.cluster;
    this.bin = o.bin;
    this.dir = o.dir;
    this.pki = o.pki;
    this.#forward = o.forward;
    const master = o.cluster.master;
    if (!master) throw new Error("The cluster has no master instance (ClusterOptions.master)");
    this.address = master.ip;
    this.server = `https://${this.address}:${API_PORT}`;
    this.kubeconfig = `${o.dir}/admin.kubeconfig`;
  }

  get masterNetns(): string {
    return this.cluster.master!.netns;
  }

  /** Starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler in the master. */
  static async start(cluster: Cluster, opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const bin = await kubernetesBinDir();
    for (const c of K8S_COMPONENTS) {
      await Deno.stat(`${bin}/${c}`).catch(() => {
        throw new Error(`${bin}/${c} is missing: run \`deno task k8s:build\``);
      });
    }
    const dir = `${cluster.dir}/k8s`;
    const pki = await Pki.create(`${dir}/pki`);
    const forward = await Forward.create();
    const cp = new ControlPlane({ cluster, bin, dir, pki, forward });
    try {
      await cp.#start(opts);
      return cp;
    } catch (err) {
      await cp.close();
      throw err;
    }
  }

  async #start(opts: ControlPlaneOptions): Promise<void> {
    const { pki, dir } = this;
    const serving = await pki.issue({
      name: "apiserver",
      cn: "kube-apiserver",
      dns: ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost"],
      ips: [this.address, "127.0.0.1", KUBERNETES_SERVICE_IP],
    });
    const admin = await pki.issue({ name: "admin", cn: "admin", orgs: ["system:masters"] });
    const kcm = await pki.issue({ name: "kcm", cn: "system:kube-controller-manager" });
    const sched = await pki.issue({ name: "scheduler", cn: "system:kube-scheduler" });
    const kubeletClient = await pki.issue({
      name: "apiserver-kubelet-client",
      cn: "kube-apiserver-kubelet-client",
      orgs: ["system:masters"],
    });
    const sa = await pki.serviceAccountKeys();
    const inside = `https://127.0.0.1:${API_PORT}`;
    await this.writeKubeconfig(this.kubeconfig, { server: this.server, cert: admin });
    const kcmConfig = `${dir}/kcm.kubeconfig`;
    const schedConfig = `${dir}/scheduler.kubeconfig`;
    await this.writeKubeconfig(kcmConfig, { server: inside, cert: kcm });
    await this.writeKubeconfig(schedConfig, { server: inside, cert: sched });

    this.#define("etcd", [
      `${this.bin}/etcd`,
      "--name=master",
      `--data-dir=${dir}/etcd`,
      "--listen-client-urls=http://127.0.0.1:2379",
      "--advertise-client-urls=http://127.0.0.1:2379",
      "--listen-peer-urls=http://127.0.0.1:2380",
      "--initial-advertise-peer-urls=http://127.0.0.1:2380",
      "--initial-cluster=master=http://127.0.0.1:2380",
      "--unsafe-no-fsync",
      "--log-level=warn",
    ]);
    this.#define("kube-apiserver", [
      `${this.bin}/kube-apiserver`,
      "--etcd-servers=http://127.0.0.1:2379",
      `--advertise-address=${this.address}`,
      "--bind-address=0.0.0.0",
      `--secure-port=${API_PORT}`,
      `--tls-cert-file=${serving.cert}`,
      `--tls-private-key-file=${serving.key}`,
      `--client-ca-file=${pki.ca.cert}`,
      `--kubelet-client-certificate=${kubeletClient.cert}`,
      `--kubelet-client-key=${kubeletClient.key}`,
      // Real nodes (node.ts) are reached at their VPC address; their names resolve nowhere.
      "--kubelet-preferred-address-types=InternalIP",
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${sa.pub}`,
      `--service-account-signing-key-file=${sa.key}`,
      "--authorization-mode=Node,RBAC",
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      "--allow-privileged=true",
      "--profiling=false",
      "--v=0",
      ...(opts.apiserverArgs ?? []),
    ]);
    this.#define("kube-controller-manager", [
      `${this.bin}/kube-controller-manager`,
      `--kubeconfig=${kcmConfig}`,
      `--authentication-kubeconfig=${kcmConfig}`,
      `--authorization-kubeconfig=${kcmConfig}`,
      `--service-account-private-key-file=${sa.key}`,
      `--root-ca-file=${pki.ca.cert}`,
      `--cluster-signing-cert-file=${pki.ca.cert}`,
      `--cluster-signing-key-file=${pki.ca.key}`,
      "--use-service-account-credentials=true",
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      "--profiling=false",
      "--v=0",
    ]);
    this.#define("kube-scheduler", [
      `${this.bin}/kube-scheduler`,
      `--kubeconfig=${schedConfig}`,
      `--authentication-kubeconfig=${schedConfig}`,
      `--authorization-kubeconfig=${schedConfig}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      "--profiling=false",
      "--v=0",
    ]);

    this.hostPort = await this.#forward.fromNamespace(this.masterNetns, {
      hostname: "127.0.0.1",
      port: API_PORT,
    });
    this.hostKubeconfig = `${dir}/admin-host.kubeconfig`;
    await this.writeKubeconfig(this.hostKubeconfig, {
      server: `https://127.0.0.1:${this.hostPort}`,
      cert: admin,
    });

    this.#run("etcd");
    this.#run("kube-apiserver");
    await this.waitReady();
    this.#run("kube-controller-manager");
    this.#run("kube-scheduler");
    // The default ServiceAccount appears once the controller manager runs: pods need it.
    await this.#waitFor("the default ServiceAccount", async () => {
      const r = await this.kubectl(["-n", "default", "get", "serviceaccount", "default"]);
      return r.code === 0;
    });
  }

  /** Writes a kubeconfig with a client certificate or a bearer token. */
  async writeKubeconfig(
    path: string,
    o: { server: string; cert?: { cert: string; key: string }; token?: string; user?: string },
  ): Promise<string> {
    const user = o.user ?? "user";
    const doc = {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{
        name: "hostnic-testbed",
        cluster: { server: o.server, "certificate-authority": this.pki.ca.cert },
      }],
      users: [{
        name: user,
        user: o.cert
          ? { "client-certificate": o.cert.cert, "client-key": o.cert.key }
          : { token: o.token },
      }],
      contexts: [{ name: "default", context: { cluster: "hostnic-testbed", user } }],
      "current-context": "default",
    };
    await Deno.writeTextFile(path, toYaml(doc), { mode: 0o600 });
    return path;
  }

  #define(name: string, argv: string[]): void {
    this.#procs.set(name, { name, argv });
  }

  #run(name: string): void {
    const p = this.#procs.get(name)!;
    p.child = new Deno.Command("nsenter", {
      args: [`--net=/run/netns/${this.masterNetns}`, ...p.argv],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      cwd: this.dir,
    }).spawn();
    this.cluster.drain(name, p.child.stdout);
    this.cluster.drain(name, p.child.stderr);
  }

  async #stop(name: string, signal: Deno.Signal = "SIGTERM"): Promise<void> {
    const p = this.#procs.get(name);
    const child = p?.child;
    if (!p || !child) return;
    p.child = undefined;
    try {
      child.kill(signal);
    } catch {
      // gone already
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone
      }
    }, 10_000);
    await child.status;
    clearTimeout(timer);
  }

  /** Polls `/readyz` until the API server says ok (60 s). */
  async waitReady(timeoutMs = 60_000): Promise<void> {
    await this.#waitFor("kube-apiserver /readyz", async () => {
      const st = this.#procs.get("kube-apiserver")?.child;
      if (!st) throw new Error("kube-apiserver is not running");
      const r = await this.kubectl(["get", "--raw", "/readyz"]);
      return r.code === 0 && r.stdout.trim() === "ok";
    }, timeoutMs);
  }

  async #waitFor(what: string, cond: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > deadline) {
        throw new Error(
          `Timed out waiting for ${what}; kube-apiserver log: ${
            this.cluster.logTail("kube-apiserver")
          }`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Stops and starts kube-apiserver (etcd keeps the data); resolves when it is ready again. */
  async restartApiserver(o: { downMs?: number } = {}): Promise<void> {
    await this.#stop("kube-apiserver");
    if (o.downMs) await new Promise((r) => setTimeout(r, o.downMs));
    this.#run("kube-apiserver");
    await this.waitReady();
  }

  /**
   * Runs the built kubectl. By default in this process's namespace against the loopback forward;
   * with `netns` inside that namespace against the VPC address (through the simulated SDN).
   */
  async kubectl(
    args: string[],
    o: { netns?: string; stdin?: string; kubeconfig?: string } = {},
  ): Promise<CniOutcome> {
    const kubeconfig = o.kubeconfig ?? (o.netns ? this.kubeconfig : this.hostKubeconfig);
    const argv = [`${this.bin}/kubectl`, `--kubeconfig=${kubeconfig}`, ...args];
    const child = new Deno.Command(o.netns ? "nsenter" : argv[0], {
      args: o.netns ? [`--net=/run/netns/${o.netns}`, ...argv] : argv.slice(1),
      stdin: o.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      cwd: REPO,
      env: { NO_COLOR: "1" },
    }).spawn();
    if (o.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(o.stdin));
      await w.close();
    }
    const out = await child.output();
    const stdout = dec.decode(out.stdout);
    let json: Record<string, unknown> | undefined;
    try {
      json = stdout.trim().startsWith("{") ? JSON.parse(stdout) : undefined;
    } catch {
      json = undefined;
    }
    return { code: out.code, stdout, stderr: dec.decode(out.stderr), json };
  }

  /** kubectl that must succeed; returns stdout. */
  async kubectlOk(args: string[], o: { netns?: string; stdin?: string } = {}): Promise<string> {
    const r = await this.kubectl(args, o);
    if (r.code !== 0) {
      throw new Error(`kubectl ${args.join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}`);
    }
    return r.stdout;
  }

  /** `kubectl get … -o json`, parsed. */
  async getJson<T = Record<string, unknown>>(args: string[]): Promise<T> {
    return JSON.parse(await this.kubectlOk(["get", ...args, "-o", "json"])) as T;
  }

  /** Applies YAML or JSON manifests given as text. */
  async apply(manifest: string): Promise<void> {
    await this.kubectlOk(["apply", "-f", "-"], { stdin: manifest });
  }

  /**
   * A kubeconfig for a ServiceAccount with a token from the TokenRequest API (`kubectl create
   * token`), as a pod of that ServiceAccount would authenticate. `server` defaults to the VPC
   * address.
   */
  async serviceAccountKubeconfig(
    namespace: string,
    name: string,
    o: { server?: string; path?: string } = {},
  ): Promise<string> {
    const token = (await this.kubectlOk([
      "-n",
      namespace,
      "create",
      "token",
      name,
      "--duration=2h",
    ])).trim();
    return await this.writeKubeconfig(o.path ?? `${this.dir}/sa-${namespace}-${name}.kubeconfig`, {
      server: o.server ?? this.server,
      token,
      user: `system:serviceaccount:${namespace}:${name}`,
    });
  }

  /**
   * Starts a fault-injecting proxy in front of the API server, in the master namespace on
   * `port` (its `server` URL goes into a kubeconfig in place of the API server's). Stopped by
   * `close()`.
   */
  async faultProxy(port = 7443): Promise<FaultProxy> {
    const proxy = await FaultProxy.start({
      netns: this.masterNetns,
      address: this.address,
      port,
      upstream: `https://127.0.0.1:${API_PORT}`,
      ca: this.pki.ca.cert,
      cert: `${this.pki.dir}/apiserver.crt`,
      key: `${this.pki.dir}/apiserver.key`,
      control: `${this.dir}/fault-proxy-${port}.sock`,
      drain: (name, s) => this.cluster.drain(name, s),
    });
    this.#proxies.push(proxy);
    return proxy;
  }

  /** Waits until hostnic's four CRDs are served (after `installHostnic` or `applyCrds`). */
  async waitCrds(): Promise<void> {
    await this.kubectlOk([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      ...["vxnetpools", "ippools", "ipamblocks", "ipamhandles"].map((r) =>
        `crd/${r}.network.qingcloud.com`
      ),
    ]);
  }

  /** Applies deploy/crds alone (no DaemonSet, no controller) and waits until they are served. */
  async applyCrds(): Promise<void> {
    await this.kubectlOk(["apply", "-f", CRDS_FILE]);
    await this.waitCrds();
  }

  /**
   * Installs hostnic as docs/install.md tells users: the Secret `qcsecret` from a QingCloud SDK
   * file (here the simulator's client config, whose endpoint is the only difference; `credentials`
   * names another such file, e.g. one whose endpoint a real node reaches), then
   * `kubectl apply -f deploy/hostnic.yaml`. Returns what differs from the guide, for the log.
   */
  async installHostnic(
    o: { manifest?: string; credentials?: string } = {},
  ): Promise<string[]> {
    const secretDir = await Deno.makeTempDir({ dir: this.dir, prefix: "qcsecret-" });
    try {
      await Deno.copyFile(
        o.credentials ?? this.cluster.clientConfigFile,
        `${secretDir}/config.yaml`,
      );
      await this.kubectlOk([
        "-n",
        "kube-system",
        "create",
        "secret",
        "generic",
        "qcsecret",
        `--from-file=${secretDir}/config.yaml`,
      ]);
    } finally {
      await Deno.remove(secretDir, { recursive: true });
    }
    if (o.manifest !== undefined) await this.apply(o.manifest);
    else await this.kubectlOk(["apply", "-f", `${REPO}deploy/hostnic.yaml`]);
    return [
      o.credentials === undefined
        ? `Secret qcsecret: config.yaml is the simulator's client config (endpoint ${this.cluster.simUrl})`
        : `Secret qcsecret: config.yaml is ${o.credentials} (the simulator's endpoint)`,
      ...(o.manifest !== undefined ? ["deploy/hostnic.yaml: a modified copy was applied"] : []),
    ];
  }

  /** Replaces ConfigMap `kube-system/hostnic-cfg-cm` (as `kubectl edit` would). */
  async setHostnicConfig(data: { hostnic?: string; "hostnic-cni"?: string }): Promise<void> {
    await this.apply(JSON.stringify({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "hostnic-cfg-cm", namespace: "kube-system" },
      data,
    }));
  }

  /** Registers a Node object (a daemon-only node of the testbed has no kubelet to do it). */
  async addNode(name: string, annotations: Record<string, string> = {}): Promise<void> {
    await this.apply(JSON.stringify({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name, annotations, labels: { "kubernetes.io/hostname": name } },
    }));
  }

  /**
   * Creates a pod bound to `node` (no kubelet runs it: it is the API object the daemon reads,
   * as the kubelet's ADD would find it).
   */
  async addPod(
    o: { name: string; node: string; namespace?: string; annotations?: Record<string, string> },
  ): Promise<void> {
    await this.apply(JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: o.name,
        namespace: o.namespace ?? "default",
        annotations: o.annotations ?? {},
      },
      spec: {
        nodeName: o.node,
        containers: [{ name: "main", image: "localhost/busybox:1" }],
      },
    }));
  }

  /** Kubernetes events whose involved object is `namespace/name`. */
  async eventsOn(
    namespace: string,
    name: string,
  ): Promise<{ type: string; reason: string; message: string; count?: number }[]> {
    const list = await this.getJson<{
      items: { type: string; reason: string; message: string; count?: number }[];
    }>(["-n", namespace, "events", `--field-selector=involvedObject.name=${name}`]);
    return list.items;
  }

  /** Whether a component process is running (for tests that restart them). */
  running(name: string): boolean {
    return this.#procs.get(name)?.child !== undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#proxies) await p.close().catch(() => {});
    for (const name of ["kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]) {
      await this.#stop(name).catch(() => {});
    }
    await this.#forward.close();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
