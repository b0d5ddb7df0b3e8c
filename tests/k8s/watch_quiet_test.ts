/**
 * What a watch costs at rest, against the real kube-apiserver: a quiet watch stays open past
 * client-node's 30 s inactivity timer (the server's bookmarks come about once a minute, so that
 * timer used to cut every quiet watch and each daemon re-opened its watches three times a minute),
 * and the controller's kick watches resume from the last resourceVersion instead of replaying every
 * object as ADDED (a kick, and a pass, per path at every reconnect).
 */
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { KICK_PATHS, startKickWatches } from "../../lib/controller/watch.ts";
import { nullLogger } from "../../lib/log.ts";
import type { ProxyLogEntry } from "../../lib/testbed/fault_proxy.ts";
import { waitFor } from "../helpers/wait.ts";
import { startKube } from "./fixture.ts";

const isWatch = (e: ProxyLogEntry) => /[?&]watch=true/.test(e.path);
const rvOf = (e: ProxyLogEntry) => new URL(e.path, "http://x").searchParams.get("resourceVersion");
const CM_WATCH = /^\/api\/v1\/namespaces\/kube-system\/configmaps\?.*watch=true/;
const NS_WATCH = /^\/api\/v1\/namespaces\?.*watch=true/;
/** Longer than client-node's own inactivity timer (30 s) and the old 15 – 25 s watches. */
const QUIET_MS = 45_000;

Deno.test({
  name: "watches at rest: one request per watch for minutes; kick watches resume",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using fx = await startKube("kq");
    const { cp, proxy } = fx;
    const kube = fx.kube();
    const seen: (Record<string, string> | undefined)[] = [];
    const cmWatch = kube.watchConfigMap("kube-system", "hostnic-cfg-cm", (d) => seen.push(d));
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(fx.kubeconfig);
    const abort = new AbortController();
    let kicks = 0;
    const kickWatches = startKickWatches(kc, {
      paths: KICK_PATHS,
      kick: () => kicks++,
      logger: nullLogger,
      signal: abort.signal,
    });
    const opened = async (path: RegExp, since = 0) =>
      (await proxy.requests()).filter((e) => e.at >= since && isWatch(e) && path.test(e.path));
    try {
      await waitFor(
        "both kinds of watch open",
        async () => (await opened(CM_WATCH)).length === 1 && (await opened(NS_WATCH)).length === 1,
        {
          timeoutMs: 15_000,
        },
      );

      await t.step("a quiet watch is not re-opened for longer than the old timers", async () => {
        const from = Date.now();
        // The duration is what is under test: nothing changes while it runs.
        await new Promise((r) => setTimeout(r, QUIET_MS));
        assert.deepEqual((await opened(CM_WATCH, from)).length, 0, "no configmap re-watch");
        assert.deepEqual((await opened(NS_WATCH, from)).length, 0, "no namespace re-watch");
        assert.equal((await opened(CM_WATCH)).length, 1);
        // …and the one open watch still delivers.
        await cp.apply(JSON.stringify({
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { namespace: "kube-system", name: "hostnic-cfg-cm" },
          data: { hostnic: "quiet" },
        }));
        await waitFor("the change", () => seen.at(-1)?.hostnic === "quiet");
        assert.equal((await opened(CM_WATCH)).length, 1, "delivered on the first watch");
      });

      await t.step(
        "a cut kick watch resumes from its resourceVersion: no replay, no kick",
        async () => {
          await cp.kubectlOk(["create", "namespace", "kq-one"]);
          await waitFor("a kick for the new namespace", () => kicks > 0);
          const cutAt = Date.now();
          const before = kicks;
          assert.ok(await proxy.cutWatches("^/api/v1/namespaces\\?") >= 1);
          await waitFor(
            "the namespace watch re-opened",
            async () => (await opened(NS_WATCH, cutAt)).length >= 1,
            { timeoutMs: 15_000 },
          );
          const resumed = (await opened(NS_WATCH, cutAt))[0];
          assert.ok(rvOf(resumed), `the re-watch names a resourceVersion: ${resumed.path}`);
          // A replay of the existing namespaces would arrive right after the re-open; a change
          // made now arrives after it on the same stream, so waiting for it covers the replay.
          await cp.kubectlOk(["create", "namespace", "kq-two"]);
          await waitFor("the kick for kq-two", () => kicks > before);
          const namespaces = (await cp.getJson<{ items: unknown[] }>(["namespaces"])).items.length;
          assert.ok(namespaces >= 6);
          // kq-two's ADDED (and at most a MODIFIED of it); a replay would add one per namespace.
          assert.ok(kicks - before <= 2, `${kicks - before} kicks for one new namespace`);
        },
      );
    } finally {
      abort.abort();
      await kickWatches;
      await cmWatch.stop();
    }
  },
});
