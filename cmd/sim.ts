/**
 * `hostnic sim`: the QingCloud API simulator.
 *
 *   hostnic sim serve --scenario FILE [--listen ADDR] [--socket PATH] [--linux]
 *                     [--write-client-config FILE] [--log-level LEVEL]
 *   hostnic sim down --scenario FILE [--socket PATH]
 *
 * `serve` prints `ready <url>` on stdout once it answers, runs until SIGINT/SIGTERM, then
 * removes what it made (namespaces, socket). `down` removes leftovers of a run that was killed:
 * every namespace named `<prefix>-…` for the scenario's `linux.prefix`.
 * Exit codes: 0 ok, 1 failure (bad scenario, cannot serve), 2 usage.
 */
import { Option } from "commander";
import { type ModeProgram, newProgram, runProgram, stopSignal } from "../lib/cli.ts";
import { stringify as toYaml } from "yaml";
import { errorMessage, HostnicError } from "../lib/errors.ts";
import { CommandRunner } from "../lib/linux/exec.ts";
import { LOG_LEVELS, type LogLevel, stderrLogger } from "../lib/log.ts";
import {
  deleteNamespaces,
  leftoverNamespaces,
  parseScenario,
  type Scenario,
  startSim,
} from "../lib/sim/mod.ts";

const enc = new TextEncoder();

function say(text: string) {
  Deno.stdout.writeSync(enc.encode(text + "\n"));
}

/** A failure already explained to the user; `main` maps it to exit code 1. */
class SimCommandError extends HostnicError {
  constructor(message: string) {
    super("SIM_COMMAND_FAILED", message);
  }
}

async function loadScenario(path: string): Promise<Scenario> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new SimCommandError(`Cannot read scenario "${path}": ${errorMessage(err)}`);
  }
  try {
    return parseScenario(text);
  } catch (err) {
    throw new SimCommandError(`Scenario "${path}": ${errorMessage(err)}`);
  }
}

/** Writes the SDK config a client needs, readable only by us (it holds the secret key). */
async function writeClientConfig(path: string, cfg: Record<string, string | number>) {
  const tmp = `${path}.tmp-${Deno.pid}`;
  const text = "# Written by `hostnic sim serve`; QingCloud SDK format (+ socket_path).\n" +
    toYaml(cfg);
  try {
    await Deno.writeTextFile(tmp, text, { mode: 0o600 });
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw new SimCommandError(`Cannot write client config "${path}": ${errorMessage(err)}`);
  }
}

interface ServeOptions {
  scenario: string;
  listen: string;
  socket?: string;
  linux?: boolean;
  writeClientConfig?: string;
  logLevel: LogLevel;
}

async function serve(o: ServeOptions): Promise<number> {
  const scenario = await loadScenario(o.scenario);
  const logger = stderrLogger(o.logLevel, { component: "sim" });
  let sim;
  try {
    sim = await startSim({
      scenario,
      listen: o.listen,
      ...(o.socket ? { socketPath: o.socket } : {}),
      linux: o.linux === true,
      logger,
    });
  } catch (err) {
    throw new SimCommandError(`Cannot start the simulator: ${errorMessage(err)}`);
  }
  try {
    using stop = stopSignal();
    if (o.writeClientConfig) await writeClientConfig(o.writeClientConfig, sim.clientConfig());
    say(`ready ${sim.url}`);
    logger.info("stopping", { signal: await stop.received });
  } finally {
    await sim.close();
  }
  return 0;
}

async function down(o: { scenario: string; socket?: string }): Promise<number> {
  const scenario = await loadScenario(o.scenario);
  const runner = new CommandRunner();
  const names = await leftoverNamespaces(runner, scenario.linuxPrefix);
  await deleteNamespaces(runner, names);
  if (o.socket) await Deno.remove(o.socket).catch(() => {});
  say(
    names.length === 0
      ? `nothing to remove for prefix "${scenario.linuxPrefix}"`
      : `removed ${names.length} namespace(s): ${names.join(" ")}`,
  );
  return 0;
}

/** `hostnic sim …` as a commander program (built, not run). */
export function program(): ModeProgram {
  let code = 0;
  const program = newProgram("hostnic sim")
    .description("QingCloud API simulator for tests, demos and users without a cloud");
  program
    .command("serve")
    .description("serve the API until SIGINT/SIGTERM, then clean up")
    .requiredOption("--scenario <file>", "scenario YAML (see deploy/sim/example.yaml)")
    .option("--listen <addr>", "TCP address host:port", "127.0.0.1:0")
    .option("--socket <path>", "also serve on this unix socket")
    .option("--linux", "build the cloud with network namespaces (root)")
    .option("--write-client-config <file>", "write the SDK config a client needs (mode 0600)")
    .addOption(
      new Option("--log-level <level>", "log level on stderr").choices(LOG_LEVELS).default("info"),
    )
    .action(async (opts: ServeOptions) => {
      code = await serve(opts);
    });
  program
    .command("down")
    .description("remove namespaces left by a killed run of this scenario")
    .requiredOption("--scenario <file>", "scenario YAML")
    .option("--socket <path>", "also remove this socket file")
    .action(async (opts: { scenario: string; socket?: string }) => {
      code = await down(opts);
    });
  return { program, code: () => code };
}

export async function main(args: string[]): Promise<number> {
  const m = program();
  return await runProgram(m.program, args, m.code);
}
