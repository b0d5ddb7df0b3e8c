/**
 * Prometheus metrics of the controller (lib/observe/prom.ts, one registry per controller), served on
 * `--manageAddr` at `/metrics`: reconciles by result, VIPs allocated/released, IaaS calls, pool
 * utilization computed from the IPAMBlocks, leadership.
 */
import { collectProcessMetrics, Counter, Gauge, Histogram, Registry } from "../observe/mod.ts";
import type { BlockStats } from "../ipam/mod.ts";
import type { ReconcileObserver } from "./vpool.ts";

export interface ControllerMetrics {
  registry: Registry;
  reconciles: Counter<"result">;
  passDuration: Histogram;
  vipsAllocated: Counter<"vxnet">;
  vipsReleased: Counter<"vxnet">;
  iaasCalls: Counter<"action" | "outcome">;
  poolAddresses: Gauge<"pool" | "state">;
  poolUtilization: Gauge<"pool">;
  poolBlocks: Gauge<"pool">;
  leader: Gauge;
  autoAssigned: Counter;
  namespacesWithoutBlock: Gauge;
  observer: ReconcileObserver;
}

export function createControllerMetrics(): ControllerMetrics {
  const registry = new Registry();
  collectProcessMetrics(registry, "hostnic_controller_");
  const m = {
    registry,
    reconciles: registry.register(
      new Counter({
        name: "hostnic_controller_reconciles_total",
        help: "v-pool reconcile passes by result (ready, not_ready, absent, error)",
        labelNames: ["result"],
      }),
    ),
    passDuration: registry.register(
      new Histogram({
        name: "hostnic_controller_pass_duration_seconds",
        help: "Wall time of one reconcile pass (v-pool, IPPools, IPAMBlocks, auto-assign)",
        buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      }),
    ),
    vipsAllocated: registry.register(
      new Counter({
        name: "hostnic_controller_vips_allocated_total",
        help: "VIPs allocated (AllocateVips) by vxnet",
        labelNames: ["vxnet"],
      }),
    ),
    vipsReleased: registry.register(
      new Counter({
        name: "hostnic_controller_vips_released_total",
        help: "VIPs released (ReleaseVips) by vxnet, when a vxnet leaves v-pool",
        labelNames: ["vxnet"],
      }),
    ),
    iaasCalls: registry.register(
      new Counter({
        name: "hostnic_controller_iaas_calls_total",
        help: "QingCloud API call attempts by action and outcome (ok, error, transport)",
        labelNames: ["action", "outcome"],
      }),
    ),
    poolAddresses: registry.register(
      new Gauge({
        name: "hostnic_controller_pool_addresses",
        help:
          "Addresses of each IPPool's blocks by state (allocated, free, reserved; cooling ⊂ free)",
        labelNames: ["pool", "state"],
      }),
    ),
    poolUtilization: registry.register(
      new Gauge({
        name: "hostnic_controller_pool_utilization_ratio",
        help: "allocated / (allocated + free) over each IPPool's blocks",
        labelNames: ["pool"],
      }),
    ),
    poolBlocks: registry.register(
      new Gauge({
        name: "hostnic_controller_pool_blocks",
        help: "IPAMBlocks of each IPPool",
        labelNames: ["pool"],
      }),
    ),
    leader: registry.register(
      new Gauge({
        name: "hostnic_controller_leader",
        help: "1 while this replica holds the leader Lease",
      }),
    ),
    namespacesWithoutBlock: registry.register(
      new Gauge({
        name: "hostnic_controller_namespaces_without_block",
        help: "Namespaces auto-assign found no free block for (last pass)",
      }),
    ),
    autoAssigned: registry.register(
      new Counter({
        name: "hostnic_controller_auto_assignments_total",
        help: "Blocks assigned to namespaces (and namespaces dropped) by subnet auto-assign",
      }),
    ),
  };
  const observer: ReconcileObserver = {
    vipsAllocated: (vxnet, n) => m.vipsAllocated.inc({ vxnet }, n),
    vipsReleased: (vxnet, n) => m.vipsReleased.inc({ vxnet }, n),
    poolUsage: (pool, u: BlockStats & { blocks: number }) => {
      m.poolAddresses.set({ pool, state: "allocated" }, u.allocated);
      m.poolAddresses.set({ pool, state: "free" }, u.free);
      m.poolAddresses.set({ pool, state: "cooling" }, u.cooling);
      m.poolAddresses.set({ pool, state: "reserved" }, u.reserved);
      const usable = u.allocated + u.free;
      m.poolUtilization.set({ pool }, usable === 0 ? 0 : u.allocated / usable);
      m.poolBlocks.set({ pool }, u.blocks);
    },
    poolRemoved: (pool) => {
      for (const state of ["allocated", "free", "cooling", "reserved"]) {
        m.poolAddresses.remove({ pool, state });
      }
      m.poolUtilization.remove({ pool });
      m.poolBlocks.remove({ pool });
    },
  };
  return { ...m, observer };
}
