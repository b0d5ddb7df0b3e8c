/**
 * The fake API server speaks the Kubernetes wire format the real client expects: Status errors,
 * token auth, secrets, both event APIs, patch semantics, selectors and watch resumption. Checked
 * through `@kubernetes/client-node` itself (and raw fetch where the client hides the wire).
 */
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { FakeKube, mergePatch } from "../helpers/fake_kube.ts";

async function fixture() {
  const fake = await FakeKube.start();
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(fake.kubeconfig);
  return {
    fake,
    core: kc.makeApiClient(k8s.CoreV1Api),
    events: kc.makeApiClient(k8s.EventsV1Api),
    get: (path: string, token = fake.token) =>
      fetch(`${fake.url}${path}`, { headers: { authorization: `Bearer ${token}` } }),
    [Symbol.asyncDispose]: () => fake.close(),
  };
}

Deno.test("errors are Status objects: 404 NotFound, 401 without the token, 405", async () => {
  await using fx = await fixture();
  await assert.rejects(
    fx.core.readNamespacedPod({ namespace: "default", name: "ghost" }),
    (e: unknown) => {
      assert.ok(e instanceof k8s.ApiException);
      assert.equal(e.code, 404);
      const status = JSON.parse(e.body as string);
      assert.equal(status.kind, "Status");
      assert.equal(status.reason, "NotFound");
      assert.equal(status.message, 'pods "ghost" not found');
      assert.equal(status.code, 404);
      return true;
    },
  );
  const unauth = await fx.get("/api/v1/nodes", "wrong");
  assert.equal(unauth.status, 401);
  assert.equal((await unauth.json()).reason, "Unauthorized");
  const unknown = await fx.get("/api/v1/services");
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).kind, "Status");
  const del = await fetch(`${fx.fake.url}/api/v1/nodes/n1`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${fx.fake.token}` },
  });
  assert.equal(del.status, 405);
  assert.equal((await del.json()).reason, "MethodNotAllowed");
});

Deno.test("secrets are served base64-encoded", async () => {
  await using fx = await fixture();
  fx.fake.setSecret("kube-system", "qcsecret", { "config.yaml": "zone: ap2a\n" });
  const s = await fx.core.readNamespacedSecret({ namespace: "kube-system", name: "qcsecret" });
  assert.equal(atob(s.data!["config.yaml"]), "zone: ap2a\n");
});

Deno.test("events: core/v1 and events.k8s.io/v1 create, with namespace checks", async () => {
  await using fx = await fixture();
  await fx.core.createNamespacedEvent({
    namespace: "web",
    body: {
      metadata: { generateName: "p." },
      involvedObject: { kind: "Pod", namespace: "web", name: "p" },
      reason: "Test",
      message: "hello",
    },
  });
  assert.equal(fx.fake.events("web")[0].message, "hello");
  await assert.rejects(
    fx.core.createNamespacedEvent({
      namespace: "web",
      body: {
        metadata: { name: "x" },
        involvedObject: { kind: "Pod", namespace: "other", name: "p" },
      },
    }),
    (e: unknown) => e instanceof k8s.ApiException && e.code === 422,
  );
  await fx.events.createNamespacedEvent({
    namespace: "web",
    body: {
      metadata: { name: "e1" },
      eventTime: new Date(),
      reportingController: "hostnic",
      reportingInstance: "node-1",
      action: "Allocate",
      reason: "NoFreeNic",
      note: "pool empty",
      type: "Warning",
      regarding: { kind: "Pod", namespace: "web", name: "p" },
    },
  });
  assert.equal(fx.fake.eventsV1("web")[0].note, "pool empty");
});

Deno.test("merge patch replaces lists; strategic merge merges conditions by type", () => {
  const node = {
    status: {
      conditions: [{ type: "Ready", status: "True" }, { type: "X", status: "False" }],
    },
  };
  const patch = { status: { conditions: [{ type: "X", status: "True" }] } };
  assert.deepEqual(mergePatch(node, patch), patch);
  assert.deepEqual(mergePatch(node, patch, true), {
    status: { conditions: [{ type: "Ready", status: "True" }, { type: "X", status: "True" }] },
  });
  assert.deepEqual(mergePatch({ a: { b: 1, c: 2 } }, { a: { b: null } }), { a: { c: 2 } });
});

Deno.test("patches: status is only changed through /status; JSON patch is refused", async () => {
  await using fx = await fixture();
  fx.fake.addNode({ name: "n1" });
  await fx.core.patchNode(
    {
      name: "n1",
      body: { metadata: { labels: { a: "b" } }, status: { conditions: [] } },
    },
    k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
  );
  const n = fx.fake.get("nodes", undefined, "n1")!;
  assert.equal(n.metadata.labels.a, "b");
  assert.equal(n.status.conditions.length, 1, "status untouched by the main resource");
  await assert.rejects(
    fx.core.patchNode(
      { name: "n1", body: [{ op: "add", path: "/metadata/labels/x", value: "y" }] },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.JsonPatch),
    ),
    (e: unknown) => e instanceof k8s.ApiException && e.code === 415,
  );
  await assert.rejects(
    fx.core.patchNode(
      { name: "n1", body: { metadata: { resourceVersion: "1", labels: { c: "d" } } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    ),
    (e: unknown) => e instanceof k8s.ApiException && e.code === 409,
  );
});

Deno.test("selectors: unsupported field labels are 400; label selectors filter", async () => {
  await using fx = await fixture();
  fx.fake.addPod({ name: "a", labels: { app: "x" } });
  fx.fake.addPod({ name: "b", labels: { app: "y" } });
  const list = await fx.core.listNamespacedPod({ namespace: "default", labelSelector: "app=x" });
  assert.deepEqual(list.items.map((p) => p.metadata!.name), ["a"]);
  await assert.rejects(
    fx.core.listPodForAllNamespaces({ fieldSelector: "spec.hostname=x" }),
    (e: unknown) => e instanceof k8s.ApiException && e.code === 400,
  );
});

Deno.test("watch: replay after a resourceVersion, 410 Expired once forgotten", async () => {
  await using fx = await fixture();
  const a = fx.fake.setConfigMap("default", "a", { v: "1" });
  fx.fake.setConfigMap("default", "a", { v: "2" });
  const read = async (rv: string) => {
    const res = await fx.get(
      `/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=${rv}&timeoutSeconds=1`,
    );
    const text = await res.text();
    return text.trim().split("\n").map((l) => JSON.parse(l));
  };
  const replay = await read(a.metadata.resourceVersion);
  assert.deepEqual(replay.map((e) => [e.type, e.object.data.v]), [["MODIFIED", "2"]]);
  fx.fake.compactHistory();
  const expired = await read(a.metadata.resourceVersion);
  assert.equal(expired.length, 1);
  assert.equal(expired[0].type, "ERROR");
  assert.equal(expired[0].object.code, 410);
  assert.equal(expired[0].object.reason, "Expired");
});
