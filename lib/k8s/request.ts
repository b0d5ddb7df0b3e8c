/**
 * One API operation at a time, as `HttpKube` (client.ts) runs them: the client-side rate limit,
 * the deadline shared by all attempts, retries per transport.ts, our User-Agent, and the mapping
 * of every failure to a `KubeError` naming the operation (never the request's headers).
 */
import * as k8s from "@kubernetes/client-node";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { KubeError } from "./errors.ts";
import { parseStatusBody } from "./schemas.ts";
import {
  type AttemptFailure,
  planRetry,
  type RateLimit,
  type Repeatable,
  type RetryPolicy,
  TokenBucket,
} from "./transport.ts";

export type Options = k8s.ConfigurationOptions<k8s.ObservableMiddleware>;

/** One API operation as `request` runs it. */
export interface RequestSpec {
  /** What is attempted, for messages: `get pod "ns/name"`. */
  op: string;
  /** How safe it is to repeat (default `idempotent`). */
  repeatable?: Repeatable;
  /** Content-Type of the body (patches). */
  contentType?: string;
}

/** What became of an operation: its result, or that the object is absent / already exists. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; status: 404 | 409 };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A failed attempt's error, as the retry decision sees it. */
function attemptFailure(err: unknown): AttemptFailure {
  if (err instanceof k8s.ApiException) {
    const headers = (err.headers ?? {}) as Record<string, string | undefined>;
    const retryAfter = headers["retry-after"];
    return { status: err.code, ...(retryAfter !== undefined ? { retryAfter } : {}) };
  }
  return isTransportError(err) ? { transport: true } : {};
}

/**
 * The connection failed, was cut, or timed out: undici's fetch rejects with a TypeError "fetch
 * failed" (or "terminated" for a body cut short) whose cause carries the socket error.
 */
export function isTransportError(err: unknown): boolean {
  const e = err as { name?: string; message?: string; cause?: { code?: unknown } };
  if (e?.name === "TimeoutError" || e?.name === "AbortError") return true;
  if (!(err instanceof TypeError)) return false;
  return /^(fetch failed|terminated)$/.test(e.message ?? "") || typeof e.cause?.code === "string";
}

export class ApiRequester {
  readonly #server: string;
  readonly #timeoutMs: number;
  readonly #retry: RetryPolicy;
  readonly #bucket: TokenBucket;
  readonly #qps: number;
  readonly #userAgent: string;
  readonly #log: Logger;

  /** Throws a `RangeError` for an unusable rate limit. */
  constructor(o: {
    server: string;
    timeoutMs: number;
    retry: RetryPolicy;
    rateLimit: RateLimit;
    userAgent: string;
    log: Logger;
  }) {
    this.#server = o.server;
    this.#timeoutMs = o.timeoutMs;
    this.#retry = o.retry;
    this.#bucket = new TokenBucket(o.rateLimit);
    this.#qps = o.rateLimit.qps;
    this.#userAgent = o.userAgent;
    this.#log = o.log;
  }

  /** Request options of one attempt: its deadline, our User-Agent, a Content-Type for patches. */
  #options(timeoutMs: number, contentType?: string): Options {
    const userAgent = this.#userAgent;
    const attempt: k8s.ObservableMiddleware = {
      pre(ctx) {
        ctx.setSignal(AbortSignal.timeout(Math.max(1, timeoutMs)));
        ctx.setHeaderParam("User-Agent", userAgent);
        if (contentType) ctx.setHeaderParam("Content-Type", contentType);
        return new k8s.Observable(Promise.resolve(ctx));
      },
      post(ctx) {
        return new k8s.Observable(Promise.resolve(ctx));
      },
    };
    return { middleware: [attempt], middlewareMergeStrategy: "append" };
  }

  /**
   * Runs one operation: waits for the rate limiter, then attempts it until it succeeds, fails for
   * good, runs out of attempts or would pass its deadline. 404 (and, for a create that was
   * retried, 409) come back as outcomes; every other failure is a `KubeError`.
   */
  async request<T>(spec: RequestSpec, fn: (o: Options) => Promise<T>): Promise<Outcome<T>> {
    const repeatable = spec.repeatable ?? "idempotent";
    const deadline = Date.now() + this.#timeoutMs;
    for (let attempt = 1;; attempt++) {
      const wait = this.#bucket.reserve(deadline);
      if (wait === undefined) {
        throw new KubeError(
          "KUBE_THROTTLED",
          spec.op,
          `Cannot ${spec.op}: the client-side rate limit (${this.#qps} requests per second) ` +
            `leaves no slot within ${this.#timeoutMs} ms${
              attempt > 1 ? ` (after ${attempt - 1} attempts)` : ""
            }`,
          { attempts: attempt - 1 },
        );
      }
      if (wait > 0) await sleep(wait);
      try {
        return {
          ok: true,
          value: await fn(this.#options(deadline - Date.now(), spec.contentType)),
        };
      } catch (err) {
        if (err instanceof k8s.ApiException) {
          if (err.code === 404) return { ok: false, status: 404 };
          // Our earlier attempt created it, and only its reply was lost.
          if (err.code === 409 && repeatable === "create" && attempt > 1) {
            return { ok: false, status: 409 };
          }
        }
        const failure = attemptFailure(err);
        const now = Date.now();
        const delay = planRetry({
          failure,
          repeatable,
          attempt,
          policy: this.#retry,
          now,
          deadline,
        });
        if (delay === undefined) throw this.error(spec.op, err, attempt);
        this.#log.debug("retrying a Kubernetes API request", {
          op: spec.op,
          attempt,
          ...(failure.status ? { status: failure.status } : {}),
          retryInMs: delay,
        });
        await sleep(delay);
      }
    }
  }

  /** `request` for an operation that must succeed (404 is an error too). */
  async call<T>(spec: RequestSpec, fn: (o: Options) => Promise<T>): Promise<T> {
    const out = await this.request(spec, fn);
    if (out.ok) return out.value;
    throw new KubeError(
      "KUBE_API_ERROR",
      spec.op,
      `Kubernetes API refused to ${spec.op}: ${out.status} ${
        out.status === 404 ? "NotFound: it does not exist" : "AlreadyExists"
      }`,
      { status: out.status, reason: out.status === 404 ? "NotFound" : "AlreadyExists" },
    );
  }

  /** `request` for a read: undefined when the object does not exist. */
  async read<T>(spec: RequestSpec, fn: (o: Options) => Promise<T>): Promise<T | undefined> {
    const out = await this.request(spec, fn);
    return out.ok ? out.value : undefined;
  }

  error(op: string, err: unknown, attempts = 1): KubeError {
    if (err instanceof KubeError) return err;
    const after = attempts > 1 ? ` (after ${attempts} attempts)` : "";
    const extra = { attempts };
    const httpStatus = err instanceof k8s.ApiException
      ? err.code
      : typeof (err as { statusCode?: unknown })?.statusCode === "number"
      ? (err as { statusCode: number }).statusCode
      : undefined;
    if (httpStatus !== undefined) {
      const status = err instanceof k8s.ApiException ? parseStatusBody(err.body) : undefined;
      const text = status?.message ??
        (httpStatus === 401
          ? "the credentials were rejected (token or client certificate)"
          : `HTTP ${httpStatus}`);
      return new KubeError(
        "KUBE_API_ERROR",
        op,
        `Kubernetes API refused to ${op}: ${httpStatus}${
          status?.reason ? ` ${status.reason}` : ""
        }: ${text}${after}`,
        { status: httpStatus, ...(status?.reason ? { reason: status.reason } : {}), ...extra },
      );
    }
    if (err instanceof SyntaxError) {
      return new KubeError(
        "KUBE_INVALID_REPLY",
        op,
        `The API server's reply to ${op} is not valid JSON`,
        extra,
      );
    }
    if (!isTransportError(err)) {
      // The library failed to decode what the server sent (a wrong Content-Type, a body that
      // does not fit the declared type).
      return new KubeError(
        "KUBE_INVALID_REPLY",
        op,
        `The API server's reply to ${op} cannot be read: ${errorMessage(err)}`,
        extra,
      );
    }
    const e = err as {
      name?: string;
      message?: string;
      cause?: { code?: string; message?: string };
    };
    const detail = e?.name === "TimeoutError" || e?.name === "AbortError"
      ? `no answer within ${this.#timeoutMs} ms`
      : e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
    return new KubeError(
      "KUBE_UNREACHABLE",
      op,
      `Cannot reach the Kubernetes API server at "${this.#server}" to ${op}: ${detail}${after}`,
      extra,
    );
  }
}
