/**
 * Test doubles for lib/linux: a scripted `Runner` that records every call, and builders for
 * `NsState` values so planners can be tested on data alone.
 */
import { ExecError, type Runner, type RunOptions, type RunResult } from "./exec.ts";
import type { LinkState, NsState } from "./ip.ts";

export interface FakeCall {
  argv: string[];
  netns?: string;
  stdin?: string;
}

/** Records calls; `respond` returns the result or the error of each one (default: success). */
export class FakeRunner implements Runner {
  readonly calls: FakeCall[] = [];
  #respond: (call: FakeCall) => RunResult | Error;

  constructor(respond: (call: FakeCall) => RunResult | Error = () => ({ stdout: "", stderr: "" })) {
    this.#respond = respond;
  }

  run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const call: FakeCall = { argv: [...argv], netns: opts.netns, stdin: opts.stdin };
    this.calls.push(call);
    const r = this.#respond(call);
    return r instanceof Error ? Promise.reject(r) : Promise.resolve(r);
  }

  /** stdin lines of every `ip -batch` call, each prefixed with its netns (or "-"). */
  batchLines(): string[] {
    return this.calls.filter((c) => c.argv.includes("-batch") && !c.argv.includes("-json"))
      .flatMap((c) => (c.stdin ?? "").trim().split("\n").map((l) => `${c.netns ?? "-"}: ${l}`));
  }
}

/** The ExecError `ip -batch` gives when line `line` fails with `message`. */
export function batchError(line: number, message: string): ExecError {
  return new ExecError(["ip", "-batch", "-"], 1, `${message}\nCommand failed -:${line}\n`);
}

/** An `NsState` with only what is given (plus loopback). */
export function nsState(partial: Partial<NsState> = {}): NsState {
  return {
    links: [link("lo", "00:00:00:00:00:00", { up: true }), ...(partial.links ?? [])],
    addrs: partial.addrs ?? [],
    routes: partial.routes ?? [],
    rules: partial.rules ?? [],
    neighs: partial.neighs ?? [],
    proxies: partial.proxies ?? [],
  };
}

let nextIndex = 100;

export function link(
  name: string,
  mac: string,
  opts: { up?: boolean; alias?: string; kind?: string; mtu?: number } = {},
): LinkState {
  return {
    index: nextIndex++,
    name,
    mac,
    mtu: opts.mtu ?? 1500,
    up: opts.up ?? false,
    alias: opts.alias,
    kind: opts.kind,
  };
}
