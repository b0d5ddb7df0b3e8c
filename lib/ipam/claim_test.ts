/**
 * Block claims at scale (issue 20, N = 50): many nodes claiming their first block at once must
 * each get one, every block claimed once, none failing with "lost 16 compare-and-swap races", and
 * few conflicts per claim — whether the blocks exist unclaimed (the controller made them) or not
 * yet. Plus the pure candidate order.
 */
import assert from "node:assert/strict";
import { claimCandidates, fnv1a } from "./claim.ts";
import { claimStorm, STORM_POOL } from "./claim_storm.ts";
import { newBlock } from "./block.ts";
import { blockName, carveBlocks } from "./reserve.ts";
import { MemoryBlockStore, MemoryHandleStore, MemoryPoolStore } from "./store.ts";
import { hostAffinity } from "./types.ts";

/** Park–Miller generator: deterministic per seed. */
function rng(seed: number): () => number {
  let s = seed % 2147483647 || 1;
  return () => (s = (s * 48271) % 2147483647) / 2147483647;
}

for (const precreated of [false, true]) {
  Deno.test(`50 nodes claiming at once each get their own block (blocks ${precreated ? "made by the controller" : "not made yet"})`, async () => {
    const random = rng(precreated ? 7 : 3);
    // Every store call yields a few turns, so the 50 claims interleave as over a network.
    const hooks = {
      pause: async () => {
        for (let i = Math.floor(random() * 4); i > 0; i--) await Promise.resolve();
      },
    };
    const stores = {
      blocks: new MemoryBlockStore(hooks),
      handles: new MemoryHandleStore(hooks),
      pools: new MemoryPoolStore(),
    };
    await stores.pools.create("vxnet-hpods", STORM_POOL);
    if (precreated) {
      for (const cidr of carveBlocks("vxnet-hpods", STORM_POOL)) {
        await stores.blocks.create(
          blockName(cidr),
          newBlock({ pool: "vxnet-hpods", spec: STORM_POOL, cidr }),
        );
      }
    }
    const { outcomes, counters } = await claimStorm({
      nodes: 50,
      stores: () => stores,
      pool: "vxnet-hpods",
      random,
      // Backoff costs turns, not wall time.
      sleep: async () => await Promise.resolve(),
    });
    const failed = outcomes.filter((o) => o instanceof Error);
    assert.deepEqual(failed.map((e) => (e as Error).message), []);
    const blocks = await stores.blocks.list();
    const claimed = blocks.filter((b) => b.spec.affinity !== null);
    assert.equal(claimed.length, 50, "one block per node");
    assert.equal(new Set(claimed.map((b) => b.spec.affinity)).size, 50, "each block its own node");
    for (const [k, o] of outcomes.entries()) {
      if (o instanceof Error) continue;
      assert.equal(o.borrowed, false);
      const b = claimed.find((b) => b.name === o.block)!;
      assert.equal(b.spec.affinity, hostAffinity(`hollow-${k}`));
    }
    assert.equal(new Set(outcomes.map((o) => (o as { ip: string }).ip)).size, 50);
    assert.equal(counters.claims, 50);
    // Before the spread every node went for the same next free block: at least one conflict per
    // claim, and nodes gave up after 16. A hash start collides only for the few nodes sharing one.
    assert.ok(
      counters.conflicts / counters.claims < 0.5,
      `${counters.conflicts} conflicts for 50 claims`,
    );
  });
}

Deno.test("candidates start at the node's hash and go round the pool's block space once", () => {
  const cidrs = carveBlocks("p", STORM_POOL);
  const taken = newBlock({ pool: "p", spec: STORM_POOL, cidr: cidrs[5], affinity: "host:x" });
  const free = newBlock({ pool: "p", spec: STORM_POOL, cidr: cidrs[6] });
  const c = claimCandidates({
    node: "n1",
    cidrs,
    blocks: [
      { name: blockName(cidrs[5]), resourceVersion: "1", spec: taken },
      { name: blockName(cidrs[6]), resourceVersion: "1", spec: free },
    ],
    exclude: new Set([blockName(cidrs[7])]),
  });
  assert.equal(c.length, 256 - 2, "the claimed block and the excluded CIDR are no candidates");
  const start = fnv1a("n1") % 256;
  const first = c[0];
  assert.equal(
    first.kind === "create" ? first.cidr : first.block.spec.cidr,
    cidrs[[5, 7].includes(start) ? start + 1 : start],
  );
  assert.ok(c.some((x) => x.kind === "claim" && x.block.spec.cidr === cidrs[6]));
  assert.notEqual(fnv1a("hollow-1") % 256, fnv1a("hollow-2") % 256);
});
