/**
 * `loadKube` against the real kube-apiserver (lib/testbed/kube.ts), through the real
 * `@kubernetes/client-node`, via the fault-injecting proxy (lib/testbed/fault_proxy.ts) for the
 * faults the real server will not produce on demand: reads, annotation and condition patches,
 * events, ConfigMap reads, the node → vxnet assignment written back as node annotations, error
 * mapping (401, 403, 404, 409, 422, 5xx, malformed replies, timeouts, unreachable) with no token in
 * any message, retries (503 then success, 429 with Retry-After, a persistent 500, a lost create
 * reply), the client-side rate limit and the User-Agent. Watches: watch_test.ts.
 */
import assert from "node:assert/strict";
import {
  ANNOTATION_IP,
  ANNOTATION_VXNET,
  assignVxnets,
  loadKube,
  NODE_ANNOTATION_VXNET,
  parsePodAnnotations,
} from "../../lib/k8s/mod.ts";
import { VERSION } from "../../lib/version.ts";
import {
  apply,
  assertKubeError,
  COMPONENT,
  node,
  pod,
  startKube,
  userAnnotations,
} from "./fixture.ts";

type RawEvent = {
  metadata: { name: string };
  type: string;
  reason: string;
  message: string;
  count?: number;
  involvedObject: Record<string, string>;
  source?: Record<string, string>;
};

Deno.test({
  name: "HttpKube against the real kube-apiserver",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using fx = await startKube("kc");
    const { cp, proxy } = fx;
    const kube = fx.kube();
    const err = (want: Parameters<typeof assertKubeError>[1]) => (e: unknown) =>
      assertKubeError(e, want, fx.messages);

    await t.step(
      "vxnet assignment over 5 nodes is stable, and a 6th node moves nobody",
      async () => {
        const names = ["node-c", "node-a", "node-e", "node-b", "node-d"];
        await apply(cp, ...names.map((n) => node(n)));
        const vxNets = ["vxnet-aaa", "vxnet-bbb"];
        /** One reconcile pass as a controller would run it: read nodes, plan, write the changes. */
        const reconcile = async () => {
          const plan = assignVxnets({ nodes: await kube.listNodes(), vxNets, maxNic: 63 });
          for (const [n, vxnet] of plan.changes) {
            await kube.annotateNode(n, { [NODE_ANNOTATION_VXNET]: vxnet });
          }
          return plan;
        };
        const stored = async () =>
          Object.fromEntries(
            (await kube.listNodes()).map((n) => [n.name, n.annotations[NODE_ANNOTATION_VXNET]]),
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
        const patches = async () => (await proxy.requests(/^\/api\/v1\/nodes\//)).length;
        const before = await patches();
        const second = await reconcile();
        assert.equal(second.changes.size, 0);
        assert.deepEqual(await stored(), afterFirst);
        assert.equal(await patches(), before, "nothing rewritten");
        // "node-0" sorts first; it must not push anyone off vxnet-aaa.
        await apply(cp, node("node-0"));
        const third = await reconcile();
        assert.deepEqual([...third.changes], [["node-0", "vxnet-bbb"]]);
        assert.deepEqual(await stored(), { ...afterFirst, "node-0": "vxnet-bbb" });
        await cp.kubectlOk(["delete", "node", ...names, "node-0"]);
      },
    );

    await apply(
      cp,
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "web" } },
      node("node-1", { keep: "me" }),
      node("node-2"),
    );
    // What a kubelet would report: an address and its Ready condition.
    await cp.kubectlOk([
      "patch",
      "node",
      "node-1",
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({
        status: {
          addresses: [{ type: "InternalIP", address: "10.0.0.5" }],
          conditions: [{
            type: "Ready",
            status: "True",
            reason: "KubeletReady",
            message: "kubelet is posting ready status",
            lastHeartbeatTime: new Date().toISOString(),
            lastTransitionTime: new Date().toISOString(),
          }],
        },
      }),
    ]);

    await t.step(
      "getPod returns the pod with its annotations; a missing pod is undefined",
      async () => {
        await apply(
          cp,
          pod({
            namespace: "web",
            name: "nginx-0",
            node: "node-1",
            annotations: { [ANNOTATION_VXNET]: "vxnet-cfn58ev", [ANNOTATION_IP]: "172.22.0.88" },
            labels: { app: "nginx" },
          }),
        );
        await cp.kubectlOk([
          "-n",
          "web",
          "patch",
          "pod",
          "nginx-0",
          "--subresource=status",
          "--type=merge",
          "-p",
          '{"status":{"phase":"Running","podIP":"172.22.0.88","podIPs":[{"ip":"172.22.0.88"}]}}',
        ]);
        const uid =
          (await cp.getJson<{ metadata: { uid: string } }>(["-n", "web", "pod", "nginx-0"]))
            .metadata.uid;
        const got = await kube.getPod("web", "nginx-0");
        assert.deepEqual(got, {
          namespace: "web",
          name: "nginx-0",
          uid,
          nodeName: "node-1",
          annotations: { [ANNOTATION_VXNET]: "vxnet-cfn58ev", [ANNOTATION_IP]: "172.22.0.88" },
          labels: { app: "nginx" },
          phase: "Running",
          podIP: "172.22.0.88",
        });
        assert.deepEqual(parsePodAnnotations(got!.annotations), {
          vxnet: "vxnet-cfn58ev",
          ip: "172.22.0.88",
        });
        assert.equal(await kube.getPod("web", "nope"), undefined);
      },
    );

    await t.step("listPodsOnNode filters by spec.nodeName and follows pagination", async () => {
      const pods = [];
      for (let i = 0; i < 17; i++) {
        pods.push(
          pod({
            namespace: i % 2 ? "web" : "default",
            name: `p${i}`,
            node: i < 12 ? "node-1" : "node-2",
          }),
        );
      }
      pods.push(pod({ name: "pending" }));
      await apply(cp, ...pods);
      const paged = fx.kube({ listPageSize: 5 });
      const before = (await proxy.requests(/^\/api\/v1\/pods\?/)).length;
      const got = await paged.listPodsOnNode("node-1");
      assert.deepEqual(
        got.map((p) => `${p.namespace}/${p.name}`).sort(),
        [
          "web/nginx-0",
          ...Array.from({ length: 12 }, (_, i) => `${i % 2 ? "web" : "default"}/p${i}`),
        ].sort(),
      );
      assert.ok(got.every((p) => p.nodeName === "node-1"));
      const lists = (await proxy.requests(/^\/api\/v1\/pods\?/)).slice(before);
      assert.equal(lists.length, 3, "13 pods in pages of 5");
      assert.match(lists[0].path, /fieldSelector=spec\.nodeName%3Dnode-1/);
      assert.match(lists[1].path, /continue=/);
    });

    await t.step("annotateNode sets and removes annotations with one merge patch", async () => {
      const after = await kube.annotateNode("node-1", { [NODE_ANNOTATION_VXNET]: "vxnet-a" });
      assert.equal(after.annotations[NODE_ANNOTATION_VXNET], "vxnet-a");
      const n = await kube.getNode("node-1");
      assert.ok(n);
      assert.deepEqual(userAnnotations(n.annotations), {
        keep: "me",
        [NODE_ANNOTATION_VXNET]: "vxnet-a",
      });
      assert.equal(n.internalIp, "10.0.0.5");
      assert.equal(n.conditions.find((c) => c.type === "Ready")?.status, "True");
      assert.ok(n.uid && n.createdAt);

      await kube.annotateNode("node-1", { [NODE_ANNOTATION_VXNET]: null });
      assert.deepEqual(userAnnotations((await kube.getNode("node-1"))!.annotations), {
        keep: "me",
      });
      const patches = (await proxy.requests(/^\/api\/v1\/nodes\/node-1$/))
        .filter((r) => r.method === "PATCH");
      assert.deepEqual(patches.map((p) => p.contentType), [
        "application/merge-patch+json",
        "application/merge-patch+json",
      ]);

      assert.equal(await kube.getNode("node-9"), undefined);
      await assert.rejects(
        kube.annotateNode("node-9", { a: "b" }),
        err({ code: "KUBE_API_ERROR", status: 404, message: /node "node-9"/ }),
      );
      const count = (await proxy.stats()).requests;
      await assert.rejects(
        kube.annotateNode("node-1", { "bad key!": "x" }),
        err({ code: "KUBE_INVALID_REQUEST", message: /"bad key!"/ }),
      );
      assert.equal((await proxy.stats()).requests, count, "nothing sent");
    });

    await t.step(
      "setNodeCondition adds hostnic's condition and leaves kubelet's alone",
      async () => {
        await kube.setNodeCondition("node-1", {
          type: "HostnicReady",
          status: "False",
          reason: "PoolEmpty",
          message: "no free NIC",
        });
        const conditions = async () => {
          const n = (await kube.getNode("node-1"))!;
          const byType = Object.fromEntries(n.conditions.map((c) => [c.type, c]));
          assert.deepEqual(Object.keys(byType).sort(), ["HostnicReady", "Ready"]);
          return byType;
        };
        let c = await conditions();
        assert.equal(c.Ready.status, "True", "kubelet's condition is kept");
        assert.equal(c.Ready.reason, "KubeletReady");
        assert.equal(c.HostnicReady.status, "False");
        assert.equal(c.HostnicReady.reason, "PoolEmpty");
        assert.equal(c.HostnicReady.message, "no free NIC");
        const first = c.HostnicReady.lastTransitionTime;
        assert.ok(first);
        const patch = (await proxy.requests(/^\/api\/v1\/nodes\/node-1\/status$/)).at(-1)!;
        assert.equal(patch.method, "PATCH");
        assert.equal(patch.contentType, "application/strategic-merge-patch+json");

        // Same status again: the transition time stays. (Timestamps have second resolution: let
        // one pass, or a transition time wrongly reset would look unchanged.)
        await new Promise((r) => setTimeout(r, 1100));
        await kube.setNodeCondition("node-1", { type: "HostnicReady", status: "False" });
        c = await conditions();
        assert.equal(c.HostnicReady.lastTransitionTime, first);
        assert.notEqual(c.HostnicReady.lastHeartbeatTime, first);
        await kube.setNodeCondition("node-1", { type: "HostnicReady", status: "True" });
        c = await conditions();
        assert.equal(c.Ready.status, "True");
        assert.equal(c.HostnicReady.status, "True");
        assert.notEqual(c.HostnicReady.lastTransitionTime, first);
      },
    );

    await t.step("createPodEvent records reason and message; repeats bump the count", async () => {
      const events = fx.kube({ component: "hostnic-node" });
      const uid = (await kube.getPod("web", "nginx-0"))!.uid;
      const ref = { namespace: "web", name: "nginx-0", uid };
      const ev = {
        type: "Warning" as const,
        reason: "NoFreeNic",
        message: 'No free NIC in vxnet "vxnet-a"; retrying',
      };
      const stored = async () =>
        (await cp.getJson<{ items: RawEvent[] }>([
          "-n",
          "web",
          "events",
          "--field-selector=involvedObject.name=nginx-0",
        ])).items;
      await events.createPodEvent(ref, ev);
      let list = await stored();
      assert.equal(list.length, 1);
      assert.equal(list[0].type, "Warning");
      assert.equal(list[0].reason, "NoFreeNic");
      assert.equal(list[0].message, ev.message);
      assert.deepEqual(list[0].involvedObject, {
        apiVersion: "v1",
        kind: "Pod",
        namespace: "web",
        name: "nginx-0",
        uid,
      });
      assert.deepEqual(list[0].source, { component: "hostnic-node", host: "node-1" });
      assert.equal(list[0].count, 1);
      assert.match(list[0].metadata.name, /^nginx-0\.[0-9a-f]+$/);

      await events.createPodEvent(ref, ev);
      list = await stored();
      assert.equal(list.length, 1, "the repeat updates the same Event");
      assert.equal(list[0].count, 2);

      await events.createPodEvent(ref, { type: "Normal", reason: "NicAttached", message: "ok" });
      assert.equal((await stored()).length, 2);

      // Event expired server-side: the next repeat creates a fresh one.
      await cp.kubectlOk(["-n", "web", "delete", "event", list[0].metadata.name]);
      await events.createPodEvent(ref, ev);
      list = (await stored()).filter((e) => e.reason === "NoFreeNic");
      assert.equal(list.length, 1);
      assert.equal(list[0].count, 1);

      const count = (await proxy.stats()).requests;
      await assert.rejects(
        events.createPodEvent(ref, { type: "Warning", reason: "no free nic", message: "x" }),
        err({ code: "KUBE_INVALID_REQUEST", message: /reason "no free nic"/ }),
      );
      assert.equal((await proxy.stats()).requests, count, "nothing sent");
    });

    await t.step("a create whose reply was lost is retried once and recorded once", async () => {
      // The server stores the Event, the reply is lost (503): the retry meets 409 AlreadyExists.
      await proxy.inject({
        method: "POST",
        path: "^/api/v1/namespaces/web/events$",
        status: 503,
        reason: "ServiceUnavailable",
        forwardFirst: true,
      });
      const ref = { namespace: "web", name: "nginx-0" };
      await kube.createPodEvent(ref, { type: "Normal", reason: "LostReply", message: "once" });
      const posts = (await proxy.requests(/^\/api\/v1\/namespaces\/web\/events$/))
        .filter((r) => r.method === "POST").slice(-2);
      assert.deepEqual(posts.map((p) => p.status), [503, 409]);
      const stored = (await cp.eventsOn("web", "nginx-0")).filter((e) => e.reason === "LostReply");
      assert.equal(stored.length, 1);
      assert.equal(stored[0].count, 1);
    });

    await t.step("getConfigMap returns data; a missing ConfigMap is undefined", async () => {
      await apply(cp, {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { namespace: "kube-system", name: "hostnic-cfg-cm" },
        data: { hostnic: '{"pool":{"maxNic":60}}', "hostnic-cni": '{"cniVersion":"1.0.0"}' },
      }, {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { namespace: "default", name: "empty" },
      });
      assert.deepEqual(await kube.getConfigMap("kube-system", "hostnic-cfg-cm"), {
        hostnic: '{"pool":{"maxNic":60}}',
        "hostnic-cni": '{"cniVersion":"1.0.0"}',
      });
      assert.equal(await kube.getConfigMap("kube-system", "absent"), undefined);
      assert.deepEqual(await kube.getConfigMap("default", "empty"), {});
    });

    await t.step("403 names the resource and the verb, and is not retried", async () => {
      await cp.kubectlOk(["-n", "default", "create", "serviceaccount", "nobody"]);
      const kc = await cp.serviceAccountKubeconfig("default", "nobody", {
        server: proxy.hostServer,
      });
      const weak = fx.kube({ kubeconfig: kc });
      const before = (await proxy.requests(/\/pods\/nginx-0$/)).length;
      await assert.rejects(weak.getPod("web", "nginx-0"), (e) => {
        err({
          code: "KUBE_API_ERROR",
          status: 403,
          reason: "Forbidden",
          attempts: 1,
          message:
            /^Kubernetes API refused to get pod "web\/nginx-0": 403 Forbidden: pods "nginx-0" is forbidden: User "system:serviceaccount:default:nobody" cannot get resource "pods"/,
        })(e);
        return true;
      });
      assert.equal((await proxy.requests(/\/pods\/nginx-0$/)).length - before, 1);
      const token = /token: (\S+)/.exec(await Deno.readTextFile(kc))![1];
      assert.ok(fx.messages.every((m) => !m.includes(token)));
    });

    await t.step("409 and 422 are reported as the server said, and not retried", async () => {
      await proxy.inject({
        method: "PATCH",
        path: "^/api/v1/nodes/node-2$",
        status: 409,
        reason: "Conflict",
        message: 'Operation cannot be fulfilled on nodes "node-2": the object has been modified',
      });
      await assert.rejects(
        kube.annotateNode("node-2", { a: "b" }),
        err({
          code: "KUBE_API_ERROR",
          status: 409,
          reason: "Conflict",
          attempts: 1,
          message: /^Kubernetes API refused to annotate node "node-2": 409 Conflict: Operation/,
        }),
      );
      // The real server's validation: annotations are limited to 256 KiB in all.
      await assert.rejects(
        kube.annotateNode("node-2", { big: "x".repeat(300_000) }),
        err({
          code: "KUBE_API_ERROR",
          status: 422,
          reason: "Invalid",
          attempts: 1,
          message: /annotate node "node-2": 422 Invalid: .*metadata\.annotations: Too long/,
        }),
      );
      const patches = (await proxy.requests(/^\/api\/v1\/nodes\/node-2$/))
        .filter((r) => r.method === "PATCH");
      assert.deepEqual(patches.map((p) => p.status), [409, 422]);
      assert.equal((await kube.getNode("node-2"))!.annotations.a, undefined);
    });

    await t.step("a 503 then success: the call succeeds after one retry", async () => {
      await proxy.inject({ method: "GET", path: "^/api/v1/nodes/node-1$", status: 503 });
      const n = await kube.getNode("node-1");
      assert.equal(n?.name, "node-1");
      const gets = (await proxy.requests(/^\/api\/v1\/nodes\/node-1$/)).slice(-2);
      assert.deepEqual(gets.map((g) => g.status), [503, 200]);
    });

    await t.step("429 with Retry-After: 1 is retried no sooner than a second later", async () => {
      await proxy.inject({
        method: "GET",
        path: "^/api/v1/namespaces/kube-system/configmaps/hostnic-cfg-cm$",
        status: 429,
        reason: "TooManyRequests",
        headers: { "Retry-After": "1" },
      });
      assert.ok(await kube.getConfigMap("kube-system", "hostnic-cfg-cm"));
      const gets = (await proxy.requests(/\/configmaps\/hostnic-cfg-cm$/)).slice(-2);
      assert.deepEqual(gets.map((g) => g.status), [429, 200]);
      assert.ok(gets[1].at - gets[0].at >= 1000, `retried after ${gets[1].at - gets[0].at} ms`);
    });

    await t.step(
      "a persistent 500 gives up after the configured attempts, naming the operation",
      async () => {
        await proxy.inject({
          method: "GET",
          path: "^/api/v1/nodes\\?",
          status: 500,
          reason: "InternalError",
          message: "etcdserver: request timed out",
          times: 100,
        });
        const before = (await proxy.requests(/^\/api\/v1\/nodes\?/)).length;
        try {
          await assert.rejects(
            fx.kube({ retry: { maxAttempts: 3, baseMs: 50 } }).listNodes(),
            err({
              code: "KUBE_API_ERROR",
              status: 500,
              attempts: 3,
              message:
                /^Kubernetes API refused to list nodes: 500 InternalError: etcdserver: request timed out \(after 3 attempts\)$/,
            }),
          );
        } finally {
          await proxy.clear();
        }
        const lists = (await proxy.requests(/^\/api\/v1\/nodes\?/)).slice(before);
        assert.deepEqual(lists.map((l) => l.status), [500, 500, 500]);
      },
    );

    await t.step(
      "malformed replies are KUBE_INVALID_REPLY naming the field, not retried",
      async () => {
        const real = await cp.getJson<{ metadata: Record<string, unknown> }>([
          "-n",
          "web",
          "pod",
          "nginx-0",
        ]);
        delete real.metadata.uid;
        await proxy.inject({ path: "/pods/nginx-0$", body: JSON.stringify(real) });
        await assert.rejects(
          kube.getPod("web", "nginx-0"),
          err({ code: "KUBE_INVALID_REPLY", message: /get pod "web\/nginx-0" .*metadata\.uid/ }),
        );
        await proxy.inject({ path: "/nodes/node-1$", body: '{"kind":"Node","metadata":' });
        await assert.rejects(
          kube.getNode("node-1"),
          err({
            code: "KUBE_INVALID_REPLY",
            attempts: 1,
            message: /get node "node-1" is not valid JSON/,
          }),
        );
        await proxy.inject({
          path: "/nodes\\?",
          body: '{"kind":"NodeList","metadata":{},"items":[{"metadata":{}}]}',
        });
        await assert.rejects(
          kube.listNodes(),
          err({
            code: "KUBE_INVALID_REPLY",
            message: /list nodes is not a valid Node: metadata\.name/,
          }),
        );
        await assert.rejects(
          kube.getPod("default", "Bad_Name"),
          err({ code: "KUBE_INVALID_REQUEST", message: /"Bad_Name"/ }),
        );
      },
    );

    await t.step("a rejected token gives 401 with advice, and never shows the token", async () => {
      const wrong = `${fx.kubeconfig}.wrong`;
      await Deno.writeTextFile(
        wrong,
        (await Deno.readTextFile(fx.kubeconfig)).replace(fx.token, "wrong-token-123"),
      );
      await assert.rejects(
        fx.kube({ kubeconfig: wrong }).getNode("node-1"),
        (e) => {
          err({ code: "KUBE_API_ERROR", status: 401, attempts: 1, message: /credentials/ })(e);
          assert.doesNotMatch((e as Error).message, /wrong-token-123/);
          return true;
        },
      );
    });

    await t.step("a silent server is KUBE_UNREACHABLE within the request deadline", async () => {
      await proxy.inject({ path: "/nodes/node-1$", delayMs: 3000 });
      await assert.rejects(
        fx.kube({ requestTimeoutMs: 500 }).getNode("node-1"),
        err({ code: "KUBE_UNREACHABLE", message: /get node "node-1": no answer within 500 ms/ }),
      );
    });

    await t.step("an unreachable server is KUBE_UNREACHABLE naming the address", async () => {
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (l.addr as Deno.NetAddr).port;
      l.close();
      const kc = `${fx.kubeconfig}.closed`;
      await Deno.writeTextFile(
        kc,
        (await Deno.readTextFile(fx.kubeconfig)).replace(
          proxy.hostServer,
          `https://127.0.0.1:${port}`,
        ),
      );
      await assert.rejects(
        fx.kube({ kubeconfig: kc, retry: { maxAttempts: 2, baseMs: 50 } }).getNode("node-1"),
        err({
          code: "KUBE_UNREACHABLE",
          attempts: 2,
          message: new RegExp(
            `^Cannot reach the Kubernetes API server at "https://127\\.0\\.0\\.1:${port}" to get node "node-1": .* \\(after 2 attempts\\)$`,
          ),
        }),
      );
    });

    await t.step("the client-side rate limit spaces requests out", async () => {
      const limited = fx.kube({ rateLimit: { qps: 4, burst: 2 } });
      const start = Date.now();
      await Promise.all(Array.from({ length: 10 }, () => limited.getNode("node-2")));
      const gets = (await proxy.requests(/^\/api\/v1\/nodes\/node-2$/))
        .filter((r) => r.at >= start - 1000 && r.method === "GET").slice(-10);
      assert.equal(gets.length, 10);
      // Burst 2 at once, then 8 more at 4 per second: the last no sooner than 2 s after the first.
      const span = gets[9].at - gets[0].at;
      // (Some slack for the proxy's view: the first requests may wait for a TLS handshake.)
      assert.ok(span >= 1500, `10 requests within ${span} ms`);
    });

    await t.step("every request says hostnic/<version> (<component>)", async () => {
      const { userAgents, log } = await proxy.stats();
      const ours = [`hostnic/${VERSION} (${COMPONENT})`, `hostnic/${VERSION} (hostnic-node)`];
      assert.deepEqual(userAgents.filter((a) => !ours.includes(a)), []);
      assert.ok(log.length > 50);
      assert.ok(log.every((e) => ours.includes(e.userAgent)));
    });

    await t.step("no message carried a token", () => {
      assert.ok(fx.messages.length >= 10);
      for (const m of fx.messages) assert.ok(!m.includes(fx.token), m);
    });
  },
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
    await Deno.writeTextFile(
      `${dir}/ok`,
      "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n" +
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n" +
        "current-context: x\n",
    );
    assert.throws(
      () => loadKube({ kubeconfig: `${dir}/ok`, rateLimit: { qps: 0, burst: 10 } }),
      (e) => assertKubeError(e, { code: "KUBE_CONFIG", message: /qps=0 burst=10/ }),
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
