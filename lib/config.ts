/**
 * Node daemon configuration: defaults < config file (`/etc/hostnic/hostnic.json`, the `hostnic` key
 * of ConfigMap `hostnic-cfg-cm`) < flags. Parsed once, validated with zod; every rejection names the
 * key (`pool.poolLow`, `--PoolSize` …) and changes nothing.
 *
 * The file's shape is upstream's (`pool`, `server`) plus an optional `cni` section holding defaults for
 * the `hostnic-cni` keys; the plugin's own stdin config overrides them per call.
 */
import { z } from "zod";
import { FOREIGN_MARK_BITS, HOSTNIC_DEFAULTS } from "./cni/config.ts";
import { ConfigError } from "./errors.ts";
import type { LogLevel } from "./log.ts";
import { parseListenAddr } from "./observe/mod.ts";

export const DEFAULTS = {
  configPath: "/etc/hostnic/hostnic.json",
  qyAccessFilePath: "/etc/qingcloud/client.yaml",
  instanceIdFile: "/etc/qingcloud/instance-id",
  stateDir: "/var/lib/hostnic",
  socketPath: "/var/run/hostnic/hostnic.sock",
  manageAddr: ":31081",
} as const;

export const vxnetId = z.string().regex(/^vxnet-[a-z0-9]+$/, 'must look like "vxnet-xxxxxxx"');
export const ipv4Cidr = z.string().regex(
  /^((25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(25[0-5]|2[0-4]\d|1?\d?\d)\/(3[0-2]|[12]?\d)$/,
  "must be an IPv4 CIDR such as 10.96.0.0/12",
);
const mark = z.union([
  z.string().regex(/^0x[0-9a-fA-F]{1,8}$/, "must be a hex mark like 0x10000"),
  z
    .number().int().positive(),
])
  .transform((v) => typeof v === "number" ? v : parseInt(v, 16))
  // Same rule as the plugin's config (lib/cni/config.ts): see docs/decisions.md "natMark".
  .refine((v) => v <= 0xffffffff && (v & FOREIGN_MARK_BITS) === 0, {
    message: "must not overlap kube-proxy's marks (0x4000, 0x8000) or Calico's (0xff000000)",
  });

export const poolSchema = z.object({
  poolLow: z.number().int().min(0).max(63).default(3),
  poolHigh: z.number().int().min(0).max(63).default(5),
  maxNic: z.number().int().min(1).max(63).default(63),
  tag: z.string().regex(/^tag-[a-z0-9]+$/, 'must look like "tag-xxxxxxxx"').optional(),
  vxNets: z.array(vxnetId).default([]),
  /** Seconds between job polls / repair passes. */
  sync: z.number().int().min(1).max(3600).default(3),
  /** Seconds between full reconciles against the cloud. */
  nodeSync: z.number().int().min(5).max(86400).default(60),
  routeTableBase: z.number().int().min(1).max(0x7fffff00).default(260),
  /**
   * Minutes an owned NIC unknown to the store is left alone before GC adopts or deletes it
   * (fractions allowed; 0 = at the next full pass that still finds it unknown).
   */
  freePeriod: z.number().min(0).max(100000).default(10),
  /** Seconds an ADD waits for a NIC when the pool is empty before answering "try again later". */
  allocTimeout: z.number().int().min(1).max(600).default(60),
  /** Seconds a released pod IP is kept from other pods (0 = reuse at once). */
  ipCooldown: z.number().int().min(0).max(3600).default(30),
}).strict().refine((p) => p.poolLow <= p.poolHigh, {
  message: "poolLow must not exceed poolHigh",
  path: ["poolLow"],
}).refine((p) => p.poolHigh <= p.maxNic, {
  message: "poolHigh must not exceed maxNic",
  path: ["poolHigh"],
});

export const serverSchema = z.object({
  serverPath: z.string().startsWith("/", "must be an absolute path").default(DEFAULTS.socketPath),
  networkPolicy: z.enum(["", "calico"]).default(""),
}).strict();

export const cniDefaultsSchema = z.object({
  vethPrefix: z.string().regex(/^[A-Za-z0-9_-]{1,4}$/, 'must be 1 to 4 letters, digits, "_" or "-"')
    .default(HOSTNIC_DEFAULTS.vethPrefix),
  mtu: z.number().int().min(68).max(65535).default(HOSTNIC_DEFAULTS.mtu),
  serviceCIDR: ipv4Cidr.optional(),
  hairpin: z.boolean().default(HOSTNIC_DEFAULTS.hairpin),
  natMark: mark.default(HOSTNIC_DEFAULTS.natMark),
}).strict();

/**
 * The daemon's QingCloud client: one token bucket for every call the node makes (retries
 * included). Defaults are the client's own (10/s, burst 20). Nodes sharing an access key share
 * its API quota: keep callsPerSecond × nodes below what the account is allowed.
 */
export const iaasSchema = z.object({
  /** Sustained API calls per second (the bucket's refill rate). */
  callsPerSecond: z.number().positive().max(1000).default(10),
  /** Calls allowed back to back after a quiet period (the bucket's size). */
  burst: z.number().int().min(1).max(1000).default(20),
}).strict();

export const fileSchema = z.object({
  pool: poolSchema.default(poolSchema.parse({})),
  server: serverSchema.default(serverSchema.parse({})),
  cni: cniDefaultsSchema.default(cniDefaultsSchema.parse({})),
  iaas: iaasSchema.default(iaasSchema.parse({})),
}).strict();

export type PoolConfig = z.infer<typeof poolSchema>;
export type ServerConfig = z.infer<typeof serverSchema>;
export type CniDefaults = z.infer<typeof cniDefaultsSchema>;
export type IaasClientConfig = z.infer<typeof iaasSchema>;
export type FileConfig = z.infer<typeof fileSchema>;

/** Flags as given on the command line (all optional; absent = not given). */
export interface DaemonFlags {
  vxnets?: string[];
  poolSize?: number;
  qyAccessFilePath?: string;
  cleanUpCacheOnExit?: boolean;
  bindAddr?: string;
  manageAddr?: string;
  logLevel?: LogLevel;
  config?: string;
  instanceId?: string;
  instanceIdFile?: string;
  stateDir?: string;
  socket?: string;
  nodeName?: string;
  kubeconfig?: string;
}

export interface DaemonConfig extends FileConfig {
  qyAccessFilePath: string;
  cleanUpCacheOnExit: boolean;
  bindAddr?: string;
  manageAddr: string;
  logLevel: LogLevel;
  configPath: string;
  instanceId?: string;
  instanceIdFile: string;
  stateDir: string;
  nodeName?: string;
  kubeconfig?: string;
}

/** Turns a zod error into a ConfigError naming the first offending key. */
export function configErrorFrom(err: z.ZodError, prefix = ""): ConfigError {
  const issue = err.issues[0];
  const key = [prefix, ...issue.path.map(String)].filter(Boolean).join(".") || prefix || "(root)";
  return new ConfigError(key, issue.message);
}

/** Parses the JSON config file text; `source` names the file in errors. */
export function parseConfigFile(text: string, source: string): FileConfig {
  let raw: unknown;
  try {
    raw = text.trim() === "" ? {} : JSON.parse(text);
  } catch (err) {
    throw new ConfigError(source, `not valid JSON: ${(err as Error).message}`);
  }
  const res = fileSchema.safeParse(raw);
  if (!res.success) throw configErrorFrom(res.error);
  return res.data;
}

/** Merges defaults < file < flags and validates the result. */
export function resolveConfig(
  file: FileConfig,
  flags: DaemonFlags,
  configPath: string,
): DaemonConfig {
  const pool = { ...file.pool };
  if (flags.vxnets !== undefined) {
    for (const v of flags.vxnets) {
      if (!vxnetId.safeParse(v).success) {
        throw new ConfigError("--vxnets", `"${v}" must look like "vxnet-xxxxxxx"`);
      }
    }
    pool.vxNets = flags.vxnets;
  }
  if (flags.poolSize !== undefined) {
    if (!Number.isInteger(flags.poolSize) || flags.poolSize < 0 || flags.poolSize > 63) {
      throw new ConfigError(
        "--PoolSize",
        `must be a whole number from 0 to 63, got "${flags.poolSize}"`,
      );
    }
    pool.poolLow = flags.poolSize;
    pool.poolHigh = flags.poolSize;
  }
  const checked = poolSchema.safeParse(pool);
  if (!checked.success) {
    throw configErrorFrom(checked.error, flags.poolSize !== undefined ? "--PoolSize" : "pool");
  }
  const server = { ...file.server };
  if (flags.socket !== undefined) {
    if (!flags.socket.startsWith("/")) {
      throw new ConfigError("--socket", "must be an absolute path");
    }
    server.serverPath = flags.socket;
  }
  if (flags.instanceId !== undefined && !/^i-[a-z0-9]+$/.test(flags.instanceId)) {
    throw new ConfigError("--instance-id", `"${flags.instanceId}" must look like "i-xxxxxxxx"`);
  }
  for (const [key, addr] of [["--manageAddr", flags.manageAddr], ["--bindAddr", flags.bindAddr]]) {
    if (addr !== undefined && addr !== "" && parseListenAddr(addr) === undefined) {
      throw new ConfigError(key!, `"${addr}" must be "host:port" or ":port"`);
    }
  }
  return {
    pool: checked.data,
    server,
    cni: file.cni,
    iaas: file.iaas,
    qyAccessFilePath: flags.qyAccessFilePath ?? DEFAULTS.qyAccessFilePath,
    cleanUpCacheOnExit: flags.cleanUpCacheOnExit ?? false,
    bindAddr: flags.bindAddr || undefined,
    manageAddr: flags.manageAddr ?? DEFAULTS.manageAddr,
    logLevel: flags.logLevel ?? "info",
    configPath,
    instanceId: flags.instanceId,
    instanceIdFile: flags.instanceIdFile ?? DEFAULTS.instanceIdFile,
    stateDir: flags.stateDir ?? DEFAULTS.stateDir,
    nodeName: flags.nodeName,
    kubeconfig: flags.kubeconfig,
  };
}

/**
 * Whether the daemon uses Kubernetes (pod annotations, events, node vxnet, ConfigMap): with
 * `--kubeconfig`, or in a pod (KUBERNETES_SERVICE_HOST set, the in-cluster service account).
 * Otherwise it runs on CNI_ARGS alone (seed 002 deployments) and never loads the Kubernetes client.
 */
export function kubernetesMode(
  kubeconfig: string | undefined,
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): "kubeconfig" | "in-cluster" | undefined {
  if (kubeconfig !== undefined) return "kubeconfig";
  return env("KUBERNETES_SERVICE_HOST") ? "in-cluster" : undefined;
}
