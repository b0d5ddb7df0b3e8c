/**
 * The claim storm of claim_test.ts on a real kube-apiserver (issue 20, N = 50): 50 nodes, each
 * with its own Kubernetes client, claim their first block of a 256-block pool at once, with the
 * blocks not made yet and with the controller's unclaimed blocks present. Every node gets its own
 * block, none fails, and the API server's compare-and-swap refuses few writes.
 */
import assert from "node:assert/strict";
import { Cluster } from "../testbed/cluster.ts";
import { ControlPlane } from "../testbed/kube.ts";
import { newBlock } from "./block.ts";
import { claimStorm, STORM_POOL } from "./claim_storm.ts";
import { KubeIpamStores } from "./kube_store.ts";
import { blockName, carveBlocks } from "./reserve.ts";
import { hostAffinity } from "./types.ts";

const NODES = 50;

Deno.test({
  name: "50 nodes claiming blocks at once on a real kube-apiserver each get their own",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using c = await Cluster.start({ master: true, nodes: 0, startDaemons: false });
    await using cp = await ControlPlane.start(c);
    await cp.applyCrds();
    const clients: KubeIpamStores[] = [];
    await using _close = {
      [Symbol.asyncDispose]: async () => {
        await Promise.all(clients.map((s) => s.close()));
      },
    };
    for (let k = 0; k < NODES; k++) {
      clients.push(new KubeIpamStores({ kubeconfig: cp.hostKubeconfig }));
    }
    const admin = clients[0];

    for (const precreated of [false, true]) {
      await t.step(
        precreated ? "blocks made by the controller" : "blocks not made yet",
        async () => {
          const pool = precreated ? "storm-made" : "storm-new";
          const spec = { ...STORM_POOL, cidr: precreated ? "10.128.0.0/18" : STORM_POOL.cidr };
          await admin.pools.create(pool, spec);
          if (precreated) {
            await Promise.all(
              carveBlocks(pool, spec).map((cidr) =>
                admin.blocks.create(blockName(cidr), newBlock({ pool, spec, cidr }))
              ),
            );
          }
          const { outcomes, counters } = await claimStorm({
            nodes: NODES,
            stores: (k) => clients[k],
            pool,
          });
          assert.deepEqual(
            outcomes.filter((o) => o instanceof Error).map((e) => (e as Error).message),
            [],
          );
          const claimed = (await admin.blocks.list()).filter((b) =>
            b.spec.pool === pool && b.spec.affinity !== null
          );
          assert.equal(claimed.length, NODES, "one block per node");
          for (const [k, o] of outcomes.entries()) {
            const b = claimed.find((b) => b.name === (o as { block: string }).block);
            assert.equal(b?.spec.affinity, hostAffinity(`hollow-${k}`));
          }
          assert.equal(new Set(outcomes.map((o) => (o as { ip: string }).ip)).size, NODES);
          assert.ok(
            counters.conflicts / counters.claims < 0.5,
            `${counters.conflicts} conflicts for ${counters.claims} claims`,
          );
        },
      );
    }
  },
});
