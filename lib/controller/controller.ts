/**
 * The controller's run loop: campaign for the Lease (or not, with leader election off), then while
 * leading run a pass every `syncPeriodMs` (or when kicked) — v-pool reconcile with namespace
 * auto-assign (vpool.ts, autoassign.ts) — until stopped or leadership is lost. Passes never overlap. `/healthz` answers
 * while the process runs; `/readyz` when the last pass ran (or when another replica leads);
 * `/metrics` serves metrics.ts.
 */
import { sleep } from "../sleep.ts";
import { errorMessage } from "../errors.ts";
import { startManageServer } from "../observe/mod.ts";
import type { Logger } from "../log.ts";
import { type LeaderElector } from "./lease.ts";
import type { Kicker } from "./watch.ts";
import type { ControllerMetrics } from "./metrics.ts";
import type { ReconcileDeps } from "./types.ts";
import { reconcileVxNetPool } from "./vpool.ts";

const MIN_PASS_GAP_MS = 1000;

export interface RunOptions {
  deps: ReconcileDeps;
  /** Cuts the wait between passes short (watch events); without it passes are periodic only. */
  kicker?: Kicker;
  metrics: ControllerMetrics;
  logger: Logger;
  syncPeriodMs: number;
  /** Undefined: leader election off (one replica only). */
  elector?: LeaderElector;
  cooldownMs?: number;
}

export interface PassOutcome {
  ready: boolean;
  present: boolean;
  problems: string[];
}

/** One pass: reconcile `v-pool`, then auto-assign. Errors are logged and counted, not thrown. */
export async function runPass(o: RunOptions, signal?: AbortSignal): Promise<PassOutcome> {
  const end = o.metrics.passDuration.startTimer();
  try {
    const r = await reconcileVxNetPool(o.deps, {
      logger: o.logger,
      observer: o.metrics.observer,
      ...(o.cooldownMs !== undefined ? { cooldownMs: o.cooldownMs } : {}),
      ...(signal ? { signal } : {}),
    });
    o.metrics.reconciles.inc({ result: !r.present ? "absent" : r.ready ? "ready" : "not_ready" });
    const a = r.autoAssign;
    if (a?.written) o.metrics.autoAssigned.inc(a.changes.length);
    o.metrics.namespacesWithoutBlock.set(a?.starved.length ?? 0);
    return { ready: r.ready, present: r.present, problems: r.problems };
  } catch (err) {
    o.metrics.reconciles.inc({ result: "error" });
    o.logger.warn("reconcile pass failed; retrying next period", { error: errorMessage(err) });
    return { ready: false, present: false, problems: [errorMessage(err)] };
  } finally {
    end();
  }
}

export interface RunningController {
  /** Why it ended: "stopped" (signal) or "lost" (leadership lost; the process should exit). */
  readonly done: Promise<"stopped" | "lost">;
  readonly manageAddr: string;
  readonly passes: number;
}

/** Runs until `stop` aborts (or leadership is lost). */
export function runController(
  o: RunOptions & { manageAddr: string; stop: AbortSignal },
): RunningController {
  let passes = 0;
  let lastPassOk = false;
  // A standby replica is ready: it serves as soon as it takes the lease.
  const manage = startManageServer(o.manageAddr, {
    metrics: o.metrics.registry,
    logger: o.logger,
    readiness: () =>
      lastPassOk || (o.elector !== undefined && !o.elector.leading)
        ? { ready: true, detail: "" }
        : { ready: false, detail: "first pass not done" },
  });
  const loop = async (signal: AbortSignal) => {
    o.metrics.leader.set(1);
    try {
      while (!signal.aborted) {
        await runPass(o, signal);
        passes++;
        lastPassOk = true;
        if (o.kicker) {
          // Kicks come in bursts (block writes under pod churn): at most one pass a second.
          const gap = Math.min(MIN_PASS_GAP_MS, o.syncPeriodMs);
          await sleep(gap, signal);
          await o.kicker.wait(o.syncPeriodMs - gap, signal);
        } else {
          await sleep(o.syncPeriodMs, signal);
        }
      }
    } finally {
      o.metrics.leader.set(0);
    }
  };
  const done = (async () => {
    try {
      if (!o.elector) {
        await loop(o.stop);
        return "stopped" as const;
      }
      return await o.elector.run(loop, o.stop);
    } finally {
      await manage.close();
    }
  })();
  return {
    done,
    get manageAddr() {
      return manage.addr;
    },
    get passes() {
      return passes;
    },
  };
}
