/**
 * The plugin/admin ⇄ daemon wire protocol: HTTP/1.1 + JSON on a unix socket, versioned paths, and
 * one reply envelope with a machine-readable `reason`. Callers branch on `reason`, never on
 * message text.
 *
 * Imported by the CNI plugin: no dependencies beyond `lib/errors.ts`.
 */
import { HostnicError } from "../errors.ts";

/** Protocol version in every path (`/v1/...`). A daemon answers other versions with `UNSUPPORTED_VERSION`. */
export const PROTOCOL_VERSION = 1;

/** Every route and its HTTP method. GET routes take no body (the client sends none). */
export const RPC_ROUTES = {
  "/v1/cni/add": "POST",
  "/v1/cni/del": "POST",
  "/v1/cni/check": "POST",
  "/v1/cni/status": "POST",
  "/v1/cni/gc": "POST",
  "/v1/admin/pool": "GET",
  "/v1/admin/nics": "GET",
  "/v1/admin/pods": "GET",
  "/v1/admin/gc": "POST",
  "/v1/admin/ipam/check": "POST",
  "/v1/healthz": "GET",
} as const satisfies Record<string, "GET" | "POST">;

export type RpcPath = keyof typeof RPC_ROUTES;

/** Named paths, so call sites read `RPC.cniAdd` rather than repeating strings. */
export const RPC = {
  cniAdd: "/v1/cni/add",
  cniDel: "/v1/cni/del",
  cniCheck: "/v1/cni/check",
  cniStatus: "/v1/cni/status",
  cniGc: "/v1/cni/gc",
  adminPool: "/v1/admin/pool",
  adminNics: "/v1/admin/nics",
  adminPods: "/v1/admin/pods",
  adminGc: "/v1/admin/gc",
  adminIpamCheck: "/v1/admin/ipam/check",
  healthz: "/v1/healthz",
} as const satisfies Record<string, RpcPath>;

/**
 * The closed set of failure reasons, with the HTTP status the server uses (for curl users; the
 * client reads the envelope), whether retrying later may help, and the CNI error code a plugin
 * should report unless the daemon names a more precise one.
 *
 * Idempotent handlers (DEL of an unknown attachment) succeed instead of answering NOT_FOUND, so a
 * NOT_FOUND on such a path means the daemon does not know the route (version skew).
 */
export const RPC_REASONS = {
  /** The request is malformed or fails the route's schema (`field` names the culprit). */
  BAD_REQUEST: { status: 400, retryable: false, cniCode: undefined },
  /** Unknown path or method, or an object that does not exist. */
  NOT_FOUND: { status: 404, retryable: false, cniCode: undefined },
  /** No free NIC/IP now; the pool is growing. */
  POOL_EMPTY: { status: 503, retryable: true, cniCode: 11 },
  /** Waited for the pool to grow, in vain. */
  POOL_TIMEOUT: { status: 503, retryable: true, cniCode: 11 },
  /** The cloud API failed (after the daemon's own retries). */
  IAAS_ERROR: { status: 502, retryable: true, cniCode: 11 },
  /** The daemon is still rebuilding its state after start, or is shutting down. */
  NOT_READY: { status: 503, retryable: true, cniCode: 11 },
  /** The request contradicts current state (e.g. a fixed IP held by another pod). */
  CONFLICT: { status: 409, retryable: false, cniCode: undefined },
  /** A bug or an unexpected failure in the daemon; details are in the daemon log only. */
  INTERNAL: { status: 500, retryable: false, cniCode: undefined },
  /** The request body exceeds the server's limit. */
  TOO_LARGE: { status: 413, retryable: false, cniCode: undefined },
  /** The path's protocol version is not one this daemon speaks. */
  UNSUPPORTED_VERSION: { status: 400, retryable: false, cniCode: undefined },
} as const satisfies Record<
  string,
  { status: number; retryable: boolean; cniCode: number | undefined }
>;

export type RpcReason = keyof typeof RPC_REASONS;

export function isRpcReason(v: unknown): v is RpcReason {
  return typeof v === "string" && Object.hasOwn(RPC_REASONS, v);
}

/** The `error` member of a failed reply. */
export interface RpcErrorBody {
  reason: RpcReason;
  /** Sentence-case, safe to show to users; never parsed. */
  message: string;
  /** CNI error code the plugin should report (e.g. 11 "try again later"). */
  cniCode?: number;
  retryable?: boolean;
  /** For BAD_REQUEST: the offending field path (e.g. `"args.podName"`), when one is to blame. */
  field?: string;
}

export type RpcReply<T = unknown> = { ok: true; data: T } | { ok: false; error: RpcErrorBody };

/**
 * A failed call: thrown by route handlers (the server turns it into the reply) and by the client
 * (rebuilt from the reply). `code` = `reason`.
 */
export class RpcError extends HostnicError {
  readonly reason: RpcReason;
  readonly cniCode: number | undefined;
  readonly retryable: boolean;
  readonly field: string | undefined;
  constructor(
    reason: RpcReason,
    message: string,
    options?: ErrorOptions & { cniCode?: number; retryable?: boolean; field?: string },
  ) {
    super(reason, message, options);
    this.reason = reason;
    this.cniCode = options?.cniCode ?? RPC_REASONS[reason].cniCode;
    this.retryable = options?.retryable ?? RPC_REASONS[reason].retryable;
    this.field = options?.field;
  }

  /** The reply's `error` member. */
  toBody(): RpcErrorBody {
    const body: RpcErrorBody = {
      reason: this.reason,
      message: this.message,
      retryable: this.retryable,
    };
    if (this.cniCode !== undefined) body.cniCode = this.cniCode;
    if (this.field !== undefined) body.field = this.field;
    return body;
  }

  static fromBody(body: RpcErrorBody): RpcError {
    return new RpcError(body.reason, body.message, {
      cniCode: body.cniCode,
      retryable: body.retryable,
      field: body.field,
    });
  }
}

/**
 * Check that `v` is a reply envelope. An unknown `reason` (a newer daemon) becomes INTERNAL with
 * the original reason kept in the message, so old clients still fail safely.
 */
export function parseReply(v: unknown): RpcReply | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const r = v as Record<string, unknown>;
  if (r.ok === true && "data" in r) return { ok: true, data: r.data };
  if (r.ok !== false || typeof r.error !== "object" || r.error === null) return undefined;
  const e = r.error as Record<string, unknown>;
  if (typeof e.message !== "string" || typeof e.reason !== "string") return undefined;
  const error: RpcErrorBody = isRpcReason(e.reason)
    ? { reason: e.reason, message: e.message }
    : { reason: "INTERNAL", message: `${e.message} (reason "${e.reason}")` };
  if (typeof e.cniCode === "number" && Number.isInteger(e.cniCode)) error.cniCode = e.cniCode;
  if (typeof e.retryable === "boolean") error.retryable = e.retryable;
  if (typeof e.field === "string") error.field = e.field;
  return { ok: false, error };
}
