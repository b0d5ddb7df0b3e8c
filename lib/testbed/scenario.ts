/**
 * The test bed's simulated cloud: one VPC router, a node vxnet, a pod vxnet and a spare one, the
 * node instances (and optionally the master instance that runs the Kubernetes control plane), as
 * the scenario `hostnic sim serve --linux` loads (deploy/sim/example.yaml documents the format).
 */

export const POD_VXNET = "vxnet-tbpods";
export const NODE_VXNET = "vxnet-tbnodes";
export const POD_GATEWAY = "172.30.8.1";
export const MASTER_INSTANCE = "i-tbmaster";
export const MASTER_IP = "172.30.1.5";
/** The simulated cloud's secret key: tests check it never reaches a log or state file. */
export const TESTBED_SECRET = "tb-secret-key-0001-do-not-log";

/** The scenario of a bed with `nodes` node instances `i-tbnode1…n`. */
export function testbedScenario(o: {
  nodes: number;
  master: boolean;
  prefix: string;
  jobLatencyMs?: number;
  knobs?: Record<string, unknown>;
}): Record<string, unknown> {
  return {
    zone: "tb1",
    seed: 11,
    credentials: [{
      qy_access_key_id: "TBACCESSKEY0001",
      qy_secret_access_key: TESTBED_SECRET,
    }],
    vpc_routers: [{ id: "rtr-tb0001", cidr: "172.30.0.0/16" }],
    vxnets: [
      {
        id: NODE_VXNET,
        vpc_router_id: "rtr-tb0001",
        cidr: "172.30.1.0/24",
        manager_ip: "172.30.1.1",
        dyn_ip_start: "172.30.1.100",
        dyn_ip_end: "172.30.1.250",
      },
      {
        id: POD_VXNET,
        vpc_router_id: "rtr-tb0001",
        cidr: "172.30.8.0/22",
        manager_ip: POD_GATEWAY,
        dyn_ip_start: "172.30.8.10",
        dyn_ip_end: "172.30.11.250",
      },
      {
        id: "vxnet-tbother",
        vpc_router_id: "rtr-tb0001",
        cidr: "172.30.16.0/24",
        manager_ip: "172.30.16.1",
        dyn_ip_start: "172.30.16.10",
        dyn_ip_end: "172.30.16.250",
      },
    ],
    instances: [
      ...(o.master ? [{ id: MASTER_INSTANCE, vxnet: NODE_VXNET, private_ip: MASTER_IP }] : []),
      ...Array.from({ length: o.nodes }, (_, i) => ({
        id: `i-tbnode${i + 1}`,
        vxnet: NODE_VXNET,
        private_ip: `172.30.1.${10 + i}`,
      })),
    ],
    knobs: { jobLatencyMs: o.jobLatencyMs ?? 200, ...(o.knobs ?? {}) },
    linux: { prefix: o.prefix },
  };
}
