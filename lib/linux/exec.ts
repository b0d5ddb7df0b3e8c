/**
 * Command runner: every Linux change hostnic makes goes through `Runner.run` with an explicit argv
 * (never a shell). Failures are typed `ExecError`s carrying argv, exit code and stderr, so callers
 * decide on `code`/`stderr` content in one place (lib/linux), never across process boundaries.
 *
 * A `netns` option runs the command inside a network namespace: a bare name (under /run/netns)
 * uses `ip netns exec`-free `nsenter --net=/run/netns/<name>`; a path (CNI_NETNS) is used as is.
 */
import { HostnicError } from "../errors.ts";

export interface RunOptions {
  /** Network namespace: a name under /run/netns or an absolute path such as /proc/123/ns/net. */
  netns?: string;
  /**
   * Text the command reads on its stdin (e.g. an `ip -batch -` script). Where argv names stdin
   * as `-`, the real runner gives the text as a file instead (see `CommandRunner`).
   */
  stdin?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

export interface Runner {
  /** Runs argv; resolves with captured output on exit 0, rejects with `ExecError` otherwise. */
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
}

export class ExecError extends HostnicError {
  readonly argv: readonly string[];
  readonly exitCode: number;
  readonly stderr: string;
  constructor(argv: readonly string[], exitCode: number, stderr: string) {
    const shown = argv.join(" ");
    super(
      "EXEC_FAILED",
      `Command "${shown}" failed with exit code ${exitCode}: ${stderr.trim() || "(no output)"}`,
    );
    this.argv = argv;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** Path of a namespace given as a name or a path. */
export function netnsPath(netns: string): string {
  return netns.includes("/") ? netns : `/run/netns/${netns}`;
}

/** argv that runs `argv` inside `netns` (identity when no netns is given). */
export function inNetns(argv: readonly string[], netns?: string): string[] {
  if (!netns) return [...argv];
  return ["nsenter", `--net=${netnsPath(netns)}`, "--", ...argv];
}

const decoder = new TextDecoder();

/** Where `ip`, `iptables` and `nsenter` live, for callers started without a PATH (CNI runtimes). */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const resolved = new Map<string, string>();

/**
 * A bare program name as a path: the first match in PATH, then in DEFAULT_PATH. Runtimes may start
 * a CNI plugin with an empty environment, and Deno then sets a PATH of its own that lacks /sbin.
 */
function resolveProgram(name: string): string {
  if (name.includes("/")) return name;
  let path = resolved.get(name);
  if (path === undefined) {
    path = name;
    for (const dir of `${Deno.env.get("PATH") ?? ""}:${DEFAULT_PATH}`.split(":")) {
      if (!dir.startsWith("/")) continue;
      try {
        if (Deno.statSync(`${dir}/${name}`).isFile) {
          path = `${dir}/${name}`;
          break;
        }
      } catch {
        // not in this directory
      }
    }
    resolved.set(name, path);
  }
  return path;
}

/** Temporary input files are `<tmp>/hostnic-input-<pid>-<random>`. */
const INPUT_PREFIX = "hostnic-input-";
let swept = false;

/**
 * Removes input files that processes which are gone left behind (killed while a command ran, or
 * exited without waiting for it); the first file a process writes triggers it, once.
 */
async function sweepStaleInputs(dir: string): Promise<void> {
  if (swept) return;
  swept = true;
  try {
    for await (const e of Deno.readDir(dir)) {
      const pid = new RegExp(`^${INPUT_PREFIX}(\\d+)-`).exec(e.name)?.[1];
      if (!pid || Number(pid) === Deno.pid) continue;
      const alive = await Deno.stat(`/proc/${pid}`).then(() => true, () => false);
      if (!alive) await Deno.remove(`${dir}/${e.name}`).catch(() => {});
    }
  } catch {
    // best effort: a tmp dir we cannot list holds nothing of ours to sweep
  }
}

/** What a runner started: for a per-process spawn count (the daemon's metrics, the bench). */
export type SpawnListener = (argv: readonly string[]) => void;

/**
 * The real runner over `Deno.Command`.
 *
 * Input for a command that names its stdin `-` in argv (`ip -batch -`) goes through a private
 * temporary file (0600, removed after the run; the files of processes that died meanwhile are
 * swept by the next process) whose path replaces the `-`, and the child's stdin is null. A piped stdin makes every spawn leave glibc heap behind in a long-running Deno process
 * (2000 `ip -batch -` runs: +212 MiB piped, +49 MiB with the file; docs/benchmarks.md), and the
 * daemon spawns for every pod. Other commands get a piped stdin.
 */
export class CommandRunner implements Runner {
  readonly #onSpawn?: SpawnListener;

  constructor(opts: { onSpawn?: SpawnListener } = {}) {
    this.#onSpawn = opts.onSpawn;
  }

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const full = inNetns(argv, opts.netns);
    const dash = opts.stdin === undefined ? -1 : argv.indexOf("-", 1);
    let file: string | undefined;
    if (dash > 0) {
      file = await Deno.makeTempFile({ prefix: `${INPUT_PREFIX}${Deno.pid}-` });
      await sweepStaleInputs(file.slice(0, file.lastIndexOf("/")));
    }
    try {
      if (file !== undefined) await Deno.writeTextFile(file, opts.stdin!);
      const args = file === undefined ? argv.slice(1) : argv.slice(1).with(dash - 1, file);
      return await this.#spawn(full, [argv[0], ...args], opts, file === undefined);
    } finally {
      if (file !== undefined) await Deno.remove(file).catch(() => {});
    }
  }

  /** Spawns `argv` (in `opts.netns`); `full` is the argv errors and listeners are told. */
  async #spawn(
    full: string[],
    argv: string[],
    opts: RunOptions,
    pipeStdin: boolean,
  ): Promise<RunResult> {
    // Inside a namespace the program is started by nsenter, which searches the PATH it inherited
    // (none under a CNI runtime): give it the resolved path as well.
    const exec = inNetns([resolveProgram(argv[0]), ...argv.slice(1)], opts.netns);
    const piped = pipeStdin && opts.stdin !== undefined;
    const cmd = new Deno.Command(resolveProgram(exec[0]), {
      args: exec.slice(1),
      stdin: piped ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    });
    let child: Deno.ChildProcess;
    try {
      child = cmd.spawn();
    } catch (err) {
      throw new ExecError(full, 127, `cannot start "${full[0]}": ${(err as Error).message}`);
    }
    this.#onSpawn?.(full);
    if (piped) {
      const w = child.stdin.getWriter();
      // A child may exit without reading stdin (nsenter failing to enter a vanished namespace):
      // the write then fails with BrokenPipe, and the exit status below says what happened.
      await w.write(new TextEncoder().encode(opts.stdin)).catch(() => {});
      await w.close().catch(() => {});
    }
    const out = await child.output();
    const res = { stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
    if (out.code !== 0) throw new ExecError(full, out.code, res.stderr);
    return res;
  }
}
