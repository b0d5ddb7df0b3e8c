import assert from "node:assert/strict";
import { nullLogger } from "../log.ts";
import { KubeError } from "./errors.ts";
import { listWatch } from "./watch.ts";

Deno.test("listWatch.stop() does not wait for a watch request still waiting for its headers", async () => {
  const reply = Promise.withResolvers<AbortController>();
  const calls: string[] = [];
  let onEvent: ((type: string, obj: unknown) => void) | undefined;
  const watcher = {
    watch(
      _path: string,
      _params: unknown,
      cb: (type: string, obj: unknown) => void,
      _done: (err: unknown) => void,
    ): Promise<AbortController> {
      calls.push("watch");
      onEvent = cb;
      return reply.promise;
    },
  };
  const delivered: string[] = [];
  const w = listWatch(
    {
      watcher,
      log: nullLogger,
      backoff: { min: 10, max: 10 },
      error: (op, err) => new KubeError("KUBE_API_ERROR", op, String(err)),
    },
    {
      op: "watch things",
      path: "/api/v1/things",
      params: {},
      list: () => Promise.resolve({ items: [], resourceVersion: "5" }),
      onList: () => delivered.push("list"),
      onEvent: (type) => delivered.push(type),
    },
  );
  // The list ran and the watch request is out, with no response yet.
  while (calls.length === 0) await new Promise((r) => setTimeout(r, 1));
  // stop() resolves although the request has not: before, it waited for the client's timer.
  await w.stop();
  assert.deepEqual(delivered, ["list"]);
  // The response comes late: its stream is aborted at once and nothing reaches the caller.
  const ctrl = new AbortController();
  reply.resolve(ctrl);
  await new Promise((r) => setTimeout(r, 0));
  onEvent?.("ADDED", { metadata: { resourceVersion: "6" } });
  assert.ok(ctrl.signal.aborted, "the late stream was aborted");
  assert.deepEqual(delivered, ["list"], "no callback after stop()");
  assert.deepEqual(calls, ["watch"], "no new watch after stop()");
});
