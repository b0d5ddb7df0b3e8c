/**
 * `HttpKube`'s watches against the real kube-apiserver: the ConfigMap watch and the pods-on-node
 * watch deliver the current state and every change; a watch cut mid-stream (fault proxy) resumes
 * from the resourceVersion of the last event instead of relisting; "410 Gone" (as an ERROR event or
 * an HTTP status) makes it relist, and a relist delivers only differences; both watches survive an
 * API server restart with `onSynced` going false then true; `stop()` ends them for good.
 */
import assert from "node:assert/strict";
import type { PodInfo, WatchEventType } from "../../lib/k8s/mod.ts";
import type { ProxyLogEntry } from "../../lib/testbed/fault_proxy.ts";
import { VERSION } from "../../lib/version.ts";
import { waitFor } from "../helpers/wait.ts";
import { apply, COMPONENT, deletePods, node, pod, startKube } from "./fixture.ts";

const CM_PATH = /^\/api\/v1\/namespaces\/kube-system\/configmaps\?/;
const PODS_PATH = /^\/api\/v1\/pods\?/;
const isWatch = (e: ProxyLogEntry) => /[?&]watch=true/.test(e.path);
const rvOf = (e: ProxyLogEntry) => new URL(e.path, "http://x").searchParams.get("resourceVersion");

function configMap(name: string, data: Record<string, string>) {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { namespace: "kube-system", name },
    data,
  });
}

Deno.test({
  name: "HttpKube watches against the real kube-apiserver",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using fx = await startKube("kw");
    const { cp, proxy } = fx;
    const kube = fx.kube();
    await apply(cp, node("node-1"), node("node-2"));
    const setCm = (name: string, data: Record<string, string>) => cp.apply(configMap(name, data));
    const cmVersion = async (name: string) =>
      (await cp.getJson<{ metadata: { resourceVersion: string } }>([
        "-n",
        "kube-system",
        "configmap",
        name,
      ])).metadata.resourceVersion;
    /** Waits until the proxy has a watch open on `path` (opened after `since`). */
    const watchOpen = async (path: RegExp, since = 0) =>
      await waitFor(`a watch on ${path}`, async () => {
        const { log, openWatches } = await proxy.stats();
        return openWatches > 0 && log.some((e) => e.at >= since && isWatch(e) && path.test(e.path));
      }, { timeoutMs: 15_000, intervalMs: 50 });

    await setCm("hostnic-cfg-cm", { hostnic: "v1" });
    await setCm("other", { x: "1" });
    const seen: (Record<string, string> | undefined)[] = [];
    const cmWatch = kube.watchConfigMap("kube-system", "hostnic-cfg-cm", (d) => seen.push(d));
    const podEvents: [WatchEventType, string][] = [];
    const synced: boolean[] = [];

    try {
      await t.step("watchConfigMap delivers the current data and changes to it only", async () => {
        await waitFor("initial data", () => seen.length === 1);
        assert.deepEqual(seen[0], { hostnic: "v1" });
        await watchOpen(CM_PATH);
        await setCm("other", { x: "2" });
        await setCm("hostnic-cfg-cm", { hostnic: "v2" });
        await waitFor("change v2", () => seen.length === 2);
        assert.deepEqual(seen[1], { hostnic: "v2" });
      });

      await t.step(
        "a watch cut mid-stream resumes from the last event's resourceVersion",
        async () => {
          const lastRv = await cmVersion("hostnic-cfg-cm");
          const cutAt = Date.now();
          assert.equal(await proxy.cutWatches("/configmaps\\?"), 1);
          await setCm("hostnic-cfg-cm", { hostnic: "v3" });
          await waitFor("change v3 after the resume", () => seen.length === 3, {
            timeoutMs: 15_000,
          });
          assert.deepEqual(seen[2], { hostnic: "v3" });
          const after = (await proxy.requests(CM_PATH)).filter((e) => e.at >= cutAt);
          assert.ok(after.length >= 1);
          assert.ok(after.every(isWatch), "no relist: only watch requests after the cut");
          assert.equal(rvOf(after[0]), lastRv, "resumed at the last event's resourceVersion");
        },
      );

      await t.step("410 Gone as a watch ERROR event makes it relist", async () => {
        await watchOpen(CM_PATH);
        const cutAt = Date.now();
        await proxy.inject({
          path: "^/api/v1/namespaces/kube-system/configmaps\\?.*watch=true",
          watchError: { code: 410, reason: "Expired", message: "too old resource version" },
        });
        await proxy.cutWatches("/configmaps\\?");
        await setCm("hostnic-cfg-cm", { hostnic: "v4" });
        await waitFor("v4 after the relist", () => seen.length === 4, { timeoutMs: 15_000 });
        assert.deepEqual(seen[3], { hostnic: "v4" });
        const after = (await proxy.requests(CM_PATH)).filter((e) => e.at >= cutAt);
        assert.ok(after[0] && isWatch(after[0]) && after[0].fault, "the resume met the 410");
        assert.ok(after.slice(1).some((e) => !isWatch(e)), "then it listed again");
      });

      await t.step("410 Gone as an HTTP status makes it relist too", async () => {
        await watchOpen(CM_PATH);
        const cutAt = Date.now();
        await proxy.inject({
          path: "^/api/v1/namespaces/kube-system/configmaps\\?.*watch=true",
          status: 410,
          reason: "Expired",
        });
        await proxy.cutWatches("/configmaps\\?");
        await setCm("hostnic-cfg-cm", { hostnic: "v5" });
        await waitFor("v5 after the relist", () => seen.length === 5, { timeoutMs: 15_000 });
        const after = (await proxy.requests(CM_PATH)).filter((e) => e.at >= cutAt);
        assert.equal(after[0].status, 410);
        assert.ok(after.slice(1).some((e) => !isWatch(e)), "then it listed again");
        assert.deepEqual(seen, [
          { hostnic: "v1" },
          { hostnic: "v2" },
          { hostnic: "v3" },
          { hostnic: "v4" },
          { hostnic: "v5" },
        ], "each change once, no repeats from the relists");
      });

      await t.step("a deleted ConfigMap is reported as undefined", async () => {
        await cp.kubectlOk(["-n", "kube-system", "delete", "configmap", "hostnic-cfg-cm"]);
        await waitFor("deletion", () => seen.length === 6, { timeoutMs: 15_000 });
        assert.equal(seen[5], undefined);
      });

      await apply(cp, pod({ name: "a", node: "node-1" }), pod({ name: "b", node: "node-2" }));
      const podWatch = kube.watchPodsOnNode(
        "node-1",
        (type, p: PodInfo) => podEvents.push([type, p.name]),
        { onSynced: (s) => synced.push(s) },
      );
      try {
        await t.step("watchPodsOnNode sees this node's pods only, with their changes", async () => {
          await waitFor("listed", () => synced.length === 1);
          assert.deepEqual(synced, [true]);
          assert.deepEqual(podEvents, [["ADDED", "a"]]);
          await watchOpen(PODS_PATH);
          await apply(cp, pod({ name: "c", node: "node-1" }), pod({ name: "d", node: "node-2" }));
          await waitFor("c added", () => podEvents.length === 2);
          await cp.kubectlOk(["annotate", "pod", "a", "touched=yes"]);
          await waitFor("a modified", () => podEvents.length === 3);
          await deletePods(cp, "default", "c");
          const has = (type: string, name: string) =>
            podEvents.some(([t, n]) => t === type && n === name);
          await waitFor("c deleted", () => has("DELETED", "c"));
          // A force delete may show the deletion timestamp (MODIFIED) before the DELETED.
          assert.deepEqual(
            podEvents.filter(([t, n]) => !(t === "MODIFIED" && n === "c")),
            [["ADDED", "a"], ["ADDED", "c"], ["MODIFIED", "a"], ["DELETED", "c"]],
            JSON.stringify(podEvents),
          );
        });

        await t.step(
          "a broken pod watch reports unsynced, resumes, and is synced again",
          async () => {
            const cutAt = Date.now();
            const before = podEvents.length;
            // The stream breaks, and the first reconnect fails.
            await proxy.inject({ path: "^/api/v1/pods\\?.*watch=true", status: 500 });
            await proxy.cutWatches("^/api/v1/pods\\?");
            await waitFor("unsynced", () => synced.at(-1) === false, { timeoutMs: 15_000 });
            await apply(cp, pod({ name: "e", node: "node-1" }));
            await waitFor("synced again", () => synced.at(-1) === true, { timeoutMs: 15_000 });
            await waitFor("e added", () => podEvents.length === before + 1);
            assert.deepEqual(synced, [true, false, true]);
            assert.deepEqual(podEvents.slice(before), [["ADDED", "e"]], "no replay of a");
            const after = (await proxy.requests(PODS_PATH)).filter((e) => e.at >= cutAt);
            assert.deepEqual(after.slice(0, 2).map((e) => [isWatch(e), e.status]), [
              [true, 500],
              [true, 200],
            ]);
            assert.ok(after.every(isWatch), "resumed, not relisted");
            assert.ok(rvOf(after[0]), "the resume names a resourceVersion");
            assert.equal(rvOf(after[0]), rvOf(after[1]), "both attempts from the same version");
          },
        );

        await t.step("both watches survive an API server restart", async () => {
          await setCm("hostnic-cfg-cm", { hostnic: "v6" });
          await waitFor("v6", () => seen.length === 7, { timeoutMs: 15_000 });
          const podsBefore = podEvents.length;
          const syncedBefore = synced.length;
          await cp.restartApiserver();
          // Changes made after the restart reach both watches.
          await setCm("hostnic-cfg-cm", { hostnic: "v7" });
          await apply(cp, pod({ name: "f", node: "node-1" }));
          await deletePods(cp, "default", "e");
          await waitFor("v7", () => seen.length === 8, { timeoutMs: 30_000 });
          assert.deepEqual(seen.slice(6), [{ hostnic: "v6" }, { hostnic: "v7" }]);
          await waitFor(
            "f added and e deleted",
            () => podEvents.length >= podsBefore + 2 && synced.at(-1) === true,
            { timeoutMs: 30_000 },
          );
          // A force delete may show the deletion timestamp (MODIFIED) before the DELETED.
          const changes = podEvents.slice(podsBefore)
            .filter(([t, n]) => !(t === "MODIFIED" && n === "e"));
          assert.deepEqual(
            changes.toSorted(),
            [["ADDED", "f"], ["DELETED", "e"]],
            `only the changes, no replay of the pods that stayed: ${JSON.stringify(podEvents)}`,
          );
          // Unsynced while the server was away, synced once it answered again (a second blink
          // while it shuts down would add one more false/true pair, never two equal in a row).
          const around = synced.slice(syncedBefore);
          assert.equal(around[0], false, JSON.stringify(synced));
          assert.equal(around.at(-1), true, JSON.stringify(synced));
          assert.ok(around.every((v, i) => i === 0 || v !== around[i - 1]));
        });

        await t.step("every watch request says hostnic/<version> (<component>)", async () => {
          const watches = (await proxy.requests()).filter(isWatch);
          assert.ok(watches.length >= 6);
          for (const w of watches) assert.equal(w.userAgent, `hostnic/${VERSION} (${COMPONENT})`);
        });
      } finally {
        await podWatch.stop();
      }

      await t.step("stop() ends the watches; no callback runs afterwards", async () => {
        await cmWatch.stop();
        await waitFor("no watch open", async () => (await proxy.stats()).openWatches === 0);
        const counts = [seen.length, podEvents.length, synced.length];
        await setCm("hostnic-cfg-cm", { hostnic: "v8" });
        await apply(cp, pod({ name: "g", node: "node-1" }));
        await cmWatch.stop(); // idempotent
        // A fresh watch sees both changes: they were made, the stopped ones were not told.
        const fresh: [WatchEventType, string][] = [];
        const w = kube.watchPodsOnNode("node-1", (type, p) => fresh.push([type, p.name]));
        await waitFor("fresh list", () => fresh.some(([, n]) => n === "g"));
        await w.stop();
        assert.deepEqual([seen.length, podEvents.length, synced.length], counts);
      });
    } finally {
      await cmWatch.stop();
    }
  },
});
