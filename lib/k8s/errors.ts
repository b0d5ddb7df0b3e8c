/**
 * Errors of the Kubernetes layer. Messages name the object and the operation, quote values, and
 * never carry the request's headers (they hold the bearer token) or a stack.
 */
import { HostnicError } from "../errors.ts";

/** Stable codes of `KubeError`. */
export type KubeErrorCode =
  /** No usable kubeconfig / not running in a pod. */
  | "KUBE_CONFIG"
  /** The API server could not be reached (connection refused, DNS, TLS, timeout). */
  | "KUBE_UNREACHABLE"
  /** The API server answered with an error status (403, 409, 422, 500 …). */
  | "KUBE_API_ERROR"
  /** The client-side rate limit left no slot for the request before its deadline. */
  | "KUBE_THROTTLED"
  /** The API server answered 2xx with a body that is not what the API promises. */
  | "KUBE_INVALID_REPLY"
  /** The caller asked for something Kubernetes would reject (bad event reason …). */
  | "KUBE_INVALID_REQUEST";

/** A Kubernetes API call failed. `op` says what was attempted (`get pod "ns/name"`). */
export class KubeError extends HostnicError {
  override readonly code: KubeErrorCode;
  /** What was attempted, e.g. `patch node "n1"`. */
  readonly op: string;
  /** HTTP status when the server answered. */
  readonly status?: number;
  /** Kubernetes `Status.reason` when the server sent one (`Forbidden`, `NotFound` …). */
  readonly reason?: string;
  /** Requests made before giving up (retries included), when any was made. */
  readonly attempts?: number;

  constructor(
    code: KubeErrorCode,
    op: string,
    message: string,
    extra: { status?: number; reason?: string; attempts?: number; cause?: unknown } = {},
  ) {
    super(code, message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.code = code;
    this.op = op;
    if (extra.status !== undefined) this.status = extra.status;
    if (extra.reason !== undefined) this.reason = extra.reason;
    if (extra.attempts !== undefined) this.attempts = extra.attempts;
  }
}

/** A pod or node annotation holds a value hostnic cannot use. `annotation` names it. */
export class AnnotationError extends HostnicError {
  readonly annotation: string;
  readonly value: string;

  constructor(annotation: string, value: string, message: string) {
    super(
      "INVALID_ANNOTATION",
      `Invalid annotation "${annotation}": ${JSON.stringify(value)} ${message}`,
    );
    this.annotation = annotation;
    this.value = value;
  }
}
