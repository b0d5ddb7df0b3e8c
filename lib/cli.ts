/**
 * What every commander-based mode shares (daemon, admin, sim, install): a program writing to the
 * process's own streams without exiting, one way to run it (help → 0, usage error → 2, a failure
 * → its message on stderr and 1, never a stack), and waiting for SIGINT/SIGTERM.
 * Not for the CNI plugin path (commander is an npm import).
 */
import { Command, CommanderError } from "commander";
import { errorMessage } from "./errors.ts";

const enc = new TextEncoder();

/**
 * A mode's commander program, built without running anything, and the exit code its action set.
 * Each commander mode exports one as `program()`, so its `main` and the `--help` walk
 * (tests/cli/help_test.ts, through main.ts's mode table) see the same command tree.
 */
export interface ModeProgram {
  program: Command;
  code: () => number;
}

/** A commander program that throws instead of exiting and writes to stdout/stderr. */
export function newProgram(name: string): Command {
  return new Command(name)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => Deno.stdout.writeSync(enc.encode(s)),
      writeErr: (s) => Deno.stderr.writeSync(enc.encode(s)),
    });
}

/**
 * Parses `args` and runs the chosen action; returns the exit code: the one `code()` reports after
 * the action, 0 for help, 2 for usage errors (and for no arguments, after printing help, unless
 * `bareRuns`: then the program's own action runs), 1 with `<name>: <message>` on stderr when the
 * action throws.
 */
export async function runProgram(
  program: Command,
  args: string[],
  code: () => number,
  o: { bareRuns?: boolean } = {},
): Promise<number> {
  if (args.length === 0 && !o.bareRuns) {
    program.outputHelp({ error: true });
    return 2;
  }
  try {
    await program.parseAsync(args, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    Deno.stderr.writeSync(enc.encode(`${program.name()}: ${errorMessage(err)}\n`));
    return 1;
  }
  return code();
}

/** Resolves with the first SIGINT/SIGTERM; dispose to remove the listeners. */
export function stopSignal(): { received: Promise<Deno.Signal> } & Disposable {
  const stop = Promise.withResolvers<Deno.Signal>();
  const handlers = (["SIGINT", "SIGTERM"] as const).map((sig) => {
    const h = () => stop.resolve(sig);
    Deno.addSignalListener(sig, h);
    return [sig, h] as const;
  });
  return {
    received: stop.promise,
    [Symbol.dispose]() {
      for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
    },
  };
}
