/**
 * hostnic-cfg-cm: read at start with the file's schema, changes told and cleared when undone.
 */
import assert from "node:assert/strict";
import { NODE_ANNOTATION_POOL } from "../../k8s/annotations.ts";
import { nullLogger } from "../../log.ts";
import { KubeStartError } from "./client.ts";
import { readConfigMap } from "./config_map.ts";
import { binding, forbidden, MemoryKube, settle, source, unreachable } from "./testing.ts";

Deno.test("ConfigMap changes: event on the daemon's pod, restartNeeded, cleared when undone", async () => {
  const kube = new MemoryKube();
  const ok = JSON.stringify({ pool: { poolLow: 1 } });
  kube.configMaps.set("kube-system/hostnic-cfg-cm", { hostnic: ok, "hostnic-cni": "{}" });
  const b = await binding(kube, { podName: "hostnic-node-x" });
  try {
    const health = async () => {
      kube.annotateCalls = [];
      await b.sync(source({ free: kube.events.length })); // a change, so it is written
      return JSON.parse(kube.annotateCalls[0].annotations[NODE_ANNOTATION_POOL]!);
    };
    kube.cmWatch!({ hostnic: ok, "hostnic-cni": "{}", unrelated: "x" });
    await settle();
    assert.equal(kube.events.length, 0, "other keys do not matter");

    kube.cmWatch!({ hostnic: JSON.stringify({ pool: { poolLow: 2 } }), "hostnic-cni": "{}" });
    await settle();
    assert.deepEqual(kube.events[0].pod, { namespace: "kube-system", name: "hostnic-node-x" });
    assert.equal(kube.events[0].event.reason, "ConfigChanged");
    assert.match(kube.events[0].event.message, /rollout restart ds\/hostnic-node/);
    assert.match((await health()).restartNeeded, /rollout restart/);

    kube.cmWatch!({ hostnic: JSON.stringify({ pool: { poolLow: "many" } }), "hostnic-cni": "{}" });
    await settle();
    assert.equal(kube.events[1].event.reason, "InvalidConfig");
    assert.equal(kube.events[1].event.type, "Warning");
    assert.match(kube.events[1].event.message, /pool\.poolLow/);

    kube.cmWatch!({ hostnic: ok, "hostnic-cni": "{}" });
    assert.equal((await health()).restartNeeded, undefined, "back to what the daemon runs");

    kube.cmWatch!(undefined);
    await settle();
    assert.equal(kube.events[2].event.reason, "ConfigDeleted");
  } finally {
    await b.close();
  }
});

Deno.test("readConfigMap: parsed with the file's schema; absent → defaults; bad → named", async () => {
  const kube = new MemoryKube();
  const read = () => readConfigMap({ kube, logger: nullLogger, env: () => undefined });
  assert.equal(await read(), undefined);
  kube.configMaps.set("kube-system/hostnic-cfg-cm", { "hostnic-cni": "{}" });
  assert.equal(await read(), undefined, "no hostnic key");
  kube.configMaps.set("kube-system/hostnic-cfg-cm", {
    hostnic: JSON.stringify({ pool: { poolLow: 1, poolHigh: 2 } }),
  });
  kube.failures.set("getConfigMap", [unreachable()]); // retried
  const got = await read();
  assert.equal(got?.config.pool.poolHigh, 2);
  assert.equal(got?.source, 'ConfigMap "kube-system/hostnic-cfg-cm" key "hostnic"');
  kube.configMaps.set("kube-system/hostnic-cfg-cm", {
    hostnic: JSON.stringify({ pool: { poolLow: 9, poolHigh: 2 } }),
  });
  await assert.rejects(
    read(),
    /ConfigMap "kube-system\/hostnic-cfg-cm" key "hostnic": Invalid configuration "pool\.poolLow"/,
  );
  kube.failures.set("getConfigMap", [forbidden("get ConfigMap")]);
  await assert.rejects(read(), (e) => e instanceof KubeStartError && /403/.test(e.message));
});
