/**
 * The node daemon's core put together: cloud client, Kubernetes binding, the mode (mode.ts), state
 * store, start-up checks, the allocation backend (backend.ts), socket API, management HTTP
 * (`/metrics`, `/healthz`, `/readyz`) and the sync loop. It knows no mode: what differs between
 * nic/passthrough and shared lives behind `Backend`.
 *
 * Order (readiness stays false until the last step):
 *   config → credentials → instance id → Kubernetes → mode → instance/vxnet checks → store
 *   → backend (recovery store ⇄ cloud, then pods: kernel ⇄ allocations, repair or release)
 *   → socket → pool fill → ready.
 * Shutdown reverses it; with CleanUpCacheOnExit the free NICs are detached and deleted.
 */
import type { DaemonConfig } from "../config.ts";
import { kubernetesMode } from "../config.ts";
import { startManageServer } from "../observe/mod.ts";
import { ConfigError, errorMessage, HostnicError } from "../errors.ts";
import { HttpIaasClient } from "../iaas/client.ts";
import { loadIaasConfig } from "../iaas/config.ts";
import { IaasError, isRetryable } from "../iaas/errors.ts";
import { CommandRunner, type Runner } from "../linux/exec.ts";
import { RealProcSys } from "../linux/sysctl.ts";
import {
  DatapathSetupError,
  DatapathTeardownError,
  InvalidSpecError,
  LinkConflictError,
  NetnsNotFoundError,
  NicNotFoundError,
} from "../linux/errors.ts";
import type { Logger } from "../log.ts";
import { PoolError } from "../nicpool/pool.ts";
import { RPC, RpcError } from "../rpc/protocol.ts";
import { route, startRpcServer } from "../rpc/server.ts";
import { openLevelStore } from "../store/mod.ts";
import type { Store } from "../store/store.ts";
import type { PoolView } from "../rpc/api.ts";
import { type Backend, ServiceError } from "./backend.ts";
import { createMetrics, type DaemonMetrics } from "./metrics.ts";
import { chooseMode } from "./mode.ts";
import {
  addSchema,
  adminGcSchema,
  checkSchema,
  delSchema,
  gcSchema,
  statusSchema,
} from "./schemas.ts";
import { checkInstanceAndVxnets } from "./startup.ts";
import { StartupRetry } from "./startup_retry.ts";
import { startSyncLoop } from "./sync_loop.ts";

export interface DaemonOptions {
  config: DaemonConfig;
  logger: Logger;
  runner?: Runner;
}

export interface Daemon {
  readonly instanceId: string;
  /** The allocation backend chosen at start (mode.ts). */
  readonly backend: Backend;
  readonly metrics: DaemonMetrics;
  /** `host:port` of the management server, once listening. */
  readonly manageAddr?: string;
  /** Stops serving and releases resources (drains free NICs with CleanUpCacheOnExit). */
  close(): Promise<void>;
  /** While `close()` runs: the step it is waiting for (e.g. "sync loop"); "" otherwise. */
  readonly closingStep: string;
}

/** A failure the operator must fix; the message says what and where. */
export class DaemonStartError extends HostnicError {
  constructor(message: string, options?: ErrorOptions) {
    super("DAEMON_START_FAILED", message, options);
  }
}

const INSTANCE_ID_RE = /^i-[a-z0-9]+$/;

async function readInstanceId(cfg: DaemonConfig): Promise<string> {
  if (cfg.instanceId) return cfg.instanceId;
  let text: string;
  try {
    text = await Deno.readTextFile(cfg.instanceIdFile);
  } catch (err) {
    throw new ConfigError(
      "--instance-id-file",
      `cannot read "${cfg.instanceIdFile}" (${errorMessage(err)}); give --instance-id instead`,
    );
  }
  const id = text.trim();
  if (!INSTANCE_ID_RE.test(id)) {
    throw new ConfigError(
      "--instance-id-file",
      `"${cfg.instanceIdFile}" must hold an instance id like "i-xxxxxxxx"`,
    );
  }
  return id;
}

/** Maps service, pool and datapath failures to the socket protocol's reasons and CNI codes. */
export function toRpcError(err: unknown, backend?: Pick<Backend, "rpcError">): unknown {
  if (err instanceof RpcError) return err;
  const own = backend?.rpcError(err);
  if (own) return own;
  if (err instanceof ServiceError || err instanceof PoolError) {
    switch (err.code) {
      case "NOT_READY":
      case "SHUTTING_DOWN":
        return new RpcError("NOT_READY", err.message);
      case "POOL_TIMEOUT":
        return new RpcError("POOL_TIMEOUT", err.message);
      case "MAX_NIC":
        return new RpcError("POOL_EMPTY", err.message, { cniCode: 101 });
      case "NO_POOL_VXNET":
        return new RpcError("CONFLICT", err.message, { cniCode: 101 });
      case "IAAS_FAILED": {
        const transient = err.cause === undefined || isRetryable(causeOf(err.cause));
        return new RpcError("IAAS_ERROR", err.message, {
          cniCode: transient ? 11 : 102,
          retryable: transient,
        });
      }
      case "UNKNOWN_CONTAINER":
        return new RpcError("NOT_FOUND", err.message, { cniCode: 3 });
      case "CHECK_FAILED":
        return new RpcError("CONFLICT", err.message, { cniCode: 104 });
    }
  }
  if (err instanceof NetnsNotFoundError) {
    return new RpcError("BAD_REQUEST", err.message, { cniCode: 3, field: "netns" });
  }
  if (
    err instanceof DatapathSetupError || err instanceof DatapathTeardownError ||
    err instanceof InvalidSpecError || err instanceof LinkConflictError ||
    err instanceof NicNotFoundError
  ) {
    return new RpcError("INTERNAL", `Pod network setup failed: ${err.message}`, { cniCode: 104 });
  }
  return err;
}

/** The innermost cause of a wrapped error (PoolError wraps the IaaS error). */
function causeOf(err: unknown): unknown {
  let e = err;
  while (e instanceof Error && e.cause !== undefined && !(e instanceof IaasError)) e = e.cause;
  return e;
}

/** The program a command runs: `ip` for `/usr/sbin/ip …` and `nsenter --net=… -- ip …`. */
export function programOf(argv: readonly string[]): string {
  const sep = argv[0]?.endsWith("nsenter") ? argv.indexOf("--") : -1;
  const prog = sep >= 0 ? argv[sep + 1] ?? argv[0] : argv[0] ?? "";
  return prog.slice(prog.lastIndexOf("/") + 1);
}

export async function startDaemon(o: DaemonOptions): Promise<Daemon> {
  const cfg = o.config;
  const logger = o.logger;
  const iaasConfig = await loadIaasConfig(cfg.qyAccessFilePath);
  const instanceId = await readInstanceId(cfg);
  const metrics = createMetrics(cfg.nodeName ?? instanceId);
  const runner = o.runner ?? new CommandRunner({
    onSpawn: (argv) => metrics.commands.inc({ program: programOf(argv) }),
  });
  const iaas = new HttpIaasClient({
    config: iaasConfig,
    rateLimit: { perSecond: cfg.iaas.callsPerSecond, burst: cfg.iaas.burst },
    logger,
    onCall: (e) => {
      metrics.iaasCalls.inc({ action: e.action, outcome: e.outcome });
      metrics.iaasLatency.observe({ action: e.action }, e.durationMs / 1000);
    },
  });
  const cleanups: (() => Promise<void>)[] = [() => iaas.close()];
  const undo = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  };
  const startup = new StartupRetry(logger);
  /** The backend once built; until then `/readyz` says what start-up waits for. */
  let built: Backend | undefined;
  try {
    // Up (`/healthz`) from the start, ready only at the end: a start-up waiting out a busy cloud
    // is not killed by a liveness probe.
    const manage = startManageServer(cfg.manageAddr, {
      metrics: metrics.registry,
      logger,
      readiness: () => {
        if (!built) return { ready: false, detail: startup.detail };
        const st = built.status();
        return built.ready
          ? { ready: true, detail: `${st.freeNics} free NICs` }
          : { ready: false, detail: st.reason ?? "starting" };
      },
    });
    cleanups.push(() => manage.close());
    // Kubernetes (pod annotations and events, node vxnet, pool health, ConfigMap): see kube/.
    const kube = kubernetesMode(cfg.kubeconfig)
      ? await (await import("./kube/mod.ts")).startKubeBinding({
        config: cfg,
        instanceId,
        logger,
      })
      : undefined;
    if (kube) cleanups.push(() => kube.close());
    // A Warning event on passthrough pods a NetworkPolicy selects (not enforceable on the host).
    const policyWarn = kube &&
      (await import("./kube/netpol_warn.ts")).startPolicyWarnings({
        kube: kube.kube,
        nodeName: kube.nodeName,
        logger,
      });
    if (policyWarn) cleanups.push(() => policyWarn.stop());
    // The allocation mode, decided once at start (mode.ts).
    const mode = await chooseMode({
      kube,
      kubeconfig: cfg.kubeconfig,
      calico: cfg.server.networkPolicy === "calico",
      logger,
    });
    cleanups.push(() => mode.close());
    const poolVxnet = kube ? kube.poolVxnet : cfg.pool.vxNets[0];
    const facts = await startup.run(
      "check instance and vxnets",
      () =>
        checkInstanceAndVxnets(iaas, {
          instanceId,
          vxnets: poolVxnet && !cfg.pool.vxNets.includes(poolVxnet)
            ? [...cfg.pool.vxNets, poolVxnet]
            : cfg.pool.vxNets,
        }),
    );
    if (!kube && cfg.pool.vxNets.length > 1) {
      logger.info("several vxnets configured; this node pools the first", { vxnet: poolVxnet });
    }
    if (cfg.bindAddr) {
      logger.warn("--bindAddr is accepted for compatibility and ignored: the API is on a socket", {
        socket: cfg.server.serverPath,
      });
    }
    const store: Store = await openLevelStore({ dir: `${cfg.stateDir}/store`, logger });
    cleanups.push(() => store.close());
    // The daemon's own namespace is the node's: its sysctls go to /proc/sys without a spawn
    // (not with an injected runner, whose commands may target another namespace).
    const linux = { runner, logger, ...(o.runner ? {} : { procSys: new RealProcSys() }) };
    // Recovery (store ⇄ cloud), then DELs journaled while the daemon was away, pods whose netns
    // is gone, kernel state lost by a reboot: all settled before the daemon says it is ready.
    const backend = await mode.start({
      config: cfg,
      instanceId,
      poolVxnet,
      nodeIp: facts.nodeIp,
      iaas,
      store,
      linux,
      logger,
      metrics,
      startup,
      ...(kube ? { kube } : {}),
    });
    built = backend;
    cleanups.push(() => backend.close({ drainFree: false }));

    const rpc = await startRpcServer({
      socketPath: cfg.server.serverPath,
      logger: logger.child({ component: "rpc" }),
      routes: rpcRoutes(backend, metrics, {
        instanceId,
        nodeName: cfg.nodeName,
        add: kube && ((b) => kube.add(b, (r) => backend.add(r), { ipAlone: backend.ipAlone })),
      }),
    });
    cleanups.push(() => rpc.close());
    let lastFullGc = Date.now();
    // Every `sync` period: replay DELs journaled while the daemon was away, retry stuck
    // detaches, resize the pool; every `nodeSync` period, a full GC pass (cloud, pods, cluster).
    const loop = startSyncLoop(cfg.pool.sync * 1000, logger, async (signal) => {
      // Pool health to the node annotation: beside the pass (never rejects, even if GC fails).
      void kube?.sync(backend);
      const full = Date.now() - lastFullGc >= cfg.pool.nodeSync * 1000;
      if (full) lastFullGc = Date.now();
      await backend.sync(full, signal);
    });
    cleanups.push(async () => {
      await loop.stop();
    });

    backend.serve();
    backend.setReady(true);
    logger.info("hostnic daemon ready", {
      instance: instanceId,
      vxnet: poolVxnet,
      mode: backend.mode,
      socket: cfg.server.serverPath,
      manage: manage.addr,
      nics: backend.recovered.nics,
      pods: backend.recovered.pods,
    });
    let closed = false;
    let closingStep = "";
    const step = async (name: string, f: () => Promise<unknown>) => {
      closingStep = name;
      await f();
    };
    return {
      instanceId,
      backend,
      metrics,
      manageAddr: manage.addr,
      async close() {
        if (closed) return;
        closed = true;
        backend.setReady(false, "shutting down");
        await step("sync loop", () => loop.stop());
        await step("cni socket", () => rpc.close().catch(() => {}));
        await step("management server", () => manage.close().catch(() => {}));
        await step("kubernetes client", async () => await kube?.close().catch(() => {}));
        await step("backend", () => backend.close({ drainFree: cfg.cleanUpCacheOnExit }));
        await step("store", () => store.close());
        await step("iaas client", () => iaas.close());
        // A pass that outlived the loop's wait fails on the clients closed above.
        await step("sync pass", () => loop.settled());
        closingStep = "";
      },
      get closingStep() {
        return closingStep;
      },
    };
  } catch (err) {
    await undo();
    throw err;
  }
}

function rpcRoutes(
  backend: Backend,
  metrics: DaemonMetrics,
  node: { instanceId: string; nodeName?: string; add?: Backend["add"] },
) {
  const timed = <T>(command: string, fn: () => Promise<T>): Promise<T> => {
    const end = metrics.cniLatency.startTimer({ command });
    return fn().then(
      (v) => {
        end({ result: "ok" });
        return v;
      },
      (err) => {
        end({ result: "error" });
        throw toRpcError(err, backend);
      },
    );
  };
  const add = node.add ?? ((b) => backend.add(b));
  return [
    route(RPC.cniAdd, addSchema, (b) => timed("ADD", () => add(b))),
    route(RPC.cniDel, delSchema, (b) => timed("DEL", () => backend.del(b)).then(() => ({}))),
    route(
      RPC.cniCheck,
      checkSchema,
      (b) => timed("CHECK", () => backend.check(b)).then(() => ({})),
    ),
    route(RPC.cniStatus, statusSchema, () => backend.status()),
    route(
      RPC.cniGc,
      gcSchema,
      (b) => timed("GC", () => backend.gc(b)).then((released) => ({ released })),
    ),
    route(RPC.adminPool, null, (): PoolView => ({
      instanceId: node.instanceId,
      nodeName: node.nodeName,
      ...backend.poolView(),
    })),
    route(RPC.adminNics, null, () => backend.nicViews()),
    route(RPC.adminPods, null, () => backend.podViews()),
    route(RPC.adminGc, adminGcSchema, (b) => backend.collect({ dryRun: b.dryRun })),
    route(RPC.healthz, null, () => ({ ok: true, ready: backend.ready })),
    ...backend.routes(),
  ];
}
