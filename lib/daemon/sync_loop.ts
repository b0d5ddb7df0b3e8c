/**
 * The daemon's sync loop: one pass every period, never two at once, the next timed from the end of
 * the last. Stopping it aborts the pass in flight (its signal) and waits for it a bounded time: a
 * pass is crash-safe at every step (what it leaves half done the next start's recovery or GC
 * finishes), so a shutdown that outlasts a slow cloud or API server is never worth more than the
 * kubelet's grace period. A pass still running after the wait is left to fail on the clients the
 * rest of the shutdown closes under it.
 */
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";

/** How long `stop()` and `settled()` wait, by default, for a pass told to abort. */
export const SYNC_STOP_GRACE_MS = 5_000;

export interface SyncLoop {
  /**
   * No pass starts after this; the one in flight is aborted and waited for at most `graceMs`.
   * Resolves `true` when no pass is left running, `false` when one outlived the wait.
   */
  stop(o?: { graceMs?: number }): Promise<boolean>;
  /** After `stop()`: waits at most `graceMs` more for a pass that outlived it; `true` once none runs. */
  settled(o?: { graceMs?: number }): Promise<boolean>;
}

export function startSyncLoop(
  periodMs: number,
  logger: Logger,
  pass: (signal: AbortSignal) => Promise<void>,
): SyncLoop {
  const abort = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> | undefined;
  const tick = () => {
    timer = undefined;
    running = pass(abort.signal).catch((err) => {
      // Failures of a pass cut short by the shutdown are the shutdown's, not news.
      if (!abort.signal.aborted) logger.warn("sync pass failed", { err: errorMessage(err) });
    }).finally(() => {
      running = undefined;
      if (!abort.signal.aborted) timer = setTimeout(tick, periodMs);
    });
  };
  const settled = async (graceMs = SYNC_STOP_GRACE_MS): Promise<boolean> => {
    const inFlight = running;
    if (!inFlight) return true;
    let wait: ReturnType<typeof setTimeout> | undefined;
    const ended = await Promise.race([
      inFlight.then(() => true),
      new Promise<boolean>((r) => (wait = setTimeout(r, graceMs, false))),
    ]);
    clearTimeout(wait);
    return ended;
  };
  timer = setTimeout(tick, periodMs);
  return {
    async stop(o = {}) {
      abort.abort(new Error("the daemon is shutting down"));
      clearTimeout(timer);
      const ended = await settled(o.graceMs);
      if (!ended) {
        logger.warn("a sync pass is still running at shutdown; closing its clients under it", {
          graceMs: o.graceMs ?? SYNC_STOP_GRACE_MS,
        });
      }
      return ended;
    },
    settled: (o = {}) => settled(o.graceMs),
  };
}
