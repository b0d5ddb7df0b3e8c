import assert from "node:assert/strict";
import { NameLocks } from "./name_locks.ts";

Deno.test("NameLocks: claims sharing a name take turns, others do not wait", async () => {
  const locks = new NameLocks();
  const order: string[] = [];
  const a = await locks.claim(["eth1", "eth2"]);
  assert.equal(a.waited, false);
  const free = await locks.claim(["eth3"]);
  assert.equal(free.waited, false);
  const b = locks.claim(["eth2"]).then((c) => {
    order.push("b");
    return c;
  });
  const c = locks.claim(["eth1"]).then((c) => {
    order.push("c");
    return c;
  });
  await Promise.resolve();
  assert.equal(order.length, 0);
  order.push("a released");
  a.release();
  a.release(); // twice is harmless
  const [cb, cc] = await Promise.all([b, c]);
  assert.deepEqual([order[0], ...order.slice(1).sort()], ["a released", "b", "c"]);
  assert.ok(cb.waited && cc.waited);
  cb.release();
  cc.release();
  free.release();
  assert.equal(locks.busy, 0);
});

Deno.test("NameLocks: claims in opposite orders never deadlock", async () => {
  const locks = new NameLocks();
  let held = 0;
  let maxHeld = 0;
  await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const c = await locks.claim(i % 2 ? ["x", "y"] : ["y", "x"]);
    held++;
    maxHeld = Math.max(maxHeld, held);
    await new Promise((r) => setTimeout(r, 1));
    held--;
    c.release();
  }));
  assert.equal(maxHeld, 1);
  assert.equal(locks.busy, 0);
});
