/**
 * Shared mode put into the daemon: the `SharedService`, its GC, its metrics and its RPC routes,
 * built in one call so daemon.ts only branches on the mode.
 *
 * Start-up rebuild (before the daemon says it is ready): the records are loaded from the store,
 * then one GC pass settles them against the kernel and Kubernetes — records of pods whose netns is
 * gone are released, records whose kernel state was lost (a reboot) are set up again (NIC plumbing
 * first), `allocating` records of ADDs that crashed are released once their pod is gone.
 */
import { Gauge, type Registry } from "../../observe/prom.ts";
import type { Ipam, IpamCounters } from "../../ipam/mod.ts";
import { blockStats } from "../../ipam/mod.ts";
import type { KubeIpamStores } from "../../ipam/kube_store.ts";
import type { Kube } from "../../k8s/types.ts";
import type { LinuxDeps } from "../../linux/mod.ts";
import type { Logger } from "../../log.ts";
import type { NicPool } from "../../nicpool/pool.ts";
import { route, type RpcRoute } from "../../rpc/server.ts";
import { RPC } from "../../rpc/protocol.ts";
import type { CniSettings } from "../../rpc/api.ts";
import { adminGcSchema } from "../schemas.ts";
import type { ServiceStore } from "../nic/service.ts";
import { type SharedKube, SharedService } from "./service.ts";
import { SharedCollector, type SharedGcResult } from "./gc.ts";

export interface SharedModeOptions {
  stores: KubeIpamStores;
  ipam: Ipam;
  counters: IpamCounters;
  sharedKube: SharedKube;
  kube: Kube;
  pool: NicPool;
  store: ServiceStore;
  linux: LinuxDeps;
  logger: Logger;
  nodeName: string;
  settings: CniSettings;
  registry: Registry;
  livePods: () => ReadonlySet<string> | undefined;
  freePeriodMs: number;
  graceMs: number;
}

export interface SharedMode {
  service: SharedService;
  collector: SharedCollector;
  /** A sync pass: GC (cluster-wide part only when `full`), then idle NICs. Never rejects. */
  sync(full: boolean): Promise<void>;
  /** The `admin ipam check` route. */
  routes(): RpcRoute[];
}

export async function startSharedMode(o: SharedModeOptions): Promise<SharedMode> {
  const log = o.logger.child({ component: "shared" });
  const service = new SharedService({
    pool: o.pool,
    store: o.store,
    linux: o.linux,
    ipam: o.ipam,
    pools: o.stores.pools,
    kube: o.sharedKube,
    logger: log,
    nodeName: o.nodeName,
    settings: o.settings,
  }, { freePeriodMs: o.freePeriodMs });
  const collector = new SharedCollector({
    shared: service,
    ipam: o.ipam,
    blocks: o.stores.blocks,
    logger: log.child({ component: "shared-gc" }),
    nodeName: o.nodeName,
    livePods: o.livePods,
    nodes: async () => new Set((await o.kube.listNodes()).map((n) => n.name)),
    podExists: async (ns, name) => (await o.kube.getPod(ns, name)) !== undefined,
  }, { graceMs: o.graceMs });
  registerMetrics(o, service, collector);
  const loaded = await service.load();
  service.setReady(true);
  const first = await collector.run({ blocks: false });
  log.info("shared mode ready", {
    records: loaded.length,
    gcActions: first.actions.length,
    released: first.released,
  });
  return {
    service,
    collector,
    async sync(full: boolean) {
      await collector.run({ blocks: full }).catch((err) =>
        log.warn("shared GC pass failed", { err: String(err) })
      );
      await service.sweepNics().catch((err) =>
        log.warn("idle shared NIC sweep failed", { err: String(err) })
      );
    },
    routes: () => [
      route(RPC.adminIpamCheck, adminGcSchema, async (b) => {
        const r: SharedGcResult = await collector.run({ dryRun: b.dryRun, blocks: true });
        return { applied: r.applied, actions: r.actions, failed: r.failed };
      }),
    ],
  };
}

function registerMetrics(o: SharedModeOptions, svc: SharedService, gc: SharedCollector): void {
  const c = o.counters;
  o.registry.register(
    new Gauge({
      name: "hostnic_ipam_cas_conflicts",
      help: "IPAM compare-and-swap writes refused because the object changed (since start)",
      collect: (g) => {
        g.set(c.conflicts);
      },
    }),
  );
  o.registry.register(
    new Gauge({
      name: "hostnic_ipam_cas_retries",
      help: "IPAM operations repeated after a conflict (since start)",
      collect: (g) => {
        g.set(c.retries);
      },
    }),
  );
  o.registry.register(
    new Gauge({
      name: "hostnic_ipam_retries_exhausted",
      help: "IPAM operations that gave up after their bounded retries (since start)",
      collect: (g) => {
        g.set(c.exhaustedRetries);
      },
    }),
  );
  o.registry.register(
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
  o.registry.register(
    new Gauge({
      name: "hostnic_shared_allocations",
      help: "Shared-mode pod attachments on this node",
      collect: (g) => {
        g.set(svc.records().length);
      },
    }),
  );
  o.registry.register(
    new Gauge({
      name: "hostnic_shared_gc_candidates",
      help: "Allocations the last shared-mode GC pass found to release",
      collect: (g) => {
        g.set(gc.lastCandidates);
      },
    }),
  );
  o.registry.register(
    new Gauge({
      name: "hostnic_shared_gc_reclaimed",
      help: "Addresses released by shared-mode GC (since start)",
      collect: (g) => {
        g.set(gc.reclaimed);
      },
    }),
  );
  o.registry.register(
    new Gauge({
      name: "hostnic_ipam_block_utilization",
      help: "Allocated share of the usable addresses of the blocks affine to this node, by pool",
      labelNames: ["pool"],
      collect: async (g) => {
        g.reset();
        const per = new Map<string, { used: number; usable: number }>();
        const blocks = await o.stores.blocks.list().catch(() => []);
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
