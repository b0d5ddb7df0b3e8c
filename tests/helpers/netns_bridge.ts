/**
 * Lets processes inside network namespaces reach a TCP server on the host's loopback (the fake
 * Kubernetes API server for daemons in simulated nodes), at the same `127.0.0.1:<port>` address, so
 * one kubeconfig works everywhere:
 *
 *   daemon (node netns) → 127.0.0.1:<port> → tcp_to_unix.ts (node netns) → <dir>/bridge.sock
 *     → this process (host netns) → 127.0.0.1:<port> on the host
 *
 * `close()` kills the forwarders, closes every connection and removes the socket and its directory.
 */
import { splice } from "./splice.ts";

const FORWARDER = new URL("./tcp_to_unix.ts", import.meta.url).pathname;

export class NetnsBridge implements AsyncDisposable {
  readonly port: number;
  readonly socket: string;
  readonly #dir: string;
  readonly #listener: Deno.Listener;
  readonly #conns = new Set<Deno.Conn>();
  readonly #forwarders: Deno.ChildProcess[] = [];
  readonly #accepting: Promise<void>;
  #closed = false;

  private constructor(port: number, dir: string, listener: Deno.Listener) {
    this.port = port;
    this.#dir = dir;
    this.socket = `${dir}/bridge.sock`;
    this.#listener = listener;
    this.#accepting = this.#accept();
  }

  /** Serves `<tmp>/bridge.sock`, forwarding to the host's `127.0.0.1:<port>`. */
  static async start(port: number): Promise<NetnsBridge> {
    const dir = await Deno.makeTempDir({ prefix: "netns-bridge-" });
    const listener = Deno.listen({ transport: "unix", path: `${dir}/bridge.sock` });
    return new NetnsBridge(port, dir, listener);
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        this.#conns.add(conn);
        Deno.connect({ hostname: "127.0.0.1", port: this.port }).then(
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
  }

  /** Starts a forwarder in `/run/netns/<netns>` listening on its `127.0.0.1:<port>`. */
  async expose(netns: string): Promise<void> {
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
        String(this.port),
        this.socket,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
    }).spawn();
    this.#forwarders.push(child);
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("ready\n")) {
      const r = await reader.read();
      if (r.done) {
        const err = await new Response(child.stderr).text().catch(() => "");
        throw new Error(`forwarder in ${netns} did not start: ${out} ${err}`);
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
    for (const child of this.#forwarders) {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone already
      }
      await child.status;
    }
    this.#listener.close();
    await this.#accepting;
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
