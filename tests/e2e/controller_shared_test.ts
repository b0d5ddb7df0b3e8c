/**
 * Seed 001 end to end with no hand-made IPAM objects: the real controller (as its ServiceAccount)
 * prepares `v-pool` from the simulator's vxnet and maps a new namespace to a block
 * (`subnet-auto-assign: "on"`); then a real daemon started afterwards finds shared mode ready and
 * gives a pod of that namespace an address from that block — an address the controller reserved
 * as a VIP, inside the usable range it computed.
 */
import assert from "node:assert/strict";
import { HttpIaasClient } from "../../lib/iaas/client.ts";
import { loadIaasConfig } from "../../lib/iaas/config.ts";
import { describeAllVips } from "../../lib/iaas/paginate.ts";
import { parseIpamConfig } from "../../lib/ipam/mod.ts";
import { Cluster, POD_VXNET } from "../../lib/testbed/cluster.ts";
import { ControlPlane } from "../../lib/testbed/kube.ts";
import { SHARED_MODE_OBJECTS } from "../../lib/testbed/shared.ts";
import { ControllerProc } from "../helpers/controller_proc.ts";
import { blockHolders, createPods, startDaemonOn } from "../helpers/shared_bed.ts";
import { waitFor } from "../helpers/wait.ts";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

Deno.test({
  name:
    "controller + daemon: v-pool prepared and a namespace auto-mapped, then a pod gets its address",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using c = await Cluster.start({
      nodes: 1,
      prefix: "cs",
      master: true,
      startDaemons: false,
      configFile: false,
      vxnets: [],
      jobLatencyMs: 100,
    });
    await using cp = await ControlPlane.start(c);
    let ctl: ControllerProc | undefined;
    try {
      await cp.installHostnic();
      await cp.waitCrds();
      const saKubeconfig = await cp.serviceAccountKubeconfig("kube-system", "hostnic-controller", {
        server: `https://127.0.0.1:${cp.hostPort}`,
      });
      ctl = new ControllerProc("ctl", {
        cluster: c,
        kubeconfig: saKubeconfig,
        port: 31900 + Math.floor(Math.random() * 90),
      });
      // Seed 001 steps 4 and 5.
      for (const o of SHARED_MODE_OBJECTS) await cp.apply(o);
      await waitFor(
        "v-pool ready",
        async () => (await cp.getJson<Obj>(["vxnetpool", "v-pool"])).status?.ready,
        {
          timeoutMs: 90_000,
          intervalMs: 300,
        },
      );
      await cp.kubectlOk(["create", "namespace", "app"]);
      const [block] = await waitFor("namespace app mapped", async () => {
        const cm = await cp.getJson<Obj>(["-n", "kube-system", "configmap", "hostnic-ipam-config"]);
        return parseIpamConfig(cm.data).namespaces.get("app");
      }, { timeoutMs: 30_000, intervalMs: 200 });

      // The daemon, started now, finds v-pool ready and hostnic-ipam-config: shared mode.
      await cp.setHostnicConfig({
        hostnic: JSON.stringify({ pool: { maxNic: 63, sync: 1, nodeSync: 5 } }),
        "hostnic-cni": '{"cniVersion":"1.0.0","name":"hostnic","plugins":[{"type":"hostnic"}]}',
      });
      await cp.addNode("node-1");
      const nodeKubeconfig = await cp.serviceAccountKubeconfig("kube-system", "hostnic-node");
      const [node] = c.nodes;
      await startDaemonOn(node, "node-1", nodeKubeconfig);
      await node.waitReady({ timeoutMs: 60_000 });
      await createPods(cp, [{ name: "web", namespace: "app", node: "node-1" }]);
      const pod = await node.addPod("web", { args: "K8S_POD_NAMESPACE=app;K8S_POD_NAME=web" });
      const held = (await blockHolders(cp)).get(pod.ip);
      assert.ok(held, `${pod.ip} is allocated in an IPAMBlock`);
      assert.equal(held.block, block, "from the block the controller mapped to the namespace");
      assert.equal(held.namespace, "app");
      await using iaas = new HttpIaasClient({
        config: await loadIaasConfig(c.clientConfigFile),
        rateLimit: null,
      });
      const vips = await describeAllVips(iaas, {
        vxnets: [POD_VXNET],
        vipName: `hostnic_${POD_VXNET}`,
      });
      assert.equal(vips.length, 997);
      assert.ok(vips.some((v) => v.vip_addr === pod.ip), "the pod's address is one of the VIPs");
      const del = await node.delPod(pod);
      assert.equal(del.code, 0, del.stderr);
      assert.equal((await blockHolders(cp)).get(pod.ip), undefined, "DEL released it");
    } finally {
      await ctl?.kill().catch(() => {});
    }
  },
});
