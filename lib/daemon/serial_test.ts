import assert from "node:assert/strict";
import { KeyedSerial } from "./serial.ts";

Deno.test("KeyedSerial: one key takes turns in arrival order, other keys run at once", async () => {
  const s = new KeyedSerial();
  const log: string[] = [];
  let openA!: () => void;
  const gateA = new Promise<void>((r) => openA = r);
  const a1 = s.run("a", async () => {
    log.push("a1 start");
    await gateA;
    log.push("a1 end");
  });
  const a2 = s.run("a", () => {
    log.push("a2");
    return Promise.resolve();
  });
  await s.run("b", () => {
    log.push("b");
    return Promise.resolve();
  });
  assert.deepEqual(log, ["a1 start", "b"], "b ran while a1 held key a; a2 waited");
  openA();
  await Promise.all([a1, a2]);
  assert.deepEqual(log, ["a1 start", "b", "a1 end", "a2"]);
  assert.equal(s.busy, 0, "settled keys are forgotten");
});

Deno.test("KeyedSerial: a failure is the caller's alone and does not block the next turn", async () => {
  const s = new KeyedSerial();
  const failed = s.run("k", () => Promise.reject(new Error("boom")));
  const next = s.run("k", () => Promise.resolve(7));
  await assert.rejects(failed, /boom/);
  assert.equal(await next, 7);
  assert.equal(s.busy, 0);
});
