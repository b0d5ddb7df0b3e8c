import assert from "node:assert/strict";
import { collectProcessMetrics, Counter, Gauge, Histogram, Registry } from "./prom.ts";

Deno.test("Registry renders counters, gauges and histograms as prom-client did", async () => {
  const r = new Registry();
  r.setDefaultLabels({ node_name: "n1" });
  const g = r.register(new Gauge<"state">({ name: "x_nics", help: "NICs", labelNames: ["state"] }));
  const plain = r.register(new Gauge({ name: "x_allocs", help: "Allocations" }));
  const c = r.register(
    new Counter<"action">({ name: "x_calls_total", help: "Calls", labelNames: ["action"] }),
  );
  const h = r.register(
    new Histogram<"command" | "result">({
      name: "x_seconds",
      help: "Latency",
      labelNames: ["command", "result"],
      buckets: [0.1, 1],
    }),
  );
  g.set({ state: "free" }, 3);
  plain.set(2);
  c.inc({ action: 'Create"Nics' });
  c.inc({ action: 'Create"Nics' }, 2);
  h.observe({ command: "ADD", result: "ok" }, 0.05);
  h.observe({ command: "ADD", result: "ok" }, 0.5);
  assert.equal(
    await r.metrics(),
    [
      "# HELP x_nics NICs",
      "# TYPE x_nics gauge",
      'x_nics{state="free",node_name="n1"} 3',
      "",
      "# HELP x_allocs Allocations",
      "# TYPE x_allocs gauge",
      'x_allocs{node_name="n1"} 2',
      "",
      "# HELP x_calls_total Calls",
      "# TYPE x_calls_total counter",
      'x_calls_total{action="Create\\"Nics",node_name="n1"} 3',
      "",
      "# HELP x_seconds Latency",
      "# TYPE x_seconds histogram",
      'x_seconds_bucket{node_name="n1",command="ADD",result="ok",le="0.1"} 1',
      'x_seconds_bucket{node_name="n1",command="ADD",result="ok",le="1"} 2',
      'x_seconds_bucket{node_name="n1",command="ADD",result="ok",le="+Inf"} 2',
      'x_seconds_sum{node_name="n1",command="ADD",result="ok"} 0.55',
      'x_seconds_count{node_name="n1",command="ADD",result="ok"} 2',
      "",
    ].join("\n"),
  );
  assert.throws(() => c.inc({ bogus: "x" } as never), /no label "bogus"/);
  assert.throws(() => r.register(new Gauge({ name: "x_nics", help: "again" })), /twice/);
});

Deno.test("Histogram timers and process metrics", async () => {
  const r = new Registry();
  const h = r.register(
    new Histogram<"command" | "result">({
      name: "t_seconds",
      help: "T",
      labelNames: ["command", "result"],
      buckets: [60],
    }),
  );
  const end = h.startTimer({ command: "DEL" });
  await new Promise((ok) => setTimeout(ok, 5));
  end({ result: "error" });
  collectProcessMetrics(r, "p_");
  const text = await r.metrics();
  assert.match(text, /^t_seconds_count\{command="DEL",result="error"\} 1$/m);
  const rss = Number(/^p_process_resident_memory_bytes (\d+)$/m.exec(text)?.[1]);
  assert.ok(rss > 1 << 20, text);
  assert.match(text, /^p_nodejs_heap_size_used_bytes \d+$/m);
  assert.match(text, /^p_process_cpu_seconds_total [\d.]+$/m);
});

Deno.test("Registry runs scrape-time collectors; remove and reset drop series", async () => {
  const r = new Registry();
  let n = 1;
  r.register(new Gauge({ name: "c_live", help: "Live", collect: (g) => g.set(n) }));
  const pools = r.register(new Gauge({ name: "c_pool", help: "Pool", labelNames: ["pool"] }));
  pools.set({ pool: "a" }, 1);
  pools.set({ pool: "b" }, 2);
  assert.match(await r.metrics(), /^c_live 1$/m);
  n = 5;
  pools.remove({ pool: "a" });
  const text = await r.metrics();
  assert.match(text, /^c_live 5$/m);
  assert.doesNotMatch(text, /pool="a"/);
  assert.match(text, /^c_pool\{pool="b"\} 2$/m);
  pools.reset();
  assert.doesNotMatch(await r.metrics(), /pool="b"/);
});
