/**
 * The management HTTP server of the long-running modes (daemon, controller) on `--manageAddr`:
 * `GET /metrics` (Prometheus text), `/healthz` (the process answers), `/readyz` (the mode's own
 * readiness: 200 with a detail, or 503 with the reason). "" disables it.
 */
import { parseListenAddr } from "../config.ts";
import { ConfigError, errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";

export interface ManageServer {
  /** `host:port` actually bound ("" when disabled). */
  readonly addr: string;
  close(): Promise<void>;
}

export interface ManageServerOptions {
  /** The Prometheus registry rendered on /metrics. */
  metrics: { metrics(): Promise<string>; readonly contentType: string };
  logger: Logger;
  /** Readiness for /readyz: `{ ready, detail }`; the detail is the reason when not ready. */
  readiness: () => { ready: boolean; detail: string };
}

export function startManageServer(addr: string, o: ManageServerOptions): ManageServer {
  if (addr === "") return { addr: "", close: () => Promise.resolve() };
  const listen = parseListenAddr(addr);
  if (!listen) throw new ConfigError("--manageAddr", `"${addr}" must be "host:port" or ":port"`);
  const ac = new AbortController();
  let bound = "";
  const server = Deno.serve({
    hostname: listen.hostname,
    port: listen.port,
    signal: ac.signal,
    onListen: (a) => {
      bound = `${a.hostname}:${a.port}`;
    },
    onError: (err) => {
      o.logger.error("management request failed", { error: errorMessage(err) });
      return new Response("internal error\n", { status: 500 });
    },
  }, async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method !== "GET") return new Response("method not allowed\n", { status: 405 });
    if (path === "/metrics") {
      return new Response(await o.metrics.metrics(), {
        headers: { "content-type": o.metrics.contentType },
      });
    }
    if (path === "/healthz") return new Response("ok\n");
    if (path === "/readyz") {
      const r = o.readiness();
      return r.ready
        ? new Response(`ready${r.detail ? ` (${r.detail})` : ""}\n`)
        : new Response(`not ready: ${r.detail}\n`, { status: 503 });
    }
    return new Response("not found\n", { status: 404 });
  });
  return {
    get addr() {
      return bound;
    },
    async close() {
      ac.abort();
      await server.finished;
    },
  };
}
