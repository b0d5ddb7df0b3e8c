/**
 * Every subcommand answers `--help` with its usage, exit 0, nothing on stderr and no side effect.
 *
 * The walk finds the subcommands by itself: every mode in main.ts's table (`MODE_NAMES`), every
 * subcommand of a mode's commander program (`program().commands`, recursively), and every
 * `deno run` entry among deno.json's tasks (the bench, a conformance runner, the demos); a new
 * mode, subcommand or task entry is walked without editing this file.
 *
 * Each invocation is the real `deno run -A main.ts …` process, spawned in parallel, with a fresh
 * empty HOME, TMPDIR and working directory, inside a private mount namespace whose /run and
 * /var/lib are empty tmpfs mounts: afterwards the three directories must still be empty, and so
 * must /run and /var/lib as the process saw them (no socket, no state directory, and `ip netns
 * list` in there empty: no network namespace). Being private, these checks cannot be disturbed by
 * other tests creating namespaces on the machine at the same time, and whatever a broken
 * `--help` creates there vanishes with the mount namespace. The CNI directories this machine
 * really has are compared before and after as well.
 */
import assert from "node:assert/strict";
import { type CommandTree, loadMode, MODE_NAMES } from "../../main.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const dec = new TextDecoder();

interface Invocation {
  /** Arguments after `deno run -A --quiet`. */
  argv: string[];
  /** What the usage text must name, e.g. `hostnic admin pool ls`. */
  names: string;
}

function walk(cmd: CommandTree, path: string[], out: string[][]): void {
  out.push(path);
  for (const sub of cmd.commands) walk(sub, [...path, sub.name()], out);
}

/** Every mode and subcommand of main.ts, from its own mode table and commander programs. */
async function modeInvocations(): Promise<Invocation[]> {
  const out: Invocation[] = [{ argv: ["main.ts", "--help"], names: "hostnic" }];
  for (const name of MODE_NAMES) {
    const mode = await loadMode(name);
    assert.ok(mode, `mode ${name} loads`);
    const paths: string[][] = [];
    if (mode.program) walk(mode.program(), [], paths);
    else paths.push([]);
    for (const p of paths) {
      out.push({
        argv: ["main.ts", name, ...p, "--help"],
        names: ["hostnic", name, ...p].join(" "),
      });
    }
  }
  return out;
}

/** The `deno run … <script> [args]` step of each deno.json task, with `--help` appended. */
async function taskInvocations(): Promise<Invocation[]> {
  const deno = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const out: Invocation[] = [];
  for (const [task, line] of Object.entries(deno.tasks as Record<string, string>)) {
    // The `deno run` step of the task (`bash k8s/build.sh >/dev/null && deno run -A …` too).
    const step = line.split("&&").map((s) => s.trim()).find((s) => s.startsWith("deno run "));
    if (step === undefined) continue;
    const words = step.split(/\s+/);
    const rest = words.slice(2);
    const script = rest.findIndex((w) => !w.startsWith("-"));
    if (script < 0) continue;
    const argv = [...rest.slice(script), "--help"];
    const names = argv[0] === "main.ts"
      ? ["hostnic", ...argv.slice(1).filter((a) => !a.startsWith("-"))].join(" ")
      : task.split(":")[0];
    out.push({ argv, names });
  }
  return out;
}

/** Runs inside `unshare --mount`: empty tmpfs over /run and /var/lib, the command, a report. */
const SANDBOX = `
set -e
mount -n -t tmpfs hostnic-help /run
mount -n -t tmpfs hostnic-help /var/lib
set +e
report="$1"; shift
"$@"
rc=$?
{ ip netns list; find /run /var/lib -mindepth 1; } > "$report" 2>&1
exit $rc
`;

async function isEmpty(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names;
}

async function listing(dir: string): Promise<string> {
  try {
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    return names.sort().join(" ");
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return "(absent)";
    throw err;
  }
}

async function runHelp(base: string, i: number, inv: Invocation): Promise<string[]> {
  const dir = `${base}/${i}`;
  const home = `${dir}/home`;
  const tmp = `${dir}/tmp`;
  const cwd = `${dir}/cwd`;
  for (const d of [home, tmp, cwd]) await Deno.mkdir(d, { recursive: true });
  const report = `${dir}/report`;
  const denoDir = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`;
  const argv = inv.argv.map((a, k) => (k === 0 ? `${ROOT}${a}` : a));
  const out = await new Deno.Command("unshare", {
    args: [
      "--mount",
      "--propagation",
      "private",
      "--",
      "bash",
      "-c",
      SANDBOX,
      "sandbox",
      report,
      Deno.execPath(),
      "run",
      "-A",
      "--quiet",
      ...argv,
    ],
    cwd,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin",
      HOME: home,
      TMPDIR: tmp,
      DENO_DIR: denoDir,
      NO_COLOR: "1",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const what = `deno run ${inv.argv.join(" ")}`;
  const stdout = dec.decode(out.stdout);
  const stderr = dec.decode(out.stderr);
  const problems: string[] = [];
  if (out.code !== 0) problems.push(`${what}: exit ${out.code}`);
  if (!/usage/i.test(stdout)) problems.push(`${what}: no usage on stdout: ${stdout.slice(0, 200)}`);
  if (!stdout.includes(inv.names)) problems.push(`${what}: usage does not name "${inv.names}"`);
  if (stderr !== "") problems.push(`${what}: stderr: ${stderr.slice(0, 300)}`);
  for (const [label, d] of [["HOME", home], ["TMPDIR", tmp], ["cwd", cwd]]) {
    const left = await isEmpty(d);
    if (left.length > 0) problems.push(`${what}: created in ${label}: ${left.join(" ")}`);
  }
  const seen = (await Deno.readTextFile(report).catch(() => "(no report)")).trim();
  if (seen !== "") problems.push(`${what}: created namespaces or files in /run, /var/lib: ${seen}`);
  return problems;
}

Deno.test("every subcommand's --help prints its usage and does nothing else", async () => {
  const all = [...await modeInvocations(), ...await taskInvocations()];
  const invocations = all.filter((inv, i) =>
    all.findIndex((o) => o.argv.join(" ") === inv.argv.join(" ")) === i
  );
  // The walk found the modes and subcommands it must cover (a floor, not the list).
  const walked = new Set(invocations.map((i) => i.argv.slice(1, -1).join(" ")));
  for (
    const must of [
      "daemon start",
      "controller",
      "admin pool ls",
      "admin ipam check",
      "sim serve",
      "sim down",
      "demo",
      "demo --kubernetes",
      "install",
      "uninstall",
      "version",
    ]
  ) assert.ok(walked.has(must), `the walk covers "${must}"`);
  assert.ok(invocations.some((i) => i.argv[0] === "bench/main.ts"), "the walk covers the bench");

  const cniDirs = ["/etc/cni/net.d", "/opt/cni/bin", "/var/lib/cni"];
  const before = await Promise.all(cniDirs.map(listing));
  const base = await Deno.makeTempDir({ prefix: "hostnic-help-" });
  try {
    const problems = (await Promise.all(invocations.map((inv, i) => runHelp(base, i, inv)))).flat();
    assert.deepEqual(problems, []);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
  assert.deepEqual(await Promise.all(cniDirs.map(listing)), before, "the CNI directories");
});
