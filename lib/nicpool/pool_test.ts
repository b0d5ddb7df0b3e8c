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

function setup(over: Partial<PoolOptions> = {}) {
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
