/**
 * `deno task arch`: the import-graph check of tests/arch/layers.ts, printed for people.
 * Exit 1 on any failure; pending items (fixed on another branch) are listed, not failed.
 */
import { checkGraph, formatReport, loadSources } from "./graph.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const report = checkGraph(await loadSources(root));
console.log(formatReport(report));
if (report.violations.length || report.stale.length) Deno.exitCode = 1;
