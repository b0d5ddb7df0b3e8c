/**
 * List-then-watch with resumption, for `HttpKube`'s watches (client.ts).
 *
 * Invariants:
 * - The first list gives the starting resourceVersion; every event and bookmark moves it. A watch
 *   that ends (server timeout, a dropped connection, an API server restart) is resumed from the
 *   last resourceVersion seen, so the server replays what happened meanwhile: no relist, nothing
 *   missed, nothing delivered twice.
 * - "410 Gone" (the server no longer has that history: an ERROR event or an HTTP 410) means
 *   relisting; the caller's `onList` then reconciles against what it delivered before.
 * - `onSynced(false)` when the stream broke with an error (changes may be missing until the
 *   resumed stream is known to flow); `onSynced(true)` after a list, and on the first event or
 *   bookmark of a resumed stream, or when it ends in order after running a while. Never two equal
 *   values in a row.
 * - Reconnects back off exponentially (capped) after failures; a normal end resumes at once.
 * - Callbacks never run after `stop()` resolves; a callback that throws is logged, not fatal.
 */
import type * as k8s from "@kubernetes/client-node";
import { Watch as k8sWatch } from "@kubernetes/client-node";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { KubeError } from "./errors.ts";
import type { KubeWatch, WatchEventType } from "./types.ts";

export interface ListWatchSpec {
  /** What is watched, for messages: `watch pods on node "n1"`. */
  op: string;
  /** Collection path, e.g. `/api/v1/pods`. */
  path: string;
  /** Query parameters besides the ones this module sets (fieldSelector …). */
  params: Record<string, string>;
  /** A full list with its resourceVersion. */
  list: () => Promise<{ items: unknown[]; resourceVersion: string | undefined }>;
  onList: (items: unknown[]) => void;
  onEvent: (type: WatchEventType, obj: unknown) => void;
  onSynced?: (synced: boolean) => void;
}

export interface ListWatchDeps {
  watcher: Pick<k8s.Watch, "watch">;
  log: Logger;
  backoff: { min: number; max: number };
  /** Maps any failure to a `KubeError` for the log. */
  error: (op: string, err: unknown) => KubeError;
}

/**
 * How long the server keeps one watch open: 2 – 3 minutes, spread so a fleet of daemons does not
 * reconnect in step. Every re-open is an API request per node, so short watches are a per-node cost
 * at rest (with 20 s watches, two watches made 12 requests per node per minute). The server sends a
 * bookmark only about once a minute (seen: gaps of 60 and 121 s on a quiet watch), so the client's
 * inactivity timer must not be shorter than the watch itself: `longWatcher` sets it past the end.
 */
export function watchTimeoutSeconds(): number {
  return WATCH_MIN_S + Math.floor(Math.random() * (WATCH_MAX_S - WATCH_MIN_S));
}
const WATCH_MIN_S = 120;
const WATCH_MAX_S = 180;
/** The silence after which a watch is given up: past the longest watch plus the watchdog's 10 s. */
export const WATCH_IDLE_MS = (WATCH_MAX_S + 15) * 1000;

/**
 * A client `Watch` whose inactivity timer (30 s in client-node, a private field of 2.0.x, checked
 * by tests/k8s/watch_test.ts) is `WATCH_IDLE_MS`: a quiet watch would otherwise be cut every 30 s.
 */
export function longWatcher(kc: k8s.KubeConfig): k8s.Watch {
  const w = new k8sWatch(kc);
  const timer = w as unknown as { requestTimeoutMs?: unknown };
  if (typeof timer.requestTimeoutMs !== "number") {
    throw new Error("@kubernetes/client-node's Watch no longer has requestTimeoutMs");
  }
  timer.requestTimeoutMs = WATCH_IDLE_MS;
  return w;
}

/** HTTP status of a failed watch request (the client's Error carries `statusCode`). */
function statusOf(err: unknown): number | undefined {
  if (err instanceof KubeError) return err.status;
  const code = (err as { statusCode?: unknown })?.statusCode;
  return typeof code === "number" ? code : undefined;
}

export function listWatch(deps: ListWatchDeps, spec: ListWatchSpec): KubeWatch {
  const log = deps.log.child({ watch: spec.op });
  let stopped = false;
  let current: AbortController | undefined;
  /** Inside the client's `watch()`, before it returns its controller: its request cannot be
   * aborted from here (client-node keeps that controller until the response's headers came). */
  let connecting = false;
  /** Ends the current watch from our side. (Aborting the client's controller closes the stream
   * but, under Deno, does not always reach the client's `done` callback.) */
  let finish: ((err?: unknown) => void) | undefined;
  let wake: (() => void) | undefined;
  const guard = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      log.warn(`watch ${what} handler failed`, { error: errorMessage(err) });
    }
  };
  let synced: boolean | undefined;
  const setSynced = (value: boolean) => {
    if (stopped || synced === value || !spec.onSynced) return;
    synced = value;
    guard("sync", () => spec.onSynced!(value));
  };
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        wake = undefined;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(t);
        wake = undefined;
        resolve();
      };
    });

  const loop = async () => {
    let rv: string | undefined;
    let backoff = deps.backoff.min;
    while (!stopped) {
      let failure: unknown;
      let gone = false;
      let gotEvents = false;
      let started = Date.now();
      try {
        if (rv === undefined) {
          const listed = await spec.list();
          if (stopped) break;
          rv = listed.resourceVersion ?? "";
          guard("list", () => spec.onList(listed.items));
          setSynced(true);
        }
        const done = Promise.withResolvers<unknown>();
        finish = (err?: unknown) => done.resolve(err);
        const timeoutSeconds = watchTimeoutSeconds();
        const params = {
          ...spec.params,
          resourceVersion: rv,
          allowWatchBookmarks: true,
          timeoutSeconds,
        };
        started = Date.now();
        connecting = true;
        const ctrl = await deps.watcher.watch(
          spec.path,
          params,
          (type: string, obj: unknown) => {
            if (stopped) return;
            const version = (obj as { metadata?: { resourceVersion?: string } })?.metadata
              ?.resourceVersion;
            if (type === "ERROR") {
              const st = obj as { code?: number; reason?: string; message?: string };
              if (st?.code === 410) gone = true;
              else {
                failure ??= new KubeError(
                  "KUBE_API_ERROR",
                  spec.op,
                  `The API server ended the watch to ${spec.op}: ${st?.code ?? "?"} ${
                    st?.reason ?? ""
                  }: ${st?.message ?? "(no message)"}`,
                  {
                    ...(typeof st?.code === "number" ? { status: st.code } : {}),
                    ...(st?.reason ? { reason: st.reason } : {}),
                  },
                );
              }
              return;
            }
            if (type === "BOOKMARK") {
              if (version) rv = version;
              setSynced(true);
              return;
            }
            if (type !== "ADDED" && type !== "MODIFIED" && type !== "DELETED") return;
            gotEvents = true;
            guard("event", () => spec.onEvent(type, obj));
            if (version) rv = version;
            setSynced(true);
          },
          (err: unknown) => done.resolve(err),
        );
        connecting = false;
        current = ctrl;
        if (stopped) {
          ctrl.abort();
          finish();
        }
        // Watchdog: a server that neither sends nor closes past its own timeout is dead.
        const watchdog = setTimeout(() => {
          ctrl.abort();
          finish?.(
            Object.assign(new Error("the watch stream went silent"), { name: "TimeoutError" }),
          );
        }, (timeoutSeconds + 10) * 1000);
        const err = await done.promise;
        clearTimeout(watchdog);
        ctrl.abort();
        current = undefined;
        finish = undefined;
        if (err && !stopped) failure = failure ?? err;
      } catch (err) {
        connecting = false;
        failure = err;
      }
      if (stopped) break;
      if (gone || statusOf(failure) === 410) {
        setSynced(false);
        log.info("watch history expired (410 Gone); listing again");
        rv = undefined;
        continue;
      }
      const quiet = failure === undefined ||
        (failure as { name?: string })?.name === "TimeoutError";
      if (quiet && (gotEvents || Date.now() - started >= 1000)) {
        // The stream ran and ended in order: nothing was missed (the resume replays the rest).
        setSynced(true);
        backoff = deps.backoff.min;
        continue;
      }
      if (failure !== undefined) {
        // Resume from `rv` (the server replays what happened meanwhile); until the resumed
        // stream is seen to flow, changes may be missing.
        setSynced(false);
        const e = failure instanceof KubeError ? failure : deps.error(spec.op, failure);
        log.warn("watch interrupted; resuming", {
          error: e.message,
          resourceVersion: rv ?? "(list)",
          retryInMs: backoff,
        });
      }
      await sleep(backoff);
      backoff = Math.min(backoff * 2, deps.backoff.max);
    }
  };

  const running = loop();
  const handle: KubeWatch = {
    stop: async () => {
      stopped = true;
      current?.abort();
      finish?.();
      wake?.();
      // A request still waiting for its response's headers would hold `stop()` until the client's
      // idle timer (WATCH_IDLE_MS) ends it: a daemon's shutdown must not wait minutes for that.
      // Nothing is delivered after `stopped` (every callback checks it), and the loop aborts the
      // stream the moment the client hands its controller back.
      if (connecting) return;
      await running;
    },
    [Symbol.asyncDispose]: () => handle.stop(),
  };
  return handle;
}
