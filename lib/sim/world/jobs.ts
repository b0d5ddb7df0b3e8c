/**
 * Asynchronous jobs: how an attach/detach/VIP/security-group call becomes a job (timing and
 * failure decided at creation by the planner, busy marks on the NICs/VIPs it touches), the job's
 * reported status, which jobs are due, and finishing one: on success its effect is applied to the
 * tables, on failure nothing changes; busy marks are cleared either way.
 */
import { notFound } from "../errors.ts";
import { dropBindings } from "./tags.ts";
import { matchAny, sortNewest, type Tables } from "./tables.ts";
import type { Job, JobEffect, JobStatus, Nic, Vip } from "./types.ts";

export function startJob(w: Tables, o: {
  action: string;
  owner: string;
  resourceIds: string[];
  directive: Record<string, unknown>;
  effect: JobEffect;
  nics?: Nic[];
  vips?: Vip[];
}): Job {
  const plan = w.planJob(o.action);
  const t = w.now();
  const job: Job = {
    id: w.newId("j-", 8),
    action: o.action,
    owner: o.owner,
    createMs: t,
    pendingUntilMs: t + Math.min(plan.pendingMs, plan.totalMs),
    dueMs: t + plan.totalMs,
    willFail: plan.fail,
    final: null,
    finalMs: null,
    applying: false,
    resourceIds: o.resourceIds,
    directive: o.directive,
    errorCodes: "",
    effect: o.effect,
  };
  w.jobs.set(job.id, job);
  for (const n of o.nics ?? []) n.jobId = job.id;
  for (const v of o.vips ?? []) v.jobId = job.id;
  return job;
}

export function jobStatus(w: Tables, job: Job, now = w.now()): JobStatus {
  if (job.final) return job.final;
  return now < job.pendingUntilMs ? "pending" : "working";
}

/** Jobs whose time is up and whose effect has not been applied or claimed yet. */
export function dueJobs(w: Tables, now = w.now()): Job[] {
  return [...w.jobs.values()]
    .filter((j) => j.final === null && !j.applying && j.dueMs <= now)
    .sort((a, b) => a.dueMs - b.dueMs || a.createMs - b.createMs);
}

/** Earliest due time of an unfinished job (for the server's timer). */
export function nextDueMs(w: Tables): number | undefined {
  let min: number | undefined;
  for (const j of w.jobs.values()) {
    if (j.final === null && !j.applying && (min === undefined || j.dueMs < min)) min = j.dueMs;
  }
  return min;
}

/**
 * Completes a job: on success its effect is applied to the tables; on failure (planned by the
 * fault knob, or `ok: false` from the backend) nothing changes. Busy marks are cleared.
 */
export function finishJob(w: Tables, jobId: string, o: { ok: boolean; errorCode?: string }): Job {
  const job = w.jobs.get(jobId);
  if (!job) throw notFound(jobId);
  if (job.final) return job;
  const t = w.now();
  const ok = o.ok && !job.willFail;
  const e = job.effect;
  if (ok) {
    if (e.kind === "attach") {
      for (const id of e.nicIds) {
        const nic = w.nics.get(id);
        if (!nic) continue;
        nic.status = "in-use";
        nic.instanceId = e.instanceId;
        nic.sequence = lowestFreeSequence(w, e.instanceId);
        nic.statusMs = t;
      }
    } else if (e.kind === "detach") {
      for (const id of e.nicIds) {
        const nic = w.nics.get(id);
        if (!nic) continue;
        nic.status = "available";
        nic.instanceId = "";
        nic.sequence = 0;
        nic.statusMs = t;
      }
    } else if (e.kind === "release_vips") {
      for (const id of e.vipIds) {
        w.vips.delete(id);
        dropBindings(w, "vip", id);
      }
    } else if (e.kind === "apply_sg") {
      const sg = w.securityGroups.get(e.securityGroupId);
      if (sg) sg.appliedVersion = sg.version;
      for (const id of e.instanceIds) {
        const inst = w.instances.get(id);
        if (inst) inst.securityGroupId = e.securityGroupId;
      }
    }
  }
  for (const n of w.nics.values()) if (n.jobId === job.id) n.jobId = null;
  for (const v of w.vips.values()) if (v.jobId === job.id) v.jobId = null;
  job.final = ok ? "successful" : "failed";
  job.finalMs = t;
  job.applying = false;
  if (!ok) job.errorCodes = o.errorCode ?? "5000";
  return job;
}

/** Marks a due job as being applied by an asynchronous backend (so it is not claimed twice). */
export function claimJob(w: Tables, jobId: string): Job {
  const job = w.jobs.get(jobId);
  if (!job) throw notFound(jobId);
  job.applying = true;
  return job;
}

/** Finishes every due job at once (no backend): the pure model's notion of time passing. */
export function settle(w: Tables, now = w.now()): Job[] {
  return dueJobs(w, now).map((j) => finishJob(w, j.id, { ok: true }));
}

/** The attach sequence a new NIC on the instance gets: the lowest one not taken. */
function lowestFreeSequence(w: Tables, instanceId: string): number {
  const taken = new Set<number>();
  for (const n of w.nics.values()) if (n.instanceId === instanceId) taken.add(n.sequence);
  let s = 1;
  while (taken.has(s)) s++;
  return s;
}

export function describeJobs(
  w: Tables,
  owner: string,
  f: { ids: string[]; statuses: string[] },
): Job[] {
  const now = w.now();
  return sortNewest(
    [...w.jobs.values()].filter((j) =>
      j.owner === owner && matchAny(f.ids, j.id) && matchAny(f.statuses, jobStatus(w, j, now))
    ),
  );
}
