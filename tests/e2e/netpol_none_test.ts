/**
 * Without a policy engine a NetworkPolicy is stored and ignored, as on any CNI without policy
 * support (docs/policy.md, "Without an engine"): two real kubelet nodes with hostnic from
 * deploy/hostnic.yaml and no kube-router; a default-deny ingress policy on `srv` leaves a real
 * HTTP connection from a same-node pod and from an other-node pod working.
 * (tests/e2e/netpol_test.ts, with kube-router installed, shows the same policy blocking both.)
 */
import assert from "node:assert/strict";
import { Cluster } from "../../lib/testbed/cluster.ts";
import { busyboxImage, hostnicImage, pauseImage } from "../../lib/testbed/images.ts";
import { ControlPlane } from "../../lib/testbed/kube.ts";
import { installHostnicIn } from "../../lib/testbed/install.ts";
import { RealNode } from "../../lib/testbed/node.ts";
import { busyboxDeployment, httpGet, podsOf, waitAvailable } from "./k8s_node_helpers.ts";

Deno.test({
  name: "no policy engine: a default-deny NetworkPolicy blocks nothing on hostnic (two real nodes)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const log = (line: string) => console.log(`    ${line}`);
    const images = [await pauseImage(), await busyboxImage(), await hostnicImage({ log })];
    await using c = await Cluster.start({
      nodes: 2,
      prefix: "nn",
      master: true,
      startDaemons: false,
      configFile: false,
      vxnets: [],
      jobLatencyMs: 100,
    });
    await using cp = await ControlPlane.start(c);
    const archives = images.map((i) => ({ archive: i.archive }));
    await using n1 = await RealNode.start(cp, c.nodes[0], { name: "node-1", images: archives });
    await using n2 = await RealNode.start(cp, c.nodes[1], { name: "node-2", images: archives });
    await installHostnicIn(cp, [n1, n2], "nic");
    await cp.apply(busyboxDeployment({ name: "srv", replicas: 1, node: "node-1" }));
    await cp.apply(busyboxDeployment({ name: "same", replicas: 1, node: "node-1" }));
    await cp.apply(busyboxDeployment({ name: "other", replicas: 1, node: "node-2" }));
    const pod: Record<string, { name: string; ip: string }> = {};
    for (const app of ["srv", "same", "other"]) {
      await waitAvailable(cp, app, { node: app === "other" ? n2 : n1 });
      const [p] = await podsOf(cp, app);
      pod[app] = { name: p.metadata.name, ip: p.status.podIP! };
    }
    const reaches = async (from: string, to: string): Promise<boolean> => {
      const r = await cp.kubectl([
        "exec",
        pod[from].name,
        "--",
        "sh",
        "-c",
        httpGet(pod[to].ip, 8080),
      ]);
      return r.stdout.trim() === pod[to].name;
    };
    assert.equal(await reaches("same", "srv"), true, "same → srv before the policy");
    assert.equal(await reaches("other", "srv"), true, "other → srv before the policy");
    await cp.apply(JSON.stringify({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "srv-deny", namespace: "default" },
      spec: { podSelector: { matchLabels: { app: "srv" } }, policyTypes: ["Ingress"] },
    }));
    const stored = await cp.getJson<{ items: unknown[] }>(["networkpolicy", "-n", "default"]);
    assert.equal(stored.items.length, 1, "the policy is accepted and stored");
    // Repeated connects over several seconds: nothing on the node enforces the stored policy.
    for (let i = 0; i < 5; i++) {
      assert.equal(await reaches("same", "srv"), true, `same → srv with the policy (try ${i})`);
      assert.equal(await reaches("other", "srv"), true, `other → srv with the policy (try ${i})`);
    }
    const fw = await n1.exec(["iptables", "-S"]);
    assert.doesNotMatch(fw.stdout, /KUBE-ROUTER|KUBE-NWPLCY/, "no policy engine on the node");
    log("default-deny ingress on srv stored; same-node and other-node pods still connect (5 × 2)");
  },
});
