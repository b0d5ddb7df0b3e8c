import assert from "node:assert/strict";
import { MemoryDisk, MemoryStore } from "./memory_store.ts";
import { assertStoreError, storeContract } from "./store_contract.ts";

storeContract("MemoryStore", () => {
  const disk = new MemoryDisk("memory-disk-under-test");
  return Promise.resolve({
    where: disk.name,
    open: (opts) => MemoryStore.open({ ...opts, disk }),
    writeRaw: (key, raw) => {
      disk.data.set(key, raw);
      return Promise.resolve();
    },
    readRaw: () => Promise.resolve(disk.sortedEntries()),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  });
});

Deno.test("MemoryStore: a crash between batches keeps exactly the committed ones", async () => {
  const disk = new MemoryDisk();
  const s1 = await MemoryStore.open({ disk });
  disk.crashAfterBatches(2);
  await s1.batch([{ type: "put", key: "a/1", value: 1 }, { type: "put", key: "b/1", value: 1 }]);
  await s1.put("a/2", 2);
  await assertStoreError(
    s1.batch([{ type: "put", key: "a/3", value: 3 }, { type: "put", key: "b/3", value: 3 }]),
    "STORE_IO",
    "the crashing batch",
  );
  await assertStoreError(s1.get("a/1"), "STORE_CLOSED", "calls after the crash");
  // The crashed store no longer holds the lock: a "restarted daemon" opens the same disk.
  await using s2 = await MemoryStore.open({ disk });
  assert.deepEqual((await s2.list("")).map((e) => e.key), ["a/1", "a/2", "b/1"]);
  await s2.put("a/4", 4); // the crash was one-shot
});

Deno.test("MemoryStore: crash() releases the disk without closing", async () => {
  const disk = new MemoryDisk();
  const s1 = await MemoryStore.open({ disk });
  await s1.put("nic/n1", 1);
  s1.crash();
  await assertStoreError(s1.put("nic/n2", 2), "STORE_CLOSED", "put after crash");
  await using s2 = await MemoryStore.open({ disk });
  assert.deepEqual(await s2.get("nic/n1"), 1);
  assert.equal(await s2.get("nic/n2"), undefined);
});
