/**
 * Retry delays for IaaS calls: exponential growth with "equal jitter" (half fixed, half random),
 * so many nodes retrying after the same outage spread out, yet no retry fires immediately.
 */

export interface RetryPolicy {
  /** Delay scale for transport errors and ret_code 5000/5100. */
  baseMs: number;
  /** Upper bound of any single delay. */
  capMs: number;
  /** Delay scale for quota/throttling (2500): slower, since retrying fast only burns quota. */
  quotaBaseMs: number;
  /** How many times a call is retried after 2500 before the error surfaces. */
  quotaRetries: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  baseMs: 200,
  capMs: 10_000,
  quotaBaseMs: 1_000,
  quotaRetries: 3,
};

/**
 * Delay before retry number `retry` (1 for the first retry): a value in
 * `[d/2, d]` where `d = min(capMs, baseMs * 2^(retry-1))`. `random` returns [0, 1).
 */
export function backoffDelay(
  retry: number,
  o: { baseMs: number; capMs: number; random: () => number },
): number {
  const exp = Math.min(o.capMs, o.baseMs * 2 ** Math.max(0, retry - 1));
  const half = exp / 2;
  return Math.round(half + o.random() * half);
}
