/**
 * hostnic: one executable, several modes. This file only dispatches; it is the only place that
 * exits. Modes are loaded with literal dynamic imports so `deno compile` bundles them and the CNI
 * plugin path loads nothing heavy.
 *
 *   CNI_COMMAND set            → CNI plugin (cmd/cni.ts); also other CNI_* and no mode
 *   hostnic daemon …           → node daemon
 *   hostnic controller …       → cluster controller
 *   hostnic admin …            → admin CLI
 *   hostnic sim …              → cloud simulator
 *   hostnic demo               → end-to-end demo on the simulator
 *   hostnic conformance        → the upstream e2e network tests on real nodes
 *   hostnic install|uninstall  → put the plugin on a node / take it off (cmd/install.ts)
 *   hostnic version | help
 */
// Static, but light: lib/cni/env.ts imports no npm package and no mode.
import { isCniCall } from "./lib/cni/env.ts";
import { VERSION } from "./lib/version.ts";

export { VERSION };

/** Every mode entry has this shape: it returns the process exit code and never exits itself. */
export type ModeMain = (args: string[]) => Promise<number>;

export const USAGE = `hostnic ${VERSION} — Kubernetes CNI plugin for QingCloud VPC NICs

Usage:
  hostnic daemon start [flags]   run the node daemon (NIC pool, allocations, repair loops)
  hostnic controller [flags]     run the cluster controller
  hostnic admin <command>        inspect and operate a node daemon (pool ls, nic ls, pod ls, gc …)
  hostnic sim <command>          run the QingCloud API simulator (serve, down)
  hostnic demo                   simulated cloud, two nodes, four pods, traffic across nodes
  hostnic demo --kubernetes      the same with real kubelets and hostnic's DaemonSet
  hostnic conformance [flags]    the upstream Kubernetes e2e network tests on two real nodes
  hostnic install [flags]        copy the plugin binary and network config onto this node
  hostnic uninstall [flags]      remove them (config first, then binary)
  hostnic version                print the version
  hostnic help                   print this help

With CNI_COMMAND in the environment, hostnic acts as a CNI plugin (spec 0.3.0 – 1.1.0).
`;

/**
 * A mode as the dispatcher and the `--help` walk (tests/cli/help_test.ts) see it: its entry and,
 * for commander modes, the program it parses with, so the walk finds every subcommand by itself.
 */
export interface Mode {
  main: ModeMain;
  program?: () => CommandTree;
}

/** What the walk reads of a commander `Command` (named structurally: main.ts loads no npm code). */
export interface CommandTree {
  name(): string;
  readonly commands: readonly CommandTree[];
}

const versionMode: Mode = {
  main: (args) => {
    if (args.some((a) => a === "--help" || a === "-h")) {
      console.log("Usage: hostnic version\n\nPrint the version and exit.");
    } else {
      console.log(`hostnic ${VERSION}`);
    }
    return Promise.resolve(0);
  },
};

const helpMode: Mode = {
  main: (args) => {
    console.log(
      args.some((a) => a === "--help" || a === "-h")
        ? "Usage: hostnic help\n\nPrint the list of modes and exit."
        : USAGE,
    );
    return Promise.resolve(0);
  },
};

/** A commander mode module: its `main` and its `program()` (cmd/*.ts, lib/cli.ts `ModeProgram`). */
function commanderMode(
  load: () => Promise<{ main: ModeMain; program: () => { program: CommandTree } }>,
): () => Promise<Mode> {
  return async () => {
    const m = await load();
    return { main: m.main, program: () => m.program().program };
  };
}

/**
 * Every mode by name. Literal dynamic imports, so `deno compile` bundles each mode and the CNI
 * plugin path loads none of them. A new mode is one entry here (and a line in USAGE).
 */
const MODES: Readonly<Record<string, () => Promise<Mode>>> = {
  daemon: commanderMode(() => import("./cmd/daemon.ts")),
  controller: commanderMode(() => import("./cmd/controller.ts")),
  admin: commanderMode(() => import("./cmd/admin.ts")),
  sim: commanderMode(() => import("./cmd/sim.ts")),
  demo: commanderMode(() => import("./cmd/demo.ts")),
  conformance: commanderMode(() => import("./cmd/conformance.ts")),
  install: async () => {
    const m = await import("./cmd/install.ts");
    return { main: m.main, program: m.installProgram };
  },
  uninstall: async () => {
    const m = await import("./cmd/install.ts");
    return { main: m.uninstallMain, program: m.uninstallProgram };
  },
  version: () => Promise.resolve(versionMode),
  help: () => Promise.resolve(helpMode),
};

/** The names `hostnic <mode>` accepts (besides the `--version`/`--help` spellings). */
export const MODE_NAMES: readonly string[] = Object.keys(MODES);

export async function loadMode(name: string): Promise<Mode | undefined> {
  return Object.hasOwn(MODES, name) ? await MODES[name]() : undefined;
}

export async function dispatch(args: string[]): Promise<number> {
  if (isCniCall(args, (name) => Deno.env.get(name))) {
    return await (await import("./cmd/cni.ts")).main(args);
  }
  const [mode, ...rest] = args;
  if (mode === "--version" || mode === "-v") {
    console.log(`hostnic ${VERSION}`);
    return 0;
  }
  if (mode === "--help" || mode === "-h") {
    console.log(USAGE);
    return 0;
  }
  const run = mode === undefined ? undefined : await loadMode(mode);
  if (!run) {
    console.error(
      mode === undefined ? "hostnic: no mode given" : `hostnic: unknown mode "${mode}"`,
    );
    console.error(USAGE);
    return 2;
  }
  return await run.main(rest);
}

if (import.meta.main) {
  let code: number;
  try {
    code = await dispatch(Deno.args);
  } catch (err) {
    // Last resort: modes map their own errors; anything reaching here is a bug, shown without stack.
    console.error(`hostnic: ${err instanceof Error ? err.message : String(err)}`);
    code = 1;
  }
  Deno.exit(code);
}
