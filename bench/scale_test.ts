/** The scale module's arithmetic: growth exponents and histogram quantiles. */
import assert from "node:assert/strict";
import { histogramQuantile, logLogSlope } from "./scale.ts";

Deno.test("logLogSlope: 1 for linear growth, 0 for flat, 2 for quadratic; NaN with too few points", () => {
  const ns = [10, 50, 100, 200];
  assert.ok(Math.abs(logLogSlope(ns, ns.map((n) => 3 * n)) - 1) < 1e-9);
  assert.ok(Math.abs(logLogSlope(ns, ns.map(() => 7))) < 1e-9);
  assert.ok(Math.abs(logLogSlope(ns, ns.map((n) => n * n)) - 2) < 1e-9);
  assert.ok(Number.isNaN(logLogSlope([10], [1])));
  // A zero cost has no logarithm: it is left out rather than poisoning the fit.
  assert.ok(Math.abs(logLogSlope(ns, [0, 50, 100, 200]) - 1) < 1e-9);
});

Deno.test("histogramQuantile interpolates inside buckets, between two scrapes", () => {
  const mk = (le: string, v: number) => ({
    name: "h_bucket",
    labels: { le, command: "ADD" },
    value: v,
  });
  const after = [mk("0.1", 50), mk("0.5", 90), mk("1", 100), mk("+Inf", 100)];
  assert.ok(Math.abs(histogramQuantile([], after, "h", 0.5) - 0.1) < 1e-9);
  assert.ok(Math.abs(histogramQuantile([], after, "h", 0.7) - 0.3) < 1e-9);
  assert.ok(Math.abs(histogramQuantile([], after, "h", 0.99) - 0.95) < 1e-9);
  assert.ok(Number.isNaN(histogramQuantile(after, after, "h", 0.5)), "nothing observed between");
  assert.ok(Number.isNaN(histogramQuantile([], after, "h", 0.5, { command: "DEL" })));
});
