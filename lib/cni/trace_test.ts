import assert from "node:assert/strict";
import { TRACE_PREFIX, tracer } from "./trace.ts";

Deno.test("a tracer that is off records nothing and prints nothing", () => {
  const t = tracer(false);
  t.mark("main");
  assert.equal(t.line(), undefined);
});

Deno.test("a tracer that is on prints one line with wall clock and CPU per mark", () => {
  const t = tracer(true);
  t.mark("main");
  for (let i = 0; i < 1e5; i++) Math.sqrt(i); // some CPU between the marks
  t.mark("written");
  const line = t.line()!;
  assert.ok(line.startsWith(TRACE_PREFIX) && line.endsWith("\n"), line);
  const { marks } = JSON.parse(line.slice(TRACE_PREFIX.length));
  assert.deepEqual(marks.map((m: { phase: string }) => m.phase), ["main", "written"]);
  assert.ok(marks[1].t >= marks[0].t && marks[0].t > 1.6e12, line);
  assert.ok(marks[0].cpu > 0 && marks[1].cpu >= marks[0].cpu, line);
});
