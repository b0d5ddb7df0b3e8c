import assert from "node:assert/strict";
import { childrenCpuMs, cpuBetween, readChildCpu } from "./rusage.ts";

Deno.test("childrenCpuMs grows by a reaped child's CPU, to the microsecond", async () => {
  const a = await readChildCpu();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "let x = 0; for (let i = 0; i < 3e6; i++) x += i; console.log(x)"],
    stdout: "null",
  }).output();
  assert.ok(out.success);
  const d = cpuBetween(a, await readChildCpu());
  assert.ok(Number.isFinite(d.exact), "getrusage through FFI works here");
  assert.ok(d.exact > 1, `a Deno child costs more than 1 ms of CPU, got ${d.exact}`);
  // /proc's figure is in whole 10 ms ticks; the exact one is not rounded to them.
  assert.equal(Math.round(d.ticks) % 10, 0);
  assert.ok(childrenCpuMs() - a.exact >= d.exact);
});
