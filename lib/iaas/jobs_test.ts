import assert from "node:assert/strict";
import {
  IaasError,
  IaasJobError,
  IaasJobTimeoutError,
  IaasTransportError,
  RetCode,
} from "./errors.ts";
import { waitJob, waitJobs } from "./jobs.ts";
import type { DescribeJobsRequest, Job, Page } from "./types.ts";

/**
 * A job table whose jobs advance one status per DescribeJobs call that sees them, on a fake
 * clock that only moves while waitJobs sleeps.
 */
function jobTable(plans: Record<string, string[]>, o: { failCalls?: Map<number, Error> } = {}) {
  const clock = { t: 0, sleeps: [] as number[] };
  const calls: string[][] = [];
  const step: Record<string, number> = {};
  const client = {
    describeJobs(r: DescribeJobsRequest = {}): Promise<Page<Job>> {
      calls.push([...(r.jobs ?? [])]);
      const injected = o.failCalls?.get(calls.length);
      if (injected) return Promise.reject(injected);
      const items: Job[] = [];
      for (const id of r.jobs ?? []) {
        const plan = plans[id];
        if (!plan) continue;
        const i = Math.min(step[id] ?? 0, plan.length - 1);
        step[id] = i + 1;
        items.push({
          job_id: id,
          job_action: "AttachNics",
          status: plan[i],
          resource_ids: "",
          directive: "",
          error_codes: "",
          create_time: "",
          status_time: "",
        });
      }
      return Promise.resolve({ items, totalCount: items.length });
    },
  };
  const deps = {
    now: () => clock.t,
    sleep: (ms: number) => {
      clock.sleeps.push(ms);
      clock.t += ms;
      return Promise.resolve();
    },
  };
  return { client, clock, calls, deps };
}

Deno.test("waitJobs polls all jobs in one call with growing intervals", async () => {
  const { client, clock, calls, deps } = jobTable({
    "j-a": ["pending", "working", "successful"],
    "j-b": ["pending", "working", "working", "working", "successful"],
  });
  const done = await waitJobs(client, ["j-a", "j-b"], { timeoutMs: 60_000, deps });
  assert.deepEqual([...done.keys()].sort(), ["j-a", "j-b"]);
  assert.equal(done.get("j-b")?.status, "successful");
  assert.deepEqual(calls, [["j-a", "j-b"], ["j-a", "j-b"], ["j-a", "j-b"], ["j-b"], ["j-b"]]);
  assert.deepEqual(clock.sleeps, [100, 150, 225, 337.5]);
});

Deno.test("poll interval is capped", async () => {
  const plan = [...Array(12).fill("working"), "successful"];
  const { client, clock, deps } = jobTable({ "j-a": plan });
  await waitJob(client, "j-a", { timeoutMs: 600_000, maxIntervalMs: 1000, deps });
  assert.equal(Math.max(...clock.sleeps), 1000);
  assert.equal(clock.sleeps.at(-1), 1000);
});

Deno.test("failed and done-with-failure jobs raise IaasJobError naming job and action", async () => {
  for (const status of ["failed", "done with failure"]) {
    const { client, deps } = jobTable({ "j-ok": ["successful"], "j-bad": ["working", status] });
    const err = await waitJobs(client, ["j-ok", "j-bad"], { timeoutMs: 10_000, deps }).then(
      () => assert.fail("expected failure"),
      (e) => e,
    );
    assert.ok(err instanceof IaasJobError);
    assert.equal(err.jobId, "j-bad");
    assert.equal(err.status, status);
    assert.match(err.message, /"j-bad" \(AttachNics\) ended with status/);
  }
});

Deno.test("deadline gives IaasJobTimeoutError with last statuses", async () => {
  const { client, clock, deps } = jobTable({ "j-slow": ["pending", "working"] });
  const err = await waitJob(client, "j-slow", { timeoutMs: 2000, deps }).then(
    () => assert.fail("expected timeout"),
    (e) => e,
  );
  assert.ok(err instanceof IaasJobTimeoutError);
  assert.deepEqual(err.pending, { "j-slow": "working" });
  assert.equal(clock.t, 2000);
  assert.match(err.message, /"j-slow" \(working\)/);
});

Deno.test("a job missing from the reply is reported as not found", async () => {
  const { client, deps } = jobTable({});
  await assert.rejects(
    waitJob(client, "j-ghost", { timeoutMs: 1000, deps }),
    (e: unknown) => e instanceof IaasJobError && e.status === "not found",
  );
});

Deno.test("transient DescribeJobs errors are tolerated, others propagate", async () => {
  const transient = new Map<number, Error>([
    [
      1,
      new IaasTransportError({
        action: "DescribeJobs",
        reason: "timeout",
        detail: "x",
        maybeSent: true,
      }),
    ],
    [2, new IaasError("DescribeJobs", RetCode.QUOTA_EXCEEDED, "QuotaExceeded")],
  ]);
  const t = jobTable({ "j-a": ["successful"] }, { failCalls: transient });
  await waitJob(t.client, "j-a", { timeoutMs: 10_000, deps: t.deps });
  assert.equal(t.calls.length, 3);

  const fatal = new Map<number, Error>([[
    1,
    new IaasError("DescribeJobs", RetCode.AUTH_FAILED, "AuthFailure"),
  ]]);
  const f = jobTable({ "j-a": ["successful"] }, { failCalls: fatal });
  await assert.rejects(
    waitJob(f.client, "j-a", { timeoutMs: 10_000, deps: f.deps }),
    (e: unknown) => e instanceof IaasError && e.retCode === RetCode.AUTH_FAILED,
  );
});

Deno.test("more than 100 jobs are split into DescribeJobs calls of 100", async () => {
  const plans: Record<string, string[]> = {};
  const ids = Array.from({ length: 230 }, (_, i) => `j-${i}`);
  for (const id of ids) plans[id] = ["successful"];
  const { client, calls, deps } = jobTable(plans);
  const done = await waitJobs(client, ids, { timeoutMs: 1000, deps });
  assert.equal(done.size, 230);
  assert.deepEqual(calls.map((c) => c.length), [100, 100, 30]);
});
