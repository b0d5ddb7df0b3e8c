import assert from "node:assert/strict";
import { ANNOTATION_TYPE } from "../../k8s/annotations.ts";
import type { PodInfo } from "../../k8s/types.ts";
import { POLICY_NOT_ENFORCED, policyWarnings } from "./netpol_warn.ts";

const pod = (name: string, labels: Record<string, string>, passthrough = true): PodInfo => ({
  namespace: "a",
  name,
  uid: `uid-${name}`,
  labels,
  annotations: passthrough ? { [ANNOTATION_TYPE]: "passthrough" } : {},
});

Deno.test("PolicyNotEnforced: only passthrough pods a policy selects, once per policy set", () => {
  const warned = new Map<string, string>();
  const pods = [pod("pt", { app: "web" }), pod("veth", { app: "web" }, false)];
  const deny = { namespace: "a", name: "deny", podSelector: {} };
  assert.deepEqual(policyWarnings([], pods, warned), [], "no policy, no warning");
  const first = policyWarnings([deny], pods, warned);
  assert.equal(first.length, 1);
  assert.deepEqual(first[0].pod, { namespace: "a", name: "pt", uid: "uid-pt" });
  assert.equal(first[0].event.type, "Warning");
  assert.equal(first[0].event.reason, POLICY_NOT_ENFORCED);
  assert.match(first[0].event.message, /NetworkPolicy deny selects this pod.*passthrough/);
  assert.deepEqual(policyWarnings([deny], pods, warned), [], "not repeated");
  const web = { namespace: "a", name: "web", podSelector: { matchLabels: { app: "web" } } };
  const again = policyWarnings([deny, web], pods, warned);
  assert.equal(again.length, 1, "a new selecting policy warns again");
  assert.match(again[0].event.message, /NetworkPolicy deny, web selects/);
  assert.deepEqual(policyWarnings([], pods, warned), []);
  assert.equal(warned.size, 0, "unselected pods are forgotten");
  assert.equal(policyWarnings([deny], pods, warned).length, 1, "…so a later selection warns");
  const other = { namespace: "b", name: "deny", podSelector: {} };
  assert.deepEqual(policyWarnings([other], pods, new Map()), [], "other namespaces do not count");
  assert.deepEqual(
    policyWarnings([{ namespace: "a", name: "db", podSelector: { matchLabels: { app: "db" } } }], [
      pods[0],
    ], new Map()),
    [],
    "a selector that does not match",
  );
});
