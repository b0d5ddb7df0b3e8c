/**
 * `hostnic controller`: the cluster controller of shared mode (lib/controller).
 *
 *   hostnic controller [--kubeconfig FILE] [--QyAccessFilePath FILE] [--leader-elect[=BOOL]]
 *                      [--lease-namespace NS] [--lease-name NAME] [--lease-duration S]
 *                      [--renew-deadline S] [--retry-period S] [--sync-period S]
 *                      [--cloud-resync S] [--manageAddr ADDR] [--loglevel LEVEL]
 *
 * Runs until SIGINT/SIGTERM (then releases the Lease). Exit codes: 0 clean stop, 1 failure or
 * leadership lost (the Deployment restarts it), 2 usage.
 *
 * Test hook: `HOSTNIC_CONTROLLER_EXIT_AFTER=<step>` (a name of lib/controller STEPS) makes the
 * process SIGKILL itself right after that step first completes — a crash at a chosen point, used
 * by tests/e2e/controller_test.ts. Ignored when empty.
 */
import { Option } from "commander";
import { type ModeProgram, newProgram, runProgram, stopSignal } from "../lib/cli.ts";
import { DEFAULTS } from "../lib/config.ts";
import { ConfigError } from "../lib/errors.ts";
import { LOG_LEVELS, type LogLevel } from "../lib/log.ts";
import { jsonLogger } from "../lib/log.ts";

interface ControllerOptions {
  kubeconfig?: string;
  QyAccessFilePath: string;
  leaderElect: boolean;
  leaseNamespace: string;
  leaseName: string;
  leaseDuration: string;
  renewDeadline: string;
  retryPeriod: string;
  syncPeriod: string;
  cloudResync: string;
  manageAddr: string;
  loglevel?: LogLevel;
}

export const CONTROLLER_DEFAULTS = {
  manageAddr: ":31082",
  leaseNamespace: "kube-system",
  leaseName: "hostnic-controller",
  leaseDurationS: 15,
  renewDeadlineS: 10,
  retryPeriodS: 2,
  syncPeriodS: 10,
  cloudResyncS: 600,
} as const;

function parseBool(v: string | boolean | undefined): boolean {
  if (v === undefined || v === true || v === "true") return true;
  if (v === false || v === "false") return false;
  throw new ConfigError("--leader-elect", `must be "true" or "false", got "${v}"`);
}

function seconds(flag: string, v: string): number {
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !(n > 0) || n > 3600) {
    throw new ConfigError(flag, `must be a number of seconds from 0 to 3600, got "${v}"`);
  }
  return n * 1000;
}

async function run(o: ControllerOptions): Promise<number> {
  const { STEPS } = await import("../lib/controller/types.ts");
  const exitAfter = Deno.env.get("HOSTNIC_CONTROLLER_EXIT_AFTER") ?? "";
  if (exitAfter !== "" && !(STEPS as readonly string[]).includes(exitAfter)) {
    throw new ConfigError(
      "HOSTNIC_CONTROLLER_EXIT_AFTER",
      `must be one of ${STEPS.join(", ")}, got "${exitAfter}"`,
    );
  }
  const lease = {
    leaseDurationMs: seconds("--lease-duration", o.leaseDuration),
    renewDeadlineMs: seconds("--renew-deadline", o.renewDeadline),
    retryPeriodMs: seconds("--retry-period", o.retryPeriod),
  };
  if (o.leaderElect && !(lease.retryPeriodMs < lease.renewDeadlineMs)) {
    throw new ConfigError("--retry-period", "must be shorter than --renew-deadline");
  }
  if (o.leaderElect && !(lease.renewDeadlineMs < lease.leaseDurationMs)) {
    throw new ConfigError("--renew-deadline", "must be shorter than --lease-duration");
  }
  const syncPeriodMs = seconds("--sync-period", o.syncPeriod);
  const cloudResyncMs = seconds("--cloud-resync", o.cloudResync);
  const logger = jsonLogger(o.loglevel ?? "info", { base: { component: "controller" } });

  const { HttpIaasClient } = await import("../lib/iaas/client.ts");
  const { loadIaasConfig } = await import("../lib/iaas/config.ts");
  const { controllerCloud } = await import("../lib/controller/cloud.ts");
  const { HttpControllerKube, HttpLeaseApi, loadKubeConfig } = await import(
    "../lib/controller/kube.ts"
  );
  const { KubeIpamStores } = await import("../lib/ipam/kube_store.ts");
  const { LeaderElector } = await import("../lib/controller/lease.ts");
  const { CloudCache } = await import("../lib/controller/cache.ts");
  const { KICK_PATHS, Kicker, startKickWatches } = await import("../lib/controller/watch.ts");
  const { createControllerMetrics } = await import("../lib/controller/metrics.ts");
  const { runController } = await import("../lib/controller/controller.ts");

  const iaasConfig = await loadIaasConfig(o.QyAccessFilePath);
  const kc = loadKubeConfig(o.kubeconfig);
  const metrics = createControllerMetrics();
  await using iaas = new HttpIaasClient({
    config: iaasConfig,
    logger,
    onCall: (e) => metrics.iaasCalls.inc({ action: e.action, outcome: e.outcome }),
  });
  await using stores = new KubeIpamStores({ kubeConfig: kc });
  const identity = `${Deno.env.get("POD_NAME") || Deno.hostname()}_${
    crypto.randomUUID().slice(0, 8)
  }`;
  const elector = o.leaderElect
    ? new LeaderElector({
      api: new HttpLeaseApi(kc),
      namespace: o.leaseNamespace,
      name: o.leaseName,
      identity,
      ...lease,
      logger,
    })
    : undefined;
  const fired = new Set<string>();
  const deps = {
    cloud: controllerCloud(iaas),
    kube: new HttpControllerKube(kc),
    pools: stores.pools,
    blocks: stores.blocks,
    now: () => Date.now(),
    cache: new CloudCache(cloudResyncMs),
    afterStep: (step: string, detail: Record<string, unknown>) => {
      logger.debug("step done", { step, ...detail });
      if (step === exitAfter && !fired.has(step)) {
        fired.add(step);
        logger.warn("HOSTNIC_CONTROLLER_EXIT_AFTER: crashing on purpose", { step, ...detail });
        Deno.kill(Deno.pid, "SIGKILL");
      }
    },
  };
  using stop = stopSignal();
  const ac = new AbortController();
  stop.received.then((sig) => {
    logger.info("stopping", { signal: sig });
    ac.abort();
  });
  logger.info("controller starting", {
    identity,
    leaderElect: o.leaderElect,
    lease: `${o.leaseNamespace}/${o.leaseName}`,
  });
  const kicker = new Kicker();
  const watching = startKickWatches(kc, {
    paths: KICK_PATHS,
    kick: () => kicker.kick(),
    logger,
    signal: ac.signal,
  });
  const running = runController({
    deps,
    kicker,
    metrics,
    logger,
    syncPeriodMs,
    ...(elector ? { elector } : {}),
    manageAddr: o.manageAddr,
    stop: ac.signal,
  });
  const end = await running.done;
  ac.abort();
  await watching;
  logger.info(end === "lost" ? "leadership lost; exiting" : "stopped");
  return end === "lost" ? 1 : 0;
}

/** `hostnic controller` as a commander program (built, not run). */
export function program(): ModeProgram {
  let code = 0;
  const program = newProgram("hostnic controller")
    .description(
      "hostnic cluster controller (shared mode): VxNetPool v-pool → VIPs, security-group rule, " +
        "IPPools and IPAMBlocks; namespace subnet auto-assign",
    )
    .option("--kubeconfig <file>", "kubeconfig (default: in-cluster)")
    .option("--QyAccessFilePath <file>", "QingCloud SDK config file", DEFAULTS.qyAccessFilePath)
    .addOption(
      new Option("--leader-elect [bool]", "elect a leader on a Lease (true|false)")
        .default(true)
        .argParser(parseBool),
    )
    .option("--lease-namespace <ns>", "namespace of the Lease", CONTROLLER_DEFAULTS.leaseNamespace)
    .option("--lease-name <name>", "name of the Lease", CONTROLLER_DEFAULTS.leaseName)
    .option(
      "--lease-duration <s>",
      "seconds a leader's Lease lasts without renewal",
      String(CONTROLLER_DEFAULTS.leaseDurationS),
    )
    .option(
      "--renew-deadline <s>",
      "seconds a leader keeps trying to renew before stepping down",
      String(CONTROLLER_DEFAULTS.renewDeadlineS),
    )
    .option(
      "--retry-period <s>",
      "seconds between Lease attempts",
      String(CONTROLLER_DEFAULTS.retryPeriodS),
    )
    .option(
      "--sync-period <s>",
      "seconds between reconcile passes",
      String(CONTROLLER_DEFAULTS.syncPeriodS),
    )
    .option(
      "--cloud-resync <s>",
      "seconds before cloud state this process verified (VIPs, rules) is verified again",
      String(CONTROLLER_DEFAULTS.cloudResyncS),
    )
    .option(
      "--manageAddr <addr>",
      "metrics/health HTTP address, '' to disable",
      CONTROLLER_DEFAULTS.manageAddr,
    )
    .addOption(new Option("--loglevel <level>", "log level").choices(LOG_LEVELS))
    .action(async (opts: ControllerOptions) => {
      code = await run(opts);
    });
  return { program, code: () => code };
}

export async function main(args: string[]): Promise<number> {
  const m = program();
  // Unlike other modes, no arguments is a valid invocation (all flags have defaults).
  return await runProgram(m.program, args, m.code, { bareRuns: true });
}
