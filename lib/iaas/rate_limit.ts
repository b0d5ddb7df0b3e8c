/**
 * Token bucket for outgoing API calls: `burst` calls may go at once, then `perSecond` on average.
 * The clock and the sleep are injected so the arithmetic is testable without waiting.
 */

export interface RateLimit {
  /** Sustained calls per second (> 0). */
  perSecond: number;
  /** Bucket size: calls allowed back to back after an idle period (>= 1). */
  burst: number;
}

export interface TokenBucketDeps {
  /** Milliseconds, monotonic enough for intervals. */
  now(): number;
  /** Resolves after `ms`, or rejects when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export class TokenBucket {
  readonly limit: RateLimit;
  #deps: TokenBucketDeps;
  #tokens: number;
  #last: number;

  constructor(limit: RateLimit, deps: TokenBucketDeps = realClock) {
    if (!(limit.perSecond > 0) || !(limit.burst >= 1)) {
      throw new RangeError(
        `Rate limit needs perSecond > 0 and burst >= 1, got "${limit.perSecond}" and "${limit.burst}"`,
      );
    }
    this.limit = limit;
    this.#deps = deps;
    this.#tokens = limit.burst;
    this.#last = deps.now();
  }

  #refill(): void {
    const now = this.#deps.now();
    const elapsed = Math.max(0, now - this.#last);
    this.#last = now;
    this.#tokens = Math.min(
      this.limit.burst,
      this.#tokens + (elapsed * this.limit.perSecond) / 1000,
    );
  }

  /**
   * Takes a token if one is available and returns 0; otherwise reserves the next one (the count
   * goes negative, so concurrent callers queue up fairly) and returns how long to wait for it.
   */
  reserve(): number {
    this.#refill();
    this.#tokens -= 1;
    if (this.#tokens >= 0) return 0;
    return Math.ceil((-this.#tokens * 1000) / this.limit.perSecond);
  }

  /** Waits until a token is ours. */
  async acquire(signal?: AbortSignal): Promise<void> {
    const wait = this.reserve();
    if (wait > 0) await this.#deps.sleep(wait, signal);
  }

  /** Tokens currently available (may be negative while callers wait). */
  available(): number {
    this.#refill();
    return this.#tokens;
  }
}

/** Real time: `performance.now()` and an abortable timer. */
export const realClock: TokenBucketDeps = {
  now: () => performance.now(),
  sleep: abortableSleep,
};

/** A timer that rejects with the signal's reason on abort and never outlives it. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(id);
      reject(signal?.reason);
    };
    const id = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
