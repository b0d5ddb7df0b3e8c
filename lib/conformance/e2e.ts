/**
 * Runs the upstream suite (`e2e.test`, built by k8s/build.sh component `e2e`) against a
 * ConformanceCluster: inside the master instance's network namespace (a machine in the VPC, as a
 * user would run it next to a cluster), with the admin kubeconfig for the VPC address, the built
 * kubectl, the focus and skip expressions, and a JUnit report. Its output goes to a log file; a
 * line per finished spec is handed to `onSpec` as it happens (from ginkgo's verbose output).
 */
import type { ControlPlane } from "../testbed/kube.ts";

export interface E2eRunOptions {
  cp: ControlPlane;
  /** e2e.test */
  binary: string;
  focus: string[];
  skip: string[];
  /** Where the JUnit file, the log and the suite's own output go. */
  outDir: string;
  /** ginkgo's suite timeout, e.g. "3h". */
  timeout: string;
  /** A finished spec as ginkgo's verbose output shows it. */
  onSpec?: (s: { name: string; state: string; seconds: number }) => void;
}

export interface E2eRun {
  code: number;
  junit: string;
  log: string;
  seconds: number;
}

/** The flags for a run without a cloud provider, registry or SSH. */
export function e2eArgs(o: E2eRunOptions, junit: string): string[] {
  return [
    `--kubeconfig=${o.cp.kubeconfig}`,
    `--kubectl-path=${o.cp.bin}/kubectl`,
    "--provider=skeleton",
    "--node-os-distro=debian",
    "--allowed-not-ready-nodes=0",
    "--dump-logs-on-failure=false",
    `--report-dir=${o.outDir}`,
    `--e2e-output-dir=${o.outDir}`,
    "--ginkgo.v",
    "--ginkgo.no-color",
    `--ginkgo.timeout=${o.timeout}`,
    `--ginkgo.junit-report=${junit}`,
    ...o.focus.map((f) => `--ginkgo.focus=${f}`),
    ...o.skip.map((s) => `--ginkgo.skip=${s}`),
  ];
}

const SPEC_END =
  /^(?:•|S) (?:\[(FAILED|SKIPPED|PANICKED|TIMEDOUT|INTERRUPTED)\] )?\[([\d.]+) seconds\]/;
const SPEC_TEXT = /^\[sig-[a-z-]+\] /;

export async function runE2e(o: E2eRunOptions): Promise<E2eRun> {
  await Deno.mkdir(o.outDir, { recursive: true });
  const junit = `${o.outDir}/junit.xml`;
  const log = `${o.outDir}/e2e.log`;
  const file = await Deno.open(log, { write: true, create: true, truncate: true });
  const t0 = performance.now();
  const child = new Deno.Command("nsenter", {
    args: [`--net=/run/netns/${o.cp.masterNetns}`, o.binary, ...e2eArgs(o, junit)],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    cwd: o.outDir,
    env: { HOME: o.outDir, NO_COLOR: "1" },
  }).spawn();
  const enc = new TextEncoder();
  let current = "";
  const follow = async (stream: ReadableStream<Uint8Array>) => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      await file.write(enc.encode(chunk));
      rest += chunk;
      const lines = rest.split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        if (SPEC_TEXT.test(line)) current = line.trim();
        const m = SPEC_END.exec(line);
        if (m && current) {
          const state = m[1] ? m[1].toLowerCase() : line.startsWith("S") ? "skipped" : "passed";
          o.onSpec?.({ name: current, state, seconds: Number(m[2]) });
          current = "";
        }
      }
    }
  };
  await Promise.all([follow(child.stdout), follow(child.stderr)]);
  const st = await child.status;
  file.close();
  return { code: st.code, junit, log, seconds: (performance.now() - t0) / 1000 };
}
