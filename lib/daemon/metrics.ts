/**
 * Prometheus metrics of the node daemon (prom-client), served on `--manageAddr` at `/metrics`.
 * One registry per daemon (no global default registry), so tests can run several daemons.
 */
import client from "prom-client";

export interface DaemonMetrics {
  registry: client.Registry;
  poolNics: client.Gauge<"state">;
  allocations: client.Gauge;
  iaasCalls: client.Counter<"action" | "outcome">;
  iaasLatency: client.Histogram<"action">;
  cniLatency: client.Histogram<"command" | "result">;
  commands: client.Counter<"program">;
}

export function createMetrics(nodeName: string): DaemonMetrics {
  const registry = new client.Registry();
  registry.setDefaultLabels({ node_name: nodeName });
  client.collectDefaultMetrics({ register: registry, prefix: "hostnic_" });
  const reg = [registry];
  return {
    registry,
    poolNics: new client.Gauge({
      name: "hostnic_pool_nics",
      help:
        "NICs this node holds, by state (free, inuse, pending, detaching; cooling is part of free)",
      labelNames: ["state"],
      registers: reg,
    }),
    allocations: new client.Gauge({
      name: "hostnic_allocations",
      help: "Pod attachments currently allocated on this node",
      registers: reg,
    }),
    iaasCalls: new client.Counter({
      name: "hostnic_iaas_calls_total",
      help: "QingCloud API call attempts by action and outcome (ok, error, transport)",
      labelNames: ["action", "outcome"],
      registers: reg,
    }),
    iaasLatency: new client.Histogram({
      name: "hostnic_iaas_call_duration_seconds",
      help: "QingCloud API call latency by action",
      labelNames: ["action"],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: reg,
    }),
    cniLatency: new client.Histogram({
      name: "hostnic_cni_request_duration_seconds",
      help: "Daemon-side latency of CNI requests by command and result",
      labelNames: ["command", "result"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: reg,
    }),
    commands: new client.Counter({
      name: "hostnic_commands_total",
      help:
        "Processes the daemon started, by program (ip, iptables, sysctl; nsenter counts as its " +
        "program)",
      labelNames: ["program"],
      registers: reg,
    }),
  };
}
