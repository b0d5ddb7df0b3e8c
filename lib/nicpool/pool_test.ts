import assert from "node:assert/strict";
import { nullLogger } from "../log.ts";
import { NicPool, type PoolCloud, PoolError, type PoolOptions } from "./pool.ts";

/** Stateful fake cloud: NICs exist once created, attach/detach are jobs that finish on demand. */
class FakeCloud implements PoolCloud {
  nics = new Map<string, { ip: string; attached: boolean; vxnet: string }>();
  calls: Record<string, number> = {};
  failCreate = 0;
  #seq = 0;
  #jobs = new Map<string, () => void>();
  #count(a: string) {
    this.calls[a] = (this.calls[a] ?? 0) + 1;
  }
  createNics(o: { vxnet: string; count: number; privateIps?: string[] }) {
    this.#count("CreateNics");
    if (this.failCreate > 0) {
      this.failCreate--;
      return Promise.reject(new Error("quota exceeded"));
    }
    const out = [];
    for (let i = 0; i < o.count; i++) {
      const n = ++this.#seq;
      const id = `52:54:00:00:00:${n.toString(16).padStart(2, "0")}`;
      const ip = o.privateIps?.[i] ?? `172.20.1.${n + 10}`;
      this.nics.set(id, { ip, attached: false, vxnet: o.vxnet });
      out.push({ id, ip });
    }
    return Promise.resolve(out);
  }
  tagNics() {
    this.#count("AttachTags");
    return Promise.resolve();
  }
  attachNics(ids: string[]) {
    this.#count("AttachNics");
    const job = `j-${++this.#seq}`;
    this.#jobs.set(job, () => ids.forEach((id) => this.nics.get(id)!.attached = true));
    return Promise.resolve(job);
  }
  detachNics(ids: string[]) {
    this.#count("DetachNics");
    const job = `j-${++this.#seq}`;
    this.#jobs.set(job, () => ids.forEach((id) => this.nics.get(id)!.attached = false));
    return Promise.resolve(job);
  }
  deleteNics(ids: string[]) {
    this.#count("DeleteNics");
    for (const id of ids) {
      if (this.nics.get(id)?.attached) return Promise.reject(new Error(`${id} in use`));
      this.nics.delete(id);
    }
    return Promise.resolve();
  }
  nicStatus(ids: string[]) {
    const out = new Map<string, { status: "in-use" | "available"; instance: string }>();
    for (const id of ids) {
      const n = this.nics.get(id);
      if (n) {
        out.set(id, {
          status: n.attached ? "in-use" : "available",
          instance: n.attached ? "i-test" : "",
        });
      }
    }
    return Promise.resolve(out);
  }
  async waitJob(job: string) {
    await Promise.resolve();
    this.#jobs.get(job)!();
  }
  describeVxnet(id: string) {
    return Promise.resolve({ id, cidr: "172.20.1.0/24", gateway: "172.20.1.1" });
  }
}

function setup(over: Partial<PoolOptions> = {}, now?: () => number) {
  const cloud = new FakeCloud();
  const writes: unknown[] = [];
  const pool = new NicPool(
    {
      cloud,
      links: { waitForMacs: () => Promise.resolve() },
      store: {
        batch: (ops) => {
          writes.push(...ops);
          return Promise.resolve();
        },
      },
      logger: nullLogger,
      now,
    },
    {
      instanceId: "i-test",
      vxnet: "vxnet-pool",
      poolLow: 3,
      poolHigh: 3,
      maxNic: 63,
      routeTableBase: 260,
      jobTimeoutMs: 1000,
      allocTimeoutMs: 2000,
      ...over,
    },
  );
  return { cloud, pool, writes };
}

Deno.test("pool fills to poolLow with one CreateNics and one AttachNics", async () => {
  const { cloud, pool } = setup();
  pool.kick();
  await pool.settle();
  assert.equal(pool.counts().free, 3);
  assert.equal(cloud.calls.CreateNics, 1);
  assert.equal(cloud.calls.AttachNics, 1);
  assert.deepEqual(pool.list().map((n) => n.table), [260, 261, 262]);
  await pool.close();
});

Deno.test("a burst of waiters is served by one batch and never shares a NIC", async () => {
  const { cloud, pool } = setup();
  const got = await Promise.all(Array.from({ length: 20 }, (_, i) => pool.acquire(`c${i}/eth0`)));
  assert.equal(new Set(got.map((n) => n.id)).size, 20);
  assert.equal(new Set(got.map((n) => n.ip)).size, 20);
  await pool.settle();
  assert.ok(cloud.calls.CreateNics <= 3, `CreateNics called ${cloud.calls.CreateNics} times`);
  assert.equal(pool.counts().inuse, 20);
  assert.ok(pool.counts().free >= 3);
  await pool.close();
});

Deno.test("released NICs return to the pool and the excess over poolHigh is deleted", async () => {
  const { cloud, pool } = setup();
  const got = await Promise.all(Array.from({ length: 6 }, (_, i) => pool.acquire(`c${i}/eth0`)));
  await pool.settle();
  for (const n of got) await pool.release(n.id);
  await pool.settle();
  assert.equal(pool.counts().free, 3);
  assert.equal(pool.counts().inuse, 0);
  // Every NIC the cloud still has is one the pool tracks as free.
  assert.deepEqual([...cloud.nics.keys()].sort(), pool.list().map((n) => n.id).sort());
  await pool.close();
});

Deno.test("maxNic bounds the pool and an ADD beyond it times out with a retryable error", async () => {
  const { pool } = setup({ maxNic: 2, poolLow: 1, poolHigh: 2, allocTimeoutMs: 200 });
  const a = await pool.acquire("a/eth0");
  const b = await pool.acquire("b/eth0");
  assert.notEqual(a.id, b.id);
  await assert.rejects(
    () => pool.acquire("c/eth0"),
    (e: unknown) => e instanceof PoolError && e.code === "POOL_TIMEOUT" && e.retryable,
  );
  await pool.close();
});

Deno.test("a failed batch is retried while ADDs wait", async () => {
  const { cloud, pool } = setup({ allocTimeoutMs: 5000 });
  cloud.failCreate = 1;
  const nic = await pool.acquire("a/eth0");
  assert.ok(nic.id.startsWith("52:54"));
  assert.ok(cloud.calls.CreateNics >= 2);
  await pool.close();
});

Deno.test("dedicated NICs carry the requested IP and are deleted on release", async () => {
  const { cloud, pool } = setup({ poolLow: 0, poolHigh: 0 });
  const nic = await pool.acquireDedicated("a/eth0", { vxnet: "vxnet-other", ip: "172.20.1.99" });
  assert.equal(nic.ip, "172.20.1.99");
  assert.equal(nic.state, "inuse");
  await pool.release(nic.id);
  await pool.settle();
  assert.equal(cloud.nics.size, 0);
  assert.equal(pool.list().length, 0);
  await pool.close();
});

Deno.test("a pool without a vxnet refuses plain ADDs with a clear, non-retryable error", async () => {
  const { pool } = setup({ vxnet: undefined });
  await assert.rejects(
    () => pool.acquire("a/eth0"),
    (e: unknown) => e instanceof PoolError && e.code === "NO_POOL_VXNET" && !e.retryable,
  );
  await pool.close();
});

Deno.test("a released IP cools down: the next pod gets another NIC, oldest released first", async () => {
  let t = 1_000_000;
  const { cloud, pool, writes } = setup({ ipCooldownMs: 30_000, poolHigh: 10 }, () => t);
  pool.kick();
  await pool.settle();
  const a = await pool.acquire("a/eth0");
  await pool.release(a.id);
  assert.ok(
    writes.some((w) => JSON.stringify(w).includes(`"releasedAt":${t}`)),
    "releasedAt is persisted, so cooldown holds across restarts",
  );
  t += 1000;
  const b = await pool.acquire("b/eth0");
  assert.notEqual(b.ip, a.ip);
  assert.equal(pool.counts().cooling, 1);
  // Two ready NICs left: the cooling one is not counted as ready, so the pool refills.
  await pool.settle();
  assert.equal(cloud.calls.CreateNics, 2);
  t += 30_000;
  assert.equal(pool.counts().cooling, 0);
  // Never-used NICs first, then the longest-released.
  const taken = [];
  const free = pool.counts().free;
  for (let i = 0; i < free; i++) taken.push(await pool.acquire(`x${i}/eth0`));
  assert.equal(taken.at(-1)!.id, a.id);
  await pool.close();
});

Deno.test("at maxNic a pod gets the longest-cooled NIC instead of waiting forever", async () => {
  let t = 5_000_000;
  const { pool } = setup({ ipCooldownMs: 60_000, poolLow: 2, poolHigh: 2, maxNic: 2 }, () => t);
  const a = await pool.acquire("a/eth0");
  const b = await pool.acquire("b/eth0");
  await pool.release(b.id);
  t += 10;
  await pool.release(a.id);
  t += 10;
  const c = await pool.acquire("c/eth0");
  assert.equal(c.id, b.id);
  await pool.close();
});

Deno.test("an ADD waiting while the cloud fails gets a NIC as soon as its cooldown ends", async () => {
  const { cloud, pool } = setup({ ipCooldownMs: 150, poolLow: 1, poolHigh: 3, maxNic: 5 });
  const a = await pool.acquire("a/eth0");
  await pool.settle();
  const spare = pool.list().find((n) => n.state === "free")!;
  await pool.acquire("s/eth0");
  cloud.failCreate = 1000;
  await pool.release(a.id);
  const released = Date.now();
  const c = await pool.acquire("c/eth0");
  assert.equal(c.id, a.id);
  assert.ok(Date.now() - released >= 140, "handed out only after its cooldown");
  assert.notEqual(spare.id, c.id);
  await pool.close();
});

Deno.test("a failed dedicated NIC is that pod's error: the pool stays healthy and refills", async () => {
  const { cloud, pool } = setup();
  cloud.failCreate = 1;
  await assert.rejects(
    () => pool.acquireDedicated("a/eth0", { vxnet: "vxnet-other", ip: "172.20.1.99" }),
    (e: unknown) => e instanceof PoolError && e.code === "IAAS_FAILED",
  );
  assert.equal(pool.lastError, undefined);
  pool.kick();
  await pool.settle();
  assert.equal(pool.counts().free, 3, "no backoff delayed the refill");
  await pool.close();
});

Deno.test("a mass release is trimmed in one batch once releases have stopped", async () => {
  let t = 9_000_000;
  const { cloud, pool } = setup({ poolLow: 2, poolHigh: 2, trimDelayMs: 1000 }, () => t);
  const got = await Promise.all(Array.from({ length: 10 }, (_, i) => pool.acquire(`c${i}/eth0`)));
  await pool.settle();
  t += 5000;
  // Pods go one after another, a little apart: nothing is trimmed while they keep going.
  for (const n of got) {
    await pool.release(n.id);
    await pool.settle();
    t += 200;
  }
  assert.equal(cloud.calls.DetachNics ?? 0, 0, "no trim while releases keep coming");
  assert.ok(pool.counts().free > 2);
  t += 1000;
  pool.kick();
  await pool.settle();
  assert.equal(pool.counts().free, 2);
  assert.equal(cloud.calls.DetachNics, 1, "the excess went in one DetachNics");
  assert.equal(cloud.calls.DeleteNics, 1);
  await pool.close();
});

Deno.test("a discarded NIC is detached and deleted, never handed out again", async () => {
  const { cloud, pool } = setup({ poolLow: 1, poolHigh: 1 });
  const bad = await pool.acquire("a/eth0");
  await pool.discard(bad.id);
  await pool.settle();
  assert.ok(!cloud.nics.has(bad.id), "deleted in the cloud");
  assert.equal(pool.get(bad.id), undefined);
  const next = await pool.acquire("b/eth0");
  assert.notEqual(next.id, bad.id);
  await pool.settle();
  assert.equal(pool.counts().free, 1, "the pool refilled");
  await pool.close();
});

Deno.test("trimming never deletes a NIC whose IP is in cooldown", async () => {
  let t = 9_000_000;
  const { cloud, pool } = setup({ ipCooldownMs: 30_000, poolLow: 1, poolHigh: 1 }, () => t);
  const a = await pool.acquire("a/eth0");
  await pool.settle();
  const b = await pool.acquire("b/eth0");
  await pool.settle();
  await pool.release(b.id); // cools until t + 30 s
  await pool.settle();
  t += 20_000;
  await pool.release(a.id); // cools until t + 50 s; listed before b
  await pool.settle();
  t += 11_000; // b has cooled, a has not: two ready NICs (b and a never-used one) > poolHigh
  pool.kick();
  await pool.settle();
  assert.ok(cloud.nics.has(a.id), "the NIC in cooldown is kept");
  assert.ok(!cloud.nics.has(b.id), "a cooled NIC is trimmed instead");
  await pool.close();
});

Deno.test("under fast churn cooldown does not grow the node past poolHigh free NICs", async () => {
  let t = 20_000_000;
  const { cloud, pool } = setup({ ipCooldownMs: 30_000, poolLow: 2, poolHigh: 4 }, () => t);
  pool.kick();
  await pool.settle();
  for (let i = 0; i < 40; i++) {
    const n = await pool.acquire(`p${i}/eth0`);
    await pool.release(n.id);
    await pool.settle();
    t += 100; // 10 pods/s: far faster than 30 s of cooldown allows
  }
  assert.ok(pool.list().length <= 5, `node holds ${pool.list().length} NICs`);
  assert.ok(cloud.calls.CreateNics <= 3, `CreateNics called ${cloud.calls.CreateNics} times`);
  await pool.close();
});

Deno.test("ADDs arriving spread out: a few growing batches, no NIC beyond waiters + poolHigh", async () => {
  const { cloud, pool } = setup();
  pool.kick();
  await pool.settle();
  // Jobs take 150 ms from now on; 30 ADDs arrive one every 20 ms.
  const wait = cloud.waitJob.bind(cloud);
  cloud.waitJob = async (job: string) => {
    await new Promise((r) => setTimeout(r, 150));
    await wait(job);
  };
  const before = cloud.calls.CreateNics;
  const got = await Promise.all(Array.from({ length: 30 }, async (_, i) => {
    await new Promise((r) => setTimeout(r, 20 * i));
    return await pool.acquire(`pod${i}/eth0`);
  }));
  assert.equal(new Set(got.map((n) => n.id)).size, 30);
  await pool.settle();
  const batches = cloud.calls.CreateNics - before;
  assert.ok(batches <= 8, `${batches} batches for 30 ADDs`);
  assert.ok(pool.list().length <= 30 + 3, `${pool.list().length} NICs for 30 pods + poolHigh 3`);
  await pool.close();
});
