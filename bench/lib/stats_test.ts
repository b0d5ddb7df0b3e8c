import assert from "node:assert/strict";
import { mean, median, percentile, rateIn, summarize } from "./stats.ts";

Deno.test("percentile interpolates between ranks (R-7)", () => {
  assert.equal(percentile([3, 1, 2], 50), 2);
  assert.equal(percentile([4, 1, 3, 2], 50), 2.5);
  assert.equal(percentile([1, 2, 3, 4, 5], 0), 1);
  assert.equal(percentile([1, 2, 3, 4, 5], 100), 5);
  assert.equal(percentile([1, 2, 3, 4, 5], 25), 2);
  assert.equal(percentile([7], 99), 7);
  // 1..100: p99 sits 0.01 of the way from 99 to 100.
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.ok(Math.abs(percentile(hundred, 99) - 99.01) < 1e-9);
  // 50 samples: p99 lies between the two largest, nearer the largest.
  const fifty = Array.from({ length: 50 }, (_, i) => i + 1);
  assert.ok(Math.abs(percentile(fifty, 99) - 49.51) < 1e-9);
});

Deno.test("percentile does not reorder its input and rejects bad input", () => {
  const xs = [5, 1, 4];
  percentile(xs, 50);
  assert.deepEqual(xs, [5, 1, 4]);
  assert.throws(() => percentile([], 50), RangeError);
  assert.throws(() => percentile([1], 101), RangeError);
  assert.throws(() => percentile([1], Number.NaN), RangeError);
  assert.throws(() => mean([]), RangeError);
});

Deno.test("summarize gives n, min, max, mean, p50, p99", () => {
  assert.equal(mean([1, 2, 3, 6]), 3);
  assert.equal(median([10, 30, 20]), 20);
  const s = summarize([10, 20, 30, 40]);
  assert.equal(s.n, 4);
  assert.equal(s.min, 10);
  assert.equal(s.max, 40);
  assert.equal(s.mean, 25);
  assert.equal(s.p50, 25);
  assert.ok(Math.abs(s.p99 - 39.7) < 1e-9);
});

Deno.test("rateIn counts events inside [from, to) per second", () => {
  const ev = [{ at: 500 }, { at: 1000 }, { at: 1500 }, { at: 3000 }];
  assert.equal(rateIn(ev, 1000, 3000), 1);
  assert.equal(rateIn(ev, 0, 4000), 1);
  assert.throws(() => rateIn(ev, 5, 5), RangeError);
});
