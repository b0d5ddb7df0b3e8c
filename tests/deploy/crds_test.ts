/**
 * deploy/crds/ agrees with lib/ipam: the CRDs carry the code's group, version, kinds, field names,
 * patterns and blockSize bounds; objects the code writes pass the OpenAPI schemas and objects the
 * code refuses fail them (checked with a small validator of the schema keywords the CRDs use); the
 * ValidatingAdmissionPolicy's regular expressions accept and refuse what parseIpamConfig does.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import type { z } from "zod";
import {
  API_VERSION,
  assignOrdinal,
  BLOCK_SIZE_MAX,
  BLOCK_SIZE_MIN,
  blockSpecSchema,
  GROUP,
  handleSpecSchema,
  IPAM_CONFIG,
  ipPoolSpecSchema,
  KINDS,
  newBlock,
  parseIpamConfig,
  PATTERNS,
  POOL_TYPES,
  poolSpecForVxnet,
  releaseOrdinals,
  VERSION,
  VXNET_POOL_NAME,
  vxnetPoolSpecSchema,
} from "../../lib/ipam/mod.ts";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

const DIR = new URL("../../deploy/crds/", import.meta.url).pathname;

async function load(file: string): Promise<Obj[]> {
  const docs = parseAllDocuments(await Deno.readTextFile(`${DIR}${file}`));
  assert.ok(Array.isArray(docs));
  return docs.map((d) => {
    assert.deepEqual(d.errors.map((e) => e.message), [], `${file}: YAML errors`);
    return d.toJS();
  });
}

const crds = await load("network.qingcloud.com_crds.yaml");
const [policy, binding] = await load("hostnic-ipam-config-policy.yaml");

function crd(kind: string): Obj {
  const c = crds.find((d) => d.spec?.names?.kind === kind);
  assert.ok(c, `CRD for ${kind} is missing`);
  return c;
}
const root = (kind: string): Obj => crd(kind).spec.versions[0].schema.openAPIV3Schema;
const spec = (kind: string): Obj => root(kind).properties.spec;

/** Minimal OpenAPI v3 validation for the keywords these CRDs use; returns the first problem. */
function validate(schema: Obj, v: unknown, at = ""): string | undefined {
  if (v === null) return schema.nullable ? undefined : `${at}: null`;
  if (schema.enum && !schema.enum.includes(v)) return `${at}: not in enum`;
  switch (schema.type) {
    case "string":
      if (typeof v !== "string") return `${at}: not a string`;
      if (schema.pattern && !new RegExp(schema.pattern).test(v)) return `${at}: pattern`;
      if (schema.minLength !== undefined && v.length < schema.minLength) return `${at}: short`;
      if (schema.maxLength !== undefined && v.length > schema.maxLength) return `${at}: long`;
      return undefined;
    case "integer":
      if (!Number.isInteger(v)) return `${at}: not an integer`;
      if (schema.minimum !== undefined && (v as number) < schema.minimum) return `${at}: minimum`;
      if (schema.maximum !== undefined && (v as number) > schema.maximum) return `${at}: maximum`;
      return undefined;
    case "boolean":
      return typeof v === "boolean" ? undefined : `${at}: not a boolean`;
    case "array": {
      if (!Array.isArray(v)) return `${at}: not an array`;
      if (schema.minItems !== undefined && v.length < schema.minItems) return `${at}: minItems`;
      if (schema.maxItems !== undefined && v.length > schema.maxItems) return `${at}: maxItems`;
      for (const [i, item] of v.entries()) {
        const p = validate(schema.items, item, `${at}[${i}]`);
        if (p) return p;
      }
      return undefined;
    }
    case "object": {
      if (typeof v !== "object" || Array.isArray(v)) return `${at}: not an object`;
      const o = v as Obj;
      for (const r of schema.required ?? []) if (!(r in o)) return `${at}.${r}: required`;
      for (const [k, val] of Object.entries(o)) {
        const sub = schema.properties?.[k] ?? schema.additionalProperties;
        if (!sub) return `${at}.${k}: unknown field`;
        const p = validate(sub, val, `${at}.${k}`);
        if (p) return p;
      }
      return undefined;
    }
  }
  return `${at}: unsupported schema type ${schema.type}`;
}

/** Top-level keys of a zod object schema and which of them are required. */
function zodKeys(schema: z.ZodObject): { all: string[]; required: string[] } {
  const all = Object.keys(schema.shape).sort();
  const required = all.filter((k) => !schema.shape[k].safeParse(undefined).success);
  return { all, required };
}

Deno.test("CRDs: the code's group, version, kinds and plurals; cluster-scoped", () => {
  assert.equal(crds.length, Object.keys(KINDS).length);
  assert.equal(API_VERSION, "network.qingcloud.com/v1alpha1");
  for (const [kind, plural] of Object.entries(KINDS)) {
    const c = crd(kind);
    assert.equal(c.apiVersion, "apiextensions.k8s.io/v1");
    assert.equal(c.metadata.name, `${plural}.${GROUP}`);
    assert.equal(c.spec.group, GROUP);
    assert.equal(c.spec.scope, "Cluster");
    assert.equal(c.spec.names.plural, plural);
    assert.equal(c.spec.names.singular, kind.toLowerCase());
    assert.equal(c.spec.names.listKind, `${kind}List`);
    assert.deepEqual(c.spec.versions.map((v: Obj) => [v.name, v.served, v.storage]), [
      [VERSION, true, true],
    ]);
  }
});

Deno.test("CRDs: spec fields and required lists are the zod schemas'", () => {
  const pairs: [string, z.ZodObject][] = [
    ["VxNetPool", vxnetPoolSpecSchema as unknown as z.ZodObject],
    ["IPPool", ipPoolSpecSchema as unknown as z.ZodObject],
    ["IPAMBlock", blockSpecSchema as unknown as z.ZodObject],
    ["IPAMHandle", handleSpecSchema as unknown as z.ZodObject],
  ];
  for (const [kind, schema] of pairs) {
    const keys = zodKeys(schema);
    assert.deepEqual(Object.keys(spec(kind).properties).sort(), keys.all, kind);
    assert.deepEqual([...(spec(kind).required ?? [])].sort(), keys.required, `${kind} required`);
  }
});

Deno.test("CRDs: patterns, blockSize bounds and pool types are the code's constants", () => {
  const vx = spec("VxNetPool").properties;
  assert.equal(vx.vxnets.items.properties.name.pattern, PATTERNS.vxnetId);
  for (const kind of ["VxNetPool", "IPPool"]) {
    const bs = spec(kind).properties.blockSize;
    assert.deepEqual([bs.minimum, bs.maximum], [BLOCK_SIZE_MIN, BLOCK_SIZE_MAX], kind);
  }
  const pool = spec("IPPool").properties;
  assert.deepEqual(pool.type.enum, [...POOL_TYPES]);
  assert.equal(pool.cidr.pattern, PATTERNS.ipv4Cidr);
  for (const f of ["rangeStart", "rangeEnd", "gateway"]) {
    assert.equal(pool[f].pattern, PATTERNS.ipv4);
  }
  const block = spec("IPAMBlock").properties;
  assert.equal(block.cidr.pattern, PATTERNS.ipv4Cidr);
  assert.equal(block.affinity.pattern, PATTERNS.affinity);
  assert.equal(block.pool.pattern, PATTERNS.objectName);
  assert.equal(block.allocations.maxItems, 2 ** (32 - BLOCK_SIZE_MIN));
  // Only v-pool is honoured, and the schema says so.
  assert.ok(
    root("VxNetPool")["x-kubernetes-validations"].some((r: Obj) =>
      r.rule.includes(`'${VXNET_POOL_NAME}'`)
    ),
  );
});

Deno.test("CRDs: status subresources and printer columns that point at real fields", () => {
  for (const kind of ["VxNetPool", "IPPool"]) {
    assert.deepEqual(crd(kind).spec.versions[0].subresources, { status: {} }, kind);
  }
  for (const kind of Object.keys(KINDS)) {
    const cols: Obj[] = crd(kind).spec.versions[0].additionalPrinterColumns;
    assert.ok(cols.length >= 2, kind);
    for (const c of cols) {
      const path = c.jsonPath.split(".").slice(1);
      if (path[0] === "metadata") continue;
      let s = root(kind);
      for (const p of path) {
        s = s.properties?.[p];
        assert.ok(s, `${kind} column ${c.name}: ${c.jsonPath} is not in the schema`);
      }
    }
  }
});

const POOL = poolSpecForVxnet({
  vxnet: "vxnet-abc123",
  cidr: "172.16.3.0/24",
  gateway: "172.16.3.1",
  dynStart: "172.16.3.2",
  dynEnd: "172.16.3.254",
}, { blockSize: 26 });

Deno.test("CRDs accept what the code writes", () => {
  let block = newBlock({ pool: "vxnet-abc123", spec: POOL, cidr: "172.16.3.0/26" });
  block = assignOrdinal(block, {
    ordinal: 5,
    handle: `${"a".repeat(64)}.eth0`,
    secondary: { namespace: "default", pod: "web-0", node: "node-1" },
  }).spec;
  block = releaseOrdinals(block, { handle: `${"a".repeat(64)}.eth0`, now: 1_700_000_000_000 }).spec;
  block = { ...block, affinity: "host:node-1" };
  const ok: [string, unknown][] = [
    ["VxNetPool", { vxnets: [{ name: "vxnet-abc123" }], blockSize: 26 }],
    ["VxNetPool", { vxnets: [{ name: "vxnet-a" }], blockSize: 20, customReservedIPCount: 3 }],
    ["IPPool", POOL],
    ["IPAMBlock", block],
    ["IPAMBlock", newBlock({ pool: "vxnet-abc123", spec: POOL, cidr: "172.16.3.192/26" })],
    ["IPAMHandle", { handleID: "c1.eth0", block: { "4100-172-16-3-0-26": 1 }, deleted: false }],
  ];
  for (const [kind, s] of ok) assert.equal(validate(spec(kind), s, kind), undefined);
});

Deno.test("CRDs refuse what the code refuses", () => {
  const block = newBlock({ pool: "vxnet-abc123", spec: POOL, cidr: "172.16.3.0/26" });
  const bad: [string, z.ZodType, Obj][] = [
    ["VxNetPool", vxnetPoolSpecSchema, { vxnets: [{ name: "vxnet-a" }], blockSize: 19 }],
    ["VxNetPool", vxnetPoolSpecSchema, { vxnets: [{ name: "vxnet-a" }], blockSize: 31 }],
    ["VxNetPool", vxnetPoolSpecSchema, { vxnets: [{ name: "net-a" }], blockSize: 26 }],
    ["VxNetPool", vxnetPoolSpecSchema, { vxnets: [], blockSize: 26 }],
    ["VxNetPool", vxnetPoolSpecSchema, { vxnets: [{ name: "vxnet-a" }] }],
    ["VxNetPool", vxnetPoolSpecSchema, {
      vxnets: [{ name: "vxnet-a" }],
      blockSize: 26,
      customReservedIPCount: -1,
    }],
    ["IPPool", ipPoolSpecSchema, { ...POOL, cidr: "172.16.3.0/33" }],
    ["IPPool", ipPoolSpecSchema, { ...POOL, cidr: "172.16.300.0/24" }],
    ["IPPool", ipPoolSpecSchema, { ...POOL, type: "calico" }],
    ["IPPool", ipPoolSpecSchema, { ...POOL, gateway: "172.16.3" }],
    ["IPPool", ipPoolSpecSchema, { ...POOL, vlanConfig: {} }],
    ["IPAMBlock", blockSpecSchema, { ...block, affinity: "node-1" }],
    ["IPAMBlock", blockSpecSchema, { ...block, unallocated: [-1] }],
    ["IPAMBlock", blockSpecSchema, { ...block, allocations: [1.5] }],
    ["IPAMBlock", blockSpecSchema, { ...block, pool: "Vxnet_A" }],
    ["IPAMBlock", blockSpecSchema, { ...block, sequenceNumber: undefined }],
    ["IPAMBlock", blockSpecSchema, {
      ...block,
      attributes: [{ handle_id: "", secondary: {}, sequence: 0 }],
    }],
    ["IPAMHandle", handleSpecSchema, { handleID: "c1.eth0", block: { b: -1 }, deleted: false }],
    ["IPAMHandle", handleSpecSchema, { handleID: "c1.eth0", block: {} }],
  ];
  for (const [kind, schema, s] of bad) {
    const clean = JSON.parse(JSON.stringify(s)); // undefined fields are absent on the wire
    const what = `${kind} ${JSON.stringify(clean).slice(0, 80)}`;
    assert.equal(schema.safeParse(clean).success, false, `code accepts ${what}`);
    assert.ok(validate(spec(kind), clean, kind), `CRD accepts ${what}`);
  }
});

// ---------------------------------------------------------------------------------------------

/** The RE2 pattern inside a CEL raw string `r'…'` of an expression. */
function rawStrings(expr: string): string[] {
  return [...expr.matchAll(/r'([^']*)'/g)].map((m) => m[1]);
}

const validations: Obj[] = policy.spec.validations;
const ipamRegex = new RegExp(rawStrings(validations[2].expression)[0]);
const [blockRefRe, blockQuoteRe] = rawStrings(policy.spec.variables[2].expression);
const [keyRe] = rawStrings(policy.spec.variables[3].expression);

/** What the policy decides, emulated: the regex, then the findAll-based duplicate checks. */
function policyAccepts(data: Record<string, string>): boolean {
  if (!Object.keys(data).every((k) => ["ipam", "subnet-auto-assign"].includes(k))) return false;
  const auto = data["subnet-auto-assign"];
  if (auto !== undefined && !["on", "off"].includes(auto)) return false;
  const ipam = data.ipam ?? "";
  if (!ipamRegex.test(ipam)) return false;
  const find = (re: string) => [...ipam.matchAll(new RegExp(re, "g"))].map((m) => m[0]);
  const blocks = find(blockRefRe).map((s) => s.match(new RegExp(blockQuoteRe))![0]);
  const keys = find(keyRe).map((s) => s.match(new RegExp(blockQuoteRe))![0]);
  return new Set(blocks).size === blocks.length && new Set(keys).size === keys.length;
}

function codeAccepts(data: Record<string, string>): boolean {
  try {
    parseIpamConfig(data);
    return true;
  } catch {
    return false;
  }
}

Deno.test("policy: matches only kube-system/hostnic-ipam-config on create and update", () => {
  assert.equal(policy.kind, "ValidatingAdmissionPolicy");
  assert.equal(policy.apiVersion, "admissionregistration.k8s.io/v1");
  const cond = policy.spec.matchConditions[0].expression;
  assert.ok(cond.includes(`'${IPAM_CONFIG.namespace}'`) && cond.includes(`'${IPAM_CONFIG.name}'`));
  assert.deepEqual(policy.spec.matchConstraints.resourceRules[0].resources, ["configmaps"]);
  assert.deepEqual(policy.spec.matchConstraints.resourceRules[0].operations, ["CREATE", "UPDATE"]);
  assert.equal(binding.kind, "ValidatingAdmissionPolicyBinding");
  assert.equal(binding.spec.policyName, policy.metadata.name);
  assert.deepEqual(binding.spec.validationActions, ["Deny"]);
  for (const v of validations) {
    const text = v.message ?? v.messageExpression;
    assert.match(text, /hostnic-ipam-config key /, "every message names the key");
  }
});

Deno.test("policy: accepts and refuses what parseIpamConfig does", () => {
  const readme = `{
    "Default": ["vxnet-xxxxxxxx"],
    "test": ["4100-172-16-3-0-26", "4100-172-16-3-128-26"],
    "abc": ["4100-172-16-3-64-26", "4100-172-16-3-192-26"]
  }`;
  const agree: Record<string, string>[] = [
    { "subnet-auto-assign": "off", ipam: readme },
    { "subnet-auto-assign": "on" },
    {},
    { ipam: "" },
    { ipam: "{}" },
    { ipam: '{"Default":[]}' },
    { ipam: '{"a":["4100-10-0-0-0-28"],"b":["4100-10-0-0-16-28"]}' },
    { ipam: '{"kube-system": ["4100-10-0-0-0-28" ] }\n' },
  ];
  const refuse: Record<string, string>[] = [
    { "subnet-auto-assign": "yes" },
    { "subnet-auto-assign": "" },
    { ipm: "{}" },
    { ipam: "{" },
    { ipam: "[]" },
    { ipam: "null" },
    { ipam: '{"test": "4100-172-16-3-0-26"}' },
    { ipam: '{"test": [1]}' },
    { ipam: '{"test": ["blockA"]}' },
    { ipam: '{"Default": ["4100-172-16-3-0-26"]}' },
    { ipam: '{"default": ["vxnet-a"]}' },
    { ipam: '{"Bad_NS": []}' },
    { ipam: '{"a": ["4100-10-0-0-0-28"], "b": ["4100-10-0-0-0-28"]}' },
    { ipam: '{"a": ["4100-10-0-0-0-28", "4100-10-0-0-0-28"]}' },
    { ipam: '{"a": ["4100-10-0-0-0-28",]}' },
    { ipam: '{"a": []} x' },
  ];
  for (const data of agree) {
    assert.equal(codeAccepts(data), true, `code: ${JSON.stringify(data)}`);
    assert.equal(policyAccepts(data), true, `policy: ${JSON.stringify(data)}`);
  }
  for (const data of refuse) {
    assert.equal(codeAccepts(data), false, `code: ${JSON.stringify(data)}`);
    assert.equal(policyAccepts(data), false, `policy: ${JSON.stringify(data)}`);
  }
  // Documented difference: a key given twice (JSON.parse keeps the last) is refused by the policy.
  assert.equal(policyAccepts({ ipam: '{"a": [], "a": []}' }), false);
});
