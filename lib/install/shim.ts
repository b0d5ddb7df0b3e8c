/**
 * The plugin `hostnic install` puts on a node when hostnic runs under `deno run` (there is no
 * compiled binary to copy): a shell shim that execs the Deno runtime — on a one-file bundle of the
 * CNI plugin (`cmd/cni_entry.ts`, built with `deno bundle` into dist/) when CNI_COMMAND is set,
 * on main.ts for every other mode. What each part saves, per plugin start (docs/benchmarks.md,
 * "Plugin start-up"):
 *
 *   --no-config            no deno.json, lockfile or npm resolution (the plugin has no npm package)
 *   the bundle             one module to load instead of ~16 (each a cache lookup and a compile)
 *   --cached-only          never reaches for the network
 *   DENO_DIR               the installer's cache, which is writable (an unwritable one, or none
 *                          under a runtime that passes no HOME, costs ~190 ms per start)
 *   DENO_NO_UPDATE_CHECK   no update check
 *
 * The shim names paths of this checkout: reinstall after changing the plugin's code, as with a
 * compiled binary. Paths must not contain a single quote (they are single-quoted in the script).
 */
import { errorMessage } from "../errors.ts";
import { InstallError } from "./cni_config.ts";
import { writeAtomic } from "./files.ts";

const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** Where the bundle is built, and from what. */
export const CNI_BUNDLE = {
  entry: `${ROOT}/cmd/cni_entry.ts`,
  dir: `${ROOT}/dist`,
  name: "hostnic-cni.js",
  main: `${ROOT}/main.ts`,
} as const;

/** Flags of the plugin's `deno run` (before the script). */
export const PLUGIN_RUN_FLAGS = ["run", "-A", "--quiet", "--no-config", "--cached-only"] as const;

/**
 * V8 flags of the long-running modes, as `deno task build` compiles them into the binary: young
 * generation semi-spaces of 1 MiB (V8 grows them to 16 MiB under the daemon's allocation rate,
 * ~25 MiB of RSS for no measurable speed; docs/benchmarks.md).
 */
export const V8_FLAGS = "--max-semi-space-size=1";

/** Flags of every other mode's `deno run` (the daemon's packages need the project's config). */
export const MAIN_RUN_FLAGS = [
  "run",
  "-A",
  "--quiet",
  "--node-modules-dir=manual",
  "--cached-only",
  `--v8-flags=${V8_FLAGS}`,
] as const;

export interface ShimSpec {
  /** The Deno runtime (absolute). */
  deno: string;
  /** The plugin bundle (absolute). */
  bundle: string;
  /** main.ts of this checkout (absolute). */
  main: string;
  /** A writable DENO_DIR holding the cache of `main`'s modules. */
  denoDir: string;
}

function quoted(what: string, path: string): string {
  if (!path.startsWith("/") || /['\n\r\0]/.test(path)) {
    throw new InstallError(
      `Cannot write a plugin shim for ${what} "${path}": not a plain absolute path`,
    );
  }
  return `'${path}'`;
}

/** The shim script. */
export function shimScript(s: ShimSpec): string {
  const deno = quoted("deno", s.deno);
  return [
    "#!/bin/sh",
    "# hostnic CNI plugin for a `deno run` installation, written by `hostnic install`.",
    `export DENO_DIR=${quoted("DENO_DIR", s.denoDir)} DENO_NO_UPDATE_CHECK=1`,
    'if [ -n "${CNI_COMMAND:-}" ]; then',
    `  exec ${deno} ${PLUGIN_RUN_FLAGS.join(" ")} ${quoted("the bundle", s.bundle)} "$@"`,
    "fi",
    `exec ${deno} ${MAIN_RUN_FLAGS.join(" ")} ${quoted("main.ts", s.main)} "$@"`,
    "",
  ].join("\n");
}

/** DENO_DIR of this process (`$DENO_DIR`, else what `deno info` reports). */
export async function currentDenoDir(deno = Deno.execPath()): Promise<string> {
  const set = Deno.env.get("DENO_DIR");
  if (set) return set;
  const out = await new Deno.Command(deno, {
    args: ["info", "--json"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const dir = out.success
    ? (JSON.parse(new TextDecoder().decode(out.stdout)) as { denoDir?: string }).denoDir
    : undefined;
  if (!dir) throw new InstallError("Cannot find Deno's cache directory (deno info --json failed)");
  return dir;
}

/**
 * Builds the plugin bundle (`deno bundle`, written atomically into dist/) and returns its path.
 * Needs this checkout's sources, so only under `deno run`.
 */
export async function buildCniBundle(deno = Deno.execPath()): Promise<string> {
  await Deno.mkdir(CNI_BUNDLE.dir, { recursive: true });
  const tmp = await Deno.makeTempFile({
    dir: CNI_BUNDLE.dir,
    prefix: ".hostnic-cni-",
    suffix: ".js",
  });
  try {
    const out = await new Deno.Command(deno, {
      args: ["bundle", "--quiet", "--platform", "deno", "--output", tmp, CNI_BUNDLE.entry],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join("; ");
      throw new InstallError(`Cannot bundle the CNI plugin (deno bundle): ${err || "failed"}`);
    }
    const bytes = await Deno.readFile(tmp);
    await writeAtomic(CNI_BUNDLE.dir, CNI_BUNDLE.name, bytes, 0o644);
  } catch (err) {
    if (err instanceof InstallError) throw err;
    throw new InstallError(`Cannot bundle the CNI plugin: ${errorMessage(err)}`);
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
  return `${CNI_BUNDLE.dir}/${CNI_BUNDLE.name}`;
}

/** Builds the bundle and returns the shim for this checkout and this Deno. */
export async function pluginShim(
  deno = Deno.execPath(),
): Promise<{ spec: ShimSpec; text: string }> {
  const spec: ShimSpec = {
    deno,
    bundle: await buildCniBundle(deno),
    main: CNI_BUNDLE.main,
    denoDir: await currentDenoDir(deno),
  };
  return { spec, text: shimScript(spec) };
}
