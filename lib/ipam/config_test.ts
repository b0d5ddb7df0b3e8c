import assert from "node:assert/strict";
import { NamespaceUnmappedError, parseIpamConfig, resolveNamespace } from "./config.ts";

const IPAM = JSON.stringify({
  Default: ["vxnet-xxxxxxxx"],
  test: ["4100-172-16-3-0-26", "4100-172-16-3-128-26"],
  abc: ["4100-172-16-3-64-26"],
});

Deno.test("parseIpamConfig: the README's example", () => {
  const cfg = parseIpamConfig({ "subnet-auto-assign": "off", ipam: IPAM });
  assert.equal(cfg.autoAssign, false);
  assert.deepEqual(cfg.defaultPools, ["vxnet-xxxxxxxx"]);
  assert.deepEqual(cfg.namespaces.get("test"), ["4100-172-16-3-0-26", "4100-172-16-3-128-26"]);
  assert.deepEqual(resolveNamespace(cfg, "test"), {
    blocks: ["4100-172-16-3-0-26", "4100-172-16-3-128-26"],
  });
  // Default pods never take blocks mapped to a namespace.
  assert.deepEqual(resolveNamespace(cfg, "other"), {
    pools: ["vxnet-xxxxxxxx"],
    excludeBlocks: ["4100-172-16-3-0-26", "4100-172-16-3-128-26", "4100-172-16-3-64-26"],
  });
});

Deno.test("parseIpamConfig: absent ConfigMap, absent or blank keys mean nothing mapped", () => {
  const inputs: (Record<string, string> | undefined)[] = [
    undefined,
    {},
    { ipam: "  " },
    { "subnet-auto-assign": "on" },
  ];
  for (const data of inputs) {
    const cfg = parseIpamConfig(data);
    assert.equal(cfg.namespaces.size, 0);
    assert.deepEqual(cfg.defaultPools, []);
    assert.throws(() => resolveNamespace(cfg, "default"), NamespaceUnmappedError);
  }
});

Deno.test("resolveNamespace: with auto-assign on, Default does not apply", () => {
  const cfg = parseIpamConfig({ "subnet-auto-assign": "on", ipam: IPAM });
  assert.throws(() => resolveNamespace(cfg, "other"), (e: NamespaceUnmappedError) => {
    assert.equal(e.code, "IPAM_NAMESPACE_UNMAPPED");
    assert.equal(e.autoAssign, true);
    assert.match(e.message, /"other".*controller/);
    return true;
  });
  assert.deepEqual(resolveNamespace(cfg, "abc"), { blocks: ["4100-172-16-3-64-26"] });
  // An empty list is no mapping.
  const empty = parseIpamConfig({ ipam: JSON.stringify({ Default: ["vxnet-a"], x: [] }) });
  assert.deepEqual(resolveNamespace(empty, "x"), { pools: ["vxnet-a"], excludeBlocks: [] });
});

Deno.test("parseIpamConfig: bad input is refused with the key named", () => {
  const cases: [Record<string, string>, string, RegExp][] = [
    [{ "subnet-auto-assign": "yes" }, "subnet-auto-assign", /"on" or "off", got "yes"/],
    [{ "subnet-auto-assign": "ON" }, "subnet-auto-assign", /"on" or "off"/],
    [{ ipam: "{" }, "ipam", /not valid JSON/],
    [{ ipam: "[]" }, "ipam", /JSON object/],
    [{ ipam: "null" }, "ipam", /JSON object/],
    [{ ipam: '{"test": "4100-172-16-3-0-26"}' }, "ipam.test", /list of names/],
    [{ ipam: '{"test": [1]}' }, "ipam.test[0]", /string/],
    [{ ipam: '{"test": ["blockA"]}' }, "ipam.test[0]", /IPAMBlock name/],
    [{ ipam: '{"Default": ["4100-172-16-3-0-26"]}' }, "ipam.Default[0]", /vxnet-/],
    [{ ipam: '{"Bad_NS": []}' }, "ipam.Bad_NS", /namespace name/],
    [{ ipam: '{"default": ["vxnet-a"]}' }, "ipam.default[0]", /IPAMBlock name/],
    [
      { ipam: '{"a": ["4100-10-0-0-0-28"], "b": ["4100-10-0-0-16-28", "4100-10-0-0-0-28"]}' },
      "ipam.b[1]",
      /already mapped to namespace "a"/,
    ],
    [{ ipam: '{"a": ["4100-10-0-0-0-28", "4100-10-0-0-0-28"]}' }, "ipam.a[1]", /listed twice/],
    [{ ipm: "{}" }, "ipm", /unknown key/],
  ];
  for (const [data, key, msg] of cases) {
    assert.throws(() => parseIpamConfig(data), (e: Error & { key?: string; code?: string }) => {
      assert.equal(e.code, "INVALID_CONFIG", JSON.stringify(data));
      assert.equal(e.key, key, JSON.stringify(data));
      assert.match(e.message, msg, JSON.stringify(data));
      assert.ok(e.message.includes(`"${key}"`), e.message);
      return true;
    });
  }
});
