/**
 * `hostnic install` / `hostnic uninstall`: put the CNI plugin on a node, or take it off.
 *
 *   hostnic install   [--source PATH] [--cni-config FILE] [--root DIR] [--bin-dir DIR]
 *                     [--conf-dir DIR] [--conf-name NAME]
 *   hostnic uninstall [--root DIR] [--bin-dir DIR] [--conf-dir DIR] [--conf-name NAME]
 *
 * `install` is what the DaemonSet's init container runs: it copies this binary (or `--source`) to
 * `<root><bin-dir>/hostnic` and then writes the network config (`--cni-config`, the `hostnic-cni`
 * key of ConfigMap `hostnic-cfg-cm`, or a default) to `<root><conf-dir>/<conf-name>`. Under
 * `deno run` without `--source` the "binary" is a shim that runs this checkout with the fast
 * plugin start-up (lib/install/shim.ts).
 * Exit codes: 0 done, 1 failure (nothing half-written), 2 usage.
 */
import { type Command, CommanderError } from "commander";
import { newProgram } from "../lib/cli.ts";
import { errorMessage, HostnicError } from "../lib/errors.ts";
import {
  install,
  INSTALL_DEFAULTS,
  type InstallOptions,
  resolveLayout,
  uninstall,
} from "../lib/install/mod.ts";
import type { ShimSpec } from "../lib/install/shim.ts";

const enc = new TextEncoder();

function say(text: string) {
  Deno.stdout.writeSync(enc.encode(text + "\n"));
}

function baseProgram(name: string): Command {
  return newProgram(name)
    .option("--root <dir>", "install under this directory (the host's / mounted elsewhere)", "/")
    .option("--bin-dir <dir>", "CNI plugin directory", INSTALL_DEFAULTS.binDir)
    .option("--conf-dir <dir>", "CNI network config directory", INSTALL_DEFAULTS.confDir)
    .option("--conf-name <name>", "network config file name", INSTALL_DEFAULTS.confName);
}

/** Parses `args`; returns the options, or the exit code when commander already answered. */
function parse<T>(cmd: Command, args: string[]): T | number {
  try {
    cmd.parse(args, { from: "user" });
    return cmd.opts() as T;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === "commander.helpDisplayed" || err.code === "commander.version" ? 0 : 2;
    }
    throw err;
  }
}

/** Runs `fn`, printing a HostnicError's message (never a stack) and returning 1. */
async function guarded(name: string, fn: () => Promise<void>): Promise<number> {
  try {
    await fn();
    return 0;
  } catch (err) {
    const msg = err instanceof HostnicError
      ? err.message
      : `unexpected error: ${errorMessage(err)}`;
    Deno.stderr.writeSync(enc.encode(`${name}: ${msg}\n`));
    return 1;
  }
}

/** The default source: this executable, unless that is the deno runtime (`deno run main.ts`). */
function defaultSource(): string | undefined {
  const exe = Deno.execPath();
  const base = exe.slice(exe.lastIndexOf("/") + 1);
  return base === "deno" || base === "deno.exe" ? undefined : exe;
}

interface InstallFlags {
  root: string;
  binDir: string;
  confDir: string;
  confName: string;
  source?: string;
  cniConfig?: string;
}

/** `hostnic install` as a commander program (built, not run). */
export function installProgram(): Command {
  return baseProgram("hostnic install")
    .description("install the hostnic CNI plugin binary and network config on this node")
    .option(
      "--source <path>",
      'binary to install (default: this executable; under "deno run", a shim for this checkout)',
    )
    .option("--cni-config <file>", "network config to install (the hostnic-cni ConfigMap key)");
}

/** `hostnic uninstall` as a commander program (built, not run). */
export function uninstallProgram(): Command {
  return baseProgram("hostnic uninstall").description(
    "remove the hostnic network config, then the plugin binary, from this node",
  );
}

export async function main(args: string[]): Promise<number> {
  const name = "hostnic install";
  const flags = parse<InstallFlags>(installProgram(), args);
  if (typeof flags === "number") return flags;
  return await guarded(name, async () => {
    let source: InstallOptions["source"] | undefined = flags.source ?? defaultSource();
    let shim: ShimSpec | undefined;
    if (source === undefined) {
      // Under `deno run` this executable is the Deno runtime: install a shim for this checkout
      // (the flags are checked first: a bad one builds nothing).
      resolveLayout(flags);
      const { pluginShim } = await import("../lib/install/shim.ts");
      const built = await pluginShim();
      shim = built.spec;
      source = { script: built.text };
    }
    const opts: InstallOptions = {
      root: flags.root,
      binDir: flags.binDir,
      confDir: flags.confDir,
      confName: flags.confName,
      source,
      ...(flags.cniConfig !== undefined ? { cniConfig: flags.cniConfig } : {}),
    };
    const r = await install(opts);
    for (const t of r.staleRemoved) say(`removed leftover temp file ${t}`);
    say(`${r.binary.changed ? "installed" : "unchanged"} ${r.binary.path}`);
    if (shim) {
      say(
        `  a shim for "deno run": CNI calls run ${shim.bundle} (built just now), other modes ` +
          `${shim.main}; rerun install after changing the code, or build the binary ` +
          "(deno task build) and pass --source dist/hostnic",
      );
    }
    say(
      `${r.config.changed ? "installed" : "unchanged"} ${r.config.path} (plugins: ${
        r.config.plugins.join(", ")
      })`,
    );
    if (r.shadowedBy.length > 0) {
      say(
        `note: ${r.shadowedBy.map((n) => `"${n}"`).join(", ")} sort before "${flags.confName}"; ` +
          "the container runtime uses the first network config by name, so hostnic is not the " +
          "default network unless that file delegates to it (as Multus does)",
      );
    }
  });
}

export async function uninstallMain(args: string[]): Promise<number> {
  const name = "hostnic uninstall";
  const flags = parse<InstallFlags>(uninstallProgram(), args);
  if (typeof flags === "number") return flags;
  return await guarded(name, async () => {
    const r = await uninstall(flags);
    for (const p of r.removed) say(`removed ${p}`);
    if (r.removed.length === 0) say("nothing to remove");
    say(
      [
        "The node daemon's state is left in place. Once no pod on this node uses hostnic and the",
        "daemon is gone (kubectl delete -f deploy/hostnic.yaml), remove it with:",
        "  rm -rf /var/lib/hostnic /var/run/hostnic",
        "NICs hostnic attached stay in the cloud until the daemon releases them; start it with",
        "--CleanUpCacheOnExit before removing it, or delete NICs tagged by hostnic in the console.",
      ].join("\n"),
    );
  });
}
