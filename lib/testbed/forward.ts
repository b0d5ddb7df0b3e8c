/**
 * Reaching TCP servers across network namespaces, for the testbed: a server inside a simulated
 * instance (the Kubernetes API server in the master) from the host's loopback, or a server on the
 * host's loopback from inside a node. Each direction is a unix socket in a private directory
 * joined to TCP on each side: one side in this process, the other in a `forwarder.ts` process
 * started inside the namespace with nsenter.
 *
 * `close()` kills the forwarders, closes every connection and removes the socket directory.
 */

const FORWARDER = new URL("./forwarder.ts", import.meta.url).pathname;

export type Endpoint =
  | { transport: "tcp"; hostname: string; port: number }
  | { transport: "unix"; path: string };

/** `tcp:<host>:<port>` or `unix:<path>`. */
export function parseEndpoint(text: string): Endpoint {
  const unix = /^unix:(\/.+)$/.exec(text);
  if (unix) return { transport: "unix", path: unix[1] };
  const tcp = /^tcp:([^:]+):(\d+)$/.exec(text);
  const port = tcp ? Number(tcp[2]) : NaN;
  if (tcp && port >= 0 && port <= 65535) return { transport: "tcp", hostname: tcp[1], port };
  throw new Error(`Endpoint "${text}" is neither tcp:<host>:<port> nor unix:<absolute path>`);
}

/** Joins two connections both ways; when either side ends or fails, both are closed. */
export async function splice(a: Deno.Conn, b: Deno.Conn): Promise<void> {
  await Promise.race([
    a.readable.pipeTo(b.writable).catch(() => {}),
    b.readable.pipeTo(a.writable).catch(() => {}),
  ]);
  for (const c of [a, b]) {
    try {
      c.close();
    } catch {
      // already closed by its stream
    }
  }
}

export class Forward implements AsyncDisposable {
  readonly #dir: string;
  readonly #listeners: Deno.Listener[] = [];
  readonly #accepting: Promise<void>[] = [];
  readonly #conns = new Set<Deno.Conn>();
  readonly #children: Deno.ChildProcess[] = [];
  #n = 0;
  #closed = false;

  private constructor(dir: string) {
    this.#dir = dir;
  }

  static async create(): Promise<Forward> {
    return new Forward(await Deno.makeTempDir({ prefix: "hostnic-fwd-" }));
  }

  /**
   * Makes `<host>:<port>` inside `netns` reachable at the returned port on this process's
   * 127.0.0.1 (a forwarder in the namespace serves a unix socket that this process connects to).
   */
  async fromNamespace(netns: string, target: { hostname: string; port: number }): Promise<number> {
    const sock = `${this.#dir}/in-${this.#n++}.sock`;
    await this.#spawn(netns, `unix:${sock}`, `tcp:${target.hostname}:${target.port}`);
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#serve(listener, () => Deno.connect({ transport: "unix", path: sock }));
    return (listener.addr as Deno.NetAddr).port;
  }

  /**
   * Makes this host's `127.0.0.1:<port>` reachable inside `netns` at its own `127.0.0.1:<port>`
   * (same address, so one kubeconfig or URL works on both sides).
   */
  async intoNamespace(netns: string, port: number): Promise<void> {
    const sock = `${this.#dir}/out-${this.#n++}.sock`;
    const listener = Deno.listen({ transport: "unix", path: sock });
    this.#serve(listener, () => Deno.connect({ hostname: "127.0.0.1", port }));
    await this.#spawn(netns, `tcp:127.0.0.1:${port}`, `unix:${sock}`);
  }

  #serve(listener: Deno.Listener, connect: () => Promise<Deno.Conn>): void {
    this.#listeners.push(listener);
    this.#accepting.push((async () => {
      try {
        for await (const conn of listener) {
          this.#conns.add(conn);
          connect().then(
            async (target) => {
              this.#conns.add(target);
              await splice(conn, target);
              this.#conns.delete(target);
              this.#conns.delete(conn);
            },
            () => {
              this.#conns.delete(conn);
              conn.close();
            },
          );
        }
      } catch {
        // listener closed
      }
    })());
  }

  async #spawn(netns: string, listen: string, connect: string): Promise<void> {
    const child = new Deno.Command("nsenter", {
      args: [
        `--net=/run/netns/${netns}`,
        Deno.execPath(),
        "run",
        "--quiet",
        "--allow-net",
        "--allow-read",
        "--allow-write",
        FORWARDER,
        listen,
        connect,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
    }).spawn();
    this.#children.push(child);
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("ready\n")) {
      const r = await reader.read();
      if (r.done) {
        const err = await new Response(child.stderr).text().catch(() => "");
        throw new Error(
          `forwarder in ${netns} (${listen} → ${connect}) did not start: ${out}${err}`,
        );
      }
      out += r.value;
    }
    // Keep draining so the forwarder never blocks on a full pipe.
    (async () => {
      while (!(await reader.read()).done) { /* discard */ }
    })().catch(() => {});
    child.stderr.cancel().catch(() => {});
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const child of this.#children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone already
      }
      await child.status;
    }
    for (const l of this.#listeners) l.close();
    await Promise.all(this.#accepting);
    for (const c of this.#conns) {
      try {
        c.close();
      } catch {
        // closed by its stream
      }
    }
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
