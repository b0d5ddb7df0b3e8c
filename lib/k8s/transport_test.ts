/**
 * The request discipline's arithmetic, with a hand-driven clock: the token bucket's burst and
 * rate, deadline-aware reservations, which failures are retried for which kind of request, the
 * backoff bounds with jitter, and `Retry-After` (seconds, HTTP date, capped, bad values ignored).
 * Through the real API server and the fault proxy: tests/k8s/client_test.ts.
 */
import assert from "node:assert/strict";
import {
  DEFAULT_RATE_LIMIT,
  DEFAULT_RETRY,
  isRetryable,
  parseRetryAfter,
  planRetry,
  TokenBucket,
} from "./transport.ts";

Deno.test("the token bucket lets a burst through, then qps per second", () => {
  let now = 1_000_000;
  const bucket = new TokenBucket({ qps: 5, burst: 10 }, () => now);
  const waits = Array.from({ length: 13 }, () => bucket.reserve());
  assert.deepEqual(waits, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200, 400, 600]);
  // After 2 s, 10 tokens are back, minus the 3 already promised.
  now += 2000;
  assert.deepEqual(Array.from({ length: 8 }, () => bucket.reserve()), [0, 0, 0, 0, 0, 0, 0, 200]);
  // Never more than burst saved up.
  now += 60_000;
  assert.deepEqual(
    Array.from({ length: 11 }, () => bucket.reserve()).filter((w) => w === 0).length,
    10,
  );
});

Deno.test("a reservation past the deadline is refused and takes nothing", () => {
  const now = 0;
  const bucket = new TokenBucket({ qps: 1, burst: 1 }, () => now);
  assert.equal(bucket.reserve(100), 0);
  assert.equal(bucket.reserve(500), undefined, "the next slot is at 1000 ms");
  assert.equal(bucket.reserve(1000), 1000, "the refused one did not take the slot");
});

Deno.test("client-go's defaults, and invalid limits are refused", () => {
  assert.deepEqual(DEFAULT_RATE_LIMIT, { qps: 5, burst: 10 });
  assert.throws(() => new TokenBucket({ qps: 0, burst: 1 }), /qps=0 burst=1/);
  assert.throws(() => new TokenBucket({ qps: 1, burst: 0 }), /qps=1 burst=0/);
});

Deno.test("what is retried depends on the failure and on the request", () => {
  const cases: [Parameters<typeof isRetryable>[0], boolean, boolean, boolean][] = [
    // failure, idempotent, create, once
    [{ status: 429 }, true, true, true],
    [{ status: 500 }, true, true, false],
    [{ status: 503 }, true, true, false],
    [{ status: 501 }, false, false, false],
    [{ transport: true }, true, true, false],
    [{ status: 400 }, false, false, false],
    [{ status: 401 }, false, false, false],
    [{ status: 403 }, false, false, false],
    [{ status: 404 }, false, false, false],
    [{ status: 409 }, false, false, false],
    [{ status: 422 }, false, false, false],
    [{}, false, false, false],
  ];
  for (const [failure, idem, create, once] of cases) {
    const name = JSON.stringify(failure);
    assert.equal(isRetryable(failure, "idempotent"), idem, name);
    assert.equal(isRetryable(failure, "create"), create, name);
    assert.equal(isRetryable(failure, "once"), once, name);
  }
});

Deno.test("Retry-After: seconds or an HTTP date; anything else is ignored", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("1", now), 1000);
  assert.equal(parseRetryAfter(" 30 ", now), 30_000);
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now), 5000);
  assert.equal(parseRetryAfter("Wed, 31 Dec 2025 23:00:00 GMT", now), 0, "a past date: now");
  assert.equal(parseRetryAfter(undefined, now), undefined);
  assert.equal(parseRetryAfter("-1", now), undefined);
  assert.equal(parseRetryAfter("1.5", now), undefined);
  assert.equal(parseRetryAfter("soon", now), undefined);
});

Deno.test("backoff doubles with jitter, honours Retry-After (capped), and stops in time", () => {
  const policy = { ...DEFAULT_RETRY, maxAttempts: 6, baseMs: 200, maxMs: 1000 };
  const plan = (attempt: number, random: number, extra: Record<string, unknown> = {}) =>
    planRetry({
      failure: { status: 503 },
      repeatable: "idempotent",
      attempt,
      policy,
      now: 0,
      deadline: 60_000,
      random: () => random,
      ...extra,
    });
  // Equal jitter: between half the step and the step.
  assert.deepEqual([1, 2, 3, 4, 5].map((a) => plan(a, 0)), [100, 200, 400, 500, 500]);
  assert.deepEqual([1, 2, 3, 4, 5].map((a) => plan(a, 1)), [200, 400, 800, 1000, 1000]);
  assert.equal(plan(6, 0), undefined, "out of attempts");
  assert.equal(plan(1, 0, { failure: { status: 403 } }), undefined, "not retryable");
  assert.equal(plan(1, 0, { failure: { status: 429, retryAfter: "3" } }), 3000);
  assert.equal(
    plan(1, 0, { failure: { status: 429, retryAfter: "3600" } }),
    DEFAULT_RETRY.maxRetryAfterMs,
    "capped",
  );
  assert.equal(plan(1, 1, { failure: { status: 503, retryAfter: "0" } }), 200, "backoff wins");
  assert.equal(plan(1, 0, { deadline: 120 }), undefined, "no attempt left before the deadline");
  assert.equal(
    plan(1, 0, { failure: { status: 429, retryAfter: "2" }, deadline: 1500 }),
    undefined,
    "Retry-After past the deadline",
  );
});
