import assert from "node:assert/strict";
import { waitFor } from "../../tests/helpers/wait.ts";
import { nullLogger } from "../log.ts";
import { LeaderElector, microTime } from "./lease.ts";
import { MemoryLeaseApi } from "./memory.ts";

Deno.test("microTime has microseconds", () => {
  assert.equal(
    microTime(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 67))),
    "2026-01-02T03:04:05.067000Z",
  );
});

function elector(api: MemoryLeaseApi, identity: string) {
  return new LeaderElector({
    api,
    namespace: "kube-system",
    name: "hostnic-controller",
    identity,
    leaseDurationMs: 1000,
    renewDeadlineMs: 600,
    retryPeriodMs: 100,
    logger: nullLogger,
  });
}

Deno.test("two candidates: one leads; stopped, it releases and the other leads at once", async () => {
  const api = new MemoryLeaseApi();
  const [a, b] = [elector(api, "a"), elector(api, "b")];
  const working = new Set<string>();
  const stopA = new AbortController();
  const stopB = new AbortController();
  const work = (who: string) => async (signal: AbortSignal) => {
    working.add(who);
    await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
    working.delete(who);
  };
  const runA = a.run(work("a"), stopA.signal);
  await waitFor("a leads", () => working.has("a"));
  const runB = b.run(work("b"), stopB.signal);
  // b keeps campaigning while a renews: never both.
  const until = Date.now() + 1500;
  while (Date.now() < until) {
    assert.ok(!(working.has("a") && working.has("b")), "two leaders");
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(!working.has("b"));
  stopA.abort();
  assert.equal(await runA, "stopped");
  const released = await api.get("kube-system", "hostnic-controller");
  assert.ok(released?.record.holderIdentity !== "a", "a released the lease on stop");
  await waitFor("b leads", () => working.has("b"), { timeoutMs: 5000 });
  stopB.abort();
  assert.equal(await runB, "stopped");
  assert.equal((await api.get("kube-system", "hostnic-controller"))?.record.holderIdentity, "");
});

Deno.test("a leader that cannot renew steps down before the lease expires for others", async () => {
  const api = new MemoryLeaseApi();
  const a = elector(api, "a");
  const stop = new AbortController();
  let aborted = false;
  const runA = a.run(async (signal) => {
    await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
    aborted = true;
  }, stop.signal);
  await waitFor("a leads", () => a.leading);
  api.down = true;
  assert.equal(await runA, "lost");
  assert.ok(aborted, "work aborted");
  assert.equal(a.leading, false);
  api.down = false;
  const b = elector(api, "b");
  const stopB = new AbortController();
  const runB = b.run(
    (signal) =>
      new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true })),
    stopB.signal,
  );
  await waitFor("b takes over after expiry", () => b.leading, { timeoutMs: 5000 });
  stopB.abort();
  assert.equal(await runB, "stopped");
});

Deno.test("a leader that finds another holder in the Lease steps down at once", async () => {
  const api = new MemoryLeaseApi();
  const a = elector(api, "a");
  const stop = new AbortController();
  const runA = a.run(
    (signal) =>
      new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true })),
    stop.signal,
  );
  await waitFor("a leads", () => a.leading);
  // Someone (an operator, a replica with a skewed view) overwrites the holder.
  const cur = (await api.get("kube-system", "hostnic-controller"))!;
  await api.replace("kube-system", "hostnic-controller", {
    resourceVersion: cur.resourceVersion,
    record: { ...cur.record, holderIdentity: "intruder" },
  });
  assert.equal(await runA, "lost");
  assert.equal(
    (await api.get("kube-system", "hostnic-controller"))?.record.holderIdentity,
    "intruder",
  );
});
