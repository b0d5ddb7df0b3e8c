import assert from "node:assert/strict";
import {
  allocationsOf,
  assignOrdinal,
  blockStats,
  checkBlock,
  holderOf,
  ipOf,
  newBlock,
  ordinalOf,
  pickOrdinal,
  releaseOrdinals,
} from "./block.ts";
import { parseIp } from "./ip.ts";
import { blockSpecSchema, type IpPoolSpec, RESERVED_HANDLE } from "./types.ts";

const POOL: IpPoolSpec = {
  type: "local",
  cidr: "10.0.0.0/24",
  rangeStart: "10.0.0.2",
  rangeEnd: "10.0.0.242",
  blockSize: 28,
  gateway: "10.0.0.1",
};
const first = () => newBlock({ pool: "vxnet-a", spec: POOL, cidr: "10.0.0.0/28" });
const secondary = (pod: string) => ({ namespace: "default", pod, node: "n1" });
const opts = (now: number) => ({ now, cooldownMs: 1000 });

Deno.test("newBlock: reserved ordinals pre-allocated, the rest free in order, schema-valid", () => {
  const b = first();
  assert.deepEqual(checkBlock(b), []);
  assert.equal(blockSpecSchema.safeParse(b).success, true);
  assert.equal(b.allocations.length, 16);
  assert.deepEqual(b.unallocated, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  assert.equal(holderOf(b, 0)?.handle_id, RESERVED_HANDLE);
  assert.equal(holderOf(b, 1)?.secondary.note, "vxnet gateway");
  assert.equal(b.affinity, null);
  assert.equal(b.id, 4100);
  assert.deepEqual(blockStats(b, opts(0)), {
    size: 16,
    reserved: 2,
    allocated: 0,
    free: 14,
    cooling: 0,
  });
  assert.equal(ipOf(b, 5), "10.0.0.5");
  assert.equal(ordinalOf(b, parseIp("10.0.0.15")!), 15);
  assert.equal(ordinalOf(b, parseIp("10.0.0.16")!), undefined);
});

Deno.test("assign/release: sequence numbers grow; release appends to the FIFO", () => {
  let b = first();
  const a1 = assignOrdinal(b, { ordinal: 2, handle: "c1.eth0", secondary: secondary("p1") });
  assert.equal(a1.sequence, 1);
  assert.deepEqual(checkBlock(b), [], "input untouched");
  assert.equal(b.unallocated.length, 14, "input untouched");
  b = a1.spec;
  const a2 = assignOrdinal(b, { ordinal: 3, handle: "c2.eth0", secondary: secondary("p2") });
  b = a2.spec;
  assert.equal(a2.sequence, 2);
  assert.deepEqual(allocationsOf(b, "c2.eth0"), [{ ordinal: 3, ip: "10.0.0.3", sequence: 2 }]);
  assert.throws(() => assignOrdinal(b, { ordinal: 3, handle: "x", secondary: {} }), /not free/);
  assert.throws(() => assignOrdinal(b, { ordinal: 0, handle: "x", secondary: {} }), /not free/);

  const r = releaseOrdinals(b, { handle: "c1.eth0", now: 50 });
  assert.deepEqual(r.released, [{ ordinal: 2, ip: "10.0.0.2", sequence: 1 }]);
  b = r.spec;
  assert.deepEqual(checkBlock(b), []);
  assert.equal(b.unallocated.at(-1), 2);
  assert.equal(b.releasedAt["2"], 50);
  // Attributes were compacted and c2 still resolves.
  assert.equal(holderOf(b, 3)?.handle_id, "c2.eth0");
  assert.equal(b.attributes.filter((a) => a.handle_id === "c1.eth0").length, 0);
});

Deno.test("release with a stale sequence or of an unknown handle frees nothing", () => {
  const { spec: b, sequence } = assignOrdinal(first(), {
    ordinal: 4,
    handle: "c1.eth0",
    secondary: secondary("p1"),
  });
  const stale = releaseOrdinals(b, { handle: "c1.eth0", now: 1, sequence: sequence + 1 });
  assert.deepEqual(stale.released, []);
  assert.deepEqual(stale.kept, [{ ordinal: 4, ip: "10.0.0.4", sequence }]);
  assert.equal(stale.spec, b);
  assert.deepEqual(releaseOrdinals(b, { handle: "nobody", now: 1 }).released, []);
  assert.deepEqual(releaseOrdinals(b, { handle: RESERVED_HANDLE, now: 1 }).released, []);
  const ok = releaseOrdinals(b, { handle: "c1.eth0", now: 1, sequence });
  assert.equal(ok.released.length, 1);
});

Deno.test("pickOrdinal: never-used first, then rested FIFO, then the longest-cooling", () => {
  let b = first();
  // Take every address, then release 5 at t=0 and 9 at t=500.
  for (const ord of [...b.unallocated]) {
    b = assignOrdinal(b, { ordinal: ord, handle: `h${ord}`, secondary: {} }).spec;
  }
  assert.equal(pickOrdinal(b, opts(0)), undefined);
  b = releaseOrdinals(b, { handle: "h5", now: 0 }).spec;
  b = releaseOrdinals(b, { handle: "h9", now: 500 }).spec;
  assert.deepEqual(pickOrdinal(b, opts(600)), { ordinal: 5, cooling: true, releasedAt: 0 });
  assert.deepEqual(pickOrdinal(b, opts(1000)), { ordinal: 5, cooling: false, releasedAt: 0 });
  assert.deepEqual(blockStats(b, opts(1200)).cooling, 1);
  // 9 has rested, 5 has been re-released after it: 9 comes first.
  b = assignOrdinal(b, { ordinal: 5, handle: "again", secondary: {} }).spec;
  b = releaseOrdinals(b, { handle: "again", now: 1400 }).spec;
  assert.deepEqual(pickOrdinal(b, opts(1600)), { ordinal: 9, cooling: false, releasedAt: 500 });
  // A fresh block hands out never-used addresses before any released one.
  let f = assignOrdinal(first(), { ordinal: 2, handle: "a", secondary: {} }).spec;
  f = releaseOrdinals(f, { handle: "a", now: 0 }).spec;
  assert.deepEqual(pickOrdinal(f, opts(10_000)), { ordinal: 3, cooling: false });
});

Deno.test("checkBlock names every broken invariant", () => {
  const b = first();
  b.unallocated.push(2);
  b.allocations[3] = 7;
  b.unallocated = b.unallocated.filter((o) => o !== 3 && o !== 4);
  const problems = checkBlock(b);
  assert.ok(problems.includes("ordinal 2 is listed twice as free"), problems.join("\n"));
  assert.ok(problems.includes("ordinal 3 points to missing attribute 7"), problems.join("\n"));
  assert.ok(problems.includes("ordinal 4 is neither free nor allocated"), problems.join("\n"));
  assert.deepEqual(checkBlock({ ...first(), allocations: [null] }).length > 0, true);
});

Deno.test("random assign/release sequences keep every invariant", () => {
  let seed = 42;
  const rnd = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  let b = newBlock({ pool: "vxnet-a", spec: POOL, cidr: "10.0.0.240/28" });
  const held = new Map<string, number>();
  for (let step = 0; step < 2000; step++) {
    if (rnd() < 0.55) {
      const pick = pickOrdinal(b, opts(step));
      if (!pick) continue;
      const h = `h${step}`;
      const r = assignOrdinal(b, { ordinal: pick.ordinal, handle: h, secondary: {} });
      b = r.spec;
      held.set(h, r.sequence);
    } else if (held.size) {
      const handles = [...held.keys()];
      const h = handles[Math.floor(rnd() * handles.length)];
      b = releaseOrdinals(b, { handle: h, now: step, sequence: held.get(h)! }).spec;
      held.delete(h);
    }
    const problems = checkBlock(b);
    assert.deepEqual(problems, [], `step ${step}`);
  }
  assert.equal(blockStats(b, opts(0)).allocated, held.size);
});
