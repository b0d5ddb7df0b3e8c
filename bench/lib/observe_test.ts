import assert from "node:assert/strict";
import { batchTimeline, countersDelta, formatCounts, logEvents } from "./observe.ts";

Deno.test("countersDelta keeps the actions that changed; formatCounts orders them", () => {
  const d = countersDelta(
    { CreateNics: 2, AttachNics: 2, DescribeJobs: 5 },
    { CreateNics: 3, AttachNics: 3, DescribeJobs: 9, DeleteNics: 1 },
  );
  assert.deepEqual(d, {
    total: 7,
    by: { CreateNics: 1, AttachNics: 1, DescribeJobs: 4, DeleteNics: 1 },
  });
  assert.equal(formatCounts(d.by), "DescribeJobs 4, AttachNics 1, CreateNics 1, DeleteNics 1");
  assert.equal(formatCounts({}), "none");
});

Deno.test("logEvents picks JSON lines by message; batchTimeline shows size@time", () => {
  const t0 = Date.parse("2026-11-22T10:00:00.000Z");
  const text = [
    "not json",
    '{"level":30,"time":"2026-11-22T09:59:59.000Z","msg":"NICs attached","nics":["a"]}',
    '{"level":30,"time":"2026-11-22T10:00:02.400Z","msg":"NICs attached","nics":["a","b"]}',
    '{"level":30,"time":"2026-11-22T10:00:02.500Z","msg":"pod networked","ip":"1.2.3.4"}',
    '{"level":30,"time":1795341604500,"msg":"NICs attached","nics":["c","d","e"]}',
    '{"broken":',
  ].join("\n");
  const ev = logEvents(text, ["NICs attached"]);
  assert.equal(ev.length, 3);
  assert.deepEqual(ev[1].fields.nics, ["a", "b"]);
  assert.equal(logEvents(text, ["pod networked"]).length, 1);
  // The numeric time is 10:00:04.500Z.
  assert.equal(Date.parse("2026-11-22T10:00:04.500Z"), 1795341604500);
  assert.equal(batchTimeline(ev, t0), "2@2.4s 3@4.5s");
});
