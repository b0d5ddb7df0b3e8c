import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import { formatIp } from "./ip.ts";
import { parseScenario, scenarioFromObject } from "./scenario.ts";
import { testScenarioObject } from "./testing.ts";
import { World } from "./world.ts";

function keyOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.key;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

Deno.test("the documented example scenario parses", async () => {
  const text = await Deno.readTextFile(
    new URL("../../deploy/sim/example.yaml", import.meta.url),
  );
  const s = parseScenario(text);
  assert.equal(s.zone, "pek3a");
  assert.equal(s.vxnets.length, 2);
  assert.equal(s.instances.length, 3);
  assert.equal(s.routers.length, 1);
  assert.equal(s.linuxPrefix, "hns");
  assert.deepEqual(s.knobs.jobLatencyMs, [300, 1200]);
});

Deno.test("defaults: gateway is the first host, DHCP range follows it, owner from first key", () => {
  const s = scenarioFromObject(testScenarioObject());
  const b = s.vxnets.find((v) => v.id === "vxnet-b")!;
  assert.equal(formatIp(b.managerIp), "172.25.2.1");
  assert.deepEqual(
    [formatIp(b.dynRange!.start), formatIp(b.dynRange!.end)],
    ["172.25.2.2", "172.25.2.254"],
  );
  assert.equal(s.vxnets.find((v) => v.id === "vxnet-nodhcp")!.dynRange, null);
  assert.equal(b.owner, "usr-Test0001");
  assert.equal(s.credentials[1].owner, "usr-Other001");
});

Deno.test("errors name the key at fault", async (t) => {
  const base = testScenarioObject();
  const vx = base.vxnets as Record<string, unknown>[];
  const inst = base.instances as Record<string, unknown>[];
  const cases: [string, Record<string, unknown>, string][] = [
    ["missing zone", { zone: undefined }, "zone"],
    ["no credentials", { credentials: [] }, "credentials"],
    ["bad CIDR", { vxnets: [{ ...vx[0], cidr: "172.25.1.1/24" }] }, "vxnets.0.cidr"],
    [
      "unknown router",
      { vxnets: [{ ...vx[0], vpc_router_id: "rtr-nope" }] },
      "vxnets.0.vpc_router_id",
    ],
    ["vxnet outside router", { vxnets: [{ ...vx[0], cidr: "10.9.0.0/24" }] }, "vxnets.0.cidr"],
    ["unknown key", { vxnets: [{ ...vx[0], gateway: "x" }] }, "vxnets.0"],
    [
      "instance in unknown vxnet",
      { instances: [{ ...inst[0], vxnet: "vxnet-zz" }] },
      "instances.0.vxnet",
    ],
    [
      "instance IP outside",
      { instances: [{ ...inst[0], private_ip: "172.25.9.9" }] },
      "instances.0.private_ip",
    ],
    [
      "duplicate instance IP",
      { instances: [inst[0], { ...inst[1], private_ip: inst[0].private_ip }] },
      "instances.1.private_ip",
    ],
    [
      "instance IP is the gateway",
      { instances: [{ ...inst[0], private_ip: "172.25.1.1" }] },
      "instances.0.private_ip",
    ],
    ["bad knob", { knobs: { jobLatencyMs: -1 } }, "knobs.jobLatencyMs"],
    ["bad prefix", { linux: { prefix: "Bad-Prefix" } }, "linux.prefix"],
    [
      "tag on unknown resource",
      { tags: [{ name: "t", resources: [{ resource_type: "instance", resource_id: "i-zz" }] }] },
      "tags.0.resources.0",
    ],
  ];
  for (const [name, patch, key] of cases) {
    await t.step(name, () => {
      const raw = { ...base, ...patch };
      for (const [k, v] of Object.entries(patch)) if (v === undefined) delete raw[k];
      // Resource references are resolved when the world is built.
      const fn = () => new World({ scenario: scenarioFromObject(raw) });
      assert.equal(keyOf(fn), key);
    });
  }
});

Deno.test("YAML syntax errors give a position, never the text (it may hold a secret)", () => {
  try {
    parseScenario("zone: pek3a\ncredentials:\n  - qy_secret_access_key: 'topsecret\n");
    assert.fail("expected an error");
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.ok(!err.message.includes("topsecret"), err.message);
  }
});
