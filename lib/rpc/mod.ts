/**
 * The plugin/admin ⇄ daemon protocol over the daemon's unix socket
 * (`/var/run/hostnic/hostnic.sock`, mode 0600): HTTP/1.1 + JSON, versioned paths (`/v1/...`),
 * one reply envelope `{ok: true, data} | {ok: false, error: {reason, message, cniCode?,
 * retryable?, field?}}`.
 *
 * - protocol.ts: paths, methods, the closed set of `reason` codes, `RpcError`.
 * - client.ts: `RpcClient` — raw HTTP/1.1 on `Deno.connect`, fast to start; failures are either
 *   `RpcError` (the daemon said no) or `DaemonUnreachableError` (no usable answer, with a `kind`).
 * - server.ts: `startRpcServer` — `Deno.serve` on the socket, per-route zod schemas.
 *
 * Invariants: callers branch on `reason`/`kind`, never on message text; the socket is 0600 from
 * the moment it is reachable; unexpected daemon errors reach clients as INTERNAL without details.
 * Nothing here loads a heavy module at run time (server.ts uses zod's types only; route schemas
 * come from the daemon), so the CNI plugin may import this module or client.ts directly.
 */
export {
  isRpcReason,
  parseReply,
  PROTOCOL_VERSION,
  RPC,
  RPC_REASONS,
  RPC_ROUTES,
  RpcError,
  type RpcErrorBody,
  type RpcPath,
  type RpcReason,
  type RpcReply,
} from "./protocol.ts";
export {
  DaemonUnreachableError,
  DEFAULT_CALL_TIMEOUT_MS,
  type RpcCallOptions,
  RpcClient,
  type RpcClientOptions,
  type UnreachableKind,
} from "./client.ts";
export {
  DEFAULT_MAX_BODY_BYTES,
  route,
  type RpcContext,
  type RpcRoute,
  type RpcServer,
  type RpcServerOptions,
  RpcSetupError,
  type RpcSetupErrorCode,
  startRpcServer,
} from "./server.ts";
