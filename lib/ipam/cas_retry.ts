/**
 * Compare-and-swap discipline of the block allocator: the counters metrics read, and the retry of
 * an operation that lost a race (a `ConflictError` or `AlreadyExistsError` from the store), with
 * equal-jitter exponential backoff and a bound (`IpamRetryError` after `maxAttempts`).
 */
import { AlreadyExistsError, ConflictError, IpamRetryError } from "./errors.ts";

/** Counters for metrics; the allocator only increments them. */
export class IpamCounters {
  /** Writes refused because someone else changed the object first. */
  conflicts = 0;
  /** Attempts repeated after a conflict. */
  retries = 0;
  /** Operations that gave up after `maxAttempts`. */
  exhaustedRetries = 0;
  /** Blocks claimed for a node (existing unclaimed ones or newly created). */
  claims = 0;
  /** Addresses taken from another node's block. */
  borrows = 0;
  /** Addresses handed out while still inside their cooldown. */
  coolingReuses = 0;
  allocations = 0;
  releases = 0;
}

export interface CasRetryOptions {
  maxAttempts: number;
  /** Retry delay: equal jitter over min(capMs, baseMs·2^(n-1)). */
  backoff: { baseMs: number; capMs: number };
  counters: IpamCounters;
  sleep: (ms: number) => Promise<void>;
  /** [0, 1), for the jitter. */
  random: () => number;
}

/** Runs `attempt` until it does not lose a race, at most `maxAttempts` times. */
export async function casRetry<T>(
  operation: string,
  o: CasRetryOptions,
  attempt: () => Promise<T>,
): Promise<T> {
  for (let n = 1;; n++) {
    try {
      return await attempt();
    } catch (e) {
      if (!(e instanceof ConflictError || e instanceof AlreadyExistsError)) throw e;
      o.counters.conflicts++;
      if (n >= o.maxAttempts) {
        o.counters.exhaustedRetries++;
        throw new IpamRetryError(operation, n, { cause: e });
      }
      o.counters.retries++;
      const exp = Math.min(o.backoff.capMs, o.backoff.baseMs * 2 ** (n - 1));
      await o.sleep(Math.round(exp / 2 + o.random() * exp / 2));
    }
  }
}
