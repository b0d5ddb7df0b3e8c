/**
 * `hostnic conformance` (`deno task conformance`): the upstream Kubernetes e2e suite's network tests
 * against hostnic on two real nodes of the simulated QingCloud (lib/conformance/). Needs root, the
 * packages of docs/testing.md and `deno task k8s:build` (which builds e2e.test, agnhost and CoreDNS).
 * Prints one PASS/FAIL/SKIP line per test and `N passed, N failed`; exits 0 only if none failed.
 */
import { Option } from "commander";
import { newProgram, runProgram } from "../lib/cli.ts";

interface Flags {
  mode: "nic" | "shared";
  focus?: string[];
  skip?: string[];
  policy: boolean;
  outDir?: string;
  timeout: string;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** The commander program (built, not run). */
export function program(): { program: ReturnType<typeof newProgram>; code: () => number } {
  let code = 0;
  const program = newProgram("hostnic conformance")
    .description(
      "run the upstream Kubernetes e2e network tests (focus: conformance/focus.txt, exclusions " +
        "with reasons: conformance/skip.txt) on a simulated cloud with a real control plane and " +
        "two real kubelet nodes, hostnic installed from deploy/hostnic.yaml; prints " +
        "PASS/FAIL/SKIP per test, writes a JUnit file, ends with 'N passed, N failed'",
    )
    .addOption(
      new Option("--mode <mode>", "hostnic's mode: a NIC per pod, or shared NICs (v-pool)")
        .choices(["nic", "shared"]).default("nic"),
    )
    .option("--focus <regex>", "run these tests instead of focus.txt (repeatable)", collect)
    .option("--skip <regex>", "exclude these tests too (repeatable)", collect)
    .option("--policy", "install kube-router's NetworkPolicy controller (default)", true)
    .option(
      "--no-policy",
      "do not: the NetworkPolicy tests then fail, as on any CNI without policy",
    )
    .option("--out-dir <dir>", "where the JUnit file (junit.xml) and e2e.log go (default: /tmp)")
    .option("--timeout <duration>", "the suite's time limit (ginkgo duration)", "4h")
    .action(async (f: Flags) => {
      const { runConformance } = await import("../lib/conformance/run.ts");
      const r = await runConformance({
        mode: f.mode,
        policy: f.policy,
        focus: f.focus,
        skip: f.skip,
        outDir: f.outDir,
        timeout: f.timeout,
      });
      code = r.failed === 0 && r.passed > 0 ? 0 : 1;
    });
  return { program, code: () => code };
}

export async function main(args: string[]): Promise<number> {
  const m = program();
  // No arguments: the default run (nic mode, the repository's lists).
  return await runProgram(m.program, args.length ? args : ["--mode", "nic"], m.code);
}
