import assert from "node:assert/strict";
import { Kicker } from "./watch.ts";

Deno.test("Kicker: a kick ends the wait; one that came during a pass ends the next wait at once", async () => {
  const k = new Kicker();
  const ac = new AbortController();
  let done = false;
  const w = k.wait(60_000, ac.signal).then(() => done = true);
  await Promise.resolve();
  assert.equal(done, false);
  k.kick();
  await w;
  assert.equal(done, true);
  k.kick(); // while "a pass runs"
  await k.wait(60_000, ac.signal); // returns at once
  const late = k.wait(60_000, ac.signal);
  ac.abort();
  await late; // abort ends it too
});
