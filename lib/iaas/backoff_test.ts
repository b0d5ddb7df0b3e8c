import assert from "node:assert/strict";
import { backoffDelay } from "./backoff.ts";

Deno.test("backoff doubles per retry with equal jitter, capped", () => {
  const o = (r: number) => ({ baseMs: 100, capMs: 1000, random: () => r });
  // random 0 gives the lower bound d/2, random ~1 the upper bound d.
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffDelay(n, o(0))), [50, 100, 200, 400, 500]);
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffDelay(n, o(0.999999))), [
    100,
    200,
    400,
    800,
    1000,
  ]);
});

Deno.test("backoff with real randomness stays in bounds", () => {
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(3, { baseMs: 200, capMs: 10_000, random: Math.random });
    assert.ok(d >= 400 && d <= 800, `delay ${d} out of [400, 800]`);
  }
});
