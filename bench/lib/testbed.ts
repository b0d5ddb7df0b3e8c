/**
 * Benchmarks on a real hostnic node: `lib/testbed`'s Cluster (the simulator with its Linux backend
 * plus one `hostnic daemon start` per node namespace) with the run's namespace prefix, and what
 * the daemon benchmarks read from it: the simulator's API call counters (the cloud's own count of
 * every IaaS call), the daemon's `/metrics` (scraped from inside the node namespace, where its
 * management port listens), the daemon's pid for /proc, and its JSON log lines.
 *
 * Plugin calls go through `timeCniCall` with `hostnicPluginArgv()` behind `nsenter` into the node
 * namespace — the same timer and the same nsenter as the bridge baseline.
 */
import { Cluster, type ClusterNode, type ClusterOptions } from "../../lib/testbed/cluster.ts";
import type { PoolView } from "../../lib/rpc/api.ts";
import { poolSchema } from "../../lib/config.ts";
import { inNetns, netnsPath } from "../../lib/linux/exec.ts";
import { type CniCallResult, cniEnv, hostnicPluginArgv, timeCniCall } from "../baseline_cni.ts";
import type { BenchContext } from "./context.ts";
import { parseMetrics, type Sample } from "./prom.ts";
import type { InstalledPlugin } from "./plugin.ts";
import { readComm } from "./procfs.ts";

export { type Counters, countersDelta, formatCounts, type LogEvent, logEvents } from "./observe.ts";
export { type InstalledPlugin, installPlugin } from "./plugin.ts";

export type { Cluster, ClusterNode };

/**
 * One node's cluster whose namespaces are `<run prefix><tag>-…` (swept with the run). `env` is
 * added to the environment of the processes it starts (the Cluster starts them with this
 * process's environment), e.g. allocator settings for the daemon; it is set only while starting.
 */
export async function startCluster(
  ctx: BenchContext,
  tag: string,
  o: Omit<ClusterOptions, "prefix" | "nodes"> & { env?: Record<string, string> } = {},
): Promise<Cluster> {
  ctx.signal.throwIfAborted();
  const { env, ...options } = o;
  const saved = Object.keys(env ?? {}).map((k) => [k, Deno.env.get(k)] as const);
  try {
    for (const [k, v] of Object.entries(env ?? {})) Deno.env.set(k, v);
    return await Cluster.start({ nodes: 1, ...options, prefix: `${ctx.prefix}${tag}` });
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
}

const MANIFEST = new URL("../../deploy/hostnic.yaml", import.meta.url).pathname;

const DENO_JSON = new URL("../../deno.json", import.meta.url).pathname;

/**
 * The daemon's environment on a node, for a daemon the testbed runs with `deno run`: the literal
 * environment of the DaemonSet's container (`daemonSetEnv`) plus, as `DENO_V8_FLAGS`, the V8
 * flags `deno task build` compiles into the binary the DaemonSet's image runs.
 */
export async function nodeDaemonEnv(): Promise<Record<string, string>> {
  const env = await daemonSetEnv();
  const tasks = (JSON.parse(await Deno.readTextFile(DENO_JSON)) as { tasks?: { build?: string } })
    .tasks;
  const flags = /--v8-flags=(\S+)/.exec(tasks?.build ?? "")?.[1];
  if (flags) env.DENO_V8_FLAGS = [env.DENO_V8_FLAGS, flags].filter(Boolean).join(",");
  return env;
}

/**
 * The literal environment (`value:`, not `valueFrom:`) of the DaemonSet's `hostnic-node`
 * container in deploy/hostnic.yaml (allocator settings).
 */
export async function daemonSetEnv(manifest = MANIFEST): Promise<Record<string, string>> {
  const { parseAllDocuments } = await import("yaml");
  const docs = parseAllDocuments(await Deno.readTextFile(manifest)).map((d) => d.toJS());
  type Container = { name?: string; env?: { name?: string; value?: unknown }[] };
  const ds = docs.find((d) =>
    d?.kind === "DaemonSet" &&
    (d.spec?.template?.spec?.containers as Container[] | undefined)?.some((c) =>
      c.name === "hostnic-node"
    )
  );
  const c = (ds?.spec.template.spec.containers as Container[] | undefined)?.find((c) =>
    c.name === "hostnic-node"
  );
  if (!c) throw new Error(`No DaemonSet container "hostnic-node" in ${manifest}`);
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.name && typeof e.value === "string") env[e.name] = e.value;
  }
  return env;
}

/** glibc serves allocations of 64 KiB and more from mmap (returned to the kernel when freed). */
export const MMAP_64K: Record<string, string> = { MALLOC_MMAP_THRESHOLD_: "65536" };

/** MMAP_64K plus V8's young generation capped at 1 MiB semi-spaces (Deno reads DENO_V8_FLAGS). */
export const TUNED_MEMORY: Record<string, string> = {
  ...MMAP_64K,
  DENO_V8_FLAGS: "--max-semi-space-size=1",
};

/** `A=1 B=2` for notes. */
export function envText(env: Record<string, string>): string {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`).join(" ");
}

/**
 * `pool.ipCooldown` when this daemon knows the key (the config is strict: an unknown key would
 * stop the daemon), else nothing. Benchmarks that measure latency with a warm pool turn the
 * cooldown off so released NICs are ready again at once; churn keeps the default.
 */
export function noIpCooldown(): { ipCooldown?: number } {
  return poolSchema.safeParse({ ipCooldown: 0 }).success ? { ipCooldown: 0 } : {};
}

/**
 * How the plugin is started: the plain `deno run -A main.ts`, the same with the node_modules
 * check off, or the shim `hostnic install` writes (`installPlugin`: what a node runs).
 */
export type PluginVariant = "default" | "nm_manual" | InstalledPlugin;

/** argv of hostnic's plugin inside the node namespace. */
export function pluginArgv(node: ClusterNode, variant: PluginVariant = "default"): string[] {
  if (typeof variant === "object") return inNetns([variant.shim], node.netns);
  const [deno, ...rest] = hostnicPluginArgv();
  const argv = variant === "nm_manual"
    ? [deno, rest[0], rest[1], "--node-modules-dir=manual", ...rest.slice(2)]
    : [deno, ...rest];
  return inNetns(argv, node.netns);
}

/** One timed plugin call for a pod namespace (`podNetns` is a name under /run/netns). */
export async function hostnicCall(
  node: ClusterNode,
  o: {
    command: "ADD" | "DEL" | "VERSION";
    containerId?: string;
    podNetns?: string;
    variant?: PluginVariant;
  },
): Promise<CniCallResult> {
  const env = cniEnv({
    command: o.command,
    ...(o.containerId ? { containerId: o.containerId } : {}),
    ...(o.podNetns ? { netns: netnsPath(o.podNetns), ifName: "eth0" } : {}),
  });
  if (o.containerId) env.CNI_ARGS = `K8S_POD_NAMESPACE=bench;K8S_POD_NAME=${o.containerId}`;
  return await timeCniCall(pluginArgv(node, o.variant), env, JSON.stringify(node.netConf()));
}

/** Throws with the plugin's CNI error when a call failed. */
export function mustSucceed(what: string, r: CniCallResult): CniCallResult {
  if (r.code !== 0) {
    throw new Error(
      `${what} exited ${r.code}: ${(r.stdout.trim() || r.stderr.trim()).slice(0, 300)}`,
    );
  }
  return r;
}

const SCRAPE = 'const r = await fetch("http://127.0.0.1:31081/metrics"); ' +
  "if (!r.ok) throw new Error(`HTTP ${r.status}`); " +
  "await Deno.stdout.write(new TextEncoder().encode(await r.text()));";

/** The daemon's `/metrics`, fetched from inside the node namespace. */
export async function scrapeMetrics(ctx: BenchContext, node: ClusterNode): Promise<Sample[]> {
  const { stdout } = await ctx.runner.run(
    [Deno.execPath(), "eval", "--quiet", SCRAPE],
    { netns: node.netns },
  );
  return parseMetrics(stdout);
}

/** The daemon's pid (nsenter execs deno, so the child's pid is the daemon's). */
export async function daemonPid(node: ClusterNode): Promise<number> {
  const pid = node.daemon?.pid;
  if (pid === undefined) throw new Error(`The daemon of ${node.instanceId} is not running`);
  const comm = await readComm(pid);
  if (comm !== "deno") throw new Error(`pid ${pid} is "${comm}", not the daemon's deno`);
  return pid;
}

/** The simulator's pid. */
export function simPid(c: Cluster): number {
  const pid = c.sim?.pid;
  if (pid === undefined) throw new Error("The simulator is not running");
  return pid;
}

/** Waits until the pool satisfies `pred` (deadline in ms), failing with the last pool view. */
export async function waitPool(
  ctx: BenchContext,
  node: ClusterNode,
  pred: (p: PoolView) => boolean,
  timeoutMs = 60_000,
): Promise<PoolView> {
  ctx.signal.throwIfAborted();
  return await node.waitPool(pred, timeoutMs);
}

/** Free NICs an ADD can take now (free minus those whose IP is cooling down). */
export function readyNics(p: PoolView): number {
  return p.free - (p.cooling ?? 0);
}

/** Creates pod namespaces (one `ip -batch`), no loopback needed by the plugin. */
export async function addPodNamespaces(ctx: BenchContext, names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  await ctx.runner.run(["ip", "-batch", "-"], {
    stdin: names.map((n) => `netns add ${n}`).join("\n") + "\n",
  });
}

/** The daemon's whole log so far (the Cluster keeps it in `<dir>/daemon-<instance>.log`). */
export async function daemonLog(node: ClusterNode): Promise<string> {
  return await Deno.readTextFile(`${node.cluster.dir}/daemon-${node.instanceId}.log`).catch(() =>
    ""
  );
}
