import assert from "node:assert/strict";
import { canonicalCidr, cidrContains, ipv4ToNumber, parseIpv4Cidr, requireCidr } from "./ipv4.ts";

Deno.test("ipv4 parsing accepts dotted quads only", () => {
  assert.equal(ipv4ToNumber("172.22.1.5"), 0xac160105);
  for (const bad of ["256.1.1.1", "1.2.3", "01.2.3.4", "a.b.c.d", ""]) {
    assert.equal(ipv4ToNumber(bad), undefined, bad);
  }
  assert.deepEqual(parseIpv4Cidr("10.0.0.1"), { addr: "10.0.0.1", prefix: 32 });
  assert.equal(parseIpv4Cidr("10.0.0.0/33"), undefined);
});

Deno.test("canonicalCidr clears host bits and names default", () => {
  assert.equal(canonicalCidr("172.22.1.77/24"), "172.22.1.0/24");
  assert.equal(canonicalCidr("172.22.1.77"), "172.22.1.77/32");
  assert.equal(canonicalCidr("default"), "0.0.0.0/0");
  assert.equal(requireCidr("x", "10.96.3.0/12"), "10.96.0.0/12");
  assert.throws(() => requireCidr("x", "10.96.0.0"));
  assert.ok(cidrContains("172.22.1.0/24", "172.22.1.1"));
  assert.ok(!cidrContains("172.22.1.0/24", "172.22.2.1"));
});
