/**
 * The plugin as a node runs it: `hostnic install` (this checkout, under `deno run`) writes a shim
 * into a temporary root, and the benchmarks exec that shim — the argv, flags and environment a
 * container runtime would use. For the start-up ratio, a second shim differs only in the script:
 * an empty one ("the empty script with the same flags").
 */
import { CNI_BUNDLE } from "../../lib/install/shim.ts";
import type { BenchContext } from "./context.ts";
import { WAIT_PROBE } from "./wait_floor.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

export interface InstalledPlugin {
  /** The shim `hostnic install` wrote (`<root>/opt/cni/bin/hostnic`). */
  shim: string;
  /** The same shim with an empty script instead of the plugin bundle. */
  emptyShim: string;
  /**
   * The same shim on a probe script that only reports, like the plugin's HOSTNIC_CNI_TRACE line,
   * the wall clock and CPU at its first statement: the runtime's own start-up.
   */
  probeShim: string;
  /** The same shim on the wait-floor probe (bench/lib/wait_floor.ts). */
  waitShim: string;
  /** The shim's plugin line, for notes (`deno run -A … <bundle>`). */
  runLine: string;
}

/** The probe: one trace mark at its first statement (lib/cni/trace.ts's format), nothing else. */
const PROBE = `const t = performance.timeOrigin + performance.now();
let ns = 0;
for (const e of Deno.readDirSync("/proc/self/task")) {
  try { ns += Number(Deno.readTextFileSync("/proc/self/task/" + e.name + "/schedstat").split(" ")[0]); } catch {}
}
Deno.stderr.writeSync(new TextEncoder().encode(
  "hostnic-trace " + JSON.stringify({ marks: [{ phase: "main", t, cpu: ns / 1e6 }] }) + "\\n"));
`;

/** Installs the plugin into a temporary root (removed with the run's resources). */
export async function installPlugin(ctx: BenchContext): Promise<InstalledPlugin> {
  const dir = await ctx.resources.makeTempDir("hbn-install-");
  await Deno.mkdir(`${dir}/root`);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "install", "--root", `${dir}/root`],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`hostnic install failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  const shim = `${dir}/root/opt/cni/bin/hostnic`;
  const text = await Deno.readTextFile(shim);
  const bundle = new RegExp(`'${CNI_BUNDLE.dir}/${CNI_BUNDLE.prefix}[0-9a-f]+/${CNI_BUNDLE.name}'`)
    .exec(text)?.[0];
  if (!bundle) throw new Error(`The installed shim does not run a bundle in ${CNI_BUNDLE.dir}`);
  const empty = `${dir}/empty.js`;
  await Deno.writeTextFile(empty, "\n");
  const emptyShim = `${dir}/empty-shim`;
  await Deno.writeTextFile(emptyShim, text.replace(bundle, `'${empty}'`), { mode: 0o755 });
  const probe = `${dir}/probe.js`;
  await Deno.writeTextFile(probe, PROBE);
  const probeShim = `${dir}/probe-shim`;
  await Deno.writeTextFile(probeShim, text.replace(bundle, `'${probe}'`), { mode: 0o755 });
  const wait = `${dir}/wait.js`;
  await Deno.writeTextFile(wait, WAIT_PROBE);
  const waitShim = `${dir}/wait-shim`;
  await Deno.writeTextFile(waitShim, text.replace(bundle, `'${wait}'`), { mode: 0o755 });
  const runLine = text.split("\n").find((l) => l.includes(bundle))?.trim().replace(/^exec /, "") ??
    "";
  return {
    shim,
    emptyShim,
    probeShim,
    waitShim,
    runLine: runLine.replace(/'[^']*\/deno'/, "deno"),
  };
}
