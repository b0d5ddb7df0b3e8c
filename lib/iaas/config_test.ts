import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import { iaasConfigFromObject, iaasEndpoint, loadIaasConfig, parseIaasConfig } from "./config.ts";

const SECRET = "s3cr3t-VALUE-never-shown";

function configError(f: () => unknown): ConfigError {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err;
  }
  assert.fail("expected an error");
}

Deno.test("parseIaasConfig applies the public-API defaults", () => {
  const cfg = parseIaasConfig(
    `qy_access_key_id: AKID\nqy_secret_access_key: ${SECRET}\nzone: pek3a\nlog_level: warn\n`,
  );
  assert.deepEqual(cfg, {
    accessKeyId: "AKID",
    secretAccessKey: SECRET,
    zone: "pek3a",
    host: "api.qingcloud.com",
    port: 443,
    protocol: "https",
    uri: "/iaas/",
    connectionRetries: 3,
    timeoutMs: 30_000,
  });
  assert.equal(iaasEndpoint(cfg), "https://api.qingcloud.com:443/iaas/");
});

Deno.test("parseIaasConfig reads every SDK key and socket_path", () => {
  const cfg = parseIaasConfig([
    "qy_access_key_id: AKID",
    `qy_secret_access_key: ${SECRET}`,
    "zone: sh1a",
    "host: 127.0.0.1",
    "port: '8080'",
    "protocol: http",
    "uri: //iaas",
    "connection_retries: 0",
    "connection_timeout: 2.5",
    "socket_path: /run/sim.sock",
  ].join("\n"));
  assert.equal(cfg.port, 8080);
  assert.equal(cfg.uri, "/iaas");
  assert.equal(cfg.connectionRetries, 0);
  assert.equal(cfg.timeoutMs, 2500);
  assert.equal(cfg.socketPath, "/run/sim.sock");
  assert.equal(iaasEndpoint(cfg), "http://127.0.0.1:8080/iaas");
});

Deno.test("config errors name the key and never contain the secret", async (t) => {
  const base = { qy_access_key_id: "AKID", qy_secret_access_key: SECRET, zone: "pek3a" };
  const cases: [string, Record<string, unknown>, string][] = [
    ["missing secret", { ...base, qy_secret_access_key: undefined }, "qy_secret_access_key"],
    ["secret of wrong type", { ...base, qy_secret_access_key: 12345 }, "qy_secret_access_key"],
    ["missing zone", { ...base, zone: undefined }, "zone"],
    ["bad protocol", { ...base, protocol: "ftp" }, "protocol"],
    ["port out of range", { ...base, port: 70000 }, "port"],
    ["uri without slash", { ...base, uri: "iaas" }, "uri"],
    ["negative retries", { ...base, connection_retries: -1 }, "connection_retries"],
    ["zero timeout", { ...base, connection_timeout: 0 }, "connection_timeout"],
  ];
  for (const [name, raw, key] of cases) {
    await t.step(name, () => {
      const err = configError(() => iaasConfigFromObject(raw));
      assert.equal(err.key, key);
      assert.match(err.message, new RegExp(`"${key}"`));
      assert.ok(!err.message.includes(SECRET));
    });
  }
});

Deno.test("invalid YAML reports the position but not the text around it", () => {
  const err = configError(() =>
    parseIaasConfig(`qy_secret_access_key: ${SECRET}\n  broken: [x\nzone: z\n`)
  );
  assert.match(err.message, /not valid YAML at line \d+, column \d+/);
  assert.ok(!err.message.includes(SECRET));
  assert.ok(!err.message.includes("s3cr3t"));
});

Deno.test("a YAML scalar instead of a mapping is rejected", () => {
  const err = configError(() => parseIaasConfig("just a string"));
  assert.match(err.message, /mapping/);
});

Deno.test("loadIaasConfig names the file on errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostnic-iaas-cfg-" });
  try {
    const path = `${dir}/config.yaml`;
    await Deno.writeTextFile(path, `qy_access_key_id: AKID\nqy_secret_access_key: ${SECRET}\n`);
    const err = await loadIaasConfig(path).then(() => assert.fail("expected an error"), (e) => e);
    assert.ok(err instanceof ConfigError);
    assert.equal(err.key, "zone");
    assert.ok(err.message.includes(path));
    const missing = await loadIaasConfig(`${dir}/nope.yaml`).then(
      () => assert.fail("expected an error"),
      (e) => e,
    );
    assert.ok(missing instanceof ConfigError);
    assert.match(missing.message, /cannot read/);
    await Deno.writeTextFile(path, `qy_access_key_id: AKID\nqy_secret_access_key: x\nzone: z\n`);
    assert.equal((await loadIaasConfig(path)).zone, "z");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
