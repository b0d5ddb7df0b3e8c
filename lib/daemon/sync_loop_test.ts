/**
 * The sync loop's shutdown (session 8's N = 200 run: 17 daemons' close waited minutes for a sync
 * pass stuck behind a saturated API client). `stop()` aborts the pass in flight and returns once
 * it honours the abort; a pass that ignores it is waited for only the grace, and no pass starts
 * after `stop()`.
 */
import assert from "node:assert/strict";
import { jsonLogger } from "../log.ts";
import { startSyncLoop } from "./sync_loop.ts";

function logLines() {
  const lines: { msg: string }[] = [];
  const logger = jsonLogger("debug", { write: (l) => lines.push(JSON.parse(l)) });
  return { lines, logger };
}

/** A promise and its resolver. */
function later<T = void>() {
  let resolve!: (v: T) => void;
  const p = new Promise<T>((r) => (resolve = r));
  return { p, resolve };
}

Deno.test("sync loop: stop aborts the pass in flight and returns when the pass does", async () => {
  const { lines, logger } = logLines();
  const started = later<AbortSignal>();
  let passes = 0;
  const loop = startSyncLoop(1, logger, (signal) => {
    passes++;
    started.resolve(signal);
    // A pass waiting on a request that only the abort ends (a hung API call).
    return new Promise((_, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  });
  const signal = await started.p;
  assert.equal(signal.aborted, false);
  // A grace longer than any test: only the pass's own end can make stop() return.
  assert.equal(await loop.stop({ graceMs: 3_600_000 }), true, "the pass ended on the abort");
  assert.equal(signal.aborted, true);
  assert.equal(passes, 1);
  assert.deepEqual(lines.map((l) => l.msg), [], "an aborted pass's failure is not a warning");
});

Deno.test("sync loop: a pass that ignores the abort holds stop() only for the grace", async () => {
  const { lines, logger } = logLines();
  const started = later();
  const release = later();
  let passes = 0;
  let ended = false;
  const loop = startSyncLoop(1, logger, async () => {
    passes++;
    started.resolve();
    await release.p; // never settles before stop() returns
    ended = true;
  });
  await started.p;
  assert.equal(await loop.stop({ graceMs: 20 }), false, "the pass outlived the grace");
  assert.equal(ended, false, "stop() returned while the pass was still running");
  assert.ok(lines.some((l) => /still running at shutdown/.test(l.msg)), JSON.stringify(lines));
  assert.equal(await loop.settled({ graceMs: 20 }), false);
  release.resolve();
  assert.equal(await loop.settled({ graceMs: 3_600_000 }), true);
  assert.equal(ended, true);
  // No pass after stop(): with a 1 ms period, a timer the ended pass armed would have fired
  // within these 50 ms (a check that something does not happen needs a wait of some length).
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(passes, 1);
});

Deno.test("sync loop: stop between passes starts none and waits for nothing", async () => {
  const { logger } = logLines();
  let passes = 0;
  const loop = startSyncLoop(3_600_000, logger, () => {
    passes++;
    return Promise.resolve();
  });
  assert.equal(await loop.stop({ graceMs: 3_600_000 }), true);
  assert.equal(await loop.settled(), true);
  assert.equal(passes, 0);
});

Deno.test("sync loop: a failing pass is logged and the loop goes on", async () => {
  const { lines, logger } = logLines();
  const second = later();
  let passes = 0;
  const loop = startSyncLoop(1, logger, () => {
    if (++passes === 2) second.resolve();
    return Promise.reject(new Error("cloud unreachable"));
  });
  await second.p;
  await loop.stop();
  assert.ok(lines.some((l) => l.msg === "sync pass failed"), JSON.stringify(lines));
});
