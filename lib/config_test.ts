import assert from "node:assert/strict";
import { ConfigError } from "./errors.ts";
import { parseConfigFile, resolveConfig } from "./config.ts";

const keyOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.key;
  }
  assert.fail("expected a ConfigError");
};

Deno.test("an empty file gives upstream's defaults", () => {
  const c = resolveConfig(parseConfigFile("", "hostnic.json"), {}, "hostnic.json");
  assert.deepEqual(
    [c.pool.poolLow, c.pool.poolHigh, c.pool.maxNic, c.pool.routeTableBase, c.cni.natMark],
    [3, 5, 63, 260, 0x10000],
  );
  assert.equal(c.server.serverPath, "/var/run/hostnic/hostnic.sock");
  assert.deepEqual(c.iaas, { callsPerSecond: 10, burst: 20 });
});

Deno.test("iaas: the client's call rate and burst come from the file", () => {
  const file = parseConfigFile('{"iaas":{"callsPerSecond":2.5,"burst":4}}', "f");
  assert.deepEqual(resolveConfig(file, {}, "f").iaas, { callsPerSecond: 2.5, burst: 4 });
  assert.equal(
    keyOf(() => parseConfigFile('{"iaas":{"callsPerSecond":0}}', "f")),
    "iaas.callsPerSecond",
  );
  assert.equal(keyOf(() => parseConfigFile('{"iaas":{"burst":1.5}}', "f")), "iaas.burst");
  assert.equal(keyOf(() => parseConfigFile('{"iaas":{"rate":1}}', "f")), "iaas");
});

Deno.test("flags override the file; --PoolSize sets poolLow and poolHigh", () => {
  const file = parseConfigFile('{"pool":{"poolLow":1,"poolHigh":2,"vxNets":["vxnet-a"]}}', "f");
  const c = resolveConfig(file, { poolSize: 4, vxnets: ["vxnet-b"] }, "f");
  assert.deepEqual([c.pool.poolLow, c.pool.poolHigh, c.pool.vxNets], [4, 4, ["vxnet-b"]]);
});

Deno.test("every rejection names the offending key", () => {
  assert.equal(keyOf(() => parseConfigFile("{", "hostnic.json")), "hostnic.json");
  assert.equal(keyOf(() => parseConfigFile('{"pool":{"poolLow":6}}', "f")), "pool.poolLow");
  assert.equal(keyOf(() => parseConfigFile('{"pool":{"maxNic":64}}', "f")), "pool.maxNic");
  assert.equal(keyOf(() => parseConfigFile('{"cni":{"natMark":"0x4000"}}', "f")), "cni.natMark");
  assert.equal(keyOf(() => parseConfigFile('{"pool":{"bogus":1}}', "f")), "pool");
  const file = parseConfigFile("{}", "f");
  assert.equal(keyOf(() => resolveConfig(file, { vxnets: ["nope"] }, "f")), "--vxnets");
  assert.equal(keyOf(() => resolveConfig(file, { poolSize: 64 }, "f")), "--PoolSize");
  assert.equal(keyOf(() => resolveConfig(file, { manageAddr: "x" }, "f")), "--manageAddr");
});
