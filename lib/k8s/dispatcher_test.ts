import * as k8s from "@kubernetes/client-node";
import assert from "node:assert/strict";
import { optionsKey, shareDispatcher } from "./dispatcher.ts";

/** A TLS kubeconfig (a CA, a bearer token), as the in-cluster service account gives. */
function config(ca: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: "https://127.0.0.1:6443", caData: btoa(ca) }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return kc;
}

async function dispatcherOf(kc: k8s.KubeConfig): Promise<unknown> {
  const ctx = new k8s.RequestContext("https://127.0.0.1:6443/api/v1/pods", k8s.HttpMethod.GET);
  await kc.applySecurityAuthentication(ctx);
  return ctx.getDispatcher();
}

Deno.test("client-node alone builds a new dispatcher for every request (why shareDispatcher exists)", async () => {
  const kc = config("ca-1");
  const a = await dispatcherOf(kc);
  assert.ok(a);
  assert.notEqual(await dispatcherOf(kc), a);
});

Deno.test("shareDispatcher: every request of a config gets the same dispatcher", async () => {
  const kc = shareDispatcher(config("ca-1"));
  const first = await dispatcherOf(kc);
  assert.ok(first);
  for (let i = 0; i < 50; i++) assert.equal(await dispatcherOf(kc), first);
  // Idempotent: patching again keeps the same pool.
  assert.equal(await dispatcherOf(shareDispatcher(kc)), first);
  // Requests through a derived object (HttpKube's User-Agent wrapper) share it too.
  assert.equal(await dispatcherOf(Object.create(kc) as k8s.KubeConfig), first);
});

Deno.test("shareDispatcher: changed TLS settings get a new dispatcher and the old one is closed", async () => {
  const kc = shareDispatcher(config("ca-1"));
  const first = await dispatcherOf(kc) as { closed?: boolean; destroyed?: boolean };
  // The CA is read from the config (or its file) on every request: a rotated one.
  (kc.clusters[0] as { caData?: string }).caData = btoa("ca-2");
  const second = await dispatcherOf(kc);
  assert.notEqual(second, first);
  assert.equal(await dispatcherOf(kc), second);
  assert.equal(first.closed, true);
});

Deno.test("optionsKey: equal for equal bytes, different otherwise, key order ignored", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  assert.equal(optionsKey({ a: enc("x"), b: 1 }), optionsKey({ b: 1, a: enc("x") }));
  assert.notEqual(optionsKey({ a: enc("x") }), optionsKey({ a: enc("y") }));
});
