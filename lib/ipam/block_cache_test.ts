import assert from "node:assert/strict";
import { newBlock } from "./block.ts";
import { BlockCache } from "./block_cache.ts";
import { type BlockStore, MemoryBlockStore } from "./store.ts";
import type { IpPoolSpec } from "./types.ts";

const POOL: IpPoolSpec = { type: "local", cidr: "10.0.0.0/24", blockSize: 26 };

Deno.test("block cache: copies after a list; a list in flight does not undo a newer write", async () => {
  const store = new MemoryBlockStore();
  /** While set, a list has read the store and waits for it before it answers. */
  const gate: { wait?: Promise<void> } = {};
  const slow: BlockStore = {
    kind: store.kind,
    get: (n) => store.get(n),
    list: async () => {
      const r = await store.list();
      await gate.wait;
      return r;
    },
    create: (n, s) => store.create(n, s),
    update: (o) => store.update(o),
    delete: (n, o) => store.delete(n, o),
  };
  const spec = newBlock({ pool: "vxnet-a", spec: POOL, cidr: "10.0.0.0/26" });
  await store.create("b0", spec);
  const cache = new BlockCache(slow);
  assert.equal((await cache.list()).length, 1);
  // Copies now: a block created by someone else is not seen until a fresh list.
  await store.create("b1", newBlock({ pool: "vxnet-a", spec: POOL, cidr: "10.0.0.64/26" }));
  assert.deepEqual((await cache.list()).map((b) => b.name), ["b0"]);
  assert.deepEqual((await cache.list({ fresh: true })).map((b) => b.name), ["b0", "b1"]);
  // A list reads the store, then this process writes b0, then the list's (older) answer lands.
  const held = Promise.withResolvers<void>();
  gate.wait = held.promise;
  const listing = cache.refresh();
  await new Promise((r) => setTimeout(r, 0));
  const written = await cache.update({
    ...cache.peek("b0")!,
    spec: { ...spec, affinity: "host:n1" },
  });
  held.resolve();
  const listed = await listing;
  assert.equal(listed.find((b) => b.name === "b0")!.spec.affinity, null, "the list was older");
  assert.equal(
    cache.peek("b0")!.resourceVersion,
    written.resourceVersion,
    "the write's copy stays",
  );
  // A read replaces the copy; a block gone is forgotten.
  await store.delete("b1");
  assert.equal(await cache.read("b1"), undefined);
  assert.deepEqual((await cache.list()).map((b) => b.name), ["b0"]);
});
