/**
 * The daemon's own pod from the downward API, and when Kubernetes is used at all.
 */
import assert from "node:assert/strict";
import { kubernetesMode } from "../../config.ts";
import { daemonPodEnv, KubeStartError } from "./client.ts";

Deno.test("daemonPodEnv: namespace defaults to kube-system; bad values are named", () => {
  assert.deepEqual(daemonPodEnv(() => undefined), { namespace: "kube-system" });
  assert.deepEqual(
    daemonPodEnv((k) => ({ POD_NAMESPACE: "hostnic", POD_NAME: "hostnic-node-x1" })[k]),
    { namespace: "hostnic", podName: "hostnic-node-x1" },
  );
  assert.throws(
    () => daemonPodEnv((k) => (k === "POD_NAMESPACE" ? "Kube_System" : undefined)),
    (e) => e instanceof KubeStartError && /POD_NAMESPACE="Kube_System"/.test(e.message),
  );
});

Deno.test("kubernetesMode: --kubeconfig, in a pod, or not at all", () => {
  assert.equal(kubernetesMode("/k", () => undefined), "kubeconfig");
  assert.equal(kubernetesMode(undefined, () => "10.43.0.1"), "in-cluster");
  assert.equal(kubernetesMode(undefined, () => undefined), undefined);
  assert.equal(kubernetesMode(undefined, () => ""), undefined);
});
