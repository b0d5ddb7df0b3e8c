/**
 * Prometheus metrics of the controller (prom-client, one registry per controller), served on
 * `--manageAddr` at `/metrics`: reconciles by result, VIPs allocated/released, IaaS calls, pool
 * utilization computed from the IPAMBlocks, leadership.
 */
import client from "prom-client";
import type { BlockStats } from "../ipam/mod.ts";
import type { ReconcileObserver } from "./vpool.ts";

export interface ControllerMetrics {
  registry: client.Registry;
  reconciles: client.Counter<"result">;
  vipsAllocated: client.Counter<"vxnet">;
  vipsReleased: client.Counter<"vxnet">;
  iaasCalls: client.Counter<"action" | "outcome">;
  poolAddresses: client.Gauge<"pool" | "state">;
  poolUtilization: client.Gauge<"pool">;
  poolBlocks: client.Gauge<"pool">;
  leader: client.Gauge;
  autoAssigned: client.Counter;
  namespacesWithoutBlock: client.Gauge;
  observer: ReconcileObserver;
}

export function createControllerMetrics(): ControllerMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: "hostnic_controller_" });
  const registers = [registry];
  const m = {
    registry,
    reconciles: new client.Counter({
      name: "hostnic_controller_reconciles_total",
      help: "v-pool reconcile passes by result (ready, not_ready, absent, error)",
      labelNames: ["result"],
      registers,
    }),
    vipsAllocated: new client.Counter({
      name: "hostnic_controller_vips_allocated_total",
      help: "VIPs allocated (AllocateVips) by vxnet",
      labelNames: ["vxnet"],
      registers,
    }),
    vipsReleased: new client.Counter({
      name: "hostnic_controller_vips_released_total",
      help: "VIPs released (ReleaseVips) by vxnet, when a vxnet leaves v-pool",
      labelNames: ["vxnet"],
      registers,
    }),
    iaasCalls: new client.Counter({
      name: "hostnic_controller_iaas_calls_total",
      help: "QingCloud API call attempts by action and outcome (ok, error, transport)",
      labelNames: ["action", "outcome"],
      registers,
    }),
    poolAddresses: new client.Gauge({
      name: "hostnic_controller_pool_addresses",
      help:
        "Addresses of each IPPool's blocks by state (allocated, free, reserved; cooling ⊂ free)",
      labelNames: ["pool", "state"],
      registers,
    }),
    poolUtilization: new client.Gauge({
      name: "hostnic_controller_pool_utilization_ratio",
      help: "allocated / (allocated + free) over each IPPool's blocks",
      labelNames: ["pool"],
      registers,
    }),
    poolBlocks: new client.Gauge({
      name: "hostnic_controller_pool_blocks",
      help: "IPAMBlocks of each IPPool",
      labelNames: ["pool"],
      registers,
    }),
    leader: new client.Gauge({
      name: "hostnic_controller_leader",
      help: "1 while this replica holds the leader Lease",
      registers,
    }),
    namespacesWithoutBlock: new client.Gauge({
      name: "hostnic_controller_namespaces_without_block",
      help: "Namespaces auto-assign found no free block for (last pass)",
      registers,
    }),
    autoAssigned: new client.Counter({
      name: "hostnic_controller_auto_assignments_total",
      help: "Blocks assigned to namespaces (and namespaces dropped) by subnet auto-assign",
      registers,
    }),
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
