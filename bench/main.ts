/**
 * `deno task bench` — runs the benchmark modules and prints one line per figure:
 *
 *   name  value unit  (baseline <name> <value>, ratio x.xx)  target ratio <= 1.5  MET|MISSED
 *
 * Flags: `--quick` (default: fewer runs and shorter windows, under 3 minutes in all on 2 cores),
 * `--full` (issue 8's sizes: 200 ADD/DEL runs, a 60 s churn, longer iperf3, extra variants),
 * `--only <name,...>`, `--json <file>` (figures plus run metadata).
 *
 * Every namespace a run creates starts with `hbn<4 hex>`; every benchmark cleans up in finally
 * blocks, and the run ends with a sweep by that prefix (which also runs on SIGINT, after the
 * interrupted benchmark's own finally blocks had their chance). Exit code 1 when a benchmark
 * failed or something was left behind; missed targets are reported, not failures.
 */
import { CommandRunner } from "../lib/linux/exec.ts";
import { errorMessage } from "../lib/errors.ts";
import { baselineCni, spawnCost } from "./baseline_cni.ts";
import { dataplane } from "./dataplane.ts";
import { hostnicChurn } from "./hostnic_churn.ts";
import { hostnicCni } from "./hostnic_cni.ts";
import { hostnicShared } from "./hostnic_shared.ts";
import { hostnicBurst, hostnicCold } from "./hostnic_pool.ts";
import { k8sStartup } from "./k8s_startup.ts";
import { rssProfile } from "./rss_profile.ts";
import { scale } from "./scale.ts";
import { soak } from "./soak.ts";
import {
  type BenchContext,
  type Benchmark,
  type BenchMode,
  namespacesWithPrefix,
  newRunPrefix,
  Resources,
} from "./lib/context.ts";
import { type Figure, formatFigure } from "./lib/figure.ts";

/** The registry, in run order. */
export const BENCHMARKS: readonly Benchmark[] = [
  baselineCni,
  spawnCost,
  hostnicCni,
  hostnicCold,
  hostnicBurst,
  hostnicChurn,
  hostnicShared,
  rssProfile,
  dataplane,
  k8sStartup,
  scale,
  soak,
];

const NAME_WIDTH = 32;

export interface BenchArgs {
  mode: BenchMode;
  only?: string[];
  json?: string;
  help: boolean;
}

export function parseArgs(args: readonly string[]): BenchArgs {
  const out: BenchArgs = { mode: "quick", help: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = () => {
      const v = args[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`Flag "${a}" needs a value`);
      return v;
    };
    if (a === "--quick") out.mode = "quick";
    else if (a === "--full") out.mode = "full";
    else if (a === "--only") out.only = value().split(",").map((s) => s.trim()).filter(Boolean);
    else if (a.startsWith("--only=")) out.only = a.slice(7).split(",").filter(Boolean);
    else if (a === "--json") out.json = value();
    else if (a.startsWith("--json=")) out.json = a.slice(7);
    else if (a === "--help" || a === "-h") out.help = true;
    else throw new Error(`Unknown argument "${a}" (see --help)`);
  }
  return out;
}

function usage(): string {
  const lines = BENCHMARKS.map((b) =>
    `  ${b.name.padEnd(14)} ${b.description}${b.optIn ? " (with --full or --only)" : ""}`
  );
  return [
    "Usage: deno task bench [--quick | --full] [--only name,...] [--json file]",
    "",
    "Benchmarks:",
    ...lines,
  ].join("\n");
}

/** Without `--only`: every benchmark but the opt-in ones, which `--full` adds. */
function selected(only: string[] | undefined, mode: BenchMode): Benchmark[] {
  if (!only) return BENCHMARKS.filter((b) => !b.optIn || mode === "full");
  const unknown = only.filter((n) => !BENCHMARKS.some((b) => b.name === n));
  if (unknown.length > 0) {
    throw new Error(
      `Unknown benchmark "${unknown.join(", ")}"; known: ${
        BENCHMARKS.map((b) => b.name).join(", ")
      }`,
    );
  }
  return BENCHMARKS.filter((b) => only.includes(b.name));
}

export async function main(args: string[]): Promise<number> {
  let parsed: BenchArgs;
  let benches: Benchmark[];
  try {
    parsed = parseArgs(args);
    benches = selected(parsed.only, parsed.mode);
  } catch (err) {
    console.error(errorMessage(err));
    return 2;
  }
  if (parsed.help) {
    console.log(usage());
    return 0;
  }
  const runner = new CommandRunner();
  const resources = new Resources();
  const abort = new AbortController();
  const prefix = newRunPrefix();
  const log = (msg: string) => console.error(`# ${msg}`);
  const ctx: BenchContext = {
    mode: parsed.mode,
    prefix,
    runner,
    resources,
    signal: abort.signal,
    log,
  };

  let current: Promise<unknown> = Promise.resolve();
  let interrupted: Promise<void> | undefined;
  const onSigint = () => {
    interrupted ??= (async () => {
      log("interrupted: stopping and cleaning up");
      abort.abort();
      await resources.killAll(); // running iperf3/hyperfine end now, so finally blocks run soon
      // Give the module's own finally blocks their chance, but do not hang on a stuck one.
      await Promise.race([current.catch(() => {}), new Promise((r) => setTimeout(r, 15_000))]);
      await resources.sweep(runner, prefix).catch((err) => log(`sweep: ${errorMessage(err)}`));
      Deno.exit(130);
    })();
  };
  Deno.addSignalListener("SIGINT", onSigint);

  const started = performance.now();
  log(`hostnic benchmarks (${parsed.mode}), namespaces ${prefix}*`);
  const figures: Figure[] = [];
  const failures: { bench: string; error: string }[] = [];
  try {
    for (const b of benches) {
      const t0 = performance.now();
      const run = b.run(ctx);
      current = run;
      try {
        const got = await run;
        figures.push(...got);
        for (const f of got) console.log(formatFigure(f, { nameWidth: NAME_WIDTH }));
      } catch (err) {
        if (abort.signal.aborted) break;
        failures.push({ bench: b.name, error: errorMessage(err) });
        console.log(`${b.name.padEnd(NAME_WIDTH)}  ERROR  ${errorMessage(err)}`);
      }
      log(`${b.name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    if (interrupted) await interrupted; // it sweeps and exits with 130
    await resources.sweep(runner, prefix);
    Deno.removeSignalListener("SIGINT", onSigint);
  }
  const leftovers = await namespacesWithPrefix(runner, prefix);
  if (leftovers.length > 0) {
    failures.push({ bench: "cleanup", error: `left ${leftovers.join(" ")}` });
  }
  const targets = figures.filter((f) => f.met !== undefined);
  log(
    `${figures.length} figures, ${
      targets.filter((f) => f.met).length
    }/${targets.length} targets met, ` +
      `${failures.length} failures, ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  if (parsed.json) {
    await Deno.writeTextFile(
      parsed.json,
      JSON.stringify(
        {
          date: new Date().toISOString(),
          mode: parsed.mode,
          machine: {
            cores: navigator.hardwareConcurrency,
            kernel: Deno.osRelease(),
            deno: Deno.version.deno,
          },
          figures,
          failures,
        },
        null,
        2,
      ) + "\n",
    );
  }
  return failures.length === 0 ? 0 : 1;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
