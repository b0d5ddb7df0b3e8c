import assert from "node:assert/strict";
import { histogramMeanBetween, parseMetrics, sumOf, valueOf } from "./prom.ts";

Deno.test("parseMetrics reads samples with labels; sums, values and histogram means", () => {
  const before = parseMetrics([
    "# HELP hostnic_cni_request_duration_seconds Daemon-side latency",
    "# TYPE hostnic_cni_request_duration_seconds histogram",
    'hostnic_cni_request_duration_seconds_sum{node_name="n1",command="ADD",result="ok"} 0.5',
    'hostnic_cni_request_duration_seconds_count{node_name="n1",command="ADD",result="ok"} 10',
    'hostnic_cni_request_duration_seconds_sum{node_name="n1",command="DEL",result="ok"} 1',
    'hostnic_cni_request_duration_seconds_count{node_name="n1",command="DEL",result="ok"} 10',
    "",
  ].join("\n"));
  const after = parseMetrics([
    'hostnic_cni_request_duration_seconds_sum{node_name="n1",command="ADD",result="ok"} 0.8',
    'hostnic_cni_request_duration_seconds_count{node_name="n1",command="ADD",result="ok"} 15',
    'hostnic_cni_request_duration_seconds_sum{node_name="n1",command="ADD",result="error"} 2',
    'hostnic_cni_request_duration_seconds_count{node_name="n1",command="ADD",result="error"} 1',
    'hostnic_cni_request_duration_seconds_sum{node_name="n1",command="DEL",result="ok"} 1',
    'hostnic_cni_request_duration_seconds_count{node_name="n1",command="DEL",result="ok"} 10',
    'odd_label{msg="a \\"quoted\\", comma"} 7',
    "hostnic_process_resident_memory_bytes 1.25e8",
    'bucket_inf{le="+Inf"} +Inf',
  ].join("\n"));
  assert.equal(before.length, 4);
  assert.deepEqual(after.find((s) => s.name === "odd_label")?.labels, { msg: 'a "quoted", comma' });
  assert.equal(valueOf(after, "hostnic_process_resident_memory_bytes"), 125_000_000);
  assert.equal(valueOf(after, "absent"), undefined);
  assert.equal(valueOf(after, "bucket_inf"), Infinity);
  assert.equal(sumOf(after, "hostnic_cni_request_duration_seconds_count", { command: "ADD" }), 16);
  const ok = { command: "ADD", result: "ok" };
  const m = histogramMeanBetween(before, after, "hostnic_cni_request_duration_seconds", ok);
  assert.ok(m !== undefined && Math.abs(m - 0.06) < 1e-12, String(m));
  assert.equal(
    histogramMeanBetween(before, after, "hostnic_cni_request_duration_seconds", {
      command: "DEL",
    }),
    undefined,
  );
});
