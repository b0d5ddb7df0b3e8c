/**
 * The request discipline of `HttpKube` (client.ts), as small pure parts: a token bucket for
 * client-side rate limiting, which failures are worth retrying, the jittered exponential backoff
 * and the reading of `Retry-After`. No npm package; the clock and randomness come in as functions
 * so the arithmetic is tested without waiting.
 *
 * Invariants:
 * - The bucket never lets more than `burst` requests through at once and `qps` per second on
 *   average; a reservation that would start past the caller's deadline is refused and takes no
 *   token.
 * - A retry is never planned past the request's deadline, nor beyond `maxAttempts` attempts.
 * - `Retry-After` is honoured (seconds or an HTTP date) but capped, so a bad header cannot stall
 *   the caller.
 */

/** Client-side rate limit of non-watch requests (client-go's defaults: 5 QPS, burst 10). */
export interface RateLimit {
  qps: number;
  burst: number;
}

export const DEFAULT_RATE_LIMIT: RateLimit = { qps: 5, burst: 10 };

/** Retries of requests that may be repeated safely. */
export interface RetryPolicy {
  /** Attempts in all, the first included (1 = no retry). */
  maxAttempts: number;
  /** First backoff; doubles per attempt. */
  baseMs: number;
  /** Largest backoff between two attempts. */
  maxMs: number;
  /** Largest wait a `Retry-After` header can ask for. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 4,
  baseMs: 200,
  maxMs: 5_000,
  maxRetryAfterMs: 10_000,
};

/** A token bucket; `reserve` hands out start times instead of sleeping itself. */
export class TokenBucket {
  readonly #qps: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  constructor(limit: RateLimit, now: () => number = Date.now) {
    if (!(limit.qps > 0) || !(limit.burst >= 1)) {
      throw new RangeError(
        `Invalid Kubernetes client rate limit qps=${limit.qps} burst=${limit.burst}: ` +
          "qps must be > 0 and burst ≥ 1",
      );
    }
    this.#qps = limit.qps;
    this.#burst = Math.floor(limit.burst);
    this.#now = now;
    this.#tokens = this.#burst;
    this.#at = now();
  }

  /**
   * Takes one token and returns how long to wait before using it (0 = now), or undefined when
   * that wait would end after `deadline` (nothing is taken then).
   */
  reserve(deadline = Infinity): number | undefined {
    const now = this.#now();
    // Tokens may go negative: each negative one is a caller already queued for a later slot.
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) / 1000) * this.#qps);
    this.#at = now;
    const wait = this.#tokens >= 1 ? 0 : ((1 - this.#tokens) / this.#qps) * 1000;
    if (now + wait > deadline) return undefined;
    this.#tokens -= 1;
    return Math.ceil(wait);
  }
}

/** What the retry decision needs to know of a failed attempt. */
export interface AttemptFailure {
  /** HTTP status when the server answered. */
  status?: number;
  /** The connection failed or timed out (no answer). */
  transport?: boolean;
  /** `Retry-After` header value, as sent. */
  retryAfter?: string;
}

/**
 * How safe a request is to repeat:
 * - `idempotent`: GET/LIST and patches that set absolute values; retried on 429, 5xx and
 *   transport errors.
 * - `create`: a create with a name chosen by the client; retried like `idempotent`, and the
 *   caller treats 409 AlreadyExists on a retry as its earlier attempt having landed.
 * - `once`: anything else; retried only on 429 (the server refused it before acting).
 */
export type Repeatable = "idempotent" | "create" | "once";

/** Whether the failure is one a later attempt may not meet. */
export function isRetryable(f: AttemptFailure, repeatable: Repeatable): boolean {
  if (f.status === 429) return true;
  if (repeatable === "once") return false;
  if (f.transport) return true;
  return f.status !== undefined && f.status >= 500 && f.status !== 501;
}

/** `Retry-After` (delta seconds or an HTTP date) in ms from `now`; undefined when unusable. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (!/[a-z]/i.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * The wait before attempt `attempt + 1` (attempt counts from 1), or undefined when there is to be
 * no further attempt: not retryable, out of attempts, or the wait would pass `deadline`.
 * Backoff is "equal jitter": half of the exponential step fixed, half random, so a fleet of
 * clients does not retry in step. `Retry-After`, when larger, wins (capped).
 */
export function planRetry(o: {
  failure: AttemptFailure;
  repeatable: Repeatable;
  attempt: number;
  policy: RetryPolicy;
  now: number;
  deadline: number;
  random?: () => number;
}): number | undefined {
  const { policy } = o;
  if (!isRetryable(o.failure, o.repeatable) || o.attempt >= policy.maxAttempts) return undefined;
  const step = Math.min(policy.maxMs, policy.baseMs * 2 ** (o.attempt - 1));
  let wait = step / 2 + (o.random ?? Math.random)() * (step / 2);
  const asked = parseRetryAfter(o.failure.retryAfter, o.now);
  if (asked !== undefined) wait = Math.max(wait, Math.min(asked, policy.maxRetryAfterMs));
  wait = Math.ceil(wait);
  // The next attempt needs some time of its own to be worth making.
  if (o.now + wait + 50 > o.deadline) return undefined;
  return wait;
}
