/**
 * The plugin `hostnic install` puts on a node when hostnic runs under `deno run` (there is no
 * compiled binary to copy): a shell shim that execs the Deno runtime — on a bundle of the CNI
 * plugin (`cmd/cni_entry.ts`, built with `deno bundle` into dist/) when CNI_COMMAND is set, on
 * main.ts for every other mode. What each part saves, per plugin start (docs/benchmarks.md,
 * "Where a plugin call's time goes"):
 *
 *   --no-config            no deno.json, lockfile or npm resolution (the plugin has no npm package)
 *   the bundle             one minified module of ~33 KB to load instead of ~16 sources; the code
 *                          only DEL without the daemon needs (lib/linux, the journal) is a chunk of
 *                          its own (`--code-splitting`), loaded by that DEL alone
 *   --v8-flags=--no-lazy   V8 compiles every function of the bundle up front, so Deno's code cache
 *                          holds them all: a call no longer compiles its functions on first use
 *   --cached-only          never reaches for the network
 *   DENO_DIR               the installer's cache, which is writable (an unwritable one, or none
 *                          under a runtime that passes no HOME, costs ~190 ms per start)
 *   DENO_NO_UPDATE_CHECK   no update check
 *
 * The bundle's directory is named after its content (`dist/hostnic-cni-<hash>/`), so a rebuild
 * never changes files a running plugin may be loading. The shim names paths of this checkout:
 * reinstall after changing the plugin's code, as with a compiled binary. Paths must not contain a
 * single quote (they are single-quoted in the script).
 */
import { errorMessage } from "../errors.ts";
import { InstallError } from "./cni_config.ts";

const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** Where the bundle is built, and from what: `<dir>/<prefix><hash>/<name>` is the entry. */
export const CNI_BUNDLE = {
  entry: `${ROOT}/cmd/cni_entry.ts`,
  dir: `${ROOT}/dist`,
  prefix: "hostnic-cni-",
  name: "cni_entry.js",
  main: `${ROOT}/main.ts`,
} as const;

/** Flags of the plugin's `deno run` (before the script). */
export const PLUGIN_RUN_FLAGS = [
  "run",
  "-A",
  "--quiet",
  "--no-config",
  "--cached-only",
  "--v8-flags=--no-lazy",
] as const;

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

/** Short content hash of the bundle's files (name and bytes), for its directory name. */
async function bundleHash(dir: string): Promise<string> {
  const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  const parts: Uint8Array[] = [];
  const enc = new TextEncoder();
  for (const n of names) parts.push(enc.encode(`${n}\0`), await Deno.readFile(`${dir}/${n}`));
  const all = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Builds the plugin bundle (`deno bundle --code-splitting --minify` into a temporary directory,
 * renamed to `dist/hostnic-cni-<hash>/`; bundles of earlier builds are removed) and returns the
 * path of its entry. Needs this checkout's sources, so only under `deno run`.
 */
export async function buildCniBundle(deno = Deno.execPath()): Promise<string> {
  await Deno.mkdir(CNI_BUNDLE.dir, { recursive: true });
  const tmp = await Deno.makeTempDir({ dir: CNI_BUNDLE.dir, prefix: ".hostnic-cni-" });
  try {
    const out = await new Deno.Command(deno, {
      args: [
        "bundle",
        "--quiet",
        "--platform",
        "deno",
        "--code-splitting",
        "--minify",
        "--outdir",
        tmp,
        CNI_BUNDLE.entry,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join("; ");
      throw new InstallError(`Cannot bundle the CNI plugin (deno bundle): ${err || "failed"}`);
    }
    await Deno.stat(`${tmp}/${CNI_BUNDLE.name}`);
    const name = `${CNI_BUNDLE.prefix}${await bundleHash(tmp)}`;
    const dir = `${CNI_BUNDLE.dir}/${name}`;
    const exists = () => Deno.stat(dir).then(() => true, () => false);
    // Another install of the same sources may rename its identical bundle first.
    if (!await exists()) {
      await Deno.rename(tmp, dir).catch(async (err) => {
        if (!await exists()) throw err;
      });
    }
    for (const e of Deno.readDirSync(CNI_BUNDLE.dir)) {
      if (e.isDirectory && e.name.startsWith(CNI_BUNDLE.prefix) && e.name !== name) {
        await Deno.remove(`${CNI_BUNDLE.dir}/${e.name}`, { recursive: true }).catch(() => {});
      }
    }
    await Deno.remove(`${CNI_BUNDLE.dir}/hostnic-cni.js`).catch(() => {}); // before the split
    return `${dir}/${CNI_BUNDLE.name}`;
  } catch (err) {
    if (err instanceof InstallError) throw err;
    throw new InstallError(`Cannot bundle the CNI plugin: ${errorMessage(err)}`);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
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
