import assert from "node:assert/strict";
import {
  formatIp,
  isMac,
  isUnspecified,
  networkOf,
  parseCidr,
  parseIp,
  parseIpMaybeCidr,
  parseIPv4,
  parseIPv6,
} from "./net.ts";

Deno.test("parseIPv4 accepts dotted quads and rejects everything else", async (t) => {
  const good: [string, number[]][] = [
    ["0.0.0.0", [0, 0, 0, 0]],
    ["10.0.0.5", [10, 0, 0, 5]],
    ["255.255.255.255", [255, 255, 255, 255]],
  ];
  for (const [text, bytes] of good) {
    await t.step(`ok ${text}`, () => assert.deepEqual([...parseIPv4(text)!], bytes));
  }
  const bad = [
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "01.2.3.4",
    "1.2.3.-4",
    "1..3.4",
    "a.b.c.d",
    " 1.2.3.4",
    "1.2.3.4 ",
    "1.2.3.0x4",
    "1234.1.1.1",
  ];
  for (const text of bad) {
    await t.step(`bad ${JSON.stringify(text)}`, () => assert.equal(parseIPv4(text), undefined));
  }
});

Deno.test("parseIPv6 handles compression and dotted tails", async (t) => {
  const good: [string, string][] = [
    ["::", "::"],
    ["::1", "::1"],
    ["fe80::1", "fe80::1"],
    ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
    ["::ffff:10.0.0.1", "::ffff:a00:1"],
    ["1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"],
    ["0:0:1:0:0:0:0:0", "0:0:1::"],
  ];
  for (const [text, canonical] of good) {
    await t.step(`ok ${text}`, () => {
      const bytes = parseIPv6(text);
      assert.ok(bytes, text);
      assert.equal(formatIp({ family: 6, bytes }), canonical);
    });
  }
  const bad = [
    "",
    ":",
    ":::",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8::",
    "12345::1",
    "g::1",
    "fe80::1%eth0",
    "1.2.3.4::",
    "::1.2.3.4:5",
    ":1::",
    "1::2:",
    "[::1]",
  ];
  for (const text of bad) {
    await t.step(`bad ${JSON.stringify(text)}`, () => assert.equal(parseIPv6(text), undefined));
  }
});

Deno.test("parseIp picks the family from the text", () => {
  assert.equal(parseIp("10.1.2.3")?.family, 4);
  assert.equal(parseIp("::1")?.family, 6);
  assert.equal(parseIp("10.1.2.3/24"), undefined);
  assert.equal(parseIp("host"), undefined);
});

Deno.test("parseCidr checks the prefix against the family", async (t) => {
  const cases: [string, number | undefined][] = [
    ["10.0.0.5/24", 24],
    ["0.0.0.0/0", 0],
    ["10.0.0.1/32", 32],
    ["10.0.0.1/33", undefined],
    ["10.0.0.1/024", undefined],
    ["10.0.0.1/", undefined],
    ["10.0.0.1", undefined],
    ["10.0.0.1/a", undefined],
    ["2001:db8::/32", 32],
    ["::/128", 128],
    ["::/129", undefined],
    ["/24", undefined],
  ];
  for (const [text, prefix] of cases) {
    await t.step(text, () => assert.equal(parseCidr(text)?.prefix, prefix));
  }
});

Deno.test("parseIpMaybeCidr accepts a bare IP or a CIDR", () => {
  assert.equal(parseIpMaybeCidr("10.0.0.5")?.prefix, undefined);
  assert.equal(parseIpMaybeCidr("10.0.0.5")?.ip.family, 4);
  assert.equal(parseIpMaybeCidr("10.0.0.5/24")?.prefix, 24);
  assert.equal(parseIpMaybeCidr("10.0.0.5/40"), undefined);
  assert.equal(parseIpMaybeCidr("nope"), undefined);
});

Deno.test("networkOf clears host bits; isUnspecified finds all-zero addresses", () => {
  const net = networkOf(parseCidr("10.1.2.3/20")!);
  assert.equal(`${formatIp(net.ip)}/${net.prefix}`, "10.1.0.0/20");
  const v6 = networkOf(parseCidr("2001:db8::ff/120")!);
  assert.equal(formatIp(v6.ip), "2001:db8::");
  assert.equal(isUnspecified(parseIp("0.0.0.0")!), true);
  assert.equal(isUnspecified(parseIp("::")!), true);
  assert.equal(isUnspecified(parseIp("0.0.0.1")!), false);
});

Deno.test("isMac accepts 6, 8 and 20 byte hardware addresses", async (t) => {
  const cases: [string, boolean][] = [
    ["52:54:9e:01:02:03", true],
    ["52-54-9E-01-02-03", true],
    ["00:11:22:33:44:55:66:77", true],
    [Array(20).fill("ab").join(":"), true],
    ["52:54:9e:01:02", false],
    ["52:54:9e:01:02:0g", false],
    ["5254.9e01.0203", false],
    ["52:54-9e:01:02:03", false],
    ["", false],
  ];
  for (const [text, ok] of cases) {
    await t.step(text || "(empty)", () => assert.equal(isMac(text), ok));
  }
});
