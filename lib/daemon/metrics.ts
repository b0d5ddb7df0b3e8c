/**
 * Prometheus metrics of the node daemon, served on `--manageAddr` at `/metrics` (lib/daemon/
 * prom.ts renders them as prom-client did). One registry per daemon (no global default
 * registry), so tests can run several daemons.
 */
import { collectProcessMetrics, Counter, Gauge, Histogram, Registry } from "../observe/prom.ts";

export interface DaemonMetrics {
  registry: Registry;
  poolNics: Gauge<"state">;
  allocations: Gauge;
  iaasCalls: Counter<"action" | "outcome">;
  iaasLatency: Histogram<"action">;
  cniLatency: Histogram<"command" | "result">;
  commands: Counter<"program">;
}

export function createMetrics(nodeName: string): DaemonMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ node_name: nodeName });
  collectProcessMetrics(registry, "hostnic_");
  return {
    registry,
    poolNics: registry.register(
      new Gauge({
        name: "hostnic_pool_nics",
        help:
          "NICs this node holds, by state (free, inuse, pending, detaching; cooling is part of free)",
        labelNames: ["state"],
      }),
    ),
    allocations: registry.register(
      new Gauge({
        name: "hostnic_allocations",
        help: "Pod attachments currently allocated on this node",
      }),
    ),
    iaasCalls: registry.register(
      new Counter({
        name: "hostnic_iaas_calls_total",
        help: "QingCloud API call attempts by action and outcome (ok, error, transport)",
        labelNames: ["action", "outcome"],
      }),
    ),
    iaasLatency: registry.register(
      new Histogram({
        name: "hostnic_iaas_call_duration_seconds",
        help: "QingCloud API call latency by action",
        labelNames: ["action"],
        buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      }),
    ),
    cniLatency: registry.register(
      new Histogram({
        name: "hostnic_cni_request_duration_seconds",
        help: "Daemon-side latency of CNI requests by command and result",
        labelNames: ["command", "result"],
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      }),
    ),
    commands: registry.register(
      new Counter({
        name: "hostnic_commands_total",
        help: "Processes the daemon started, by program (ip, iptables, sysctl; nsenter counts as " +
          "its program)",
        labelNames: ["program"],
      }),
    ),
  };
}
