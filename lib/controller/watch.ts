/**
 * Kicks: watches that cut the wait between two passes short when something the controller reacts
 * to changes (a namespace appears or goes, `v-pool` is edited, a block fills up or empties), as
 * upstream's informers do. They
 * carry no state: the pass re-reads everything, and the periodic pass stays the safety net for a
 * missed event. A reconnect resumes from the last resourceVersion seen (bookmarks keep it fresh):
 * a watch opened without one replays every object as ADDED, which would kick a pass per path at
 * each reconnect and send all IPAMBlocks again. Only the first watch, or one after "410 Gone",
 * starts without it.
 */
import type * as k8s from "@kubernetes/client-node";
import { errorMessage } from "../errors.ts";
import { longWatcher, watchTimeoutSeconds } from "../k8s/watch.ts";
import type { Logger } from "../log.ts";

/** Wakes the controller loop early. Kicks while a pass runs make the next wait end at once. */
export class Kicker {
  #pending = false;
  #wake?: () => void;

  kick(): void {
    this.#pending = true;
    this.#wake?.();
  }

  /** Resolves after `ms`, on a kick (also one that came before the call), or on abort. */
  wait(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (this.#pending || signal.aborted) {
        this.#pending = false;
        return resolve();
      }
      const done = () => {
        clearTimeout(t);
        signal.removeEventListener("abort", done);
        this.#wake = undefined;
        this.#pending = false;
        resolve();
      };
      const t = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
      this.#wake = done;
    });
  }
}

/** The API paths whose changes kick a pass (watch verb: see lib/controller/rbac.ts). */
export const KICK_PATHS = [
  "/api/v1/namespaces",
  "/apis/network.qingcloud.com/v1alpha1/vxnetpools",
  // A block filling up (auto-assign adds one) or emptying (a blocked removal can finish).
  "/apis/network.qingcloud.com/v1alpha1/ipamblocks",
] as const;

/** Watches each path until `signal` aborts, calling `kick` on every event. */
export function startKickWatches(
  kc: k8s.KubeConfig,
  o: { paths: readonly string[]; kick: () => void; logger: Logger; signal: AbortSignal },
): Promise<void> {
  const watcher = longWatcher(kc);
  const one = async (path: string) => {
    let backoff = 1000;
    let rv: string | undefined;
    while (!o.signal.aborted) {
      const started = Date.now();
      const done = Promise.withResolvers<unknown>();
      const timeoutSeconds = watchTimeoutSeconds();
      let ctrl: AbortController | undefined;
      const onAbort = () => done.resolve(undefined);
      o.signal.addEventListener("abort", onAbort, { once: true });
      // A server that neither sends nor closes past its own timeout is dead.
      const watchdog = setTimeout(
        () => done.resolve(new Error("the watch stream went silent")),
        (timeoutSeconds + 10) * 1000,
      );
      try {
        ctrl = await watcher.watch(
          path,
          { timeoutSeconds, allowWatchBookmarks: true, ...(rv ? { resourceVersion: rv } : {}) },
          (type: string, obj: unknown) => {
            const meta = (obj as { metadata?: { resourceVersion?: unknown } } | null)?.metadata;
            if (type === "ERROR") {
              // 410 Gone (or any server-side error event): start over from "now".
              rv = undefined;
              return;
            }
            if (typeof meta?.resourceVersion === "string") rv = meta.resourceVersion;
            if (type === "ADDED" || type === "MODIFIED" || type === "DELETED") o.kick();
          },
          (err: unknown) => done.resolve(err),
        );
        const err = await done.promise;
        if (err) throw err;
      } catch (err) {
        if ((err as { statusCode?: unknown })?.statusCode === 410) rv = undefined;
        if (!o.signal.aborted) {
          o.logger.debug("watch interrupted; retrying", { path, error: errorMessage(err) });
        }
      } finally {
        clearTimeout(watchdog);
        o.signal.removeEventListener("abort", onAbort);
        ctrl?.abort();
      }
      if (o.signal.aborted) break;
      if (Date.now() - started >= 1000) {
        backoff = 1000;
        continue;
      }
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 30_000);
    }
  };
  return Promise.all(o.paths.map(one)).then(() => {});
}
