/**
 * Daemon side of the RPC protocol: an HTTP server on a unix socket (`Deno.serve`), routing by
 * versioned path, with per-route zod schemas and one error envelope. Daemon only (imports zod).
 *
 * Invariants:
 * - The socket is never reachable with loose permissions: it is bound inside a fresh 0700
 *   directory next to its final path, chmod 0600, then renamed into place (no umask games).
 * - A stale socket file (nobody answers) is replaced; a live one is refused. Two daemons racing
 *   between that check and the rename are excluded earlier by the state directory's lock.
 * - Every reply is the envelope of protocol.ts; unexpected errors become INTERNAL with a request
 *   id, and their details go to the log only.
 * - `close()` unlinks the socket file only if it is still ours (a successor may have replaced it).
 */
import type { z } from "zod";
import { HostnicError } from "../errors.ts";
import type { Logger } from "../log.ts";
import {
  PROTOCOL_VERSION,
  RPC_REASONS,
  RPC_ROUTES,
  RpcError,
  type RpcErrorBody,
  type RpcPath,
  type RpcReason,
  type RpcReply,
} from "./protocol.ts";

/** What a handler gets besides its body. */
export interface RpcContext {
  /** Also in the log lines and in INTERNAL messages, to correlate. */
  readonly requestId: number;
  readonly logger: Logger;
  /** Aborted when the client goes away or the server closes: stop waiting, throw. */
  readonly signal: AbortSignal;
}

/** A route: built with `route()` so the handler's body type follows from its schema. */
export interface RpcRoute {
  readonly path: RpcPath;
  /** Validates the JSON body; `null` for GET routes, which take none. */
  readonly schema: z.ZodType | null;
  readonly handle: (body: unknown, ctx: RpcContext) => unknown;
}

/** Declare a route; `schema` is `null` for GET routes. The handler returns the reply's `data`. */
export function route<S extends z.ZodType>(
  path: RpcPath,
  schema: S | null,
  handler: (body: z.output<S>, ctx: RpcContext) => unknown,
): RpcRoute {
  return { path, schema, handle: handler as (body: unknown, ctx: RpcContext) => unknown };
}

export interface RpcServerOptions {
  readonly socketPath: string;
  readonly routes: readonly RpcRoute[];
  readonly logger: Logger;
  /** Request bodies above this are refused with TOO_LARGE (default 1 MiB). */
  readonly maxBodyBytes?: number;
}

export interface RpcServer extends AsyncDisposable {
  readonly socketPath: string;
  /** Stop accepting, unlink the socket, abort handlers' signals, wait for in-flight replies. */
  close(): Promise<void>;
}

export type RpcSetupErrorCode = "RPC_SOCKET_IN_USE" | "RPC_SOCKET_PATH" | "RPC_ROUTES";

/** The server could not start. */
export class RpcSetupError extends HostnicError {
  override readonly code: RpcSetupErrorCode;
  constructor(code: RpcSetupErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.code = code;
  }
}

export const DEFAULT_MAX_BODY_BYTES = 1 << 20;
// sun_path is 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH_BYTES = 107;

export async function startRpcServer(opts: RpcServerOptions): Promise<RpcServer> {
  const { socketPath, logger } = opts;
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const table = routeTable(opts.routes);
  const parent = dirname(socketPath);
  await Deno.mkdir(parent, { recursive: true, mode: 0o755 });
  await refuseLiveSocket(socketPath, logger);

  const staging = await Deno.makeTempDir({ dir: parent, prefix: ".hostnic-rpc-" }); // 0700
  const stagingSock = `${staging}/s`;
  const closing = new AbortController();
  let server: Deno.HttpServer<Deno.UnixAddr> | undefined;
  let seq = 0;
  try {
    for (const p of [socketPath, stagingSock]) {
      if (new TextEncoder().encode(p).length > MAX_SOCKET_PATH_BYTES) {
        throw new RpcSetupError(
          "RPC_SOCKET_PATH",
          `Socket path "${p}" is longer than ${MAX_SOCKET_PATH_BYTES} bytes; choose a shorter one`,
        );
      }
    }
    server = Deno.serve({
      transport: "unix",
      path: stagingSock,
      onListen: () => {}, // the default prints to stdout
      onError: (err) => {
        logger.error("rpc server error", { error: errorText(err) });
        return reply({ ok: false, error: internalError(0) });
      },
    }, (req) =>
      serveOne(req, {
        requestId: ++seq,
        table,
        maxBodyBytes,
        logger,
        closing: closing.signal,
      }));
    await Deno.chmod(stagingSock, 0o600);
    await Deno.rename(stagingSock, socketPath);
  } catch (err) {
    await server?.shutdown();
    throw err instanceof HostnicError ? err : new RpcSetupError(
      "RPC_SOCKET_PATH",
      `Cannot listen on "${socketPath}": ${errorText(err)}`,
      { cause: err },
    );
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
  const ours = await Deno.lstat(socketPath);
  logger.info("rpc server listening", { socketPath, routes: table.size });

  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      // Unlink first: new clients fail fast (daemon unreachable) instead of queueing behind a
      // server that is going away.
      try {
        const now = await Deno.lstat(socketPath);
        if (now.ino === ours.ino && now.dev === ours.dev) await Deno.remove(socketPath);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) {
          logger.warn("cannot remove rpc socket", { socketPath, error: errorText(err) });
        }
      }
      closing.abort(new RpcError("NOT_READY", "The daemon is shutting down"));
      await server!.shutdown();
      logger.info("rpc server closed", { socketPath });
    })();
  return { socketPath, close, [Symbol.asyncDispose]: close };
}

interface RequestEnv {
  requestId: number;
  table: Map<string, RpcRoute>;
  maxBodyBytes: number;
  logger: Logger;
  closing: AbortSignal;
}

async function serveOne(req: Request, env: RequestEnv): Promise<Response> {
  const started = performance.now();
  const { requestId } = env;
  const path = new URL(req.url).pathname;
  const logger = env.logger.child({ requestId, path });
  let result: RpcReply;
  try {
    result = { ok: true, data: await dispatch(req, path, env, logger) };
  } catch (err) {
    if (err instanceof RpcError) {
      result = { ok: false, error: err.toBody() };
    } else {
      // Details stay here: a stack or an internal message is no business of the caller.
      logger.error("rpc handler failed", {
        error: errorText(err),
        stack: err instanceof Error ? err.stack : undefined,
      });
      result = { ok: false, error: internalError(requestId) };
    }
  }
  const ms = Math.round((performance.now() - started) * 1000) / 1000;
  if (result.ok) logger.debug("rpc", { ms });
  else logger.debug("rpc failed", { ms, reason: result.error.reason });
  return reply(result, logger, requestId);
}

async function dispatch(
  req: Request,
  path: string,
  env: RequestEnv,
  logger: Logger,
): Promise<unknown> {
  const rt = env.table.get(path);
  if (!rt) {
    const version = path.match(/^\/v(\d+)\//)?.[1];
    if (version !== undefined && Number(version) !== PROTOCOL_VERSION) {
      throw new RpcError(
        "UNSUPPORTED_VERSION",
        `This daemon speaks protocol v${PROTOCOL_VERSION}, not v${version}; ` +
          `use a hostnic binary of the same release as the daemon`,
      );
    }
    throw new RpcError("NOT_FOUND", `Unknown path "${path}"`);
  }
  const method = RPC_ROUTES[rt.path];
  if (req.method !== method) {
    throw new RpcError(
      "NOT_FOUND",
      `Method ${req.method} is not allowed on "${path}"; use ${method}`,
    );
  }
  let body: unknown = undefined;
  if (method === "POST") body = parseJson(await readBody(req, env.maxBodyBytes));
  if (rt.schema) {
    const parsed = rt.schema.safeParse(body);
    if (!parsed.success) throw schemaError(path, parsed.error);
    body = parsed.data;
  }
  let signal: AbortSignal | undefined;
  const ctx: RpcContext = {
    requestId: env.requestId,
    logger,
    // Lazy: touching `req.signal` makes Deno print a one-time warning about its legacy abort
    // semantics, so only handlers that wait pay for it.
    get signal() {
      return signal ??= AbortSignal.any([env.closing, req.signal]);
    },
  };
  return await rt.handle(body, ctx);
}

async function readBody(req: Request, max: number): Promise<Uint8Array> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > max) throw tooLarge(max);
  if (!req.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge(max);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

function parseJson(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new RpcError("BAD_REQUEST", "Request body is not UTF-8");
  }
  if (text.trim() === "") return {}; // `curl -X POST` without a body
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new RpcError("BAD_REQUEST", `Request body is not valid JSON: ${errorText(err)}`);
  }
}

function schemaError(path: string, error: z.ZodError): RpcError {
  const issues = error.issues.slice(0, 3).map((i) => {
    const field = fieldPath(i.path);
    return field ? `"${field}": ${i.message}` : i.message;
  });
  const more = error.issues.length > 3 ? ` (and ${error.issues.length - 3} more)` : "";
  const first = error.issues[0];
  return new RpcError("BAD_REQUEST", `Invalid request to ${path}: ${issues.join("; ")}${more}`, {
    field: first && first.path.length > 0 ? fieldPath(first.path) : undefined,
  });
}

function fieldPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    out += typeof p === "number" ? `[${p}]` : `${out ? "." : ""}${String(p)}`;
  }
  return out;
}

function reply(result: RpcReply, logger?: Logger, requestId = 0): Response {
  let text: string;
  try {
    text = JSON.stringify(result);
  } catch (err) {
    logger?.error("rpc reply is not JSON", { error: errorText(err) });
    result = { ok: false, error: internalError(requestId) };
    text = JSON.stringify(result);
  }
  const status = result.ok ? 200 : statusOf(result.error.reason);
  return new Response(text, { status, headers: { "content-type": "application/json" } });
}

function statusOf(reason: RpcReason): number {
  return RPC_REASONS[reason].status;
}

function internalError(requestId: number): RpcErrorBody {
  return new RpcError(
    "INTERNAL",
    `Internal daemon error; see the daemon log for request ${requestId}`,
  ).toBody();
}

function tooLarge(max: number): RpcError {
  return new RpcError("TOO_LARGE", `Request body is larger than ${max} bytes`);
}

function routeTable(routes: readonly RpcRoute[]): Map<string, RpcRoute> {
  const table = new Map<string, RpcRoute>();
  for (const r of routes) {
    const method = (RPC_ROUTES as Record<string, string>)[r.path];
    if (!method) throw new RpcSetupError("RPC_ROUTES", `Route "${r.path}" is not in the protocol`);
    if (table.has(r.path)) {
      throw new RpcSetupError("RPC_ROUTES", `Route "${r.path}" is declared twice`);
    }
    if (method === "GET" && r.schema) {
      throw new RpcSetupError("RPC_ROUTES", `GET route "${r.path}" takes no body, so no schema`);
    }
    table.set(r.path, r);
  }
  return table;
}

/** Throw if a server answers on `path`; a dead socket file is left for the rename to replace. */
async function refuseLiveSocket(path: string, logger: Logger): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  if (!info.isSocket) {
    throw new RpcSetupError(
      "RPC_SOCKET_PATH",
      `"${path}" exists and is not a socket; refusing to replace it`,
    );
  }
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (err) {
    if (err instanceof Deno.errors.ConnectionRefused) {
      logger.info("replacing stale rpc socket", { socketPath: path });
      return;
    }
    throw err;
  }
  conn.close();
  throw new RpcSetupError(
    "RPC_SOCKET_IN_USE",
    `Another process is serving on "${path}" (another hostnic daemon is running?)`,
  );
}

function dirname(path: string): string {
  const at = path.lastIndexOf("/");
  if (at < 0) return ".";
  return at === 0 ? "/" : path.slice(0, at);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
