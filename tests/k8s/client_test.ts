/**
 * `loadKube` against the fake API server, through the real `@kubernetes/client-node`: reads,
 * annotation and condition patches, events, ConfigMap and pod watches, error mapping, and the node
 * → vxnet assignment written back as node annotations.
 */
import assert from "node:assert/strict";
import {
  ANNOTATION_IP,
  ANNOTATION_VXNET,
  assignVxnets,
  type Kube,
  KubeError,
  loadKube,
  type LoadKubeOptions,
  NODE_ANNOTATION_VXNET,
  parsePodAnnotations,
  type PodInfo,
  type WatchEventType,
} from "../../lib/k8s/mod.ts";
import { FakeKube } from "../helpers/fake_kube.ts";
import { waitFor } from "../helpers/wait.ts";

async function fixture(opts: Omit<LoadKubeOptions, "kubeconfig"> = {}) {
  const fake = await FakeKube.start();
  let kube: Kube;
  try {
    kube = loadKube({
      kubeconfig: fake.kubeconfig,
      nodeName: "node-1",
      watchBackoffMs: { min: 10, max: 100 },
      ...opts,
    });
  } catch (err) {
    await fake.close();
    throw err;
  }
  return {
    fake,
    kube,
    async [Symbol.asyncDispose]() {
      try {
        await kube.close();
      } finally {
        await fake.close();
      }
    },
  };
}

function assertKubeError(
  err: unknown,
  want: { code: string; status?: number; reason?: string; message?: RegExp },
): true {
  assert.ok(err instanceof KubeError, `expected KubeError, got ${err}`);
  assert.equal(err.code, want.code);
  if (want.status !== undefined) assert.equal(err.status, want.status);
  if (want.reason !== undefined) assert.equal(err.reason, want.reason);
  if (want.message) assert.match(err.message, want.message);
  assert.doesNotMatch(err.message, /\n\s+at /, "no stack in the message");
  return true;
}

Deno.test("getPod returns the pod with its annotations; a missing pod is undefined", async () => {
  await using fx = await fixture();
  fx.fake.addPod({
    namespace: "web",
    name: "nginx-0",
    uid: "uid-1",
    nodeName: "node-1",
    podIP: "172.22.0.88",
    annotations: { [ANNOTATION_VXNET]: "vxnet-cfn58ev", [ANNOTATION_IP]: "172.22.0.88" },
    labels: { app: "nginx" },
  });
  const pod = await fx.kube.getPod("web", "nginx-0");
  assert.ok(pod);
  assert.deepEqual(pod, {
    namespace: "web",
    name: "nginx-0",
    uid: "uid-1",
    nodeName: "node-1",
    annotations: { [ANNOTATION_VXNET]: "vxnet-cfn58ev", [ANNOTATION_IP]: "172.22.0.88" },
    labels: { app: "nginx" },
    phase: "Running",
    podIP: "172.22.0.88",
  });
  assert.deepEqual(parsePodAnnotations(pod.annotations), {
    vxnet: "vxnet-cfn58ev",
    ip: "172.22.0.88",
  });
  assert.equal(await fx.kube.getPod("web", "nope"), undefined);
});

Deno.test("listPodsOnNode filters by spec.nodeName and follows pagination", async () => {
  await using fx = await fixture();
  for (let i = 0; i < 1100; i++) {
    fx.fake.addPod({
      namespace: `ns${i % 3}`,
      name: `p${i}`,
      nodeName: i % 2 ? "node-1" : "node-2",
    });
  }
  fx.fake.addPod({ name: "pending" });
  const pods = await fx.kube.listPodsOnNode("node-1");
  assert.equal(pods.length, 550);
  assert.ok(pods.every((p) => p.nodeName === "node-1"));
  assert.equal(new Set(pods.map((p) => `${p.namespace}/${p.name}`)).size, 550);
  const lists = fx.fake.requests.filter((r) => r.path === "/api/v1/pods");
  assert.equal(lists.length, 2, "two pages of 500");
  assert.match(lists[0].query, /fieldSelector=spec\.nodeName%3Dnode-1/);
});

Deno.test("annotateNode sets and removes annotations with one merge patch", async () => {
  await using fx = await fixture();
  fx.fake.addNode({ name: "node-1", internalIp: "10.0.0.5", annotations: { keep: "me" } });
  const after = await fx.kube.annotateNode("node-1", { [NODE_ANNOTATION_VXNET]: "vxnet-a" });
  assert.equal(after.annotations[NODE_ANNOTATION_VXNET], "vxnet-a");
  const node = await fx.kube.getNode("node-1");
  assert.ok(node);
  assert.deepEqual(node.annotations, { keep: "me", [NODE_ANNOTATION_VXNET]: "vxnet-a" });
  assert.equal(node.internalIp, "10.0.0.5");
  assert.equal(node.conditions.find((c) => c.type === "Ready")?.status, "True");

  await fx.kube.annotateNode("node-1", { [NODE_ANNOTATION_VXNET]: null });
  assert.deepEqual((await fx.kube.getNode("node-1"))!.annotations, { keep: "me" });

  assert.equal(fx.fake.patches.length, 2);
  assert.deepEqual(fx.fake.patches[0], {
    resource: "nodes",
    name: "node-1",
    contentType: "application/merge-patch+json",
    body: { metadata: { annotations: { [NODE_ANNOTATION_VXNET]: "vxnet-a" } } },
  });
  assert.equal(await fx.kube.getNode("node-9"), undefined);
  await assert.rejects(
    fx.kube.annotateNode("node-9", { a: "b" }),
    (e) => assertKubeError(e, { code: "KUBE_API_ERROR", status: 404, message: /node "node-9"/ }),
  );
  await assert.rejects(
    fx.kube.annotateNode("node-1", { "bad key!": "x" }),
    (e) => assertKubeError(e, { code: "KUBE_INVALID_REQUEST", message: /"bad key!"/ }),
  );
});

Deno.test("setNodeCondition adds hostnic's condition and leaves kubelet's alone", async () => {
  await using fx = await fixture();
  fx.fake.addNode({ name: "node-1" });
  await fx.kube.setNodeCondition("node-1", {
    type: "HostnicReady",
    status: "False",
    reason: "PoolEmpty",
    message: "no free NIC",
  });
  let node = (await fx.kube.getNode("node-1"))!;
  assert.deepEqual(node.conditions.map((c) => [c.type, c.status]), [
    ["Ready", "True"],
    ["HostnicReady", "False"],
  ]);
  const first = node.conditions[1].lastTransitionTime;
  assert.ok(first);
  const patch = fx.fake.patches.at(-1)!;
  assert.equal(patch.subresource, "status");
  assert.equal(patch.contentType, "application/strategic-merge-patch+json");

  // Same status again: the transition time stays.
  await fx.kube.setNodeCondition("node-1", { type: "HostnicReady", status: "False" });
  node = (await fx.kube.getNode("node-1"))!;
  assert.equal(node.conditions[1].lastTransitionTime, first);
  await fx.kube.setNodeCondition("node-1", { type: "HostnicReady", status: "True" });
  node = (await fx.kube.getNode("node-1"))!;
  assert.equal(node.conditions.length, 2);
  assert.equal(node.conditions[1].status, "True");
});

Deno.test("createPodEvent records reason and message; repeats bump the count", async () => {
  await using fx = await fixture({ component: "hostnic-node" });
  const pod = { namespace: "web", name: "nginx-0", uid: "uid-1" };
  await fx.kube.createPodEvent(pod, {
    type: "Warning",
    reason: "NoFreeNic",
    message: 'No free NIC in vxnet "vxnet-a"; retrying',
  });
  let events = fx.fake.events("web");
  assert.equal(events.length, 1);
  const ev = events[0];
  assert.equal(ev.type, "Warning");
  assert.equal(ev.reason, "NoFreeNic");
  assert.equal(ev.message, 'No free NIC in vxnet "vxnet-a"; retrying');
  assert.deepEqual(ev.involvedObject, {
    apiVersion: "v1",
    kind: "Pod",
    namespace: "web",
    name: "nginx-0",
    uid: "uid-1",
  });
  assert.deepEqual(ev.source, { component: "hostnic-node", host: "node-1" });
  assert.equal(ev.count, 1);
  assert.match(ev.metadata.name, /^nginx-0\.[0-9a-f]+$/);

  await fx.kube.createPodEvent(pod, {
    type: "Warning",
    reason: "NoFreeNic",
    message: 'No free NIC in vxnet "vxnet-a"; retrying',
  });
  events = fx.fake.events("web");
  assert.equal(events.length, 1, "the repeat updates the same Event");
  assert.equal(events[0].count, 2);

  await fx.kube.createPodEvent(pod, { type: "Normal", reason: "NicAttached", message: "ok" });
  assert.equal(fx.fake.events("web").length, 2);

  // Event expired server-side: the next repeat creates a fresh one.
  fx.fake.remove("events", "web", events[0].metadata.name);
  await fx.kube.createPodEvent(pod, {
    type: "Warning",
    reason: "NoFreeNic",
    message: 'No free NIC in vxnet "vxnet-a"; retrying',
  });
  assert.equal(fx.fake.events("web").filter((e) => e.reason === "NoFreeNic").length, 1);

  const before = fx.fake.requests.length;
  await assert.rejects(
    fx.kube.createPodEvent(pod, { type: "Warning", reason: "no free nic", message: "x" }),
    (e) => assertKubeError(e, { code: "KUBE_INVALID_REQUEST", message: /reason "no free nic"/ }),
  );
  assert.equal(fx.fake.requests.length, before, "nothing sent");
});

Deno.test("getConfigMap returns data; a missing ConfigMap is undefined", async () => {
  await using fx = await fixture();
  fx.fake.setConfigMap("kube-system", "hostnic-cfg-cm", {
    hostnic: '{"pool":{"maxNic":60}}',
    "hostnic-cni": '{"cniVersion":"1.0.0"}',
  });
  assert.deepEqual(await fx.kube.getConfigMap("kube-system", "hostnic-cfg-cm"), {
    hostnic: '{"pool":{"maxNic":60}}',
    "hostnic-cni": '{"cniVersion":"1.0.0"}',
  });
  assert.equal(await fx.kube.getConfigMap("kube-system", "absent"), undefined);
  fx.fake.put("configmaps", { metadata: { namespace: "default", name: "empty" } });
  assert.deepEqual(await fx.kube.getConfigMap("default", "empty"), {});
});

Deno.test("watchConfigMap delivers the current data, changes, deletion and survives drops", async () => {
  await using fx = await fixture();
  fx.fake.setConfigMap("kube-system", "hostnic-cfg-cm", { hostnic: "v1" });
  fx.fake.setConfigMap("kube-system", "other", { x: "1" });
  const seen: (Record<string, string> | undefined)[] = [];
  await using _w = fx.kube.watchConfigMap("kube-system", "hostnic-cfg-cm", (d) => seen.push(d));
  await waitFor("initial data", () => seen.length === 1);
  assert.deepEqual(seen[0], { hostnic: "v1" });
  await waitFor("watch open", () => fx.fake.openWatches === 1);

  fx.fake.setConfigMap("kube-system", "hostnic-cfg-cm", { hostnic: "v2" });
  fx.fake.setConfigMap("kube-system", "other", { x: "2" });
  await waitFor("change v2", () => seen.length === 2);
  assert.deepEqual(seen[1], { hostnic: "v2" });

  // The server drops the stream; a change made meanwhile arrives after the resume.
  fx.fake.dropWatches();
  fx.fake.setConfigMap("kube-system", "hostnic-cfg-cm", { hostnic: "v3" });
  await waitFor("change v3 after reconnect", () => seen.length === 3);
  assert.deepEqual(seen[2], { hostnic: "v3" });

  // History forgotten: the resume gets 410 and the watch lists again.
  await waitFor("watch reopened", () => fx.fake.openWatches === 1);
  fx.fake.dropWatches();
  fx.fake.setConfigMap("kube-system", "hostnic-cfg-cm", { hostnic: "v4" });
  fx.fake.compactHistory();
  await waitFor("v4 after relist", () => seen.length === 4);
  assert.deepEqual(seen[3], { hostnic: "v4" });

  await waitFor("watch reopened", () => fx.fake.openWatches === 1);
  fx.fake.remove("configmaps", "kube-system", "hostnic-cfg-cm");
  await waitFor("deletion", () => seen.length === 5);
  assert.equal(seen[4], undefined);
});

Deno.test("watchPodsOnNode sees this node's pods only, and stop() ends it", async () => {
  await using fx = await fixture();
  fx.fake.addPod({ name: "a", nodeName: "node-1" });
  fx.fake.addPod({ name: "b", nodeName: "node-2" });
  const seen: [WatchEventType, string][] = [];
  const w = fx.kube.watchPodsOnNode("node-1", (type, pod: PodInfo) => seen.push([type, pod.name]));
  try {
    await waitFor("initial pod", () => seen.length === 1);
    await waitFor("watch open", () => fx.fake.openWatches === 1);
    fx.fake.addPod({ name: "c", nodeName: "node-1" });
    fx.fake.addPod({ name: "d", nodeName: "node-2" });
    fx.fake.modify("pods", "default", "a", (p) => (p.status.phase = "Succeeded"));
    fx.fake.remove("pods", "default", "c");
    await waitFor("four events", () => seen.length === 4);
    assert.deepEqual(seen, [["ADDED", "a"], ["ADDED", "c"], ["MODIFIED", "a"], ["DELETED", "c"]]);
  } finally {
    await w.stop();
  }
  await waitFor("watch closed", () => fx.fake.openWatches === 0);
  fx.fake.addPod({ name: "e", nodeName: "node-1" });
  await w.stop(); // idempotent
  assert.equal(seen.length, 4, "no callbacks after stop()");
});

Deno.test("watchPodsOnNode reports when its pods are complete, and relists after a break", async () => {
  await using fx = await fixture();
  fx.fake.addPod({ name: "a", nodeName: "node-1" });
  const seen: [WatchEventType, string][] = [];
  const synced: boolean[] = [];
  const w = fx.kube.watchPodsOnNode("node-1", (type, pod) => seen.push([type, pod.name]), {
    onSynced: (s) => synced.push(s),
  });
  try {
    await waitFor("listed", () => synced.length === 1);
    assert.deepEqual(synced, [true]);
    await waitFor("watch open", () => fx.fake.openWatches === 1);
    fx.fake.addPod({ name: "b", nodeName: "node-1" });
    await waitFor("event", () => seen.length === 2);
    // The stream ends and the reconnect fails: not synced until the server answers a list again.
    fx.fake.failNext({ method: "GET", path: /^\/api\/v1\/pods$/, status: 500, times: 1 });
    fx.fake.remove("pods", "default", "a");
    fx.fake.dropWatches();
    await waitFor("synced again", () => synced.length === 3);
    assert.deepEqual(synced, [true, false, true]);
    assert.deepEqual(seen.slice(2).filter(([t]) => t !== "ADDED"), [["DELETED", "a"]]);
  } finally {
    await w.stop();
  }
});

Deno.test("API errors become KubeError naming the operation, without secrets", async () => {
  await using fx = await fixture();
  fx.fake.failNext({
    path: /\/pods\/x$/,
    status: 403,
    reason: "Forbidden",
    message:
      'pods "x" is forbidden: User "system:serviceaccount:kube-system:hostnic-node" cannot get',
  });
  await assert.rejects(fx.kube.getPod("default", "x"), (e) =>
    assertKubeError(e, {
      code: "KUBE_API_ERROR",
      status: 403,
      reason: "Forbidden",
      message:
        /^Kubernetes API refused to get pod "default\/x": 403 Forbidden: pods "x" is forbidden/,
    }));
  fx.fake.failNext({ path: /\/nodes$/, status: 500, message: "etcd is down" });
  await assert.rejects(
    fx.kube.listNodes(),
    (e) => assertKubeError(e, { code: "KUBE_API_ERROR", status: 500, message: /etcd is down/ }),
  );
  // A reply that is not a pod (no uid).
  fx.fake.addPod({ name: "broken" });
  fx.fake.modify("pods", "default", "broken", (p) => delete p.metadata.uid);
  await assert.rejects(
    fx.kube.getPod("default", "broken"),
    (e) => assertKubeError(e, { code: "KUBE_INVALID_REPLY", message: /metadata\.uid/ }),
  );
  await assert.rejects(
    fx.kube.getPod("default", "Bad_Name"),
    (e) => assertKubeError(e, { code: "KUBE_INVALID_REQUEST", message: /"Bad_Name"/ }),
  );
});

Deno.test("a rejected token gives 401 with advice, and never shows the token", async () => {
  await using fx = await fixture();
  const text = await Deno.readTextFile(fx.fake.kubeconfig);
  const wrong = `${fx.fake.kubeconfig}.wrong`;
  await Deno.writeTextFile(wrong, text.replace(fx.fake.token, "wrong-token-123"));
  const kube = loadKube({ kubeconfig: wrong });
  try {
    await assert.rejects(kube.getNode("node-1"), (e) => {
      assertKubeError(e, { code: "KUBE_API_ERROR", status: 401, message: /credentials/ });
      assert.doesNotMatch((e as Error).message, /wrong-token-123/);
      return true;
    });
  } finally {
    await kube.close();
    await Deno.remove(wrong);
  }
});

Deno.test("an unreachable or silent server is KUBE_UNREACHABLE", async () => {
  await using fx = await fixture({ requestTimeoutMs: 300 });
  fx.fake.stallNext({ path: /\/nodes\/slow$/ });
  await assert.rejects(
    fx.kube.getNode("slow"),
    (e) => assertKubeError(e, { code: "KUBE_UNREACHABLE", message: /no answer within 300 ms/ }),
  );
  const url = fx.fake.url;
  const kubeconfig = `${fx.fake.kubeconfig}.copy`;
  await Deno.copyFile(fx.fake.kubeconfig, kubeconfig);
  const kube = loadKube({ kubeconfig });
  await fx.fake.close();
  try {
    await assert.rejects(kube.getNode("node-1"), (e) =>
      assertKubeError(e, {
        code: "KUBE_UNREACHABLE",
        message: new RegExp(`^Cannot reach the Kubernetes API server at "${url}" to get node`),
      }));
  } finally {
    await kube.close();
    await Deno.remove(kubeconfig).catch(() => {});
  }
});

Deno.test("loadKube explains a missing or bad kubeconfig", async () => {
  assert.throws(
    () => loadKube({ kubeconfig: "/nonexistent/kubeconfig" }),
    (e) =>
      assertKubeError(e, {
        code: "KUBE_CONFIG",
        message: /^Cannot load kubeconfig "\/nonexistent\/kubeconfig": no such file$/,
      }),
  );
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/bad`,
      "users: [{name: u, user: {token: s3cret-value}\nclusters: [unclosed\n",
    );
    assert.throws(() => loadKube({ kubeconfig: `${dir}/bad` }), (e) => {
      assertKubeError(e, { code: "KUBE_CONFIG", message: /not a valid kubeconfig/ });
      assert.doesNotMatch((e as Error).message, /s3cret/);
      return true;
    });
    await Deno.writeTextFile(`${dir}/empty`, "apiVersion: v1\nkind: Config\n");
    assert.throws(
      () => loadKube({ kubeconfig: `${dir}/empty` }),
      (e) => assertKubeError(e, { code: "KUBE_CONFIG", message: /no current context/ }),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadKube without a kubeconfig outside a pod says so", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { loadKube } from "${new URL("../../lib/k8s/client.ts", import.meta.url).href}";
       try { loadKube(); } catch (e) { console.log(e.code + ": " + e.message); }`,
    ],
    env: { KUBERNETES_SERVICE_HOST: "", KUBERNETES_SERVICE_PORT: "", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.match(text, /^KUBE_CONFIG: Not running in a Kubernetes pod .* pass --kubeconfig/);
});

Deno.test("vxnet assignment over 5 nodes is stable, and a 6th node moves nobody", async () => {
  await using fx = await fixture();
  const names = ["node-c", "node-a", "node-e", "node-b", "node-d"];
  for (const name of names) fx.fake.addNode({ name });
  const vxNets = ["vxnet-aaa", "vxnet-bbb"];

  /** One reconcile pass as a controller would run it: read nodes, plan, write the changes. */
  const reconcile = async () => {
    const plan = assignVxnets({ nodes: await fx.kube.listNodes(), vxNets, maxNic: 63 });
    for (const [node, vxnet] of plan.changes) {
      await fx.kube.annotateNode(node, { [NODE_ANNOTATION_VXNET]: vxnet });
    }
    return plan;
  };
  const stored = async () =>
    Object.fromEntries(
      (await fx.kube.listNodes()).map((n) => [n.name, n.annotations[NODE_ANNOTATION_VXNET]]),
    );

  const first = await reconcile();
  assert.equal(first.changes.size, 5);
  const afterFirst = await stored();
  assert.deepEqual(afterFirst, {
    "node-a": "vxnet-aaa",
    "node-b": "vxnet-aaa",
    "node-c": "vxnet-aaa",
    "node-d": "vxnet-aaa",
    "node-e": "vxnet-bbb",
  });

  const patchesBefore = fx.fake.patches.length;
  const second = await reconcile();
  assert.equal(second.changes.size, 0);
  assert.deepEqual(await stored(), afterFirst);
  assert.equal(fx.fake.patches.length, patchesBefore, "nothing rewritten");

  // "node-0" sorts first; it must not push anyone off vxnet-aaa.
  fx.fake.addNode({ name: "node-0" });
  const third = await reconcile();
  assert.deepEqual([...third.changes], [["node-0", "vxnet-bbb"]]);
  assert.deepEqual(await stored(), { ...afterFirst, "node-0": "vxnet-bbb" });
});
