/**
 * The manifests in deploy/ agree with the code: every YAML parses; every Kubernetes object is
 * well-formed; the `hostnic-cfg-cm` keys pass the daemon's and the plugin's own parsers; the RBAC
 * grants exactly what the Kubernetes client calls; and the DaemonSet mounts every path the daemon
 * and the plugin use by default.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { HOSTNIC_DEFAULTS, parseNetConf } from "../../lib/cni/config.ts";
import { DEFAULTS, parseConfigFile } from "../../lib/config.ts";
import { parseListenAddr } from "../../lib/observe/mod.ts";
import { checkCniConfig } from "../../lib/install/mod.ts";
import { REQUIRED_PERMISSIONS } from "../../lib/k8s/rbac.ts";
import { VERSION } from "../../main.ts";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

const DEPLOY = new URL("../../deploy/", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;

async function yamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}${e.name}`;
    if (e.isDirectory) out.push(...await yamlFiles(`${p}/`));
    else if (/\.ya?ml$/.test(e.name)) out.push(p);
  }
  return out.sort();
}

async function loadDocs(path: string): Promise<Obj[]> {
  const docs = parseAllDocuments(await Deno.readTextFile(path));
  assert.ok(Array.isArray(docs), `${path}: not a YAML stream`);
  const out: Obj[] = [];
  for (const d of docs) {
    assert.deepEqual(d.errors.map((e) => e.message), [], `${path}: YAML errors`);
    const v = d.toJS();
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

const hostnicYaml = await loadDocs(`${DEPLOY}hostnic.yaml`);

function find(kind: string, name: string, docs = hostnicYaml): Obj {
  const o = docs.find((d) => d.kind === kind && d.metadata?.name === name);
  assert.ok(o, `${kind} "${name}" is missing`);
  return o;
}

const daemonSet = find("DaemonSet", "hostnic-node");
const podSpec: Obj = daemonSet.spec.template.spec;
const configMap = find("ConfigMap", "hostnic-cfg-cm");
const daemon: Obj = podSpec.containers.find((c: Obj) => c.name === "hostnic-node");
const init: Obj = podSpec.initContainers.find((c: Obj) => c.name === "install-cni");

/** Value following `flag` in a container's args (`--flag value` or `--flag=value`). */
function flagValue(args: string[], flag: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag) return args[i + 1];
    if (args[i].startsWith(`${flag}=`)) return args[i].slice(flag.length + 1);
  }
  return undefined;
}

function dirname(p: string): string {
  return p.slice(0, p.lastIndexOf("/")) || "/";
}

/** The mount of `container` that holds `path`, and its volume. */
function mountFor(container: Obj, path: string): { mount: Obj; volume: Obj } {
  const mounts: Obj[] = container.volumeMounts ?? [];
  const mount = mounts
    .filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  assert.ok(mount, `container "${container.name}" mounts nothing holding "${path}"`);
  const volume = podSpec.volumes.find((v: Obj) => v.name === mount.name);
  assert.ok(volume, `volume "${mount.name}" is not defined`);
  return { mount, volume };
}

/** `path` is the host's own directory: a hostPath volume mounted at the same place. */
function assertHostDir(container: Obj, path: string) {
  const { mount, volume } = mountFor(container, path);
  assert.ok(volume.hostPath, `"${path}" must come from a hostPath volume (got "${mount.name}")`);
  assert.equal(volume.hostPath.path, mount.mountPath, `"${mount.name}" must mount the same path`);
}

Deno.test("every YAML file in deploy/ parses; every Kubernetes object is well-formed", async () => {
  const files = await yamlFiles(DEPLOY);
  assert.ok(files.length >= 3, files.join(" "));
  for (const file of files) {
    const docs = await loadDocs(file);
    assert.ok(docs.length > 0, `${file} is empty`);
    if (file.includes("/deploy/sim/")) continue; // simulator scenarios, not Kubernetes objects
    for (const [i, o] of docs.entries()) {
      const where = `${file.slice(ROOT.length)} document ${i + 1}`;
      assert.equal(typeof o.apiVersion, "string", `${where}: apiVersion`);
      assert.equal(typeof o.kind, "string", `${where}: kind`);
      assert.equal(typeof o.metadata?.name, "string", `${where}: metadata.name`);
      assert.match(o.metadata.name, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, `${where}: name`);
    }
  }
});

Deno.test("the hostnic key passes the daemon's config parser (every key known)", () => {
  const cfg = parseConfigFile(configMap.data.hostnic, "hostnic-cfg-cm/hostnic");
  assert.ok(cfg.pool.maxNic <= 63);
  assert.equal(cfg.server.serverPath, DEFAULTS.socketPath);
  // Nothing silently defaulted away: every key written is one the schema knows (strict parse).
  const raw = JSON.parse(configMap.data.hostnic);
  for (const key of Object.keys(raw.pool)) assert.ok(key in cfg.pool, `pool.${key}`);
});

Deno.test("the hostnic-cni key passes the plugin's parser and points at the daemon's socket", () => {
  const text: string = configMap.data["hostnic-cni"];
  const checked = checkCniConfig(text, {
    source: "hostnic-cfg-cm/hostnic-cni",
    format: "conflist",
  });
  assert.deepEqual(checked.plugins, ["hostnic", "portmap"]);
  const list = JSON.parse(text);
  const conf = parseNetConf(
    { ...list.plugins[0], cniVersion: list.cniVersion, name: list.name },
    { command: "ADD", version: list.cniVersion },
  );
  const server = parseConfigFile(configMap.data.hostnic, "hostnic").server;
  assert.equal(conf.hostnic.socketPath, server.serverPath, "plugin and daemon agree on the socket");
  assert.ok(conf.hostnic.serviceCIDR, "serviceCIDR is set (kube-proxy's service network)");
});

Deno.test("the default hostnic-cni chains portmap, so pods get their hostPorts", () => {
  // containerd's CRI leaves hostPorts to the CNI chain: without portmap a hostPort silently does
  // nothing (the upstream [Conformance] HostPort test needs them).
  const list = JSON.parse(configMap.data["hostnic-cni"]) as {
    plugins: { type: string; capabilities?: Record<string, boolean> }[];
  };
  assert.deepEqual(list.plugins.map((p) => p.type), ["hostnic", "portmap"]);
  assert.equal(list.plugins[1].capabilities?.portMappings, true);
});

Deno.test("example CNI configs pass the plugin's parser", async () => {
  const chained = checkCniConfig(
    await Deno.readTextFile(`${DEPLOY}examples/hostnic-portmap-bandwidth.conflist`),
    { source: "example", format: "conflist" },
  );
  assert.deepEqual(chained.plugins, ["hostnic", "portmap", "bandwidth"]);
  const multus = await loadDocs(`${DEPLOY}examples/multus-net1.yaml`);
  const nad = find("NetworkAttachmentDefinition", "hostnic-net1", multus);
  assert.deepEqual(
    checkCniConfig(nad.spec.config, { source: "NAD", format: "conf" }).plugins,
    ["hostnic"],
  );
  const pod = find("Pod", "two-nics", multus);
  const nets = JSON.parse(pod.metadata.annotations["k8s.v1.cni.cncf.io/networks"]);
  assert.deepEqual(nets, [{ name: "hostnic-net1", interface: "net1" }]);
});

Deno.test("the DaemonSet mounts every path the daemon and the plugin use", () => {
  const args: string[] = daemon.args;
  assert.deepEqual(args.slice(0, 2), ["daemon", "start"]);
  const configPath = flagValue(args, "--config") ?? DEFAULTS.configPath;
  const qyAccessFilePath = flagValue(args, "--QyAccessFilePath") ?? DEFAULTS.qyAccessFilePath;
  const server = parseConfigFile(configMap.data.hostnic, "hostnic").server;

  // Host directories shared with the host (the plugin runs there, state must survive the pod).
  assertHostDir(daemon, DEFAULTS.stateDir);
  assertHostDir(daemon, dirname(server.serverPath));
  assertHostDir(daemon, dirname(DEFAULTS.instanceIdFile));
  assertHostDir(daemon, "/opt/cni/bin");
  assertHostDir(daemon, "/etc/cni/net.d");
  assertHostDir(daemon, "/var/run/netns");
  const journalDir = (HOSTNIC_DEFAULTS as unknown as Record<string, unknown>).journalDir;
  if (typeof journalDir === "string") assertHostDir(daemon, journalDir);
  assert.equal(mountFor(daemon, "/var/run/netns").mount.mountPropagation, "HostToContainer");

  // The config file comes from the ConfigMap's `hostnic` key.
  const cfg = mountFor(daemon, configPath);
  assert.equal(cfg.volume.configMap?.name, "hostnic-cfg-cm");
  const item = cfg.volume.configMap.items.find((i: Obj) =>
    `${cfg.mount.mountPath}/${i.path}` === configPath
  );
  assert.equal(item?.key, "hostnic", `${configPath} must be the "hostnic" key`);

  // Credentials come from the qcsecret Secret.
  const cred = mountFor(daemon, qyAccessFilePath);
  assert.equal(cred.volume.secret?.secretName, "qcsecret");
  assert.equal(qyAccessFilePath, `${cred.mount.mountPath}/config.yaml`, "the Secret's key");

  // Writable where the daemon writes; read-only elsewhere.
  for (const p of [DEFAULTS.stateDir, dirname(server.serverPath)]) {
    assert.notEqual(mountFor(daemon, p).mount.readOnly, true, `${p} must be writable`);
  }
  for (const p of [configPath, qyAccessFilePath, DEFAULTS.instanceIdFile]) {
    assert.equal(mountFor(daemon, p).mount.readOnly, true, `${p} should be read-only`);
  }
});

Deno.test("the init container installs the hostnic-cni key into the host's CNI dirs", () => {
  const args: string[] = init.args;
  assert.equal(args[0], "install");
  const cniConfig = flagValue(args, "--cni-config");
  assert.ok(cniConfig);
  const { mount, volume } = mountFor(init, cniConfig);
  const item = volume.configMap?.items?.find((i: Obj) =>
    `${mount.mountPath}/${i.path}` === cniConfig
  );
  assert.equal(item?.key, "hostnic-cni");
  assertHostDir(init, flagValue(args, "--bin-dir") ?? "/opt/cni/bin");
  assertHostDir(init, flagValue(args, "--conf-dir") ?? "/etc/cni/net.d");
  assert.equal(init.image, daemon.image, "init and daemon run the same binary");
});

Deno.test("the DaemonSet's pod: host network, privileged, probes on manageAddr, critical", () => {
  assert.equal(podSpec.hostNetwork, true);
  assert.equal(podSpec.priorityClassName, "system-node-critical");
  assert.deepEqual(podSpec.tolerations, [{ operator: "Exists" }]);
  assert.deepEqual(daemonSet.spec.updateStrategy, {
    type: "RollingUpdate",
    rollingUpdate: { maxUnavailable: 1 },
  });
  assert.equal(daemon.securityContext?.privileged, true);
  const manage = parseListenAddr(flagValue(daemon.args, "--manageAddr") ?? DEFAULTS.manageAddr);
  assert.ok(manage);
  assert.deepEqual(daemon.livenessProbe.httpGet, { path: "/healthz", port: manage.port });
  assert.deepEqual(daemon.readinessProbe.httpGet, { path: "/readyz", port: manage.port });
  for (const c of [daemon, init]) {
    assert.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory, `${c.name} requests`);
    assert.ok(c.resources?.limits?.memory, `${c.name} memory limit`);
    assert.equal(c.image, `hostnic:${VERSION}`, "image tag follows the version");
  }
  assert.equal(
    daemon.env.find((e: Obj) => e.name === "MY_NODE_NAME")?.valueFrom?.fieldRef?.fieldPath,
    "spec.nodeName",
  );
  assert.equal(flagValue(daemon.args, "--node-name"), "$(MY_NODE_NAME)");
  // The daemon's own namespace (hostnic-cfg-cm, RBAC Role) and pod (its events) come from the
  // downward API.
  const fieldOf = (name: string) =>
    daemon.env.find((e: Obj) => e.name === name)?.valueFrom?.fieldRef?.fieldPath;
  assert.equal(fieldOf("POD_NAMESPACE"), "metadata.namespace");
  assert.equal(fieldOf("POD_NAME"), "metadata.name");
  assert.equal(daemonSet.metadata.namespace, "kube-system");
  assert.deepEqual(daemonSet.spec.selector.matchLabels, { app: "hostnic-node" });
  assert.equal(daemonSet.spec.template.metadata.labels.app, "hostnic-node");
});

Deno.test("RBAC grants exactly what the Kubernetes client calls, to the DaemonSet's account", () => {
  const sa = podSpec.serviceAccountName;
  const account = find("ServiceAccount", sa);
  assert.equal(account.metadata.namespace, "kube-system");

  /** "<namespace|*> <group>/<resource> <verb>" for every grant reaching the account. */
  const granted = new Set<string>();
  for (const binding of hostnicYaml.filter((d) => /^(Cluster)?RoleBinding$/.test(d.kind))) {
    const bound = binding.subjects.some((s: Obj) =>
      s.kind === "ServiceAccount" && s.name === sa && s.namespace === "kube-system"
    );
    if (!bound) continue;
    const role = find(binding.roleRef.kind, binding.roleRef.name);
    const scope = binding.kind === "RoleBinding" ? binding.metadata.namespace : "*";
    if (binding.roleRef.kind === "Role") assert.equal(role.metadata.namespace, scope);
    for (const rule of role.rules) {
      for (const g of rule.apiGroups) {
        for (const r of rule.resources) {
          for (const v of rule.verbs) {
            assert.ok(![g, r, v].includes("*"), `no wildcards (${role.metadata.name})`);
            granted.add(`${scope} ${g}/${r} ${v}`);
          }
        }
      }
    }
  }
  const required = new Set<string>();
  for (const p of REQUIRED_PERMISSIONS) {
    for (const v of p.verbs) required.add(`${p.namespace ?? "*"} ${p.apiGroup}/${p.resource} ${v}`);
  }
  assert.deepEqual([...granted].sort(), [...required].sort());
  assert.ok(![...granted].some((g) => g.includes("secrets")), "no Secret access (it is mounted)");
});

Deno.test("the Dockerfile packages the compiled binary as the entrypoint", async () => {
  const text = await Deno.readTextFile(`${ROOT}Dockerfile`);
  assert.match(text, /^ARG BASE=debian:[a-z]+-slim$/m);
  assert.match(text, /^FROM \$\{BASE\} AS base$/m);
  assert.match(text, /apt-get install .*iproute2 iptables procps/);
  // `docker build .` builds the last stage: the compiled binary.
  const stages = [...text.matchAll(/^FROM (\S+) AS (\S+)$/gm)].map((m) => m[2]);
  assert.equal(stages.at(-1), "compiled");
  const compiled = text.slice(text.lastIndexOf("FROM base AS compiled"));
  assert.match(compiled, /^COPY dist\/hostnic \/usr\/local\/bin\/hostnic$/m);
  assert.match(compiled, /^ENTRYPOINT \["\/usr\/local\/bin\/hostnic"\]$/m);
});
