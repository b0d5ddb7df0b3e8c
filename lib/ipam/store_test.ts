import assert from "node:assert/strict";
import { ConflictError } from "./errors.ts";
import { handleName, MemoryBlockStore, MemoryHandleStore } from "./store.ts";
import { ipamStoreContract, sampleBlock } from "./store_contract.ts";

ipamStoreContract("MemoryBlockStore", () =>
  Promise.resolve({
    blocks: new MemoryBlockStore(),
    handles: new MemoryHandleStore(),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  }));

// The contract again with every call pausing a random number of turns, so calls interleave.
ipamStoreContract("MemoryBlockStore (interleaved)", () => {
  let seed = 7;
  const pause = async () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    for (let i = 0; i < seed % 4; i++) await Promise.resolve();
  };
  return Promise.resolve({
    blocks: new MemoryBlockStore({ pause }),
    handles: new MemoryHandleStore({ pause }),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  });
});

Deno.test("MemoryBlockStore: an injected conflict moves the version, keeps the spec", async () => {
  let inject = true;
  const s = new MemoryBlockStore({ injectConflict: () => inject });
  const { name, spec } = sampleBlock(0);
  const v1 = await s.create(name, spec);
  await assert.rejects(s.update({ ...v1, spec: { ...spec, affinity: "host:a" } }), ConflictError);
  const v2 = (await s.get(name))!;
  assert.notEqual(v2.resourceVersion, v1.resourceVersion);
  assert.deepEqual(v2.spec, spec);
  await assert.rejects(s.delete(name, { resourceVersion: v2.resourceVersion }), ConflictError);
  inject = false;
  const v3 = (await s.get(name))!;
  assert.equal(await s.delete(name, { resourceVersion: v3.resourceVersion }), true);
});

Deno.test("handleName: plain IDs unchanged; others hex-encoded one-to-one", () => {
  const cid = "a".repeat(64);
  assert.equal(handleName(`${cid}.eth0`), `${cid}.eth0`);
  const odd = [`${cid}.Net_1`, "x-plain", "x-706c61696e"];
  const names = odd.map(handleName);
  assert.equal(new Set(names).size, odd.length);
  for (const n of names) assert.match(n, /^x-[0-9a-f]+$/);
  assert.throws(() => handleName("É".repeat(200)), { code: "IPAM_BAD_REQUEST" });
});
