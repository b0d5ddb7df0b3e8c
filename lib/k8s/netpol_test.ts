import assert from "node:assert/strict";
import {
  parseNetworkPolicy,
  policiesSelecting,
  policyNotEnforcedMessage,
  selectorMatches,
} from "./netpol.ts";

const sel = (o: unknown) =>
  parseNetworkPolicy({ metadata: { name: "p", namespace: "ns" }, spec: { podSelector: o } }).spec
    .podSelector;

Deno.test("label selectors: {} matches all; matchLabels and every operator; ANDed", () => {
  assert.equal(selectorMatches(sel({}), {}), true);
  assert.equal(selectorMatches(sel({ matchLabels: { app: "db" } }), { app: "db", x: "1" }), true);
  assert.equal(selectorMatches(sel({ matchLabels: { app: "db" } }), { app: "web" }), false);
  assert.equal(selectorMatches(sel({ matchLabels: { app: "db" } }), {}), false);
  const expr = (operator: string, values?: string[]) =>
    sel({ matchExpressions: [{ key: "tier", operator, ...(values ? { values } : {}) }] });
  assert.equal(selectorMatches(expr("In", ["a", "b"]), { tier: "b" }), true);
  assert.equal(selectorMatches(expr("In", ["a"]), { tier: "b" }), false);
  assert.equal(selectorMatches(expr("In", ["a"]), {}), false);
  assert.equal(selectorMatches(expr("NotIn", ["a"]), { tier: "b" }), true);
  assert.equal(selectorMatches(expr("NotIn", ["a"]), {}), true);
  assert.equal(selectorMatches(expr("NotIn", ["a"]), { tier: "a" }), false);
  assert.equal(selectorMatches(expr("Exists"), { tier: "" }), true);
  assert.equal(selectorMatches(expr("Exists"), {}), false);
  assert.equal(selectorMatches(expr("DoesNotExist"), {}), true);
  assert.equal(selectorMatches(expr("DoesNotExist"), { tier: "x" }), false);
  const both = sel({
    matchLabels: { app: "db" },
    matchExpressions: [{ key: "tier", operator: "In", values: ["a"] }],
  });
  assert.equal(selectorMatches(both, { app: "db", tier: "a" }), true);
  assert.equal(selectorMatches(both, { app: "db", tier: "b" }), false);
  assert.equal(selectorMatches(both, { app: "web", tier: "a" }), false);
});

Deno.test("a policy selects pods of its own namespace only; names sorted", () => {
  const policies = [
    parseNetworkPolicy({ metadata: { name: "z-all", namespace: "a" }, spec: { podSelector: {} } }),
    parseNetworkPolicy({
      metadata: { name: "b-db", namespace: "a" },
      spec: { podSelector: { matchLabels: { app: "db" } } },
    }),
    parseNetworkPolicy({ metadata: { name: "other", namespace: "b" }, spec: { podSelector: {} } }),
  ];
  assert.deepEqual(
    policiesSelecting(policies, { namespace: "a", name: "p", labels: { app: "db" } }),
    ["b-db", "z-all"],
  );
  assert.deepEqual(
    policiesSelecting(policies, { namespace: "a", name: "p", labels: { app: "web" } }),
    ["z-all"],
  );
  assert.deepEqual(policiesSelecting(policies, { namespace: "c", name: "p", labels: {} }), []);
  assert.match(policyNotEnforcedMessage(["b-db", "z-all"]), /^NetworkPolicy b-db, z-all selects/);
});

Deno.test("invalid policies are refused naming the policy and the field", () => {
  assert.throws(
    () =>
      parseNetworkPolicy({
        metadata: { name: "bad", namespace: "a" },
        spec: {
          podSelector: { matchExpressions: [{ key: "k", operator: "Near", values: ["x"] }] },
        },
      }),
    /NetworkPolicy a\/bad: spec\.podSelector\.matchExpressions\.0\.operator/,
  );
  assert.throws(
    () =>
      parseNetworkPolicy({
        metadata: { name: "bad2", namespace: "a" },
        spec: { podSelector: { matchExpressions: [{ key: "k", operator: "In" }] } },
      }),
    /NetworkPolicy a\/bad2: .*In\/NotIn need values/,
  );
  assert.throws(() => parseNetworkPolicy({ metadata: { name: "x" } }), /NetworkPolicy \?\/x/);
});
