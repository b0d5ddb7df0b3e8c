import assert from "node:assert/strict";
import { jobSeenAt, POOL_POLL } from "./jobpoll.ts";

Deno.test("jobSeenAt follows waitJobs' poll schedule (0, 100, 250, 475 … ms)", () => {
  assert.deepEqual(jobSeenAt(0), { atMs: 0, polls: 1 });
  assert.deepEqual(jobSeenAt(100), { atMs: 100, polls: 2 });
  assert.deepEqual(jobSeenAt(101), { atMs: 250, polls: 3 });
  assert.equal(jobSeenAt(500).atMs, 812.5);
  assert.equal(Math.round(jobSeenAt(1000).atMs), 1319);
  assert.equal(Math.round(jobSeenAt(2000).atMs), 2078);
  // The interval stops growing at the cap: 0, 100, 300, 700, 1500, 2500, … 60500.
  const capped = jobSeenAt(60_000, { initialMs: 100, factor: 2, maxMs: 1000 });
  assert.equal(capped.atMs, 60_500);
});

Deno.test("the pool's jobs are seen at most 250 ms after they are done", () => {
  for (const L of [200, 500, 1000, 2000, 5000]) {
    const seen = jobSeenAt(L, POOL_POLL).atMs;
    assert.ok(seen >= L && seen - L <= 250, `L=${L}: seen at ${seen}`);
  }
  assert.equal(jobSeenAt(2000, POOL_POLL).polls, 11);
});
