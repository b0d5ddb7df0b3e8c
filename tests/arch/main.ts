/**
 * `deno task arch`: the import-graph check of tests/arch/layers.ts, printed for people.
 * Exit 1 on any failure; pending items (fixed on another branch) are listed, not failed.
 */
import { checkGraph, formatReport, loadSources } from "./graph.ts";

const USAGE = `Usage: deno task arch

Checks the import graph of lib/, cmd/ and main.ts against the layer table in tests/arch/layers.ts:
no cycle, no upward or sideways arrow, the daemon core sees a backend only through its mod.ts, the
simulator and the IaaS client stay apart, no lib/ file over 600 lines. Prints each problem as
"a.ts → b.ts: why" and exits 1 if there is one; work another branch still owes is listed as pending.
`;

if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
  console.log(USAGE);
} else {
  const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
  const report = checkGraph(await loadSources(root));
  console.log(formatReport(report));
  if (report.violations.length || report.stale.length) Deno.exitCode = 1;
}
