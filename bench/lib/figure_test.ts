import assert from "node:assert/strict";
import { figure, formatFigure, formatNumber } from "./figure.ts";

Deno.test("figure computes ratio and met against a ratio target", () => {
  const f = figure({
    name: "x.add.p50",
    value: 60,
    unit: "ms",
    baseline: { name: "b.add.p50", value: 40 },
    target: { op: "<=", value: 1.5, of: "ratio" },
  });
  assert.equal(f.ratio, 1.5);
  assert.equal(f.met, true);
  const { ratio: _r, met: _m, ...input } = f;
  const g = figure({ ...input, value: 61 });
  assert.equal(g.met, false);
});

Deno.test("figure keeps an explicit (paired) ratio and judges the target on it", () => {
  const f = figure({
    name: "d",
    value: 9,
    unit: "Gbit/s",
    baseline: { name: "b", value: 10 },
    ratio: 0.92,
    target: { op: ">=", value: 0.9, of: "ratio" },
  });
  assert.equal(f.ratio, 0.92);
  assert.equal(f.met, true);
  assert.throws(() => figure({ name: "r", value: 1, unit: "x", ratio: 1 }));
});

Deno.test("figure checks value targets and refuses a ratio target without baseline", () => {
  assert.equal(
    figure({ name: "rss", value: 120, unit: "MiB", target: { op: "<=", value: 100, of: "value" } })
      .met,
    false,
  );
  assert.equal(
    figure({ name: "pps", value: 25, unit: "pods/s", target: { op: ">=", value: 20, of: "value" } })
      .met,
    true,
  );
  const plain = figure({ name: "v", value: 1, unit: "Gbit/s" });
  assert.equal(plain.ratio, undefined);
  assert.equal(plain.met, undefined);
  assert.throws(() =>
    figure({ name: "r", value: 1, unit: "x", target: { op: ">=", value: 1, of: "ratio" } })
  );
});

Deno.test("formatFigure prints one line with baseline, ratio, target and verdict", () => {
  const f = figure({
    name: "dataplane.hostnic.gbps",
    value: 9.876,
    unit: "Gbit/s",
    baseline: { name: "dataplane.veth.gbps", value: 13.2 },
    target: { op: ">=", value: 0.9, of: "ratio" },
  });
  assert.equal(
    formatFigure(f),
    "dataplane.hostnic.gbps  9.88 Gbit/s  (baseline dataplane.veth.gbps 13.2, ratio 0.75)" +
      "  target ratio >= 0.9  MISSED",
  );
  assert.equal(
    formatFigure({ name: "a", value: 41.26, unit: "ms" }, { nameWidth: 4 }),
    "a     41.3 ms",
  );
  assert.equal(formatNumber(1234.5), "1235");
  assert.equal(formatNumber(0.01234), "0.0123");
});
