import assert from "node:assert/strict";
import { nsState } from "./fake_runner.ts";
import { NodeState } from "./node_state.ts";

Deno.test("NodeState keeps the newest reading until it is too old", () => {
  let now = 0;
  const s = new NodeState({ maxAgeMs: 1000, now: () => now });
  assert.equal(s.current(), undefined);
  const a = nsState();
  s.record(s.begin(), a);
  assert.equal(s.current(), a);
  now = 999;
  assert.equal(s.current(), a);
  now = 1001;
  assert.equal(s.current(), undefined, "an idle node reads afresh");
});

Deno.test("NodeState: after invalidate, readings of batches begun before are refused", () => {
  const s = new NodeState();
  const early = s.begin();
  s.invalidate(); // e.g. a failed batch was reverted meanwhile
  s.record(early, nsState());
  assert.equal(s.current(), undefined);
  const late = s.begin();
  const b = nsState();
  s.record(late, b);
  assert.equal(s.current(), b);
  s.invalidate();
  assert.equal(s.current(), undefined);
});
