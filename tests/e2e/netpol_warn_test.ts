/**
 * The PolicyNotEnforced warning for real: the daemon runs as deploy/hostnic.yaml's `hostnic-node`
 * ServiceAccount (so its RBAC must allow watching NetworkPolicies) against the real kube-apiserver;
 * a NetworkPolicy that selects a passthrough pod on its node gives that pod a Warning event
 * (visible with kubectl), while a veth pod selected by the same policy and a passthrough pod the
 * policy does not select get none.
 */
import assert from "node:assert/strict";
import { ANNOTATION_TYPE, ANNOTATION_VXNET } from "../../lib/k8s/annotations.ts";
import { Cluster, POD_VXNET } from "../../lib/testbed/cluster.ts";
import { ControlPlane } from "../../lib/testbed/kube.ts";
import { waitFor } from "../helpers/wait.ts";

const NODE = "node-1";

Deno.test({
  name: "a NetworkPolicy selecting a passthrough pod: Warning PolicyNotEnforced on that pod only",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using c = await Cluster.start({
      nodes: 1,
      prefix: "nw",
      master: true,
      startDaemons: false,
      configFile: false,
      vxnets: [],
      jobLatencyMs: 100,
    });
    await using cp = await ControlPlane.start(c);
    await cp.installHostnic();
    await cp.setHostnicConfig({
      hostnic: JSON.stringify({ pool: { poolLow: 1, poolHigh: 1, vxNets: [POD_VXNET] } }),
    });
    await cp.addNode(NODE);
    const kubeconfig = await cp.serviceAccountKubeconfig("kube-system", "hostnic-node");
    const node = c.nodes[0];
    await node.startDaemon(["--kubeconfig", kubeconfig, "--node-name", NODE], {
      env: { POD_NAMESPACE: "kube-system", POD_NAME: "hostnic-node-x" },
    });
    await node.waitReady({ free: 1 });
    const pt = { [ANNOTATION_TYPE]: "passthrough", [ANNOTATION_VXNET]: POD_VXNET };
    await cp.addPod({ name: "pt-web", node: NODE, annotations: pt });
    await cp.addPod({ name: "veth-web", node: NODE });
    await cp.addPod({ name: "pt-db", node: NODE, annotations: pt });
    await cp.kubectlOk(["label", "pod", "pt-web", "veth-web", "app=web"]);
    await cp.kubectlOk(["label", "pod", "pt-db", "app=db"]);
    await cp.apply(JSON.stringify({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "web-deny", namespace: "default" },
      spec: { podSelector: { matchLabels: { app: "web" } }, policyTypes: ["Ingress"] },
    }));
    const ev = await waitFor("the PolicyNotEnforced event on pt-web", async () => {
      const evs = await cp.eventsOn("default", "pt-web");
      return evs.find((e) => e.reason === "PolicyNotEnforced");
    }, { timeoutMs: 30_000, intervalMs: 300 });
    assert.equal(ev.type, "Warning");
    assert.match(ev.message, /NetworkPolicy web-deny selects this pod/);
    assert.match(ev.message, /passthrough/);
    // The same kubectl query a user runs (docs/policy.md).
    const listed = await cp.kubectlOk([
      "get",
      "events",
      "-A",
      "--field-selector=reason=PolicyNotEnforced",
      "-o",
      "jsonpath={.items[*].involvedObject.name}",
    ]);
    assert.deepEqual(listed.trim().split(/\s+/), ["pt-web"], "only the selected passthrough pod");
    for (const other of ["veth-web", "pt-db"]) {
      const evs = await cp.eventsOn("default", other);
      assert.ok(!evs.some((e) => e.reason === "PolicyNotEnforced"), `${other}: ${evs}`);
    }
    // A second policy selecting pt-db warns it too (the watch follows changes).
    await cp.apply(JSON.stringify({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "all-deny", namespace: "default" },
      spec: { podSelector: {}, policyTypes: ["Ingress"] },
    }));
    const db = await waitFor("the PolicyNotEnforced event on pt-db", async () => {
      const evs = await cp.eventsOn("default", "pt-db");
      return evs.find((e) => e.reason === "PolicyNotEnforced");
    }, { timeoutMs: 30_000, intervalMs: 300 });
    assert.match(db.message, /NetworkPolicy all-deny selects this pod/);
    await node.stopDaemon();
  },
});
