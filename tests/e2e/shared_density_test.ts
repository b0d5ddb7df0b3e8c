/**
 * Shared mode's answer to nic mode's 63-pod cap: one node runs 150 pods of one vxnet on a single
 * NIC (addresses from the `Default` pool: the node claims blocks as it fills them), and every pod
 * pings the vxnet gateway and a pod on another node through the simulated SDN. Prints the time
 * taken. `SHARED_DENSITY_PODS` overrides the count (CI on a slow machine).
 */
import assert from "node:assert/strict";
import type { NicView } from "../../lib/rpc/api.ts";
import { Cluster, type Pod, POD_GATEWAY } from "../../lib/testbed/cluster.ts";
import { ControlPlane } from "../../lib/testbed/kube.ts";
import { blockHolders, createPods, startSharedBed } from "../helpers/shared_bed.ts";

const NODES = ["node-1", "node-2"];
const COUNT = Number(Deno.env.get("SHARED_DENSITY_PODS") ?? 150);
const BATCH = 10;

Deno.test({
  name:
    `shared mode: ${COUNT} pods of one vxnet on one NIC, each reaching the gateway and a remote pod`,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using c = await Cluster.start({
      nodes: NODES.length,
      prefix: "dn",
      master: true,
      startDaemons: false,
      configFile: false,
      vxnets: [],
      jobLatencyMs: 100,
    });
    await using cp = await ControlPlane.start(c);
    await startSharedBed(c, cp, NODES, { namespaces: {}, withDefault: true });
    const [n1, n2] = c.nodes;
    const specs = Array.from({ length: COUNT }, (_, i) => ({
      name: `d${i}`,
      namespace: "default",
      node: "node-1",
    }));
    await createPods(cp, [...specs, { name: "remote", namespace: "default", node: "node-2" }]);
    const pods: Pod[] = [];
    let remote: Pod | undefined;

    await t.step(`${COUNT} ADDs on node-1 share one NIC`, async () => {
      const started = Date.now();
      remote = await n2.addPod("remote");
      for (let i = 0; i < specs.length; i += BATCH) {
        pods.push(...await Promise.all(specs.slice(i, i + BATCH).map((s) => n1.addPod(s.name))));
      }
      console.log(`${COUNT} shared-mode ADDs (batches of ${BATCH}): ${Date.now() - started} ms`);
      assert.equal(new Set(pods.map((p) => p.ip)).size, COUNT);
      const res = await n1.admin(["nic", "ls", "-o", "json"]);
      const nics = (JSON.parse(res.stdout) as NicView[]).filter((n) =>
        n.owner?.startsWith("shared/")
      );
      assert.equal(nics.length, 1, JSON.stringify(nics));
      const held = await blockHolders(cp);
      const blocks = new Set(pods.map((p) => held.get(p.ip)?.block));
      assert.ok(!blocks.has(undefined));
      console.log(`node-1 claimed ${blocks.size} blocks for ${COUNT} pods`);
    });

    await t.step("every pod pings the gateway and the pod on node-2", async () => {
      const started = Date.now();
      const failures: string[] = [];
      for (let i = 0; i < pods.length; i += BATCH) {
        await Promise.all(
          pods.slice(i, i + BATCH).map(async (p) => {
            if (!await c.ping(p.netns, POD_GATEWAY, 1)) failures.push(`${p.name} → gateway`);
            if (!await c.ping(p.netns, remote!.ip, 1)) failures.push(`${p.name} → remote`);
          }),
        );
      }
      console.log(`${2 * COUNT} pings: ${Date.now() - started} ms`);
      assert.deepEqual(failures, []);
    });

    await t.step("DEL of all pods frees every address", async () => {
      for (let i = 0; i < pods.length; i += BATCH) {
        const rs = await Promise.all(pods.slice(i, i + BATCH).map((p) => n1.delPod(p)));
        for (const r of rs) assert.equal(r.code, 0, r.stdout);
      }
      assert.equal((await n2.delPod(remote!)).code, 0);
      assert.equal((await blockHolders(cp)).size, 0);
    });
  },
});
