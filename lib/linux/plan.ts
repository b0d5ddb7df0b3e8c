/**
 * Plans: datapath changes computed as plain data, then applied in as few spawns as possible.
 *
 * A plan is an ordered list of steps; each step targets one namespace and is one spawn:
 * an `ip -batch -` script or one `sysctl -w` call. Every ip line may carry the lines that revert
 * it (`undo`). `applyPlan` runs the steps in order; if one fails it reverts, newest first, every
 * line that was applied (the failing batch's earlier lines included; all of them when ip does not
 * say which line failed, since undo lines forgive "not found") and rethrows, so a failed setup
 * leaves no partial state. `runTeardownPlan` runs steps with delete semantics instead:
 * "not found" is success, a missing namespace skips its steps, and real failures are collected.
 *
 * Sysctl writes are never undone: they are node-wide knobs that are safe to leave set.
 *
 * With a `NodeState` (the daemon's), the node's ip steps read the node back at their end in the
 * same process and keep that reading for the next plan; a failure drops it (node_state.ts).
 */
import { type Logger, nullLogger } from "../log.ts";
import { ExecError, type Runner } from "./exec.ts";
import {
  classifyError,
  DatapathSetupError,
  DatapathTeardownError,
  missingNetnsOf,
  NetnsNotFoundError,
  parseBatchFailure,
} from "./errors.ts";
import {
  type NsState,
  readNsState,
  runIpBatch,
  runIpBatchForgiving,
  runIpBatchReading,
} from "./ip.ts";
import type { NodeState } from "./node_state.ts";
import { type ProcSys, type SysctlValues, writeSysctls } from "./sysctl.ts";

/** Side effects of the datapath. */
export interface LinuxDeps {
  runner: Runner;
  logger?: Logger;
  /** Sysctls of this process's own namespace without a spawn (absent: `sysctl -w`). */
  procSys?: ProcSys;
}

/** Which namespace a step targets: the node's (hostnic's own, or a named test namespace) or the pod's. */
export type NsRole = "node" | "pod";

/** Lines that revert an op, run in `netns` (which may differ from the op's own namespace). */
export interface UndoSpec {
  netns: string | undefined;
  lines: string[];
}

/** One `ip -batch` line and how to revert it. */
export interface IpOp {
  line: string;
  undo?: UndoSpec;
  /**
   * The name this op gives a link in the node's namespace (a released NIC's old name). Teardowns
   * that claim the same name run one after the other (`NodeOptions.names`).
   */
  claims?: string;
}

/** Node link names a plan gives out (see `IpOp.claims`), sorted, each once. */
export function planClaims(plan: Plan): string[] {
  const names = new Set<string>();
  for (const s of plan.steps) {
    if (s.kind !== "ip") continue;
    for (const o of s.ops) if (o.claims !== undefined) names.add(o.claims);
  }
  return [...names].sort();
}

export interface IpStep {
  kind: "ip";
  role: NsRole;
  netns: string | undefined;
  ops: IpOp[];
}

export interface SysctlStep {
  kind: "sysctl";
  role: NsRole;
  netns: string | undefined;
  values: SysctlValues;
}

export type PlanStep = IpStep | SysctlStep;

export interface Plan {
  /** What the plan does, for messages: e.g. `nic-mode pod 172.22.1.5`. */
  what: string;
  steps: PlanStep[];
}

/** A readable rendering (`node$ ip link add ...`), for logs and unit tests. */
export function formatPlan(plan: Plan): string[] {
  return plan.steps.flatMap((s) =>
    s.kind === "ip"
      ? s.ops.map((o) => `${s.role}: ${o.line}`)
      : Object.keys(s.values).length
      ? [`${s.role}: sysctl ${Object.entries(s.values).map(([k, v]) => `${k}=${v}`).join(" ")}`]
      : []
  );
}

/** All ip lines of a plan's steps for `role`, in order. */
export function planLines(plan: Plan, role: NsRole): string[] {
  return plan.steps.flatMap((s) =>
    s.kind === "ip" && s.role === role ? s.ops.map((o) => o.line) : []
  );
}

/** Groups consecutive undo specs that target the same namespace into one batch each. */
function undoBatches(specs: UndoSpec[]): UndoSpec[] {
  const out: UndoSpec[] = [];
  for (const s of specs) {
    const last = out[out.length - 1];
    if (last && last.netns === s.netns) last.lines.push(...s.lines);
    else out.push({ netns: s.netns, lines: [...s.lines] });
  }
  return out;
}

/**
 * Applies `plan`; on failure reverts what it applied and throws `NetnsNotFoundError` when a
 * namespace it needed does not exist, else `DatapathSetupError` (its cause is the failing
 * `ExecError`). Spawns: one per non-empty step.
 */
export async function applyPlan(
  deps: LinuxDeps,
  plan: Plan,
  opts: { state?: NodeState } = {},
): Promise<{ node?: NsState }> {
  const logger = deps.logger ?? nullLogger;
  const applied: UndoSpec[] = [];
  let node: NsState | undefined;
  try {
    for (const step of plan.steps) {
      if (step.kind === "sysctl") {
        await writeSysctls(deps, step.values, { netns: step.netns });
        continue;
      }
      try {
        const lines = step.ops.map((o) => o.line);
        if (opts.state && step.role === "node" && lines.length > 0) {
          const ticket = opts.state.begin();
          node = await runIpBatchReading(deps, lines, { netns: step.netns });
          opts.state.record(ticket, node);
        } else {
          await runIpBatch(deps, lines, { netns: step.netns });
        }
        for (const op of step.ops) if (op.undo) applied.push(op.undo);
      } catch (err) {
        // Lines before the failing one were applied. When ip does not say which line failed
        // (a few verbs exit at once), assume all were: undo lines forgive "not found".
        const failed = err instanceof ExecError ? parseBatchFailure(err.stderr) : undefined;
        const done = failed ? failed.line - 1 : step.ops.length;
        for (const op of step.ops.slice(0, done)) if (op.undo) applied.push(op.undo);
        throw err;
      }
    }
  } catch (err) {
    await revert(deps, applied, plan.what, logger);
    opts.state?.invalidate();
    if (classifyError(err) === "netns-missing") {
      throw new NetnsNotFoundError(missingNetnsOf(err) ?? "(unknown)", { cause: err });
    }
    throw new DatapathSetupError(plan.what, err);
  }
  return node ? { node } : {};
}

async function revert(deps: LinuxDeps, applied: UndoSpec[], what: string, logger: Logger) {
  for (const batch of undoBatches([...applied].reverse())) {
    try {
      const res = await runIpBatchForgiving(deps, batch.lines, {
        netns: batch.netns,
        forgiveExisting: true,
      });
      for (const f of res.failures) logger.warn("undo step failed", { what, failure: f });
    } catch (err) {
      logger.warn("undo failed", { what, error: err instanceof Error ? err.message : String(err) });
    }
  }
}

/**
 * Runs a teardown plan: every step runs even if an earlier one failed; "not found" and missing
 * namespaces are success; anything else is reported at the end as `DatapathTeardownError`.
 * With a `NodeState`, returns the node's state after its step (when the step got to read it).
 */
export async function runTeardownPlan(
  deps: LinuxDeps,
  plan: Plan,
  opts: { state?: NodeState } = {},
): Promise<{ node?: NsState }> {
  const failures: string[] = [];
  let node: NsState | undefined;
  let unread = false;
  for (const step of plan.steps) {
    if (step.kind === "sysctl") continue;
    const read = opts.state !== undefined && step.role === "node";
    // Even with nothing to delete there, the node is read back: the plan may come from a kept
    // reading that missed what there is (the caller checks the reading).
    if (step.ops.length === 0 && !read) continue;
    const ticket = read ? opts.state!.begin() : 0;
    const res = step.ops.length === 0
      ? { failures: [], state: await readNsState(deps, step.netns) }
      : await runIpBatchForgiving(deps, step.ops.map((o) => o.line), {
        netns: step.netns,
        read,
      });
    if (read && res.state) {
      node = res.state;
      opts.state!.record(ticket, res.state);
    } else if (read) {
      unread = true;
    }
    failures.push(...res.failures.map((f) => `${step.role}: ${f}`));
  }
  // A step that changed the node without reading it back leaves the kept reading stale.
  if (failures.length > 0 || unread) opts.state?.invalidate();
  if (failures.length > 0) throw new DatapathTeardownError(plan.what, failures);
  return node ? { node } : {};
}
