import assert from "node:assert/strict";
import { checkBlock, newBlock } from "./block.ts";
import {
  IpamExhaustedError,
  IpamRequestError,
  IpamRetryError,
  IpInUseError,
  IpOutsidePoolsError,
  IpReservedError,
} from "./errors.ts";
import { type AllocateRequest, Ipam, IpamCounters } from "./ipam.ts";
import { blockName } from "./reserve.ts";
import {
  MemoryBlockStore,
  MemoryHandleStore,
  MemoryPoolStore,
  type MemoryStoreHooks,
} from "./store.ts";
import type { IpPoolSpec } from "./types.ts";

/** 10.0.0.0/27 in /28 blocks: block 0 = .2–.15 (14), block 1 = .16–.29 (14); .30/.31 reserved. */
const SMALL: IpPoolSpec = {
  type: "local",
  cidr: "10.0.0.0/27",
  rangeStart: "10.0.0.2",
  rangeEnd: "10.0.0.29",
  blockSize: 28,
  gateway: "10.0.0.1",
};
const B0 = "4100-10-0-0-0-28";
const B1 = "4100-10-0-0-16-28";

async function setup(
  o: { pools?: Record<string, IpPoolSpec>; hooks?: MemoryStoreHooks; maxAttempts?: number } = {},
) {
  const clock = { now: 1_000_000 };
  const sleeps: number[] = [];
  const counters = new IpamCounters();
  const stores = {
    blocks: new MemoryBlockStore(o.hooks),
    handles: new MemoryHandleStore(o.hooks),
    pools: new MemoryPoolStore(),
  };
  for (const [name, spec] of Object.entries(o.pools ?? { "vxnet-a": SMALL })) {
    await stores.pools.create(name, spec);
  }
  const ipam = new Ipam({
    ...stores,
    now: () => clock.now,
    random: () => 0.5,
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
    counters,
  }, { cooldownMs: 30_000, maxAttempts: o.maxAttempts ?? 16 });
  let n = 0;
  const req = (node: string, extra: Partial<AllocateRequest> = {}): AllocateRequest => ({
    handle: `c${++n}.eth0`,
    node,
    namespace: "default",
    pod: `pod-${n}`,
    pools: ["vxnet-a"],
    ...extra,
  });
  const consistent = async () => {
    for (const b of await stores.blocks.list()) assert.deepEqual(checkBlock(b.spec), [], b.name);
  };
  return { ipam, stores, clock, counters, sleeps, req, consistent };
}

Deno.test("allocate: the first pod claims a block for its node (created from the pool)", async () => {
  const { ipam, stores, req, counters } = await setup();
  const a = await ipam.allocate(req("n1"));
  assert.deepEqual(a, {
    ip: "10.0.0.2",
    handle: "c1.eth0",
    block: B0,
    blockCidr: "10.0.0.0/28",
    pool: "vxnet-a",
    gateway: "10.0.0.1",
    sequence: 1,
    borrowed: false,
    handleVersion: (await stores.handles.get("c1.eth0"))!.resourceVersion,
  });
  const b = (await stores.blocks.get(B0))!;
  assert.equal(b.spec.affinity, "host:n1");
  assert.deepEqual(b.spec.attributes.at(-1), {
    handle_id: "c1.eth0",
    secondary: { namespace: "default", pod: "pod-1", node: "n1" },
    sequence: 1,
  });
  assert.deepEqual((await stores.handles.get("c1.eth0"))!.spec, {
    handleID: "c1.eth0",
    block: { [B0]: 1 },
    deleted: false,
  });
  assert.equal(counters.claims, 1);
  assert.equal(counters.allocations, 1);
});

Deno.test("allocate is idempotent per handle", async () => {
  const { ipam, req, stores } = await setup();
  const r = req("n1");
  const a = await ipam.allocate(r);
  assert.deepEqual(await ipam.allocate(r), a);
  assert.deepEqual(await ipam.allocate({ ...r, node: "n2" }), a);
  assert.deepEqual(await ipam.addressesOf(r.handle), [a]);
  const b = (await stores.blocks.get(B0))!;
  assert.equal(b.spec.unallocated.length, 13);
});

Deno.test("a node fills its own block, then claims the next; another node claims its own", async () => {
  const { ipam, req, counters, consistent } = await setup();
  const n1 = [];
  for (let i = 0; i < 14; i++) n1.push(await ipam.allocate(req("n1")));
  assert.ok(n1.every((a) => a.block === B0 && !a.borrowed));
  const next = await ipam.allocate(req("n1"));
  assert.equal(next.block, B1);
  assert.equal(next.borrowed, false);
  assert.equal(counters.claims, 2);
  // n2 finds no unclaimed block left: it borrows from n1's.
  const n2 = await ipam.allocate(req("n2"));
  assert.equal(n2.borrowed, true);
  assert.equal(n2.block, B1);
  assert.equal(counters.borrows, 1);
  await consistent();
});

Deno.test("borrowing happens only when no block is free; exhaustion names the pool", async () => {
  const { ipam, req, consistent } = await setup();
  const a = await ipam.allocate(req("n1"));
  const b = await ipam.allocate(req("n2"));
  assert.equal(a.block, B0);
  assert.equal(b.block, B1, "n2 claims the free block rather than borrowing");
  const seen = new Set([a.ip, b.ip]);
  for (let i = 0; i < 13; i++) seen.add((await ipam.allocate(req("n2"))).ip);
  const borrowed = await ipam.allocate(req("n2"));
  assert.equal(borrowed.block, B0);
  assert.equal(borrowed.borrowed, true);
  seen.add(borrowed.ip);
  while (seen.size < 28) {
    const x = await ipam.allocate(req(seen.size % 2 ? "n1" : "n2"));
    assert.ok(!seen.has(x.ip), `${x.ip} handed out twice`);
    seen.add(x.ip);
  }
  await assert.rejects(ipam.allocate(req("n3")), (e: IpamExhaustedError) => {
    assert.equal(e.code, "IPAM_EXHAUSTED");
    assert.match(e.message, /"vxnet-a"/);
    return true;
  });
  await consistent();
});

Deno.test("release frees by handle, idempotently; the handle object goes away", async () => {
  const { ipam, req, stores, counters, consistent } = await setup();
  const r = req("n1");
  const a = await ipam.allocate(r);
  assert.equal(await ipam.releaseByHandle(r.handle), 1);
  assert.equal(await ipam.releaseByHandle(r.handle), 0);
  assert.equal(await ipam.releaseByHandle("never-added.eth0"), 0);
  assert.equal(await stores.handles.get(r.handle), undefined);
  assert.deepEqual(await ipam.addressesOf(r.handle), []);
  const b = (await stores.blocks.get(a.block))!;
  assert.equal(b.spec.unallocated.at(-1), 2, "released address goes to the back of the FIFO");
  assert.equal(b.spec.releasedAt["2"], 1_000_000);
  assert.equal(counters.releases, 1);
  await consistent();
});

Deno.test("release with a stale sequence frees nothing (a GC racing a re-allocation)", async () => {
  const { ipam, req } = await setup();
  const r = req("n1");
  const first = await ipam.allocate(r);
  // GC scanned and saw (handle, first.sequence); meanwhile the pod was deleted and re-added.
  await ipam.releaseByHandle(r.handle);
  const again = await ipam.allocate(r);
  assert.notEqual(again.sequence, first.sequence);
  const stale = await ipam.release(r.handle, { sequence: first.sequence });
  assert.deepEqual(stale.released, []);
  assert.deepEqual(stale.kept, [{ ip: again.ip, block: again.block, sequence: again.sequence }]);
  assert.deepEqual(await ipam.addressesOf(r.handle), [again]);
  const ok = await ipam.release(r.handle, { sequence: again.sequence });
  assert.deepEqual(ok.released, [{ ip: again.ip, block: again.block, sequence: again.sequence }]);
  assert.deepEqual(await ipam.addressesOf(r.handle), []);
});

Deno.test("release by ip frees only that address", async () => {
  const { ipam, req } = await setup();
  const r = req("n1");
  const a = await ipam.allocate(r);
  assert.deepEqual((await ipam.release(r.handle, { ip: "10.0.0.9" })).released, []);
  assert.deepEqual(await ipam.addressesOf(r.handle), [a]);
  assert.equal((await ipam.release(r.handle, { ip: a.ip })).released.length, 1);
  await assert.rejects(ipam.release(r.handle, { ip: "nope" }), IpamRequestError);
});

Deno.test("cooldown: rested addresses first; a cooling one before claiming a new block", async () => {
  const { ipam, req, clock, counters } = await setup();
  const held = Array.from({ length: 14 }, () => req("n1"));
  const ips: string[] = [];
  for (const r of held) ips.push((await ipam.allocate(r)).ip);
  // Block 0 is full. Release .2 at t0 and .3 at t0+1s.
  await ipam.releaseByHandle(held[0].handle);
  clock.now += 1000;
  await ipam.releaseByHandle(held[1].handle);
  clock.now += 1000;
  // Both are cooling: the one released longest ago is reused, no new block is claimed.
  const x = await ipam.allocate(req("n1"));
  assert.equal(x.ip, ips[0]);
  assert.equal(x.block, B0);
  assert.equal(counters.coolingReuses, 1);
  assert.equal(counters.claims, 1);
  // After the cooldown the remaining one is taken as a rested address.
  clock.now += 60_000;
  const y = await ipam.allocate(req("n1"));
  assert.equal(y.ip, ips[1]);
  assert.equal(counters.coolingReuses, 1);
});

Deno.test("cooldown: a rested address in any affine block beats a cooling one", async () => {
  const pools = { "vxnet-a": { ...SMALL, cidr: "10.0.0.0/26", rangeEnd: "10.0.0.61" } };
  const { ipam, req, clock, counters } = await setup({ pools });
  const rs = [];
  for (let i = 0; i < 15; i++) {
    const r = req("n1");
    rs.push({ r, a: await ipam.allocate(r) });
  }
  assert.equal(rs[14].a.block, B1);
  // B0 gets a cooling address; B1 still has never-used ones.
  await ipam.releaseByHandle(rs[0].r.handle);
  const z = await ipam.allocate(req("n1"));
  assert.equal(z.block, B1);
  assert.notEqual(z.ip, rs[0].a.ip);
  assert.equal(counters.coolingReuses, 0);
  clock.now += 30_000;
  // Once rested, B0's address is preferred (blocks in name order).
  assert.equal((await ipam.allocate(req("n1"))).ip, rs[0].a.ip);
});

Deno.test("fixed IP: taken if free; in use names the holder; reserved and outside say why", async () => {
  const { ipam, req, stores } = await setup();
  const a = await ipam.allocate(
    req("n1", { fixedIp: "10.0.0.20", namespace: "shop", pod: "db-0" }),
  );
  assert.equal(a.ip, "10.0.0.20");
  assert.equal(a.block, B1);
  assert.equal((await stores.blocks.get(B1))!.spec.affinity, "host:n1", "block created for it");
  await assert.rejects(ipam.allocate(req("n2", { fixedIp: "10.0.0.20" })), (e: IpInUseError) => {
    assert.equal(e.code, "IPAM_IP_IN_USE");
    assert.deepEqual(e.holder, { handle: a.handle, namespace: "shop", pod: "db-0", node: "n1" });
    assert.match(e.message, /"10\.0\.0\.20" is already used by pod "shop\/db-0" on node "n1"/);
    return true;
  });
  for (
    const [ip, reason] of [
      ["10.0.0.1", "vxnet gateway"],
      ["10.0.0.0", "network address"],
      ["10.0.0.30", "after the pool's range end 10.0.0.29 (left to the IaaS)"],
    ]
  ) {
    await assert.rejects(ipam.allocate(req("n2", { fixedIp: ip })), (e: IpReservedError) => {
      assert.equal(e.code, "IPAM_IP_RESERVED");
      assert.equal(e.reason, reason);
      return true;
    });
  }
  await assert.rejects(ipam.allocate(req("n2", { fixedIp: "10.9.0.5" })), (e: Error) => {
    assert.ok(e instanceof IpOutsidePoolsError);
    assert.match(e.message, /"10\.9\.0\.5" is outside every pool.*"vxnet-a"/);
    return true;
  });
  // A fixed IP in another node's block is granted (borrowed).
  const b = await ipam.allocate(req("n2", { fixedIp: "10.0.0.21" }));
  assert.equal(b.borrowed, true);
});

Deno.test("fixed IP: never in a block mapped to a namespace when allocating from pools", async () => {
  const { ipam, req } = await setup();
  await assert.rejects(
    ipam.allocate(req("n1", { fixedIp: "10.0.0.5", excludeBlocks: [B0] })),
    (e: IpOutsidePoolsError) => {
      assert.match(e.message, /belongs to a namespace/);
      return true;
    },
  );
});

Deno.test("namespace blocks: claimed in the configured order, then borrowed", async () => {
  const { ipam, req, stores } = await setup();
  for (const cidr of ["10.0.0.0/28", "10.0.0.16/28"]) {
    await stores.blocks.create(blockName(cidr), newBlock({ pool: "vxnet-a", spec: SMALL, cidr }));
  }
  const blocks = [B1, B0];
  const a = await ipam.allocate(req("n1", { pools: undefined, blocks }));
  assert.equal(a.block, B1);
  const b = await ipam.allocate(req("n2", { pools: undefined, blocks }));
  assert.equal(b.block, B0);
  const c = await ipam.allocate(req("n3", { pools: undefined, blocks }));
  assert.equal(c.borrowed, true);
  await assert.rejects(
    ipam.allocate(req("n3", { pools: undefined, blocks: ["4100-10-0-0-32-28"] })),
    (e: IpamExhaustedError) => {
      assert.match(e.message, /block "4100-10-0-0-32-28" does not exist/);
      return true;
    },
  );
  // Pools never hand out blocks excluded for namespaces.
  await assert.rejects(ipam.allocate(req("n4", { excludeBlocks: [B0, B1] })), IpamExhaustedError);
});

Deno.test("missing or disabled pools are skipped with the reason", async () => {
  const { ipam, req } = await setup({
    pools: { "vxnet-a": SMALL, "vxnet-off": { ...SMALL, cidr: "10.1.0.0/27", disabled: true } },
  });
  await assert.rejects(
    ipam.allocate(req("n1", { pools: ["vxnet-gone", "vxnet-off"] })),
    (e: IpamExhaustedError) => {
      assert.match(e.message, /pool "vxnet-gone" does not exist/);
      assert.match(e.message, /pool "vxnet-off" is disabled/);
      return true;
    },
  );
  // The next pool in order serves.
  const a = await ipam.allocate(req("n1", { pools: ["vxnet-gone", "vxnet-a"] }));
  assert.equal(a.pool, "vxnet-a");
  assert.equal(await ipam.claimBlock("n1", "vxnet-off"), undefined);
});

Deno.test("bad requests are refused naming the field", async () => {
  const { ipam, req } = await setup();
  const cases: [Partial<AllocateRequest>, string][] = [
    [{ blocks: [B0] }, "pools"],
    [{ pools: [] }, "pools"],
    [{ fixedIp: "10.0.0.300" }, "fixedIp"],
    [{ node: "Node_1" }, "node"],
    [{ handle: "" }, "handle"],
  ];
  for (const [patch, field] of cases) {
    await assert.rejects(ipam.allocate({ ...req("n1"), ...patch }), (e: IpamRequestError) => {
      assert.equal(e.code, "IPAM_BAD_REQUEST", JSON.stringify(patch));
      assert.equal(e.field, field, JSON.stringify(patch));
      return true;
    });
  }
});

Deno.test("conflicts are retried with bounded, jittered backoff and counted", async () => {
  let inject = 3;
  const { ipam, req, counters, sleeps, consistent } = await setup({
    hooks: { injectConflict: (op) => op === "update" && inject-- > 0 },
  });
  const a = await ipam.allocate(req("n1"));
  assert.equal(a.ip, "10.0.0.2");
  assert.equal(counters.conflicts, 3);
  assert.equal(counters.retries, 3);
  assert.equal(sleeps.length, 3);
  // random() = 0.5: three quarters of 5, 10, 20 ms.
  assert.deepEqual(sleeps, [4, 8, 15]);
  await consistent();
});

Deno.test("losing every race ends in IpamRetryError and leaves nothing allocated", async () => {
  const { ipam, req, stores, counters } = await setup({
    hooks: { injectConflict: (_op, name) => name.startsWith("4100-") },
    maxAttempts: 4,
  });
  // The block can be created (create is never refused) but never updated.
  const r = req("n1", { fixedIp: "10.0.0.5" });
  await assert.rejects(ipam.allocate(r), (e: IpamRetryError) => {
    assert.equal(e.code, "IPAM_RETRIES_EXHAUSTED");
    assert.equal(e.attempts, 4);
    return true;
  });
  assert.equal(counters.exhaustedRetries, 1);
  for (const b of await stores.blocks.list()) {
    assert.equal(b.spec.attributes.filter((a) => a.handle_id === r.handle).length, 0);
  }
  assert.equal(await stores.handles.get(r.handle), undefined, "handle taken back");
  assert.deepEqual(await ipam.addressesOf(r.handle), []);
});

Deno.test("usage sums blocks; cooling addresses count as free", async () => {
  const { ipam, req } = await setup();
  const r = req("n1");
  await ipam.allocate(r);
  await ipam.allocate(req("n1"));
  await ipam.releaseByHandle(r.handle);
  assert.deepEqual(await ipam.usage("vxnet-a"), {
    size: 16,
    reserved: 2,
    allocated: 1,
    free: 13,
    cooling: 1,
    blocks: 1,
  });
});
