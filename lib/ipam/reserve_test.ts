import assert from "node:assert/strict";
import { cidrSize, formatCidr, formatIp, parseCidr, parseIp } from "./ip.ts";
import {
  blockName,
  carveBlocks,
  poolSpecForVxnet,
  reservedOrdinals,
  reservedReason,
  usableRange,
  type VxnetAddressing,
} from "./reserve.ts";
import type { IpPoolSpec } from "./types.ts";

const vxlan: VxnetAddressing = {
  vxnet: "vxnet-abc",
  cidr: "172.16.3.0/24",
  gateway: "172.16.3.1",
  dynStart: "172.16.3.2",
  dynEnd: "172.16.3.254",
};
const vlan: VxnetAddressing = { ...vxlan, vxnet: "vxnet-vlan1", tunnelType: "vlan" };

Deno.test("ip: parse/format round-trip; bad text and host bits are refused", () => {
  for (const t of ["0.0.0.0", "10.0.0.1", "255.255.255.255", "172.16.3.254"]) {
    assert.equal(formatIp(parseIp(t)!), t);
  }
  for (const t of ["10.0.0", "10.0.0.256", "010.0.0.1", "a.b.c.d", "10.0.0.1 "]) {
    assert.equal(parseIp(t), undefined, t);
  }
  assert.deepEqual(parseCidr("172.16.3.64/26"), { network: parseIp("172.16.3.64"), prefix: 26 });
  for (const t of ["172.16.3.1/24", "10.0.0.0/33", "10.0.0.0/08", "10.0.0.0", "10.0.0.0/24/1"]) {
    assert.equal(parseCidr(t), undefined, t);
  }
  assert.equal(cidrSize(parseCidr("10.0.0.0/26")!), 64);
  assert.equal(formatCidr(parseCidr("0.0.0.0/0")!), "0.0.0.0/0");
});

Deno.test("usableRange: vxlan leaves 12 to the IaaS and ignores customReservedIPCount", () => {
  const r = usableRange(vxlan, { customReservedIPCount: 5 });
  assert.deepEqual(r, {
    rangeStart: "172.16.3.2",
    rangeEnd: "172.16.3.242",
    reserved: 12,
    custom: 0,
    size: 241,
  });
});

Deno.test("usableRange: vlan leaves |DHCP|/7 plus customReservedIPCount", () => {
  // |DHCP| = 253 → reserved 36 → end 254 - 36 = 218.
  assert.equal(usableRange(vlan).rangeEnd, "172.16.3.218");
  const r = usableRange(vlan, { customReservedIPCount: 10 });
  assert.equal(r.rangeEnd, "172.16.3.208");
  assert.equal(r.custom, 10);
  // At most |DHCP| - reserved - 1 = 216: exactly one address left.
  assert.equal(usableRange(vlan, { customReservedIPCount: 216 }).size, 1);
  assert.throws(() => usableRange(vlan, { customReservedIPCount: 217 }), (e: Error) => {
    assert.match(e.message, /vxnet-vlan1/);
    assert.match(e.message, /at most 216/);
    return true;
  });
  assert.throws(() => usableRange(vlan, { customReservedIPCount: -1 }), /non-negative/);
});

Deno.test("usableRange: network and broadcast never inside; bad ranges named", () => {
  const wide = usableRange({ ...vlan, dynStart: "172.16.3.0", dynEnd: "172.16.3.255" });
  assert.equal(wide.rangeStart, "172.16.3.1");
  assert.ok(parseIp(wide.rangeEnd)! < parseIp("172.16.3.255")!);
  const bad: [Partial<VxnetAddressing>, RegExp][] = [
    [{ cidr: "172.16.3.0/33" }, /not an IPv4 CIDR/],
    [{ dynStart: "172.16.3.9", dynEnd: "172.16.3.8" }, /not a valid range/],
    [{ dynEnd: "172.16.4.10" }, /not inside/],
    [{ dynStart: "172.16.3.2", dynEnd: "172.16.3.12" }, /no usable address/],
  ];
  for (const [patch, msg] of bad) {
    assert.throws(() => usableRange({ ...vxlan, ...patch }), (e: Error & { code?: string }) => {
      assert.equal(e.code, "IPAM_BAD_POOL");
      assert.match(e.message, /vxnet-abc/);
      assert.match(e.message, msg);
      return true;
    });
  }
});

Deno.test("poolSpecForVxnet: local pool over the vxnet with its range and gateway", () => {
  assert.deepEqual(poolSpecForVxnet(vxlan, { blockSize: 26 }), {
    type: "local",
    cidr: "172.16.3.0/24",
    rangeStart: "172.16.3.2",
    rangeEnd: "172.16.3.242",
    blockSize: 26,
    gateway: "172.16.3.1",
  });
  assert.equal(
    poolSpecForVxnet(vlan, { blockSize: 26, customReservedIPCount: 3 }).customReservedIPCount,
    3,
  );
  assert.throws(() => poolSpecForVxnet(vxlan, { blockSize: 23 }), /blockSize 23/);
});

Deno.test("carveBlocks: the pool in /blockSize pieces, in order; blockSize checked", () => {
  assert.deepEqual(carveBlocks("p", { cidr: "172.16.3.0/24", blockSize: 26 }), [
    "172.16.3.0/26",
    "172.16.3.64/26",
    "172.16.3.128/26",
    "172.16.3.192/26",
  ]);
  assert.deepEqual(carveBlocks("p", { cidr: "172.16.3.0/24", blockSize: 24 }), ["172.16.3.0/24"]);
  assert.equal(carveBlocks("p", { cidr: "10.0.0.0/16", blockSize: 30 }).length, 16384);
  for (
    const [cidr, size, msg] of [
      ["172.16.3.0/27", 26, /larger than the pool/],
      ["10.0.0.0/8", 19, /from 20 to 30/],
      ["10.0.0.0/24", 31, /from 20 to 30/],
      ["10.0.0.0/24", 26.5, /integer/],
      ["10.0.0.1/24", 26, /not an IPv4 CIDR/],
    ] as const
  ) {
    assert.throws(() => carveBlocks("pool-x", { cidr, blockSize: size }), (e: Error) => {
      assert.match(e.message, /pool-x/);
      assert.match(e.message, msg);
      return true;
    });
  }
});

Deno.test("blockName: upstream's <poolID>-<cidr> form", () => {
  assert.equal(blockName("172.16.3.0/26"), "4100-172-16-3-0-26");
  assert.equal(blockName("10.0.0.128/28", 4098), "4098-10-0-0-128-28");
});

Deno.test("reservedOrdinals: network, gateway, before start, after end, broadcast", () => {
  const pool: IpPoolSpec = { ...poolSpecForVxnet(vxlan, { blockSize: 26 }) };
  assert.deepEqual(reservedOrdinals(pool, "172.16.3.0/26"), [
    { ordinal: 0, reason: "network address" },
    { ordinal: 1, reason: "vxnet gateway" },
  ]);
  assert.deepEqual(reservedOrdinals(pool, "172.16.3.64/26"), []);
  const tail = reservedOrdinals(pool, "172.16.3.192/26");
  // .243 … .254 after the range end, .255 broadcast.
  assert.equal(tail.length, 13);
  assert.deepEqual(tail[0], {
    ordinal: 51,
    reason: "after the pool's range end 172.16.3.242 (left to the IaaS)",
  });
  assert.deepEqual(tail.at(-1), { ordinal: 63, reason: "broadcast address" });
  const late = { ...pool, rangeStart: "172.16.3.10" };
  assert.equal(
    reservedReason(late, parseIp("172.16.3.5")!),
    "before the pool's range start 172.16.3.10",
  );
  assert.equal(reservedReason(late, parseIp("172.16.3.10")!), undefined);
  assert.equal(reservedReason(late, parseIp("10.0.0.1")!), "outside the pool");
  assert.throws(() => reservedOrdinals(pool, "172.16.4.0/26"), /not inside pool/);
});
