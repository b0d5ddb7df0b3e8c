/**
 * RBAC for real: the daemon authenticates as deploy/hostnic.yaml's `hostnic-node` ServiceAccount
 * against the real kube-apiserver, and a copy of the manifest with one verb removed from its
 * ClusterRole makes the daemon report a permission error that names the resource and the verb,
 * and change nothing (no NIC created, no annotation written, no pod networked). With the
 * manifest restored, the same daemon starts and serves.
 */
import assert from "node:assert/strict";
import { ANNOTATION_VXNET, NODE_ANNOTATION_VXNET } from "../../lib/k8s/annotations.ts";
import { Cluster, POD_VXNET } from "../../lib/testbed/cluster.ts";
import { ControlPlane } from "../../lib/testbed/kube.ts";
import { RPC } from "../../lib/rpc/protocol.ts";
import { waitFor } from "../helpers/wait.ts";

const MANIFEST = new URL("../../deploy/hostnic.yaml", import.meta.url).pathname;
const NODE = "node-1";

/** deploy/hostnic.yaml with `verb` removed from the ClusterRole rule for `resource`. */
async function manifestWithout(resource: string, verb: string): Promise<string> {
  const text = await Deno.readTextFile(MANIFEST);
  const rule = new RegExp(
    `(resources: \\["${resource}"\\]\\n\\s+verbs: \\[)([^\\]]*)(\\])`,
  );
  const m = rule.exec(text);
  assert.ok(m, `the ClusterRole has a rule for ${resource}`);
  const verbs = m[2].split(",").map((v) => v.trim()).filter((v) => v !== `"${verb}"`);
  assert.notEqual(verbs.length, m[2].split(",").length, `${resource} has the verb ${verb}`);
  return text.replace(rule, `$1${verbs.join(", ")}$3`);
}

Deno.test({
  name: "RBAC: a verb missing from the ClusterRole is named, and nothing changes",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using c = await Cluster.start({
      nodes: 1,
      prefix: "kr",
      master: true,
      startDaemons: false,
      configFile: false,
      vxnets: [],
      jobLatencyMs: 100,
    });
    await using cp = await ControlPlane.start(c);
    await cp.installHostnic({ manifest: await manifestWithout("nodes", "list") });
    // Applying the manifest (again) resets the ConfigMap to the shipped one: set ours after it.
    const config = {
      hostnic: JSON.stringify({ pool: { poolLow: 1, poolHigh: 1, vxNets: [POD_VXNET] } }),
    };
    await cp.setHostnicConfig(config);
    await cp.addNode(NODE);
    const kubeconfig = await cp.serviceAccountKubeconfig("kube-system", "hostnic-node");
    const node = c.nodes[0];
    const env = { POD_NAMESPACE: "kube-system", POD_NAME: "hostnic-node-x" };
    const args = ["--kubeconfig", kubeconfig, "--node-name", NODE];

    await t.step("without `list nodes` the daemon refuses to start, naming both", async () => {
      await node.startDaemon(args, { env });
      const exited = await waitFor("the daemon exits", () => node.daemonExited(), {
        timeoutMs: 60_000,
        intervalMs: 100,
      });
      assert.match(exited, /^code [1-9]/);
      const log = node.tail();
      assert.match(log, /cannot list resource \\?"nodes\\?"/, log);
      assert.match(log, /system:serviceaccount:kube-system:hostnic-node/);
      assert.match(log, /hostnic-node RBAC/);
      assert.doesNotMatch(log, /\n\s+at /, "no stack trace");
      const counters = await c.counters();
      assert.equal(counters.CreateNics ?? 0, 0, "no NIC was created");
      assert.equal(counters.AttachNics ?? 0, 0, "no NIC was attached");
      const n = await cp.getJson<{ metadata: { annotations?: Record<string, string> } }>([
        "node",
        NODE,
      ]);
      assert.equal(n.metadata.annotations?.[NODE_ANNOTATION_VXNET], undefined, "no annotation");
    });

    await t.step("with the manifest as shipped it starts and annotates its node", async () => {
      await node.stopDaemon();
      await cp.kubectlOk(["apply", "-f", MANIFEST]);
      await cp.setHostnicConfig(config);
      await node.startDaemon(args, { env });
      await node.waitReady({ free: 1 });
      const n = await cp.getJson<{ metadata: { annotations?: Record<string, string> } }>([
        "node",
        NODE,
      ]);
      assert.equal(n.metadata.annotations?.[NODE_ANNOTATION_VXNET], POD_VXNET);
    });

    await t.step("without `get pods` an annotated pod's ADD fails naming both", async () => {
      await cp.apply(await manifestWithout("pods", "get"));
      await cp.setHostnicConfig(config);
      await cp.addPod({
        name: "kr-vx",
        node: NODE,
        annotations: { [ANNOTATION_VXNET]: POD_VXNET },
      });
      // RBAC changes reach the authorizer within a moment: wait until the API refuses.
      const kc = kubeconfig;
      await waitFor("get pods is refused", async () => {
        const r = await cp.kubectl(["-n", "default", "get", "pod", "kr-vx"], {
          kubeconfig: kc,
          netns: node.netns,
        });
        return r.code !== 0 && /forbidden/.test(r.stderr);
      }, { timeoutMs: 15_000, intervalMs: 200 });
      const before = await c.counters();
      const freeBefore = (await node.client.call<{ free: number }>(RPC.adminPool)).free;
      const netns = `${c.prefix}-p-kr-vx`;
      await new Deno.Command("ip", { args: ["netns", "add", netns] }).output();
      c.podNamespaces.add(netns);
      const res = await node.cni("ADD", {
        containerId: "ctr-kr-vx",
        netns: `/run/netns/${netns}`,
        args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=kr-vx",
      });
      assert.notEqual(res.code, 0, res.stdout);
      const msg = String(res.json?.msg ?? "") + String(res.json?.details ?? "");
      assert.match(msg, /cannot get resource \\?"pods\\?"/, res.stdout);
      assert.ok(!res.stdout.includes("    at "), "no stack trace");
      const after = await c.counters();
      assert.equal(after.CreateNics ?? 0, before.CreateNics ?? 0, "no NIC created");
      assert.equal(
        (await node.client.call<{ free: number }>(RPC.adminPool)).free,
        freeBefore,
        "no pool NIC was taken",
      );
      const links = new TextDecoder().decode(
        (await new Deno.Command("ip", { args: ["-n", netns, "-o", "link"], stdout: "piped" })
          .output()).stdout,
      );
      assert.doesNotMatch(links, /eth0/, "the pod namespace is untouched");
      const del = await node.cni("DEL", {
        containerId: "ctr-kr-vx",
        netns: `/run/netns/${netns}`,
        args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=kr-vx",
      });
      assert.equal(del.code, 0, del.stdout);
    });
  },
});
