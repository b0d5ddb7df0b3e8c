/**
 * The pool health node annotation: stable text, written only when it changed, retried.
 */
import assert from "node:assert/strict";
import { NODE_ANNOTATION_POOL } from "../../k8s/annotations.ts";
import { healthAnnotation, poolHealth } from "./pool_health.ts";
import { binding, MemoryKube, source, unreachable, VX_A } from "./testing.ts";

Deno.test("health annotation: stable JSON, only set keys, long texts cut", () => {
  const h = poolHealth(source({ lastError: "x".repeat(1000) }), "restart please");
  const text = healthAnnotation(h);
  assert.deepEqual(Object.keys(JSON.parse(text)), [
    "vxnet",
    "free",
    "inuse",
    "total",
    "ready",
    "lastError",
    "restartNeeded",
  ]);
  assert.equal(JSON.parse(text).lastError.length, 300);
  assert.equal(healthAnnotation({ ...h }), text, "same health, same text");
  const down = poolHealth({
    ...source(),
    status: () => ({ ready: false, freeNics: 0, reason: "starting" }),
  });
  assert.equal(down.reason, "starting");
});

Deno.test("sync publishes pool health only when it changed, and retries failures", async () => {
  const kube = new MemoryKube();
  const b = await binding(kube);
  const pools = () => kube.annotateCalls.filter((c) => NODE_ANNOTATION_POOL in c.annotations);
  try {
    const first = b.sync(source());
    assert.equal(b.sync(source({ free: 9 })), first, "a pass while one runs joins it");
    await first;
    await b.sync(source());
    assert.equal(pools().length, 1);
    assert.deepEqual(JSON.parse(pools()[0].annotations[NODE_ANNOTATION_POOL]!), {
      vxnet: VX_A,
      free: 2,
      inuse: 1,
      total: 3,
      ready: true,
    });
    kube.failures.set("annotateNode", [unreachable()]);
    await b.sync(source({ free: 1 }));
    assert.equal(pools().length, 1, "failed");
    await b.sync(source({ free: 1 }));
    assert.equal(pools().length, 2, "retried at the next pass");
    await b.sync(source({ free: 1 }));
    assert.equal(pools().length, 2);
  } finally {
    await b.close();
  }
  assert.equal(pools().length, 3, "close marks the pool not ready");
  const last = JSON.parse(pools()[2].annotations[NODE_ANNOTATION_POOL]!);
  assert.equal(last.ready, false);
  assert.equal(last.reason, "hostnic daemon stopped");

  // A restarted daemon whose health equals the node's annotation writes nothing.
  const kube2 = new MemoryKube();
  kube2.addNode("node-1", { [NODE_ANNOTATION_POOL]: healthAnnotation(poolHealth(source())) });
  const b2 = await binding(kube2);
  await b2.sync(source());
  assert.equal(kube2.annotateCalls.length, 0);
  await b2.close();
});
