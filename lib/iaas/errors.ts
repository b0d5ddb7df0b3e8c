/**
 * Errors of the QingCloud client. Callers decide on `retCode` (and the helpers below), never on
 * message text. No error carries request parameters, signatures or keys: only the action, the
 * API's ret_code and message, and what went wrong on the wire.
 */
import { HostnicError } from "../errors.ts";

/** Known `ret_code` values (qingcloud-api.md §4.1). */
export const RetCode = {
  OK: 0,
  /** A required parameter is missing or a value is malformed. */
  MALFORMED: 1100,
  WRONG_METHOD: 1101,
  /** Unknown access key or a signature mismatch. */
  AUTH_FAILED: 1200,
  /** `time_stamp` too far from the server clock. */
  EXPIRED: 1300,
  /** Not allowed, or the resource is in a state that cannot change (in-use, job in flight, limits). */
  PERMISSION_DENIED: 1400,
  NOT_FOUND: 2100,
  ALREADY_EXISTS: 2110,
  INSUFFICIENT_BALANCE: 2400,
  /** Resource quota or API request quota exceeded (throttling). */
  QUOTA_EXCEEDED: 2500,
  INTERNAL_ERROR: 5000,
  SERVER_BUSY: 5100,
  INSUFFICIENT_RESOURCES: 5200,
  SERVICE_UPDATING: 5300,
  DEPENDENCY_EXISTS: 5400,
} as const;

/** The API answered with `ret_code != 0`. */
export class IaasError extends HostnicError {
  readonly action: string;
  readonly retCode: number;
  /** The API's own message, e.g. `PermissionDenied, ...`. */
  readonly apiMessage: string;
  constructor(action: string, retCode: number, apiMessage: string, options?: ErrorOptions) {
    super(
      "IAAS_ERROR",
      `QingCloud action "${action}" failed with ret_code ${retCode}: ${
        apiMessage || "(no message)"
      }`,
      options,
    );
    this.action = action;
    this.retCode = retCode;
    this.apiMessage = apiMessage;
  }
}

export type TransportFailure = "timeout" | "connection" | "http_status" | "bad_body";

/** No usable answer: connection failed or dropped, timeout, non-200 status, or a non-JSON body. */
export class IaasTransportError extends HostnicError {
  readonly action: string;
  readonly reason: TransportFailure;
  readonly httpStatus?: number;
  /**
   * False only when the request certainly never reached the server (connection refused), so
   * resending a creating call cannot duplicate anything.
   */
  readonly maybeSent: boolean;
  constructor(
    o: {
      action: string;
      reason: TransportFailure;
      detail: string;
      httpStatus?: number;
      maybeSent: boolean;
    },
    options?: ErrorOptions,
  ) {
    super(
      "IAAS_TRANSPORT",
      `QingCloud action "${o.action}" got no usable reply: ${o.detail}`,
      options,
    );
    this.action = o.action;
    this.reason = o.reason;
    this.httpStatus = o.httpStatus;
    this.maybeSent = o.maybeSent;
  }
}

/** The API answered `ret_code 0` but the reply does not have the shape hostnic relies on. */
export class IaasReplyError extends HostnicError {
  readonly action: string;
  /** Dotted path of the first offending field, e.g. `nic_set.0.role`. */
  readonly field: string;
  constructor(action: string, field: string, detail: string) {
    super(
      "IAAS_BAD_REPLY",
      `QingCloud action "${action}" returned a malformed reply at "${field}": ${detail}`,
    );
    this.action = action;
    this.field = field;
  }
}

/** A job ended in `failed` or `done with failure`, or vanished. */
export class IaasJobError extends HostnicError {
  readonly jobId: string;
  readonly jobAction: string;
  readonly status: string;
  constructor(o: { jobId: string; jobAction: string; status: string }) {
    super(
      "IAAS_JOB_FAILED",
      o.status === "not found"
        ? `QingCloud job "${o.jobId}" was not found`
        : `QingCloud job "${o.jobId}" (${
          o.jobAction || "unknown action"
        }) ended with status "${o.status}"`,
    );
    this.jobId = o.jobId;
    this.jobAction = o.jobAction;
    this.status = o.status;
  }
}

/** Jobs still not finished at the deadline. */
export class IaasJobTimeoutError extends HostnicError {
  /** Unfinished job ids with their last seen status. */
  readonly pending: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  constructor(pending: Readonly<Record<string, string>>, timeoutMs: number) {
    const list = Object.entries(pending).map(([id, s]) => `"${id}" (${s})`).join(", ");
    super("IAAS_JOB_TIMEOUT", `QingCloud jobs not finished after ${timeoutMs} ms: ${list}`);
    this.pending = pending;
    this.timeoutMs = timeoutMs;
  }
}

/** Worth retrying the same call: transport failure, internal error (5000) or server busy (5100). */
export function isRetryable(err: unknown): boolean {
  if (err instanceof IaasTransportError) return true;
  return err instanceof IaasError &&
    (err.retCode === RetCode.INTERNAL_ERROR || err.retCode === RetCode.SERVER_BUSY);
}

/** Quota exceeded (2500): a resource quota or API throttling; retry later, slower. */
export function isQuota(err: unknown): boolean {
  return err instanceof IaasError && err.retCode === RetCode.QUOTA_EXCEEDED;
}

/** Resource not found (2100): on detach or delete this means "already gone". */
export function isNotFound(err: unknown): boolean {
  return err instanceof IaasError && err.retCode === RetCode.NOT_FOUND;
}

/** Access denied or a resource in a state that cannot change (1400). */
export function isPermissionDenied(err: unknown): boolean {
  return err instanceof IaasError && err.retCode === RetCode.PERMISSION_DENIED;
}
