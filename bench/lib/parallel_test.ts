import assert from "node:assert/strict";
import { mapLimit } from "./parallel.ts";

Deno.test("mapLimit keeps order, bounds concurrency and rethrows the first failure", async () => {
  let running = 0;
  let peak = 0;
  const out = await mapLimit([5, 1, 4, 2, 3], 2, async (x, i) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, x));
    running--;
    return x * 10 + i;
  });
  assert.deepEqual(out, [50, 11, 42, 23, 34]);
  assert.equal(peak, 2);
  const started: number[] = [];
  await assert.rejects(
    mapLimit([1, 2, 3, 4], 1, (x) => {
      started.push(x);
      return x === 2 ? Promise.reject(new Error("two")) : Promise.resolve(x);
    }),
    /two/,
  );
  assert.deepEqual(started, [1, 2], "nothing starts after a failure");
  await assert.rejects(mapLimit([1], 0, () => Promise.resolve(1)), RangeError);
  assert.deepEqual(await mapLimit([], 3, () => Promise.resolve(1)), []);
});
