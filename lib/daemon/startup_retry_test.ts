import assert from "node:assert/strict";
import { IaasError, IaasTransportError, RetCode } from "../iaas/errors.ts";
import { nullLogger } from "../log.ts";
import { StartupError } from "./startup.ts";
import { isTransientIaas, StartupRetry, StartupTimeoutError } from "./startup_retry.ts";

const throttled = () => new IaasError("DescribeVxnets", RetCode.QUOTA_EXCEEDED, "throttled");

function clocked(policy = { baseMs: 1_000, capMs: 8_000, maxWaitMs: 60_000 }) {
  const clock = { now: 0, slept: [] as number[] };
  const r = new StartupRetry(nullLogger, {
    policy,
    now: () => clock.now,
    random: () => 0.5,
    sleep: (ms) => {
      clock.slept.push(ms);
      clock.now += ms;
      return Promise.resolve();
    },
  });
  return { r, clock };
}

Deno.test("transient: throttling, 5000/5100, transport failures, also as a cause", () => {
  assert.ok(isTransientIaas(throttled()));
  assert.ok(isTransientIaas(new IaasError("X", RetCode.SERVER_BUSY, "")));
  assert.ok(
    isTransientIaas(
      new IaasTransportError({
        action: "X",
        reason: "timeout",
        detail: "timed out",
        maybeSent: true,
      }),
    ),
  );
  assert.ok(isTransientIaas(new StartupError("wrapped", { cause: throttled() })));
  assert.ok(!isTransientIaas(new IaasError("X", RetCode.AUTH_FAILED, "bad key")));
  assert.ok(!isTransientIaas(new StartupError('Vxnet "v" does not exist')));
});

Deno.test("a throttled step is retried with growing, jittered delays until it succeeds", async () => {
  const { r, clock } = clocked();
  let calls = 0;
  const v = await r.run("check", () => {
    calls++;
    return calls < 5 ? Promise.reject(throttled()) : Promise.resolve("ok");
  });
  assert.equal(v, "ok");
  assert.deepEqual(clock.slept, [750, 1500, 3000, 6000]);
  assert.equal(r.retries, 4);
  assert.equal(r.detail, "starting");
});

Deno.test("a permanent error ends the step at once; a lasting transient one after maxWaitMs", async () => {
  const { r, clock } = clocked();
  await assert.rejects(
    r.run("check", () => Promise.reject(new IaasError("X", RetCode.AUTH_FAILED, "bad key"))),
    (e) => e instanceof IaasError && e.retCode === RetCode.AUTH_FAILED,
  );
  assert.deepEqual(clock.slept, []);
  await assert.rejects(
    r.run("recover NICs", () => Promise.reject(throttled())),
    (e) =>
      e instanceof StartupTimeoutError &&
      /"recover NICs" still failed after \d+ s/.test(e.message) &&
      /ret_code 2500/.test(e.message),
  );
  assert.ok(clock.now <= 60_000);
});
