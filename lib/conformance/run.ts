/**
 * A conformance run end to end (`hostnic conformance`, `deno task conformance`): builds or loads
 * the images, starts the ConformanceCluster in the chosen mode, runs e2e.test with the repository's
 * focus and skip lists (conformance/*.txt) or the caller's, prints one PASS/FAIL/SKIP line per
 * selected test from the JUnit report, and ends with `N passed, N failed`. Tears everything down.
 */
import { componentDir } from "../testbed/images_e2e.ts";
import { ConformanceCluster, type Mode, type Timings } from "./cluster.ts";
import { runE2e } from "./e2e.ts";
import { parseJunit, type SpecResult } from "./junit.ts";
import { FOCUS_FILE, type Pattern, readList, SKIP_FILE } from "./lists.ts";

export interface ConformanceOptions {
  mode: Mode;
  policy: boolean;
  /** Replaces conformance/focus.txt. */
  focus?: string[];
  /** Added to conformance/skip.txt. */
  skip?: string[];
  /** Where the JUnit file and logs go (default: a new directory under /tmp). */
  outDir?: string;
  timeout?: string;
  print?: (line: string) => void;
}

export interface ConformanceResult {
  results: (SpecResult & { reason?: string })[];
  passed: number;
  failed: number;
  skipped: number;
  junit: string;
  log: string;
  timings: Timings;
  /** e2e.test's exit code. */
  code: number;
}

/** Whether JavaScript reads the ginkgo (RE2) expression the same way; invalid ones never match. */
function matcher(regex: string): RegExp {
  try {
    return new RegExp(regex);
  } catch {
    return /$^/;
  }
}

/** The result lines: selected specs only (ginkgo's report also lists every unselected one). */
export function selected(
  specs: SpecResult[],
  focus: string[],
  skip: Pattern[],
): (SpecResult & { reason?: string })[] {
  const f = focus.map(matcher);
  return specs.filter((s) => s.name.startsWith("[") && f.some((r) => r.test(s.name)))
    .map((s) => {
      if (s.state !== "skipped") return s;
      const p = skip.find((p) => matcher(p.regex).test(s.name));
      return p ? { ...s, reason: p.reason } : s;
    });
}

export function resultLine(s: SpecResult & { reason?: string }): string {
  const word = s.state === "passed" ? "PASS" : s.state === "failed" ? "FAIL" : "SKIP";
  const why = s.state === "failed"
    ? `  — ${s.message.split("\n")[0].slice(0, 200)}`
    : s.state === "skipped" && s.reason
    ? `  — excluded: ${s.reason.split(/[:.]\s/)[0]}`
    : "";
  return `${word}  ${s.name}  (${s.seconds.toFixed(1)} s)${why}`;
}

export async function runConformance(o: ConformanceOptions): Promise<ConformanceResult> {
  const print = o.print ?? ((l: string) => console.log(l));
  const log = (l: string) => print(`  ${l}`);
  const focus = o.focus?.length ? o.focus : (await readList(FOCUS_FILE, false)).map((p) => p.regex);
  const skipList = [
    ...await readList(SKIP_FILE, true),
    ...(o.skip ?? []).map((regex, i) => ({ regex, reason: "--skip", line: i })),
  ];
  const binary = `${await componentDir("e2e")}/e2e.test`;
  const outDir = o.outDir ?? await Deno.makeTempDir({ prefix: `hostnic-conformance-${o.mode}-` });
  print(
    `hostnic conformance: mode ${o.mode}, policy ${o.policy ? "on" : "off"}, ` +
      `${focus.length} focus and ${skipList.length} skip expressions; output in ${outDir}`,
  );
  await using cc = await ConformanceCluster.start({ mode: o.mode, policy: o.policy, log });
  print(`cluster ready: ${(await cc.cp.kubectlOk(["get", "nodes", "-o", "wide"])).trimEnd()}`);
  const run = await runE2e({
    cp: cc.cp,
    binary,
    focus,
    skip: skipList.map((s) => s.regex),
    outDir,
    timeout: o.timeout ?? "4h",
    onSpec: (s) => log(`${s.state.padEnd(7)} ${s.name} (${s.seconds.toFixed(1)} s)`),
  });
  cc.timings["e2e.test"] = run.seconds;
  let specs: SpecResult[] = [];
  try {
    specs = parseJunit(await Deno.readTextFile(run.junit));
  } catch (err) {
    throw new Error(
      `e2e.test wrote no JUnit report (exit ${run.code}; see ${run.log}): ${
        (err as Error).message
      }`,
    );
  }
  const results = selected(specs, focus, skipList);
  // A failed suite set-up fails every spec without a report of its own: count it.
  const setup = specs.filter((s) => !s.name.startsWith("[sig-") && s.state === "failed");
  for (const s of [...results, ...setup]) print(resultLine(s));
  const count = (st: string) => results.filter((r) => r.state === st).length;
  const failed = count("failed") + setup.length;
  print(
    `timings: ${
      Object.entries(cc.timings).map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(", ")
    }; JUnit ${run.junit}; log ${run.log}`,
  );
  if (count("skipped")) print(`${count("skipped")} skipped (excluded, with the reasons above)`);
  print(`${count("passed")} passed, ${failed} failed`);
  return {
    results,
    passed: count("passed"),
    failed,
    skipped: count("skipped"),
    junit: run.junit,
    log: run.log,
    timings: cc.timings,
    code: run.code,
  };
}
