import assert from "node:assert/strict";
import { broadcast, cidrWithin, formatIp, hostRange, parseCidr, parseIp } from "./ip.ts";
import { createRng, deriveSeed } from "./prng.ts";

Deno.test("IPv4 parsing and CIDR arithmetic", () => {
  assert.equal(formatIp(parseIp("172.25.1.200")!), "172.25.1.200");
  for (const bad of ["1.2.3", "256.1.1.1", "01.2.3.4", "a.b.c.d"]) {
    assert.equal(parseIp(bad), undefined);
  }
  const c = parseCidr("172.25.1.0/24")!;
  assert.equal(formatIp(broadcast(c)), "172.25.1.255");
  assert.deepEqual(hostRange(c), { first: parseIp("172.25.1.1"), last: parseIp("172.25.1.254") });
  assert.equal(parseCidr("172.25.1.1/24"), undefined);
  assert.ok(cidrWithin(c, parseCidr("172.25.0.0/16")!));
  assert.ok(!cidrWithin(parseCidr("172.0.0.0/8")!, parseCidr("172.25.0.0/16")!));
});

Deno.test("the PRNG repeats for a seed and differs across streams", () => {
  const a = createRng(deriveSeed(5, 1));
  const b = createRng(deriveSeed(5, 1));
  const c = createRng(deriveSeed(5, 2));
  const xs = [a.next(), a.next(), a.next()];
  assert.deepEqual([b.next(), b.next(), b.next()], xs);
  assert.notDeepEqual([c.next(), c.next(), c.next()], xs);
  for (let i = 0; i < 1000; i++) {
    const v = a.int(3, 5);
    assert.ok(v >= 3 && v <= 5);
  }
});
