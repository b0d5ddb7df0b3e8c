/**
 * CNI plugin entry: wires the real environment, stdin, stdout and stderr to `runCni`. Returns the
 * exit code; catches everything itself, because `main.ts` would only print a bare stderr line.
 * Every verb is served by the node daemon over its socket (lib/plugin/handlers.ts).
 */
import { type CniIo, runCni } from "../lib/cni/dispatch.ts";
import { TRACE_ENV, tracer } from "../lib/cni/trace.ts";
import { daemonHandlers } from "../lib/plugin/handlers.ts";

/** Reads stdin up to `limit` bytes; a terminal counts as empty (a CNI plugin is never interactive). */
async function readStdin(limit: number): Promise<Uint8Array> {
  if (Deno.stdin.isTerminal()) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(64 * 1024);
  while (total < limit) {
    const n = await Deno.stdin.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
    total += n;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

async function writeAll(w: { write(p: Uint8Array): Promise<number> }, text: string): Promise<void> {
  let bytes = new TextEncoder().encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(await w.write(bytes));
}

export function realIo(): CniIo {
  return {
    env: (name) => Deno.env.get(name),
    readStdin,
    writeStdout: (text) => writeAll(Deno.stdout, text),
    writeStderr: (text) => writeAll(Deno.stderr, text),
  };
}

export async function main(_args: string[]): Promise<number> {
  const trace = tracer(Deno.env.get(TRACE_ENV) === "1");
  trace.mark("main");
  try {
    const code = await runCni({
      ...realIo(),
      mark: trace.mark,
      handlers: daemonHandlers({ mark: trace.mark }),
    });
    const line = trace.line();
    if (line !== undefined) await writeAll(Deno.stderr, line);
    return code;
  } catch (err) {
    // runCni does not throw; this guards against a broken stdout/stderr setup only.
    const msg = err instanceof Error ? err.message : String(err);
    try {
      console.error(`hostnic: CNI plugin failed: ${msg.replace(/\s+/g, " ")}`);
    } catch {
      // nothing left to report to
    }
    return 1;
  }
}
