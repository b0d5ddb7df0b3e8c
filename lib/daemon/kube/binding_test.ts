/**
 * The binding's life cycle: start-up failures named, live pods from the watch. (The real client
 * against the real kube-apiserver, in real daemon processes, is tests/e2e/kube_test.ts.)
 */
import assert from "node:assert/strict";
import { nullLogger } from "../../log.ts";
import { startKubeBinding } from "./binding.ts";
import { KubeStartError } from "./client.ts";
import { binding, forbidden, MemoryKube, unreachable } from "./testing.ts";

Deno.test("start: a missing node, a forbidden read or a lasting outage stop it, named", async () => {
  const kube = new MemoryKube();
  await assert.rejects(
    startKubeBinding({
      config: { nodeName: "ghost", pool: { vxNets: [], maxNic: 63 } as never },
      instanceId: "i-abc",
      logger: nullLogger,
      kube,
    }),
    (e) =>
      e instanceof KubeStartError && /Node "ghost" does not exist.*--node-name/.test(e.message),
  );
  assert.ok(kube.closed, "the client is closed when start fails");
  const k2 = new MemoryKube();
  k2.addNode("node-1");
  k2.failures.set("getNode", [forbidden("get node")]);
  await assert.rejects(binding(k2), (e) => e instanceof KubeStartError && /RBAC/.test(e.message));
  const k3 = new MemoryKube();
  k3.addNode("node-1");
  k3.failures.set("getNode", Array.from({ length: 50 }, () => unreachable("get node")));
  await assert.rejects(
    startKubeBinding({
      config: { nodeName: "node-1", pool: { vxNets: [], maxNic: 63 } as never },
      instanceId: "i-abc",
      logger: nullLogger,
      kube: k3,
      startTimeoutMs: 300,
    }),
    (e) => e instanceof KubeStartError && /API server is up and reachable/.test(e.message),
  );
});

Deno.test("livePods: unknown until the watch is synced, then this node's pods", async () => {
  const kube = new MemoryKube();
  const b = await binding(kube);
  try {
    const w = kube.podWatch!;
    const pod = (name: string) => ({
      namespace: "default",
      name,
      uid: name,
      annotations: {},
      labels: {},
    });
    w.onEvent("ADDED", pod("a"));
    assert.equal(b.livePods(), undefined, "not listed yet");
    w.opts.onSynced!(true);
    w.onEvent("ADDED", pod("b"));
    assert.deepEqual([...b.livePods()!].sort(), ["default/a", "default/b"]);
    w.onEvent("DELETED", pod("a"));
    assert.deepEqual([...b.livePods()!], ["default/b"]);
    w.opts.onSynced!(false);
    assert.equal(b.livePods(), undefined, "the watch broke: unknown again");
  } finally {
    await b.close();
  }
  assert.equal(kube.podWatch, undefined, "close stops the watch");
});
