/**
 * A model of how long the daemon takes to *see* a cloud job finish. `waitJobs` (lib/iaas/jobs.ts)
 * asks DescribeJobs at once, then sleeps 100 ms, 150 ms, 225 ms … (×1.5 per poll, capped at 5 s):
 * polls fall at 0, 100, 250, 475, 812, 1319, 2078, 3217 … ms after the job started. A job of
 * latency L is therefore noticed at the first poll at or after L, not at L. The benchmarks print
 * this next to the measured cold-path latency, so the part that is polling granularity (rather
 * than hostnic's own work) is visible. Request round trips are left out of the model.
 */
import { POOL_JOB_POLL } from "../../lib/nicpool/cloud.ts";

export interface PollPolicy {
  initialMs: number;
  factor: number;
  maxMs: number;
}

/** lib/iaas/jobs.ts's defaults. */
export const DEFAULT_POLL: PollPolicy = { initialMs: 100, factor: 1.5, maxMs: 5000 };

/** The NIC pool's schedule (lib/nicpool/cloud.ts `POOL_JOB_POLL`): what the cold path sees. */
export const POOL_POLL: PollPolicy = {
  initialMs: POOL_JOB_POLL.initialIntervalMs,
  factor: POOL_JOB_POLL.factor,
  maxMs: POOL_JOB_POLL.maxIntervalMs,
};

/** When (ms after the job started) the poll that first sees a job of latency `jobMs` done falls. */
export function jobSeenAt(
  jobMs: number,
  p: PollPolicy = DEFAULT_POLL,
): { atMs: number; polls: number } {
  let t = 0;
  let interval = p.initialMs;
  let polls = 1;
  while (t < jobMs) {
    t += interval;
    interval = Math.min(p.maxMs, interval * p.factor);
    polls++;
  }
  return { atMs: t, polls };
}
