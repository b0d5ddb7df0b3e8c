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

async function loadMode(name: string): Promise<ModeMain | undefined> {
  switch (name) {
    case "daemon":
      return (await import("./cmd/daemon.ts")).main;
    case "controller":
      return (await import("./cmd/controller.ts")).main;
    case "admin":
      return (await import("./cmd/admin.ts")).main;
    case "sim":
      return (await import("./cmd/sim.ts")).main;
    case "demo":
      return (await import("./cmd/demo.ts")).main;
    case "conformance":
      return (await import("./cmd/conformance.ts")).main;
    case "install":
      return (await import("./cmd/install.ts")).main;
    case "uninstall":
      return (await import("./cmd/install.ts")).uninstallMain;
    default:
      return undefined;
  }
}

export async function dispatch(args: string[]): Promise<number> {
  if (isCniCall(args, (name) => Deno.env.get(name))) {
    return await (await import("./cmd/cni.ts")).main(args);
  }
  const [mode, ...rest] = args;
  if (mode === "version" || mode === "--version" || mode === "-v") {
    console.log(`hostnic ${VERSION}`);
    return 0;
  }
  if (mode === "help" || mode === "--help" || mode === "-h") {
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
  return await run(rest);
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
