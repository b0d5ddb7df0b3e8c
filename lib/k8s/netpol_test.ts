import assert from "node:assert/strict";
import { parseNetworkPolicy, policiesSelecting, selectorMatches } from "./netpol.ts";

Deno.test("label selectors: matchLabels and every matchExpressions operator", () => {
  const l = { app: "web", tier: "front" };
  assert.equal(selectorMatches({}, l), true, "empty selects all");
  assert.equal(selectorMatches({}, {}), true);
  assert.equal(selectorMatches({ matchLabels: { app: "web" } }, l), true);
  assert.equal(selectorMatches({ matchLabels: { app: "db" } }, l), false);
  assert.equal(selectorMatches({ matchLabels: { app: "web", x: "1" } }, l), false);
  const e = (
    operator: "In" | "NotIn" | "Exists" | "DoesNotExist",
    key: string,
    values?: string[],
  ) => selectorMatches({ matchExpressions: [{ key, operator, values }] }, l);
  assert.equal(e("In", "app", ["db", "web"]), true);
  assert.equal(e("In", "app", ["db"]), false);
  assert.equal(e("In", "missing", ["web"]), false);
  assert.equal(e("NotIn", "app", ["db"]), true);
  assert.equal(e("NotIn", "app", ["web"]), false);
  assert.equal(e("NotIn", "missing", ["web"]), true, "NotIn holds for an absent key");
  assert.equal(e("Exists", "tier"), true);
  assert.equal(e("Exists", "missing"), false);
  assert.equal(e("DoesNotExist", "missing"), true);
  assert.equal(e("DoesNotExist", "tier"), false);
  assert.equal(
    selectorMatches({
      matchLabels: { app: "web" },
      matchExpressions: [{ key: "tier", operator: "In", values: ["back"] }],
    }, l),
    false,
    "all terms must hold",
  );
});

Deno.test("policies select pods of their own namespace only, sorted by name", () => {
  const pols = [
    { namespace: "a", name: "z-all", podSelector: {} },
    { namespace: "a", name: "b-web", podSelector: { matchLabels: { app: "web" } } },
    { namespace: "b", name: "all", podSelector: {} },
  ];
  assert.deepEqual(
    policiesSelecting(pols, { namespace: "a", labels: { app: "web" } }).map((p) => p.name),
    ["b-web", "z-all"],
  );
  assert.deepEqual(
    policiesSelecting(pols, { namespace: "a", labels: { app: "db" } }).map((p) => p.name),
    ["z-all"],
  );
  assert.deepEqual(policiesSelecting(pols, { namespace: "c", labels: {} }), []);
});

Deno.test("NetworkPolicy objects are validated; a bad one is named", () => {
  const ok = parseNetworkPolicy({
    metadata: { namespace: "a", name: "deny", uid: "x" },
    spec: { podSelector: {}, policyTypes: ["Ingress"] },
  });
  assert.deepEqual(ok, { namespace: "a", name: "deny", podSelector: {} });
  assert.throws(
    () =>
      parseNetworkPolicy({
        metadata: { namespace: "a", name: "bad" },
        spec: { podSelector: { matchExpressions: [{ key: "k", operator: "In" }] } },
      }),
    /NetworkPolicy "a\/bad" is malformed at spec\.podSelector\.matchExpressions\.0: In\/NotIn need values/,
  );
  assert.throws(
    () => parseNetworkPolicy({ metadata: { namespace: "a", name: "x" }, spec: {} }),
    /"a\/x" is malformed at spec\.podSelector/,
  );
});
