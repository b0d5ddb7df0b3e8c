/**
 * The CPU floor of a CNI call that waits for a daemon (issue 22): what Deno itself costs to start,
 * read stdin, exchange one message over a unix socket whose other end answers after `W` ms, write
 * one line and exit — the irreducible shape of a plugin call, with no hostnic code in it. The
 * plugin's ADD and DEL are held against this floor with `W` set to the daemon's own mean time for
 * the verb in the same round, so what they cost beyond it is ours (imports, validation, encoding,
 * our deadline timer), and what they cost up to it is the runtime's.
 *
 * The probe script runs through the installed shim (bench/lib/plugin.ts, same flags and
 * environment); stdin names the socket. `startWaitServer` answers each connection's first line
 * after the delay it is set to.
 */

/** The probe: stdin (the socket path) → one line out and back → one line on stdout. */
export const WAIT_PROBE = `const enc = new TextEncoder();
const dec = new TextDecoder();
const buf = new Uint8Array(4096);
let input = "";
for (;;) {
  const n = await Deno.stdin.read(buf);
  if (n === null) break;
  input += dec.decode(buf.subarray(0, n));
}
const conn = await Deno.connect({ transport: "unix", path: input.trim() });
await conn.write(enc.encode("call\\n"));
let got = "";
while (!got.includes("\\n")) {
  const n = await conn.read(buf);
  if (n === null) break;
  got += dec.decode(buf.subarray(0, n));
}
conn.close();
Deno.stdout.writeSync(enc.encode('{"cniVersion":"1.1.0","reply":"' + got.trim() + '"}\\n'));
`;

export interface WaitServer extends AsyncDisposable {
  path: string;
  /** The delay before each answer, ms. */
  delayMs: number;
  /** Connections answered so far. */
  readonly answered: number;
}

/** A unix-socket server at `path` answering "ok" `delayMs` after a connection's first line. */
export function startWaitServer(path: string): WaitServer {
  const listener = Deno.listen({ transport: "unix", path });
  const open = new Set<Deno.Conn>();
  let answered = 0;
  const server: WaitServer = {
    path,
    delayMs: 0,
    get answered() {
      return answered;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const c of open) c.close();
      await Deno.remove(path).catch(() => {});
      await loop;
    },
  };
  const serve = async (conn: Deno.Conn) => {
    open.add(conn);
    try {
      const buf = new Uint8Array(64);
      let got = "";
      while (!got.includes("\n")) {
        const n = await conn.read(buf);
        if (n === null) return;
        got += new TextDecoder().decode(buf.subarray(0, n));
      }
      await new Promise((r) => setTimeout(r, server.delayMs));
      await conn.write(new TextEncoder().encode("ok\n"));
      answered++;
    } catch {
      // the probe went away; its exit status says why
    } finally {
      open.delete(conn);
      try {
        conn.close();
      } catch {
        // closed by dispose
      }
    }
  };
  const loop = (async () => {
    try {
      for await (const conn of listener) void serve(conn);
    } catch {
      // closed
    }
  })();
  return server;
}
