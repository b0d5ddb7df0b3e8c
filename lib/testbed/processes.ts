/**
 * Running hostnic's own entry (main.ts) as the test bed's processes: the CNI plugin inside a
 * node's namespace as a runtime invokes it (env + stdin), `hostnic admin`, and the simulator
 * (`hostnic sim serve --linux`) up to its `ready <url>` line.
 */
import type { ProcessLogs } from "./logs.ts";

export const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const dec = new TextDecoder();

export interface CniOutcome {
  code: number;
  stdout: string;
  stderr: string;
  /** Parsed stdout when it is JSON. */
  json?: Record<string, unknown>;
}

/** A finished process as tests read it: exit code, text, and stdout parsed when it is JSON. */
export function outcome(out: Deno.CommandOutput): CniOutcome {
  const stdout = dec.decode(out.stdout);
  let json: Record<string, unknown> | undefined;
  try {
    json = stdout.trim() ? JSON.parse(stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { code: out.code, stdout, stderr: dec.decode(out.stderr), json };
}

/** Runs the CNI plugin inside the node namespace `nodeNetns`, as a runtime would. */
export async function runCni(
  command: string,
  o: {
    nodeNetns: string;
    containerId: string;
    netns?: string;
    ifName?: string;
    args?: string;
    conf: Record<string, unknown>;
  },
): Promise<CniOutcome> {
  const env: Record<string, string> = {
    CNI_COMMAND: command,
    CNI_PATH: "/opt/cni/bin",
    NO_COLOR: "1",
    RUST_BACKTRACE: "0",
  };
  if (o.containerId) env.CNI_CONTAINERID = o.containerId;
  if (o.netns !== undefined) env.CNI_NETNS = o.netns;
  env.CNI_IFNAME = o.ifName ?? "eth0";
  if (o.args) env.CNI_ARGS = o.args;
  const child = new Deno.Command("nsenter", {
    args: [`--net=/run/netns/${o.nodeNetns}`, Deno.execPath(), "run", "-A", "--quiet", MAIN],
    env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(o.conf)));
  await w.close();
  return outcome(await child.output());
}

/** `hostnic admin --socket <socket> …`. */
export async function runAdmin(socket: string, args: string[]): Promise<CniOutcome> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "admin", "--socket", socket, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return outcome(out);
}

/** Spawns `hostnic sim serve --linux` on a unix socket; wait for it with `simReady`. */
export function spawnSim(
  o: { scenarioFile: string; socket: string; clientConfigFile: string },
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      MAIN,
      "sim",
      "serve",
      "--linux",
      "--scenario",
      o.scenarioFile,
      "--socket",
      o.socket,
      "--write-client-config",
      o.clientConfigFile,
      "--log-level",
      "warn",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
  }).spawn();
}

/**
 * Waits (up to 60 s) for the simulator's `ready <url>` line and returns the URL; the rest of its
 * stdout is read to the end by a promise pushed onto `drains`.
 */
export async function simReady(
  child: Deno.ChildProcess,
  o: { logs: ProcessLogs; drains: Promise<void>[] },
): Promise<string> {
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const deadline = Date.now() + 60_000;
  while (!buf.includes("\n")) {
    const timer = new Promise<"timeout">((r) =>
      setTimeout(() => r("timeout"), Math.max(0, deadline - Date.now()))
    );
    const next = await Promise.race([lines.read(), timer]);
    if (next === "timeout" || next.done) {
      throw new Error(`simulator did not start: ${buf} ${o.logs.tail("sim-err")}`);
    }
    buf += next.value;
  }
  const m = /^ready (\S+)/m.exec(buf);
  if (!m) throw new Error(`simulator said "${buf.trim()}" instead of ready`);
  o.drains.push((async () => {
    for (;;) {
      const r = await lines.read();
      if (r.done) return;
    }
  })());
  return m[1];
}
