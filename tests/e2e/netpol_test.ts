/**
 * NetworkPolicy enforced on hostnic's datapath, for real: two real kubelet nodes, hostnic from
 * deploy/hostnic.yaml, kube-router's policy controller from deploy/policy/kube-router.yaml
 * (installKubeRouter), busybox pods answering HTTP. Every case is a real TCP connect + HTTP GET
 * from inside a pod, asserted both ways:
 * - without a policy engine a default-deny policy changes nothing (docs/policy.md);
 * - with kube-router, deny-ingress on `srv` blocks a pod on the same node and one on the other
 *   node; an allow policy lets only the selected source back in;
 * - an egress deny on `same` blocks its connections to `other`, not `other`'s to it;
 * - deleting the policies restores everything.
 * Needs `bash k8s/build.sh` (Kubernetes and kube-router).
 */
import assert from "node:assert/strict";
import { ANNOTATION_VXNET } from "../../lib/k8s/annotations.ts";
import { Cluster, POD_VXNET } from "../../lib/testbed/cluster.ts";
import { busyboxImage, hostnicImage, pauseImage } from "../../lib/testbed/images.ts";
import { kubeRouterImage } from "../../lib/testbed/images_policy.ts";
import { ControlPlane } from "../../lib/testbed/kube.ts";
import { RealNode } from "../../lib/testbed/node.ts";
import { installKubeRouter } from "../../lib/testbed/policy.ts";
import { waitFor } from "../helpers/wait.ts";
import { busyboxDeployment, httpGet, podsOf, waitAvailable } from "./k8s_node_helpers.ts";

const policy = (name: string, spec: Record<string, unknown>) =>
  JSON.stringify({
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name, namespace: "default" },
    spec,
  });

Deno.test({
  name: "NetworkPolicy on two real nodes (nic mode): kube-router enforces it on hostnic's pods",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const log = (line: string) => console.log(`    ${line}`);
    const images = [await pauseImage(), await busyboxImage(), await hostnicImage({ log })];
    await kubeRouterImage(); // fails early, naming the build step, when kube-router is not built
    await using c = await Cluster.start({
      nodes: 2,
      prefix: "np",
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
    for (const n of ["node-1", "node-2"]) {
      await cp.kubectlOk(["annotate", "node", n, `${ANNOTATION_VXNET}=${POD_VXNET}`]);
    }
    await cp.installHostnic({ credentials: n1.credentials });
    await cp.kubectlOk([
      "-n",
      "kube-system",
      "rollout",
      "status",
      "daemonset/hostnic-node",
      "--timeout=240s",
    ]);
    await cp.apply(busyboxDeployment({ name: "srv", replicas: 1, node: "node-1" }));
    await cp.apply(busyboxDeployment({ name: "same", replicas: 1, node: "node-1" }));
    await cp.apply(busyboxDeployment({ name: "other", replicas: 1, node: "node-2" }));
    const pod: Record<string, { name: string; ip: string }> = {};
    for (const app of ["srv", "same", "other"]) {
      await waitAvailable(cp, app, { node: app === "other" ? n2 : n1 });
      const [p] = await podsOf(cp, app);
      pod[app] = { name: p.metadata.name, ip: p.status.podIP! };
    }
    /** Whether `from` gets an HTTP answer from `to` (a real connect from inside the pod). */
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
    /** Waits until every pair has the expected outcome (policy engines sync asynchronously). */
    const expect = async (what: string, want: [string, string, boolean][]) => {
      let last = "";
      await waitFor(what, async () => {
        const got = await Promise.all(want.map(([f, to]) => reaches(f, to)));
        last = want.map(([f, to], i) => `${f}→${to}: ${got[i] ? "allowed" : "blocked"}`).join(", ");
        return want.every(([, , ok], i) => got[i] === ok);
      }, { timeoutMs: 60_000, intervalMs: 500 }).catch((err) => {
        throw new Error(`${err.message}; last seen: ${last}`);
      });
      log(`${what}: ${last}`);
    };

    await t.step("no engine: a default-deny policy on srv blocks nothing", async () => {
      await expect("before any policy", [["same", "srv", true], ["other", "srv", true]]);
      await cp.apply(
        policy("srv-deny", {
          podSelector: { matchLabels: { app: "srv" } },
          policyTypes: ["Ingress"],
        }),
      );
      // Proven twice over a few seconds of real traffic: nothing enforces the stored policy.
      for (let i = 0; i < 3; i++) {
        assert.equal(await reaches("same", "srv"), true, "same → srv without an engine");
        assert.equal(await reaches("other", "srv"), true, "other → srv without an engine");
      }
    });

    await t.step(
      "kube-router installed: deny-ingress blocks same-node and other-node pods",
      async () => {
        await installKubeRouter(cp, [n1, n2]);
        await expect("default-deny ingress on srv", [
          ["same", "srv", false],
          ["other", "srv", false],
          ["same", "other", true],
          ["other", "same", true],
        ]);
      },
    );

    await t.step("an allow policy lets the selected source in, and only it", async () => {
      await cp.apply(policy("srv-from-other", {
        podSelector: { matchLabels: { app: "srv" } },
        policyTypes: ["Ingress"],
        ingress: [{
          from: [{ podSelector: { matchLabels: { app: "other" } } }],
          ports: [{ port: 8080, protocol: "TCP" }],
        }],
      }));
      await expect("allow from other", [["other", "srv", true], ["same", "srv", false]]);
    });

    await t.step("an egress deny on same blocks its connections, not those to it", async () => {
      await expect("before egress policy", [["same", "other", true]]);
      await cp.apply(
        policy("same-no-egress", {
          podSelector: { matchLabels: { app: "same" } },
          policyTypes: ["Egress"],
        }),
      );
      await expect("egress deny on same", [["same", "other", false], ["other", "same", true]]);
    });

    await t.step("policies deleted: everything is allowed again", async () => {
      await cp.kubectlOk(["delete", "networkpolicy", "--all"]);
      await expect("no policies", [
        ["same", "srv", true],
        ["other", "srv", true],
        ["same", "other", true],
      ]);
    });
    await cp.kubectlOk([
      "delete",
      "-f",
      new URL("../../deploy/policy/kube-router.yaml", import.meta.url).pathname,
      "--wait=true",
    ]);
  },
});
