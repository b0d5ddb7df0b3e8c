/**
 * `hostnic daemon start`: the node daemon (NIC pool, allocations, socket API, metrics).
 *
 *   hostnic daemon start [--vxnets IDS] [--PoolSize N] [--QyAccessFilePath FILE]
 *                        [--CleanUpCacheOnExit] [--bindAddr ADDR] [--manageAddr ADDR]
 *                        [--loglevel LEVEL] [--config FILE] [--instance-id ID]
 *                        [--instance-id-file FILE] [--state-dir DIR] [--socket PATH]
 *                        [--node-name NAME] [--kubeconfig FILE]
 *
 * Flag names of seed 002 are kept as they were (`--PoolSize`, `--QyAccessFilePath` …). With
 * Kubernetes (`--kubeconfig`, or in a pod) and no config file, the config is ConfigMap
 * `hostnic-cfg-cm` (namespace POD_NAMESPACE, default kube-system) read through the API. Runs until
 * SIGINT/SIGTERM. Exit codes: 0 clean stop, 1 failure (message on stderr), 2 usage.
 */
import { Option } from "commander";
import { type ModeProgram, newProgram, runProgram, stopSignal } from "../lib/cli.ts";
import {
  type DaemonFlags,
  DEFAULTS,
  type FileConfig,
  kubernetesMode,
  parseConfigFile,
  resolveConfig,
} from "../lib/config.ts";
import { startDaemon } from "../lib/daemon/daemon.ts";
import { errorMessage } from "../lib/errors.ts";
import { LOG_LEVELS, type LogLevel } from "../lib/log.ts";
import { jsonLogger } from "../lib/log.ts";

interface StartOptions {
  vxnets?: string[];
  PoolSize?: string;
  QyAccessFilePath?: string;
  CleanUpCacheOnExit?: boolean;
  bindAddr?: string;
  manageAddr?: string;
  loglevel?: LogLevel;
  config?: string;
  instanceId?: string;
  instanceIdFile?: string;
  stateDir?: string;
  socket?: string;
  nodeName?: string;
  kubeconfig?: string;
}

/** `--vxnets a,b --vxnets c` → [a, b, c] (seed 002 passes one comma-separated list). */
function collectList(value: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), ...value.split(",").map((v) => v.trim()).filter(Boolean)];
}

/** The config file; undefined when the default one does not exist (an explicit one must). */
async function readConfigFile(path: string, explicit: boolean): Promise<FileConfig | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (!explicit && err instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`Cannot read config file "${path}": ${errorMessage(err)}`);
  }
  return parseConfigFile(text, path);
}

async function start(o: StartOptions): Promise<number> {
  const flags: DaemonFlags = {
    vxnets: o.vxnets,
    poolSize: o.PoolSize === undefined
      ? undefined
      : (/^\d+$/.test(o.PoolSize) ? Number(o.PoolSize) : NaN),
    qyAccessFilePath: o.QyAccessFilePath,
    cleanUpCacheOnExit: o.CleanUpCacheOnExit,
    bindAddr: o.bindAddr,
    manageAddr: o.manageAddr,
    logLevel: o.loglevel,
    config: o.config,
    instanceId: o.instanceId,
    instanceIdFile: o.instanceIdFile,
    stateDir: o.stateDir,
    socket: o.socket,
    nodeName: o.nodeName,
    kubeconfig: o.kubeconfig,
  };
  if (flags.poolSize !== undefined && Number.isNaN(flags.poolSize)) {
    throw new Error(`--PoolSize: must be a whole number from 0 to 63, got "${o.PoolSize}"`);
  }
  const logger = jsonLogger(o.loglevel ?? "info", { base: { component: "daemon" } });
  // defaults < config (the file if it exists, else with Kubernetes the ConfigMap through the API)
  // < flags. In the DaemonSet the file is the ConfigMap's mounted `hostnic` key.
  const configPath = o.config ?? DEFAULTS.configPath;
  let file = await readConfigFile(configPath, o.config !== undefined);
  let source = file ? configPath : "defaults";
  if (!file && kubernetesMode(o.kubeconfig)) {
    resolveConfig(parseConfigFile("", configPath), flags, configPath); // bad flags fail first
    const { readConfigMap } = await import("../lib/daemon/kube/binding.ts");
    const fromCluster = await readConfigMap({ kubeconfig: o.kubeconfig, logger });
    if (fromCluster) [file, source] = [fromCluster.config, fromCluster.source];
  }
  const cfg = resolveConfig(file ?? parseConfigFile("", configPath), flags, configPath);
  logger.info("configuration read", { source });
  const daemon = await startDaemon({ config: cfg, logger });
  try {
    using stop = stopSignal();
    logger.info("stopping", { signal: await stop.received });
  } finally {
    await daemon.close();
  }
  logger.info("stopped");
  return 0;
}

/** `hostnic daemon …` as a commander program (built, not run). */
export function program(): ModeProgram {
  let code = 0;
  const program = newProgram("hostnic daemon")
    .description("hostnic node daemon: warm NIC pool, pod allocations, socket API");
  program
    .command("start")
    .description("run the daemon until SIGINT/SIGTERM")
    .option("--vxnets <ids>", "vxnet ids for the NIC pool, comma-separated", collectList)
    .option("--PoolSize <n>", "free NICs kept ready (sets pool.poolLow = pool.poolHigh)")
    .option("--QyAccessFilePath <file>", "QingCloud SDK config file", DEFAULTS.qyAccessFilePath)
    .option("--CleanUpCacheOnExit", "detach and delete free NICs on exit")
    .option("--bindAddr <addr>", "accepted for compatibility; the API is on --socket")
    .option(
      "--manageAddr <addr>",
      "metrics/health HTTP address, '' to disable",
      DEFAULTS.manageAddr,
    )
    .addOption(
      new Option("--loglevel <level>", "log level").choices(LOG_LEVELS),
    )
    .option("--config <file>", `JSON config file (default ${DEFAULTS.configPath})`)
    .option("--instance-id <id>", "this node's instance id (default: read --instance-id-file)")
    .option("--instance-id-file <file>", "file holding the instance id", DEFAULTS.instanceIdFile)
    .option("--state-dir <dir>", "state directory (LevelDB)", DEFAULTS.stateDir)
    .option("--socket <path>", `socket API path (default ${DEFAULTS.socketPath})`)
    .option("--node-name <name>", "Kubernetes node name (default: the instance id)")
    .option("--kubeconfig <file>", "kubeconfig (default: in-cluster when in Kubernetes)")
    .action(async (opts: StartOptions) => {
      code = await start(opts);
    });
  return { program, code: () => code };
}

export async function main(args: string[]): Promise<number> {
  const m = program();
  return await runProgram(m.program, args, m.code);
}
