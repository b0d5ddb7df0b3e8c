/**
 * What every benchmark receives, and the run's resource registry.
 *
 * Invariants: every network namespace a benchmark creates is named `<ctx.prefix>…` (the prefix is
 * `hbn` + 4 random hex digits, fresh per run), so one sweep by prefix finds them all; every
 * long-lived child process (iperf3, hyperfine) and every temporary directory goes through
 * `Resources`, so an interrupted run can kill and remove them. Benchmarks still clean up after
 * themselves in `finally` blocks; the sweep is the safety net for SIGINT and for bugs.
 */
import { deleteNamespaces } from "../../lib/sim/mod.ts";
import { inNetns, type Runner } from "../../lib/linux/exec.ts";
import type { Figure } from "./figure.ts";

export type BenchMode = "quick" | "full";

export interface BenchContext {
  mode: BenchMode;
  /** `hbn<4 hex>`: the start of every namespace name this run creates. */
  prefix: string;
  runner: Runner;
  resources: Resources;
  /** Aborted on SIGINT: stop creating things, let `finally` blocks run. */
  signal: AbortSignal;
  /** Progress for humans, on stderr (figures go to stdout). */
  log(msg: string): void;
}

export interface Benchmark {
  /** Used by `--only`. */
  name: string;
  /** One line for `--help`. */
  description: string;
  run(ctx: BenchContext): Promise<Figure[]>;
  /** Heavy (builds images, runs real nodes): only with `--full` or when named in `--only`. */
  optIn?: boolean;
}

export interface SpawnOptions {
  netns?: string;
  env?: Record<string, string>;
  stdout?: "piped" | "null";
  stderr?: "piped" | "null";
}

/** Child processes and temporary directories of a run, tracked for the SIGINT sweep. */
export class Resources {
  #procs = new Set<Deno.ChildProcess>();
  #dirs = new Set<string>();

  /** Spawns argv (inside `netns` via nsenter); the process is tracked until it exits. */
  spawn(argv: readonly string[], o: SpawnOptions = {}): Deno.ChildProcess {
    const full = inNetns(argv, o.netns);
    const child = new Deno.Command(full[0], {
      args: full.slice(1),
      stdin: "null",
      stdout: o.stdout ?? "piped",
      stderr: o.stderr ?? "piped",
      ...(o.env ? { env: o.env } : {}),
    }).spawn();
    this.#procs.add(child);
    child.status.finally(() => this.#procs.delete(child));
    return child;
  }

  async makeTempDir(prefix: string): Promise<string> {
    const dir = await Deno.makeTempDir({ prefix });
    this.#dirs.add(dir);
    return dir;
  }

  async removeDir(dir: string): Promise<void> {
    await Deno.remove(dir, { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    this.#dirs.delete(dir);
  }

  /** Kills every tracked process that still runs and waits for it to go. */
  async killAll(): Promise<void> {
    const procs = [...this.#procs];
    for (const p of procs) {
      try {
        p.kill("SIGKILL");
      } catch {
        // Exited between the snapshot and the kill.
      }
    }
    await Promise.allSettled(procs.map((p) => p.status));
  }

  /** The safety net: kill processes, remove directories, delete namespaces named `prefix…`. */
  async sweep(runner: Runner, prefix: string): Promise<void> {
    await this.killAll();
    for (const d of [...this.#dirs]) await this.removeDir(d).catch(() => {});
    await deleteNamespaces(runner, await namespacesWithPrefix(runner, prefix));
  }
}

/** Names under /run/netns that start with `prefix`. */
export async function namespacesWithPrefix(runner: Runner, prefix: string): Promise<string[]> {
  const { stdout } = await runner.run(["ip", "-j", "netns", "list"]);
  const list = stdout.trim() === "" ? [] : JSON.parse(stdout) as { name: string }[];
  return list.map((n) => n.name).filter((n) => n.startsWith(prefix));
}

/** A fresh run prefix: `hbn` + 4 hex digits. */
export function newRunPrefix(): string {
  const b = crypto.getRandomValues(new Uint8Array(2));
  return "hbn" + [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}
