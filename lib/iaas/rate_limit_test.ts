import assert from "node:assert/strict";
import { abortableSleep, TokenBucket } from "./rate_limit.ts";

/** A fake clock whose sleep advances time, so the bucket's arithmetic is checked exactly. */
function fakeClock() {
  const c = {
    t: 1000,
    slept: [] as number[],
    now: () => c.t,
    sleep: (ms: number) => {
      c.slept.push(ms);
      c.t += ms;
      return Promise.resolve();
    },
  };
  return c;
}

Deno.test("token bucket allows a burst, then the sustained rate", () => {
  const clock = fakeClock();
  const b = new TokenBucket({ perSecond: 10, burst: 3 }, clock);
  assert.deepEqual([b.reserve(), b.reserve(), b.reserve()], [0, 0, 0]);
  // Bucket empty: the next callers queue 100 ms apart.
  assert.equal(b.reserve(), 100);
  assert.equal(b.reserve(), 200);
  clock.t += 200; // both reserved tokens have been paid for, none is spare
  assert.equal(b.reserve(), 100);
  clock.t += 1000; // refilled to -1 + 10, capped at burst 3
  assert.equal(b.available(), 3);
});

Deno.test("token bucket refills up to burst only", () => {
  const clock = fakeClock();
  const b = new TokenBucket({ perSecond: 2, burst: 2 }, clock);
  b.reserve();
  b.reserve();
  clock.t += 60_000;
  assert.equal(b.available(), 2);
  assert.deepEqual([b.reserve(), b.reserve(), b.reserve()], [0, 0, 500]);
});

Deno.test("acquire paces 20 calls at perSecond after the burst", async () => {
  const clock = fakeClock();
  const b = new TokenBucket({ perSecond: 5, burst: 5 }, clock);
  const start = clock.t;
  for (let i = 0; i < 20; i++) await b.acquire();
  // 5 free, 15 more at 5/s = 3 s.
  assert.equal(clock.t - start, 3000);
});

Deno.test("token bucket rejects nonsense limits", () => {
  assert.throws(() => new TokenBucket({ perSecond: 0, burst: 1 }), RangeError);
  assert.throws(() => new TokenBucket({ perSecond: 1, burst: 0 }), RangeError);
});

Deno.test("abortableSleep rejects on abort and leaves no timer behind", async () => {
  const ac = new AbortController();
  const p = abortableSleep(60_000, ac.signal);
  ac.abort(new Error("stop"));
  await assert.rejects(p, /stop/);
  await assert.rejects(abortableSleep(10, ac.signal), /stop/);
  await abortableSleep(1);
});
