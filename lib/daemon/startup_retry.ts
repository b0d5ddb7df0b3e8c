/**
 * Start-up against a QingCloud that is busy: a cluster-wide restart (a DaemonSet rollout, a zone
 * coming back) starts every node's daemon at once, and their first calls (DescribeInstances,
 * DescribeVxnets, DescribeNics) can exceed the account's API rate limit (ret_code 2500) or meet a
 * transient failure. The client's own retries (lib/iaas/transport.ts: three for 2500) do not
 * cover a limit that stays exhausted for tens of seconds, so each start-up step that calls the
 * cloud runs under `StartupRetry`:
 *
 * - transient errors (2500 throttling, 5000/5100, transport failures — also as the cause of a
 *   start-up error) are retried with exponential backoff and equal jitter, one log line per retry
 *   (the step, the attempt, the delay and the error's message, which never carries keys);
 * - meanwhile the daemon is up but not ready (`/healthz` answers, `/readyz` says what it waits
 *   for), so a liveness probe does not kill it into a CrashLoopBackOff;
 * - permanent errors (bad credentials, an unknown vxnet, no VPC) end the start at once, and so
 *   does a transient one that lasts past `maxWaitMs`, with a message naming the step.
 */
import { errorMessage, HostnicError } from "../errors.ts";
import { backoffDelay } from "../iaas/backoff.ts";
import { isQuota, isRetryable } from "../iaas/errors.ts";
import type { Logger } from "../log.ts";

export interface StartupRetryPolicy {
  /** First delay (then doubling), before jitter. */
  baseMs: number;
  /** Largest single delay. */
  capMs: number;
  /** Longest a step keeps retrying before the daemon gives up. */
  maxWaitMs: number;
}

export const DEFAULT_STARTUP_RETRY: StartupRetryPolicy = {
  baseMs: 2_000,
  capMs: 60_000,
  maxWaitMs: 30 * 60_000,
};

/** A cloud error worth waiting out: throttling or a transient failure, itself or as a cause. */
export function isTransientIaas(err: unknown): boolean {
  for (let e = err, depth = 0; e !== undefined && depth < 8; depth++) {
    if (isQuota(e) || isRetryable(e)) return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}

/** A transient error that lasted past the policy's `maxWaitMs`. */
export class StartupTimeoutError extends HostnicError {
  constructor(step: string, waitedMs: number, options?: ErrorOptions) {
    super(
      "STARTUP_CHECK_FAILED",
      `Start-up step "${step}" still failed after ${Math.round(waitedMs / 1000)} s of retries: ${
        errorMessage(options?.cause)
      }`,
      options,
    );
  }
}

export class StartupRetry {
  readonly #policy: StartupRetryPolicy;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #now: () => number;
  /** What start-up is doing or waiting for, for `/readyz`. */
  detail = "starting";
  /** Retries so far, all steps. */
  retries = 0;

  constructor(
    private readonly logger: Logger,
    o: {
      policy?: Partial<StartupRetryPolicy>;
      sleep?: (ms: number) => Promise<void>;
      random?: () => number;
      now?: () => number;
    } = {},
  ) {
    this.#policy = { ...DEFAULT_STARTUP_RETRY, ...o.policy };
    this.#sleep = o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.#random = o.random ?? Math.random;
    this.#now = o.now ?? Date.now;
  }

  /** Runs `fn` until it succeeds, fails permanently, or has failed transiently for too long. */
  async run<T>(step: string, fn: () => Promise<T>): Promise<T> {
    const started = this.#now();
    this.detail = `starting: ${step}`;
    for (let attempt = 1;; attempt++) {
      try {
        const v = await fn();
        this.detail = "starting";
        return v;
      } catch (err) {
        if (!isTransientIaas(err)) throw err;
        const waited = this.#now() - started;
        const delayMs = backoffDelay(attempt, {
          baseMs: this.#policy.baseMs,
          capMs: this.#policy.capMs,
          random: this.#random,
        });
        if (waited + delayMs > this.#policy.maxWaitMs) {
          throw new StartupTimeoutError(step, waited, { cause: err });
        }
        this.retries++;
        this.detail = `starting: ${step}: QingCloud busy, retry ${attempt} in ${
          Math.round(delayMs / 1000)
        } s`;
        this.logger.warn("QingCloud busy at start-up; retrying", {
          step,
          attempt,
          delayMs,
          err: errorMessage(err),
        });
        await this.#sleep(delayMs);
      }
    }
  }
}
