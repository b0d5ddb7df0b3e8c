/**
 * Waiting for asynchronous actions (AttachNics, DetachNics, AllocateVips, …). One DescribeJobs
 * call covers all pending jobs (up to 100 per call); the poll interval starts short because most
 * jobs finish in seconds, and grows ×1.5 to a cap so a slow cloud is not hammered.
 * `successful` is success; `failed` and `done with failure` are failures; a deadline bounds it all.
 */
import { nullLogger } from "../log.ts";
import type { Logger } from "../log.ts";
import { IaasJobError, IaasJobTimeoutError, isQuota, isRetryable } from "./errors.ts";
import type { IaasClient } from "./api.ts";
import { MAX_PAGE } from "./paginate.ts";
import { abortableSleep } from "./rate_limit.ts";
import type { Job } from "./types.ts";

export interface WaitJobsDeps {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface WaitJobsOptions {
  timeoutMs: number;
  /** First poll delay. Default 100 ms. */
  initialIntervalMs?: number;
  /** Poll delay cap. Default 5000 ms. */
  maxIntervalMs?: number;
  /** Growth per poll. Default 1.5. */
  factor?: number;
  signal?: AbortSignal;
  logger?: Logger;
  deps?: Partial<WaitJobsDeps>;
}

/**
 * Resolves with the final job records once every job is `successful`. Throws `IaasJobError` for
 * the first job seen failing (or missing), `IaasJobTimeoutError` at the deadline. DescribeJobs
 * errors worth retrying (transport, 5000/5100, 2500) are tolerated until the deadline.
 */
export async function waitJobs(
  client: Pick<IaasClient, "describeJobs">,
  jobIds: readonly string[],
  o: WaitJobsOptions,
): Promise<Map<string, Job>> {
  const deps: WaitJobsDeps = {
    now: () => performance.now(),
    sleep: abortableSleep,
    ...o.deps,
  };
  const log = o.logger ?? nullLogger;
  const factor = o.factor ?? 1.5;
  const maxInterval = o.maxIntervalMs ?? 5000;
  let interval = o.initialIntervalMs ?? 100;
  const deadline = deps.now() + o.timeoutMs;
  const done = new Map<string, Job>();
  const lastStatus: Record<string, string> = {};
  const pending = new Set(jobIds);
  for (const id of pending) lastStatus[id] = "unknown";

  while (pending.size > 0) {
    try {
      for (const chunk of chunks([...pending], MAX_PAGE)) {
        const page = await client.describeJobs({ jobs: chunk, limit: chunk.length });
        const byId = new Map(page.items.map((j) => [j.job_id, j]));
        for (const id of chunk) {
          const job = byId.get(id);
          if (!job) throw new IaasJobError({ jobId: id, jobAction: "", status: "not found" });
          lastStatus[id] = job.status;
          if (job.status === "successful") {
            pending.delete(id);
            done.set(id, job);
          } else if (job.status === "failed" || job.status === "done with failure") {
            throw new IaasJobError({ jobId: id, jobAction: job.job_action, status: job.status });
          }
        }
      }
    } catch (err) {
      if (!isRetryable(err) && !isQuota(err)) throw err;
      log.warn("Polling QingCloud jobs failed, will retry", { error: String(err) });
    }
    if (pending.size === 0) break;
    const left = deadline - deps.now();
    if (left <= 0) {
      const still: Record<string, string> = {};
      for (const id of pending) still[id] = lastStatus[id];
      throw new IaasJobTimeoutError(still, o.timeoutMs);
    }
    await deps.sleep(Math.min(interval, left), o.signal);
    interval = Math.min(maxInterval, interval * factor);
  }
  return done;
}

/** `waitJobs` for one job. */
export async function waitJob(
  client: Pick<IaasClient, "describeJobs">,
  jobId: string,
  o: WaitJobsOptions,
): Promise<Job> {
  const done = await waitJobs(client, [jobId], o);
  return done.get(jobId)!;
}

function chunks<T>(xs: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}
