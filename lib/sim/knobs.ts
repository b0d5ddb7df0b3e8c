/**
 * Fault and timing knobs of the simulator. They can be given in the scenario (`knobs:`), changed
 * in process (`control.setKnobs`) or over HTTP (`POST /_sim/knobs`); every path goes through the
 * same zod schema, so a bad value is rejected with the offending key named.
 */
import { z } from "zod";
import { ConfigError } from "../errors.ts";

const rate = z.number().min(0).max(1);
const retCode = z.number().int().min(1).max(9999);

export const ErrorKnobSchema = z.strictObject({
  /** Probability in [0, 1] that a call of this action fails with `code`. */
  rate,
  code: retCode,
  message: z.string().min(1).optional(),
});

export const KnobsSchema = z.strictObject({
  /** Seed of the fault/latency PRNG streams (ids use the scenario seed). */
  seed: z.number().int().min(0).max(0xffffffff),
  /** Job duration: a fixed number of ms, or [min, max] drawn per job. 0 = done at next look. */
  jobLatencyMs: z.union([
    z.number().min(0).max(3_600_000),
    z.tuple([z.number().min(0).max(3_600_000), z.number().min(0).max(3_600_000)]).refine(
      ([a, b]) => a <= b,
      "min must not exceed max",
    ),
  ]),
  /** Part of a job's duration it reports `pending` (the rest is `working`), capped at 200 ms. */
  jobPendingShare: rate,
  /** Per action (or `*` for all): inject an API error before the action runs. */
  errors: z.record(z.string().min(1), ErrorKnobSchema),
  /**
   * Per action (or `*`): hold each call this many ms before it runs (a slow cloud). Closing the
   * simulator ends the held calls without a reply.
   */
  replyDelayMs: z.record(z.string().min(1), z.number().min(0).max(3_600_000)),
  /** Per action (or `*`): probability that an asynchronous action's job ends `failed`. */
  jobFailureRate: z.record(z.string().min(1), rate),
  /** Probability that a request's connection is aborted without a complete reply. */
  transportFailureRate: rate,
  /**
   * When an aborted request still takes effect: `before` (never), `after` (always: the reply is
   * lost, the ambiguous case a client must reconcile), `mixed` (half of each).
   */
  transportFailureMode: z.enum(["before", "after", "mixed"]),
  /** Token bucket per access key; an empty bucket answers ret_code 2500. `null` = no limit. */
  rateLimit: z.strictObject({
    perSecond: z.number().positive().max(1_000_000),
    burst: z.number().int().min(1).max(1_000_000),
  }).nullable(),
  /** Allowed `time_stamp` skew in seconds (either direction); beyond it → 1300. */
  timeWindowSec: z.number().min(0).max(86_400 * 366),
  /** DescribeJobs with an unknown job id: 2100 (`error`, per the docs) or an empty set. */
  unknownJob: z.enum(["error", "empty"]),
  /** Also accept a signature made over the path with its trailing slash toggled. */
  lenientPath: z.boolean(),
});

export type Knobs = z.infer<typeof KnobsSchema>;
export type ErrorKnob = z.infer<typeof ErrorKnobSchema>;

export const PartialKnobsSchema = KnobsSchema.partial();

export const DEFAULT_KNOBS: Readonly<Knobs> = Object.freeze({
  seed: 1,
  // Real jobs take seconds; this keeps demos lively while tests usually set 0.
  jobLatencyMs: [300, 1200] as [number, number],
  jobPendingShare: 0.2,
  errors: {},
  replyDelayMs: {},
  jobFailureRate: {},
  transportFailureRate: 0,
  transportFailureMode: "mixed" as const,
  rateLimit: null,
  timeWindowSec: 60,
  unknownJob: "error" as const,
  lenientPath: false,
});

/** Validates a partial knob set from outside (HTTP body, scenario) and names the bad key. */
export function parseKnobs(raw: unknown, where = "knobs"): Partial<Knobs> {
  const res = PartialKnobsSchema.safeParse(raw);
  if (!res.success) {
    const issue = res.error.issues[0];
    const key = [where, ...issue.path.map(String)].join(".");
    throw new ConfigError(key, issue.message);
  }
  return res.data;
}

export function mergeKnobs(base: Readonly<Knobs>, patch: Partial<Knobs>): Knobs {
  const out = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}
