/**
 * The nic backend: one cloud NIC per pod from the node's warm pool (`nic` mode: the NIC stays on
 * the node and the pod gets a veth; `passthrough`: the NIC itself moves into the pod). Built from
 * the NIC pool (lib/nicpool), the CNI service (service.ts), the node datapath (datapath.ts) and
 * its GC (gc.ts). Shared mode builds on it with `warm: false` (see ../shared/mod.ts).
 *
 * Start-up: store ⇄ cloud recovery (../startup.ts) loads the pool and the allocations; `settle()`
 * then runs the first GC pass (journaled DELs, pods whose netns is gone, kernel state lost by a
 * reboot) before the daemon says it is ready.
 */
import { errorMessage } from "../../errors.ts";
import type { NicRecord } from "../../nicpool/model.ts";
import { IaasPoolCloud } from "../../nicpool/cloud.ts";
import { NicPool } from "../../nicpool/pool.ts";
import type { NicView, PodView } from "../../rpc/api.ts";
import { type BackendDeps, cniSettings, type PoolBackend, type PoolSummary } from "../backend.ts";
import { recoverState } from "../startup.ts";
import { LinuxPodDatapath, LinuxPoolLinks } from "./datapath.ts";
import { Collector, describeAction } from "./gc.ts";
import { CniService } from "./service.ts";

export interface NicBackendOptions {
  /** Keep `pool.poolLow`..`poolHigh` free NICs; false: none (a NIC comes with its pod). */
  warm: boolean;
}

export async function startNicBackend(d: BackendDeps, o: NicBackendOptions): Promise<PoolBackend> {
  const { config: cfg, instanceId, poolVxnet, logger, metrics, store } = d;
  const datapath = new LinuxPodDatapath(d.linux, { nodeIp: d.nodeIp });
  const settings = cniSettings(cfg);
  let refreshGauges = () => {};
  const pool = new NicPool({
    cloud: new IaasPoolCloud(d.iaas, logger),
    links: new LinuxPoolLinks(d.linux),
    store,
    logger: logger.child({ component: "pool" }),
    onChange: () => refreshGauges(),
  }, {
    instanceId,
    vxnet: poolVxnet,
    tag: cfg.pool.tag,
    poolLow: o.warm ? cfg.pool.poolLow : 0,
    poolHigh: o.warm ? cfg.pool.poolHigh : 0,
    maxNic: cfg.pool.maxNic,
    routeTableBase: cfg.pool.routeTableBase,
    jobTimeoutMs: 120_000,
    trimDelayMs: cfg.pool.sync * 1000,
    allocTimeoutMs: cfg.pool.allocTimeout * 1000,
    ipCooldownMs: cfg.pool.ipCooldown * 1000,
  });
  try {
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
    // Reads everything before it writes: run again from the start when the cloud is busy.
    const recover = () =>
      recoverState({ iaas: d.iaas, store, logger, now: Date.now }, {
        instanceId,
        nicName: pool.nicName,
        routeTableBase: cfg.pool.routeTableBase,
        pooledVxnet: poolVxnet,
      });
    const recovered = d.startup ? await d.startup.run("recover NICs", recover) : await recover();
    pool.load(recovered.nics);
    svc.load(recovered.allocs);
    const kube = d.kube;
    const collector = new Collector({
      svc,
      pool,
      datapath,
      iaas: d.iaas,
      logger: logger.child({ component: "gc" }),
      journalDir: `${cfg.stateDir}/journal`,
      livePods: kube && (() => kube.livePods()),
    }, {
      instanceId,
      pooledVxnet: poolVxnet,
      freePeriodMs: cfg.pool.freePeriod * 60_000,
      podGraceMs: 2 * cfg.pool.nodeSync * 1000,
    });
    const podOf = (owner?: string) => {
      if (!owner) return undefined;
      const a = svc.allocations().find((x) => `${x.containerId}/${x.ifName}` === owner);
      return a?.podName ? `${a.podNamespace ?? "default"}/${a.podName}` : undefined;
    };
    const backend: PoolBackend = {
      mode: "nic",
      ipAlone: false,
      recovered: { nics: recovered.nics.length, pods: recovered.allocs.length },
      pool,
      get foreignDel() {
        return collector.sharedDel;
      },
      set foreignDel(fn) {
        collector.sharedDel = fn;
      },
      get ready() {
        return svc.ready;
      },
      setReady: (ready, reason) => svc.setReady(ready, reason),
      add: (req) => svc.add(req),
      del: (req) => svc.del(req),
      check: (req) => svc.check(req),
      gc: (req) => svc.gc(req),
      status: () => svc.status(),
      rpcError: () => undefined,
      async settle() {
        await collector.run({ cloud: false });
        refreshGauges();
      },
      serve: () => pool.kick(),
      async gcPass(full, signal) {
        await collector.run(full ? { signal } : { cloud: false, pods: false, signal });
      },
      async sync(full, signal) {
        await backend.gcPass(full, signal);
        if (!signal?.aborted) pool.kick();
      },
      async collect({ dryRun }) {
        const r = await collector.run({ dryRun });
        return {
          applied: r.applied,
          actions: r.actions.map((a) => ({ ...a, text: describeAction(a) })),
          failed: r.failed,
        };
      },
      poolView: () => poolView(pool, svc),
      nicViews: () =>
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
        } satisfies NicView)),
      podViews: () =>
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
        })),
      routes: () => [],
      async close({ drainFree }) {
        if (drainFree) {
          await pool.settle();
          await pool.drainFree().catch((err) =>
            logger.warn("could not delete free NICs on exit", { err: errorMessage(err) })
          );
        }
        await pool.close();
      },
    };
    return backend;
  } catch (err) {
    await pool.close().catch(() => {});
    throw err;
  }
}

/** `admin pool ls` without instance and node names (the core adds them). */
function poolView(pool: NicPool, svc: CniService): PoolSummary {
  const c = pool.counts();
  const st = svc.status();
  return {
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
}
