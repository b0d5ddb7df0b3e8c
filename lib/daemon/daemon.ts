/**
 * The node daemon put together: cloud client, state store, start-up checks and recovery, NIC pool,
 * CNI service, socket API, management HTTP (`/metrics`, `/healthz`, `/readyz`) and the sync loop.
 *
 * Order (readiness stays false until the last step):
 *   config → credentials → instance id → instance/vxnet checks → store → recovery (store ⇄ cloud)
 *   → pods (kernel ⇄ allocations: repair or release) → socket → pool fill → ready.
 * Shutdown reverses it; with CleanUpCacheOnExit the free NICs are detached and deleted.
 */
import type { DaemonConfig } from "../config.ts";
import { kubernetesMode } from "../config.ts";
import { startManageServer } from "../observe/manage_server.ts";
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
import { IaasPoolCloud } from "../nicpool/cloud.ts";
import type { NicRecord } from "../nicpool/model.ts";
import { NicPool, PoolError } from "../nicpool/pool.ts";
import { RPC, RpcError } from "../rpc/protocol.ts";
import { route, type RpcRoute, startRpcServer } from "../rpc/server.ts";
import { openLevelStore } from "../store/mod.ts";
import type { Store } from "../store/store.ts";
import type { CniSettings, GcView, NicView, PodView, PoolView } from "../rpc/api.ts";
import { LinuxPodDatapath, LinuxPoolLinks } from "./nic/datapath.ts";
import { createMetrics, type DaemonMetrics } from "./metrics.ts";
import {
  addSchema,
  adminGcSchema,
  checkSchema,
  delSchema,
  gcSchema,
  statusSchema,
} from "./schemas.ts";
import { Collector, describeAction } from "./nic/gc.ts";
import { CniService, ServiceError } from "./nic/service.ts";
import { sharedRpcError } from "./shared/service.ts";
import { checkInstanceAndVxnets, recoverState } from "./startup.ts";

export interface DaemonOptions {
  config: DaemonConfig;
  logger: Logger;
  runner?: Runner;
}

export interface Daemon {
  readonly instanceId: string;
  readonly service: CniService;
  readonly pool: NicPool;
  readonly metrics: DaemonMetrics;
  /** `host:port` of the management server, once listening. */
  readonly manageAddr?: string;
  /** Stops serving and releases resources (drains free NICs with CleanUpCacheOnExit). */
  close(): Promise<void>;
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
export function toRpcError(err: unknown): unknown {
  if (err instanceof RpcError) return err;
  const shared = sharedRpcError(err);
  if (shared) return shared;
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
  try {
    // Kubernetes (pod annotations and events, node vxnet, pool health, ConfigMap): see kube.ts.
    const kube = kubernetesMode(cfg.kubeconfig)
      ? await (await import("./kube/binding.ts")).startKubeBinding({
        config: cfg,
        instanceId,
        logger,
      })
      : undefined;
    if (kube) cleanups.push(() => kube.close());
    // Shared mode (v-pool ready and hostnic-ipam-config present), decided once at start.
    const sharedKube = kube &&
      await (await import("./shared/kube.ts")).startSharedKube({
        kube: kube.kube,
        kubeconfig: cfg.kubeconfig,
        logger,
        calico: cfg.server.networkPolicy === "calico",
      });
    if (sharedKube) cleanups.push(() => sharedKube.close());
    const sharedOn = sharedKube && "ipam" in sharedKube ? sharedKube : undefined;
    const poolVxnet = kube ? kube.poolVxnet : cfg.pool.vxNets[0];
    const facts = await checkInstanceAndVxnets(iaas, {
      instanceId,
      vxnets: poolVxnet && !cfg.pool.vxNets.includes(poolVxnet)
        ? [...cfg.pool.vxNets, poolVxnet]
        : cfg.pool.vxNets,
    });
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
    const datapath = new LinuxPodDatapath(linux, { nodeIp: facts.nodeIp });
    const settings: CniSettings = {
      vethPrefix: cfg.cni.vethPrefix,
      mtu: cfg.cni.mtu,
      serviceCIDR: cfg.cni.serviceCIDR,
      hairpin: cfg.cni.hairpin,
      natMark: cfg.cni.natMark,
    };
    let refreshGauges = () => {};
    const pool = new NicPool({
      cloud: new IaasPoolCloud(iaas, logger),
      links: new LinuxPoolLinks(linux),
      store,
      logger: logger.child({ component: "pool" }),
      onChange: () => refreshGauges(),
    }, {
      instanceId,
      vxnet: poolVxnet,
      tag: cfg.pool.tag,
      // Shared mode keeps no warm NICs: a vxnet's NIC comes with its first pod.
      poolLow: sharedOn ? 0 : cfg.pool.poolLow,
      poolHigh: sharedOn ? 0 : cfg.pool.poolHigh,
      maxNic: cfg.pool.maxNic,
      routeTableBase: cfg.pool.routeTableBase,
      jobTimeoutMs: 120_000,
      trimDelayMs: cfg.pool.sync * 1000,
      allocTimeoutMs: cfg.pool.allocTimeout * 1000,
      ipCooldownMs: cfg.pool.ipCooldown * 1000,
    });
    cleanups.push(() => pool.close());
    const svc = new CniService({ pool, store, datapath, logger, settings });
    refreshGauges = () => {
      const c = pool.counts();
      const detaching = pool.list().filter((n) => n.state === "detaching").length;
      metrics.poolNics.set({ state: "free" }, c.free);
      metrics.poolNics.set({ state: "cooling" }, c.cooling);
      metrics.poolNics.set({ state: "pending" }, c.pending);
      metrics.poolNics.set({ state: "inuse" }, c.inuse);
      metrics.poolNics.set({ state: "detaching" }, detaching);
      metrics.allocations.set(svc.allocations().length);
    };

    const recovered = await recoverState({ iaas, store, logger, now: Date.now }, {
      instanceId,
      nicName: pool.nicName,
      routeTableBase: cfg.pool.routeTableBase,
      pooledVxnet: poolVxnet,
    });
    pool.load(recovered.nics);
    svc.load(recovered.allocs);
    const collector = new Collector({
      svc,
      pool,
      datapath,
      iaas,
      logger: logger.child({ component: "gc" }),
      journalDir: `${cfg.stateDir}/journal`,
      livePods: kube && (() => kube.livePods()),
    }, {
      instanceId,
      pooledVxnet: poolVxnet,
      freePeriodMs: cfg.pool.freePeriod * 60_000,
      podGraceMs: 2 * cfg.pool.nodeSync * 1000,
    });
    // DELs journaled while the daemon was away, pods whose netns is gone, kernel state lost by
    // a reboot: all settled before the daemon says it is ready (recovery just asked the cloud).
    const shared = sharedOn &&
      await (await import("./shared/mod.ts")).startSharedMode({
        ...sharedOn,
        kube: kube!.kube,
        pool,
        store,
        linux,
        logger,
        nodeName: kube!.nodeName,
        settings,
        registry: metrics.registry,
        livePods: () => kube!.livePods(),
        freePeriodMs: cfg.pool.freePeriod * 60_000,
        graceMs: 2 * cfg.pool.nodeSync * 1000,
      });
    if (shared) {
      collector.sharedDel = (containerId, ifName) =>
        shared.service.del({ containerId, ifName, netns: "" });
    }
    await collector.run({ cloud: false });
    refreshGauges();

    const rpc = await startRpcServer({
      socketPath: cfg.server.serverPath,
      logger: logger.child({ component: "rpc" }),
      routes: rpcRoutes(svc, pool, metrics, collector, {
        instanceId,
        nodeName: cfg.nodeName,
        add: kube &&
          ((b) =>
            kube.add(
              b,
              (r) => shared && r.type !== "passthrough" ? shared.service.add(r) : svc.add(r),
              { ipAlone: shared !== undefined },
            )),
        shared: shared ? shared.service : undefined,
      }, shared ? shared.routes() : []),
    });
    cleanups.push(() => rpc.close());
    const manage = startManageServer(cfg.manageAddr, {
      metrics: metrics.registry,
      logger,
      readiness: () => {
        const st = svc.status();
        return svc.ready
          ? { ready: true, detail: `${st.freeNics} free NICs` }
          : { ready: false, detail: st.reason ?? "starting" };
      },
    });
    cleanups.push(() => manage.close());
    let lastFullGc = Date.now();
    const loop = startSyncLoop(cfg.pool.sync * 1000, logger, async () => {
      // Pool health to the node annotation: beside the pass (never rejects, even if GC fails).
      void kube?.sync({ pool, svc });
      const full = Date.now() - lastFullGc >= cfg.pool.nodeSync * 1000;
      if (full) lastFullGc = Date.now();
      await collector.run(full ? {} : { cloud: false, pods: false });
      await shared?.sync(full);
      pool.kick();
    });
    cleanups.push(() => loop.stop());

    pool.kick();
    svc.setReady(true);
    logger.info("hostnic daemon ready", {
      instance: instanceId,
      vxnet: poolVxnet,
      socket: cfg.server.serverPath,
      manage: manage.addr,
      nics: recovered.nics.length,
      pods: recovered.allocs.length,
    });
    let closed = false;
    return {
      instanceId,
      service: svc,
      pool,
      metrics,
      manageAddr: manage.addr,
      async close() {
        if (closed) return;
        closed = true;
        svc.setReady(false, "shutting down");
        await loop.stop();
        await rpc.close().catch(() => {});
        await manage.close().catch(() => {});
        await kube?.close().catch(() => {});
        if (cfg.cleanUpCacheOnExit) {
          await pool.settle();
          await pool.drainFree().catch((err) =>
            logger.warn("could not delete free NICs on exit", { err: errorMessage(err) })
          );
        }
        await pool.close();
        await store.close();
        await iaas.close();
      },
    };
  } catch (err) {
    await undo();
    throw err;
  }
}

function rpcRoutes(
  svc: CniService,
  pool: NicPool,
  metrics: DaemonMetrics,
  collector: Collector,
  node: {
    instanceId: string;
    nodeName?: string;
    add?: CniService["add"];
    shared?:
      & { has(c: string, i: string): boolean; views(): PodView[] }
      & Pick<
        CniService,
        "del" | "check"
      >;
  },
  extraRoutes: RpcRoute[] = [],
) {
  const sharedHas = (b: { containerId: string; ifName: string }) =>
    node.shared?.has(b.containerId, b.ifName) === true;
  const timed = <T>(command: string, fn: () => Promise<T>): Promise<T> => {
    const end = metrics.cniLatency.startTimer({ command });
    return fn().then(
      (v) => {
        end({ result: "ok" });
        return v;
      },
      (err) => {
        end({ result: "error" });
        throw toRpcError(err);
      },
    );
  };
  const podOf = (owner?: string) => {
    if (!owner) return undefined;
    const a = svc.allocations().find((x) => `${x.containerId}/${x.ifName}` === owner);
    return a?.podName ? `${a.podNamespace ?? "default"}/${a.podName}` : undefined;
  };
  return [
    route(RPC.cniAdd, addSchema, (b) => timed("ADD", () => node.add ? node.add(b) : svc.add(b))),
    route(
      RPC.cniDel,
      delSchema,
      (b) => timed("DEL", () => sharedHas(b) ? node.shared!.del(b) : svc.del(b)).then(() => ({})),
    ),
    route(
      RPC.cniCheck,
      checkSchema,
      (b) =>
        timed("CHECK", () => sharedHas(b) ? node.shared!.check(b) : svc.check(b)).then(() => ({})),
    ),
    route(RPC.cniStatus, statusSchema, () => svc.status()),
    route(
      RPC.cniGc,
      gcSchema,
      (b) => timed("GC", () => svc.gc(b)).then((released) => ({ released })),
    ),
    route(RPC.adminPool, null, (): PoolView => {
      const c = pool.counts();
      const st = svc.status();
      return {
        instanceId: node.instanceId,
        nodeName: node.nodeName,
        vxnet: pool.options.vxnet,
        poolLow: pool.options.poolLow,
        poolHigh: pool.options.poolHigh,
        maxNic: pool.options.maxNic,
        free: c.free,
        cooling: c.cooling,
        pending: c.pending,
        inuse: c.inuse,
        detaching: pool.list().filter((n) => n.state === "detaching").length,
        total: c.total,
        waiters: c.waiters,
        ready: st.ready,
        reason: st.reason,
        lastError: pool.lastError,
      };
    }),
    route(
      RPC.adminNics,
      null,
      (): NicView[] =>
        pool.list().filter((n) => !n.id.startsWith("pending-")).map((n: NicRecord) => ({
          id: n.id,
          vxnet: n.vxnet,
          ip: n.ip,
          state: n.state,
          table: n.table,
          dedicated: n.dedicated,
          owner: n.owner,
          pod: podOf(n.owner),
          jobId: n.jobId,
        })),
    ),
    route(RPC.adminPods, null, (): PodView[] =>
      svc.allocations().map((a): PodView => ({
        containerId: a.containerId,
        ifName: a.ifName,
        pod: a.podName ? `${a.podNamespace ?? "default"}/${a.podName}` : undefined,
        netns: a.netns,
        mode: a.mode,
        ip: a.ip,
        nicId: a.nicId,
        vxnet: a.vxnet,
        table: a.table,
        createdAt: new Date(a.createdAt).toISOString(),
      })).concat(node.shared?.views() ?? [])),
    route(RPC.adminGc, adminGcSchema, async (b): Promise<GcView> => {
      const r = await collector.run({ dryRun: b.dryRun });
      return {
        applied: r.applied,
        actions: r.actions.map((a) => ({ ...a, text: describeAction(a) })),
        failed: r.failed,
      };
    }),
    route(RPC.healthz, null, () => ({ ok: true, ready: svc.ready })),
    ...extraRoutes,
  ];
}

/** Every `sync` period: replay DELs journaled while the daemon was away, retry stuck detaches,
 * resize the pool; every `nodeSync` period, a full GC pass (cloud, pods, Kubernetes). */
function startSyncLoop(periodMs: number, logger: Logger, pass: () => Promise<void>) {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = pass().catch((err) => {
      logger.warn("sync pass failed", { err: errorMessage(err) });
    }).finally(() => {
      if (!stopped) timer = setTimeout(tick, periodMs);
    });
  };
  timer = setTimeout(tick, periodMs);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
