/**
 * The shared backend: block IPAM (lib/ipam) over one NIC per (node, vxnet), shared by many pods.
 * It builds on a pool backend without warm NICs (the core's `PoolBackend`, nic/ in practice) for
 * those NICs and for passthrough pods, which keep a NIC of their own; everything else is here:
 * `SharedService` (service.ts), its GC (gc.ts), its Kubernetes side (kube.ts: the mode decision,
 * the IPAM stores, Calico's annotations), its metrics and the `admin ipam check` route.
 *
 * Start-up rebuild (before the daemon says it is ready): the records are loaded from the store,
 * then one GC pass settles them against the kernel and Kubernetes — records of pods whose netns is
 * gone are released, records whose kernel state was lost (a reboot) are set up again (NIC plumbing
 * first), `allocating` records of ADDs that crashed are released once their pod is gone.
 */
import { Gauge } from "../../observe/mod.ts";
import { blockStats } from "../../ipam/mod.ts";
import { route } from "../../rpc/server.ts";
import { RPC } from "../../rpc/protocol.ts";
import { type Backend, type BackendDeps, cniSettings, type PoolBackend } from "../backend.ts";
import { adminGcSchema } from "../schemas.ts";
import type { SharedKubeBinding } from "./kube.ts";
import { sharedRpcError } from "./request.ts";
import { SharedService } from "./service.ts";
import { SharedCollector, type SharedGcResult } from "./gc.ts";

export { type SharedKubeBinding, startSharedKube } from "./kube.ts";

export interface SharedBackendOptions {
  /** The decision's open IPAM stores (`startSharedKube` said shared). */
  binding: SharedKubeBinding;
  /** The pool backend (no warm NICs) for the vxnets' NICs and passthrough pods. */
  base: PoolBackend;
  /** The core's deps; `kube` is required (shared mode exists only with Kubernetes). */
  deps: BackendDeps;
}

export async function startSharedBackend(o: SharedBackendOptions): Promise<Backend> {
  const { base, deps, binding } = o;
  const kubeBinding = deps.kube;
  if (!kubeBinding) throw new Error("shared mode needs the Kubernetes binding");
  const kube = kubeBinding.kube;
  const nodeName = kubeBinding.nodeName;
  const cfg = deps.config;
  const log = deps.logger.child({ component: "shared" });
  const service = new SharedService({
    pool: base.pool,
    store: deps.store,
    linux: deps.linux,
    ipam: binding.ipam,
    pools: binding.stores.pools,
    kube: {
      ...binding.sharedKube,
      // The binding read the pod for this ADD already: its read is the one the ADD honours.
      podAnnotations: async (p) => {
        const read = kubeBinding.podRead(p.containerId, p.ifName);
        return read ? read.pod?.annotations : await binding.sharedKube.podAnnotations(p);
      },
    },
    logger: log,
    nodeName,
    settings: cniSettings(cfg),
  }, { freePeriodMs: cfg.pool.freePeriod * 60_000 });
  const collector = new SharedCollector({
    shared: service,
    ipam: binding.ipam,
    blocks: binding.stores.blocks,
    logger: log.child({ component: "shared-gc" }),
    nodeName,
    livePods: () => kubeBinding.livePods(),
    nodes: async () => new Set((await kube.listNodes()).map((n) => n.name)),
    podExists: async (ns, name) => (await kube.getPod(ns, name)) !== undefined,
  }, { graceMs: 2 * cfg.pool.nodeSync * 1000 });
  registerMetrics({ deps, binding, nodeName }, service, collector);
  const loaded = await service.load();
  service.setReady(true);
  const first = await collector.run({ blocks: false });
  log.info("shared mode ready", {
    records: loaded.length,
    gcActions: first.actions.length,
    released: first.released,
  });
  // A DEL the plugin journaled may name a shared-mode pod: the pool backend's GC hands it here.
  base.foreignDel = (containerId, ifName) => service.del({ containerId, ifName, netns: "" });
  const mine = (b: { containerId: string; ifName: string }) => service.has(b.containerId, b.ifName);
  return {
    mode: "shared",
    ipAlone: true,
    recovered: base.recovered,
    get ready() {
      return base.ready;
    },
    setReady: (ready, reason) => base.setReady(ready, reason),
    // Passthrough pods keep a NIC of their own: the pool backend serves them.
    add: (req) => req.type !== "passthrough" ? service.add(req) : base.add(req),
    del: (req) => mine(req) ? service.del(req) : base.del(req),
    check: (req) => mine(req) ? service.check(req) : base.check(req),
    gc: (req) => base.gc(req),
    status: () => base.status(),
    rpcError: (err) => sharedRpcError(err) ?? base.rpcError(err),
    serve: () => base.serve(),
    async sync(full, signal) {
      await base.gcPass(full, signal);
      if (signal?.aborted) return;
      await collector.run({ blocks: full, signal }).catch((err) => {
        if (!signal?.aborted) log.warn("shared GC pass failed", { err: String(err) });
      });
      if (signal?.aborted) return;
      await service.sweepNics().catch((err) =>
        log.warn("idle shared NIC sweep failed", { err: String(err) })
      );
      base.pool.kick();
    },
    collect: (o) => base.collect(o),
    poolView: () => base.poolView(),
    nicViews: () => base.nicViews(),
    podViews: () => base.podViews().concat(service.views()),
    routes: () => [
      route(RPC.adminIpamCheck, adminGcSchema, async (b) => {
        const r: SharedGcResult = await collector.run({ dryRun: b.dryRun, blocks: true });
        return { applied: r.applied, actions: r.actions, failed: r.failed };
      }),
      ...base.routes(),
    ],
    close: (o) => base.close(o),
  };
}

function registerMetrics(
  o: { deps: BackendDeps; binding: SharedKubeBinding; nodeName: string },
  svc: SharedService,
  gc: SharedCollector,
): void {
  const c = o.binding.counters;
  const registry = o.deps.metrics.registry;
  registry.register(
    new Gauge({
      name: "hostnic_ipam_cas_conflicts",
      help: "IPAM compare-and-swap writes refused because the object changed (since start)",
      collect: (g) => {
        g.set(c.conflicts);
      },
    }),
  );
  registry.register(
    new Gauge({
      name: "hostnic_ipam_cas_retries",
      help: "IPAM operations repeated after a conflict (since start)",
      collect: (g) => {
        g.set(c.retries);
      },
    }),
  );
  registry.register(
    new Gauge({
      name: "hostnic_ipam_retries_exhausted",
      help: "IPAM operations that gave up after their bounded retries (since start)",
      collect: (g) => {
        g.set(c.exhaustedRetries);
      },
    }),
  );
  registry.register(
    new Gauge({
      name: "hostnic_ipam_operations",
      help: "IPAM allocations, releases, block claims and borrows by this node (since start)",
      labelNames: ["op"],
      collect: (g) => {
        g.set({ op: "allocate" }, c.allocations);
        g.set({ op: "release" }, c.releases);
        g.set({ op: "claim" }, c.claims);
        g.set({ op: "borrow" }, c.borrows);
      },
    }),
  );
  registry.register(
    new Gauge({
      name: "hostnic_shared_allocations",
      help: "Shared-mode pod attachments on this node",
      collect: (g) => {
        g.set(svc.records().length);
      },
    }),
  );
  registry.register(
    new Gauge({
      name: "hostnic_shared_release_pending",
      help: "Shared-mode addresses whose DEL answered but whose IPAM release is still pending " +
        "(the API server was unreachable); GC retries them",
      collect: (g) => {
        g.set(svc.pendingReleases());
      },
    }),
  );
  registry.register(
    new Gauge({
      name: "hostnic_shared_gc_candidates",
      help: "Allocations the last shared-mode GC pass found to release",
      collect: (g) => {
        g.set(gc.lastCandidates);
      },
    }),
  );
  registry.register(
    new Gauge({
      name: "hostnic_shared_gc_reclaimed",
      help: "Addresses released by shared-mode GC (since start)",
      collect: (g) => {
        g.set(gc.reclaimed);
      },
    }),
  );
  registry.register(
    new Gauge({
      name: "hostnic_ipam_block_utilization",
      help: "Allocated share of the usable addresses of the blocks affine to this node, by pool",
      labelNames: ["pool"],
      collect: async (g) => {
        g.reset();
        const per = new Map<string, { used: number; usable: number }>();
        // The allocator's copies: a scrape costs the API server nothing.
        const blocks = await o.binding.ipam.cachedBlocks().catch(() => []);
        for (const b of blocks) {
          if (b.spec.affinity !== `host:${o.nodeName}`) continue;
          const s = blockStats(b.spec, { now: Date.now(), cooldownMs: 0 });
          const p = per.get(b.spec.pool) ?? { used: 0, usable: 0 };
          p.used += s.allocated;
          p.usable += s.allocated + s.free;
          per.set(b.spec.pool, p);
        }
        for (const [pool, p] of per) g.set({ pool }, p.usable ? p.used / p.usable : 0);
      },
    }),
  );
}
