/**
 * The behaviour every IPAM store passes (`MemoryBlockStore`/`MemoryHandleStore` here; a Kubernetes
 * store against a real kube-apiserver later), written against the `CasStore` interface only. Each
 * implementation's `_test.ts` supplies a harness that starts empty and calls `ipamStoreContract`.
 * Objects used here are valid per the CRD schemas, so an API server accepts them.
 */
import assert from "node:assert/strict";
import { newBlock } from "./block.ts";
import { AlreadyExistsError, ConflictError, InvalidObjectError, NotFoundError } from "./errors.ts";
import { blockName } from "./reserve.ts";
import type { BlockStore, CasStore, HandleStore, Versioned } from "./store.ts";
import type { BlockSpec, HandleSpec, IpPoolSpec } from "./types.ts";

export interface IpamStoreHarness extends AsyncDisposable {
  /** Both stores start empty. */
  blocks: BlockStore;
  handles: HandleStore;
}

const POOL: IpPoolSpec = {
  type: "local",
  cidr: "172.16.3.0/24",
  rangeStart: "172.16.3.2",
  rangeEnd: "172.16.3.241",
  blockSize: 26,
  gateway: "172.16.3.1",
};

/** A valid block of POOL at `172.16.3.<64*i>/26`. */
export function sampleBlock(i = 0): { name: string; spec: BlockSpec } {
  const cidr = `172.16.3.${64 * i}/26`;
  return { name: blockName(cidr), spec: newBlock({ pool: "vxnet-abc123", spec: POOL, cidr }) };
}

export function sampleHandle(i = 0): { name: string; spec: HandleSpec } {
  const id = `${(i + 1).toString(16).padStart(64, "0")}.eth0`;
  return { name: id, spec: { handleID: id, block: { [sampleBlock(0).name]: 1 }, deleted: false } };
}

/** A different value of a mutable block field (the sequence number). */
export function touchBlock(spec: BlockSpec): BlockSpec {
  return { ...spec, sequenceNumber: spec.sequenceNumber + 1 };
}

/** A different value of a mutable handle field (an address count). */
export function touchHandle(spec: HandleSpec): HandleSpec {
  const [first] = Object.keys(spec.block);
  return { ...spec, block: { ...spec.block, [first ?? "b"]: (spec.block[first] ?? 0) + 1 } };
}

async function rejects(
  p: Promise<unknown>,
  cls: abstract new (...a: never[]) => Error,
  what: string,
) {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof cls, `${what}: expected ${cls.name}, got ${e}`);
    return true;
  });
}

export interface ContractCase {
  title: string;
  fn: (h: IpamStoreHarness) => Promise<void>;
}

/** Registers every contract case as its own `Deno.test`, each with a fresh harness. */
export function ipamStoreContract(name: string, harness: () => Promise<IpamStoreHarness>): void {
  for (const c of ipamStoreContractCases()) {
    Deno.test(`${name} contract: ${c.title}`, async () => {
      await using h = await harness();
      await c.fn(h);
    });
  }
}

/**
 * The contract's cases, for a harness that is expensive to start (a real API server): run them
 * as steps of one test, emptying the stores between cases.
 */
export function ipamStoreContractCases(): ContractCase[] {
  const cases: ContractCase[] = [];
  const test = (title: string, fn: (h: IpamStoreHarness) => Promise<void>) => {
    cases.push({ title, fn });
  };

  /**
   * Runs a test body once per kind with a sample object factory and `touch`, a change to a
   * mutable field (an update must change something: the API server skips a write that changes
   * nothing and keeps the resourceVersion; CEL rules make some fields immutable).
   */
  const eachKind = async (
    h: IpamStoreHarness,
    fn: <T>(
      s: CasStore<T>,
      sample: (i: number) => { name: string; spec: T },
      touch: (spec: T) => T,
    ) => Promise<void>,
  ) => {
    await fn(h.blocks, sampleBlock, touchBlock);
    await fn(h.handles, sampleHandle, touchHandle);
  };

  test("get of a missing name is undefined; list of an empty store is empty", async (h) => {
    await eachKind(h, async (s) => {
      assert.equal(await s.get("4100-10-0-0-0-26"), undefined);
      assert.deepEqual(await s.list(), []);
    });
  });

  test("create then get round-trips the spec exactly (nulls, empty lists, maps)", async (h) => {
    await eachKind(h, async (s, sample) => {
      const { name, spec } = sample(0);
      const created = await s.create(name, spec);
      assert.equal(created.name, name);
      assert.equal(typeof created.resourceVersion, "string");
      assert.ok(created.resourceVersion.length > 0);
      assert.deepEqual(created.spec, spec);
      const got = await s.get(name);
      assert.deepEqual(got, created);
    });
  });

  test("a block with allocations, release times and attributes round-trips", async (h) => {
    const { name, spec } = sampleBlock(1);
    spec.affinity = "host:node-1.example";
    spec.allocations[5] = spec.attributes.length;
    spec.unallocated = spec.unallocated.filter((o) => o !== 5);
    spec.attributes.push({
      handle_id: "c1.eth0",
      secondary: { namespace: "default", pod: "web-0", node: "node-1.example" },
      sequence: 1,
    });
    spec.sequenceNumber = 2;
    spec.releasedAt = { "7": 1_700_000_000_123 };
    await h.blocks.create(name, spec);
    assert.deepEqual((await h.blocks.get(name))?.spec, spec);
  });

  test("create of an existing name fails with AlreadyExistsError and changes nothing", async (h) => {
    await eachKind(h, async (s, sample) => {
      const a = sample(0);
      const first = await s.create(a.name, a.spec);
      await rejects(s.create(a.name, sample(1).spec), AlreadyExistsError, "second create");
      assert.deepEqual(await s.get(a.name), first);
    });
  });

  test("update with the current resourceVersion wins and moves it", async (h) => {
    const { name, spec } = sampleBlock(0);
    const v1 = await h.blocks.create(name, spec);
    const v2 = await h.blocks.update({ ...v1, spec: { ...v1.spec, affinity: "host:n1" } });
    assert.notEqual(v2.resourceVersion, v1.resourceVersion);
    assert.equal(v2.spec.affinity, "host:n1");
    assert.deepEqual(await h.blocks.get(name), v2);
    // Another change moves it again.
    const v3 = await h.blocks.update({ ...v2, spec: touchBlock(v2.spec) });
    assert.notEqual(v3.resourceVersion, v2.resourceVersion);
    assert.deepEqual(await h.blocks.get(name), v3);
  });

  test("update with a stale resourceVersion fails with ConflictError and changes nothing", async (h) => {
    await eachKind(h, async (s, sample, touch) => {
      const { name, spec } = sample(0);
      const v1 = await s.create(name, spec);
      const v2 = await s.update({ ...v1, spec: touch(v1.spec) });
      await rejects(
        s.update({ ...v1, spec: touch(touch(v1.spec)) }),
        ConflictError,
        "stale update",
      );
      assert.deepEqual(await s.get(name), v2);
    });
  });

  test("update of a missing name fails with NotFoundError", async (h) => {
    await eachKind(h, async (s, sample) => {
      const { name, spec } = sample(0);
      const v1 = await s.create(name, spec);
      assert.equal(await s.delete(name), true);
      await rejects(s.update(v1), NotFoundError, "update after delete");
      assert.equal(await s.get(name), undefined);
    });
  });

  test("delete: stale resourceVersion conflicts; current one deletes; missing is false", async (h) => {
    await eachKind(h, async (s, sample, touch) => {
      const { name, spec } = sample(0);
      const v1 = await s.create(name, spec);
      const v2 = await s.update({ ...v1, spec: touch(v1.spec) });
      await rejects(
        s.delete(name, { resourceVersion: v1.resourceVersion }),
        ConflictError,
        "guarded delete with a stale version",
      );
      assert.deepEqual(await s.get(name), v2);
      assert.equal(await s.delete(name, { resourceVersion: v2.resourceVersion }), true);
      assert.equal(await s.get(name), undefined);
      assert.equal(await s.delete(name), false);
      assert.equal(await s.delete(name, { resourceVersion: v2.resourceVersion }), false);
      // The name can be created again.
      await s.create(name, spec);
      assert.equal(await s.delete(name), true);
    });
  });

  test("list returns every object sorted by name with its current version", async (h) => {
    const names: string[] = [];
    for (const i of [3, 0, 2, 1]) {
      const b = sampleBlock(i);
      await h.blocks.create(b.name, b.spec);
      names.push(b.name);
    }
    const listed = await h.blocks.list();
    assert.deepEqual(listed.map((o) => o.name), [...names].sort());
    for (const o of listed) assert.deepEqual(await h.blocks.get(o.name), o);
  });

  test("values are copies: mutating input or output never changes the store", async (h) => {
    const { name, spec } = sampleBlock(0);
    const created = await h.blocks.create(name, spec);
    spec.unallocated.length = 0;
    created.spec.attributes.length = 0;
    const got = (await h.blocks.get(name))!;
    assert.deepEqual(got.spec, sampleBlock(0).spec);
    got.spec.allocations.fill(null);
    (await h.blocks.list())[0].spec.unallocated.pop();
    assert.deepEqual((await h.blocks.get(name))!.spec, sampleBlock(0).spec);
  });

  test("invalid names and specs are refused with InvalidObjectError", async (h) => {
    const { spec } = sampleBlock(0);
    for (const bad of ["", "UPPER", "a_b", "-lead", "trail-", "x".repeat(254)]) {
      await rejects(h.blocks.create(bad, spec), InvalidObjectError, `name ${JSON.stringify(bad)}`);
    }
    const badSpecs: [string, BlockSpec][] = [
      ["cidr", { ...spec, cidr: "172.16.3.0/33" }],
      ["affinity", { ...spec, affinity: "node-1" }],
      ["negative ordinal", { ...spec, unallocated: [-1] }],
    ];
    for (const [what, s] of badSpecs) {
      await rejects(h.blocks.create("4100-172-16-3-0-26", s), InvalidObjectError, what);
    }
    assert.deepEqual(await h.blocks.list(), []);
  });

  test("of N updates racing from one version exactly one wins", async (h) => {
    const { name, spec } = sampleBlock(0);
    const v1 = await h.blocks.create(name, spec);
    const results = await Promise.allSettled(
      Array.from(
        { length: 8 },
        (_, i) => h.blocks.update({ ...v1, spec: { ...v1.spec, affinity: `host:n${i}` } }),
      ),
    );
    const won = results.filter((r) => r.status === "fulfilled");
    assert.equal(won.length, 1);
    for (const r of results) {
      if (r.status === "rejected") assert.ok(r.reason instanceof ConflictError, String(r.reason));
    }
    const winner = (won[0] as PromiseFulfilledResult<Versioned<BlockSpec>>).value;
    assert.deepEqual(await h.blocks.get(name), winner);
  });

  test("of N creates racing for one name exactly one wins", async (h) => {
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => {
        const { spec } = sampleHandle(i);
        return h.handles.create(sampleHandle(0).name, spec);
      }),
    );
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    for (const r of results) {
      if (r.status === "rejected") {
        assert.ok(r.reason instanceof AlreadyExistsError, String(r.reason));
      }
    }
  });

  test("read-modify-CAS loops never lose an update", async (h) => {
    const { name, spec } = sampleHandle(0);
    await h.handles.create(name, { ...spec, block: { b: 0 } });
    const workers = 10;
    await Promise.all(Array.from({ length: workers }, async () => {
      for (;;) {
        const cur = (await h.handles.get(name))!;
        try {
          await h.handles.update({
            ...cur,
            spec: { ...cur.spec, block: { b: cur.spec.block.b + 1 } },
          });
          return;
        } catch (e) {
          if (!(e instanceof ConflictError)) throw e;
        }
      }
    }));
    assert.equal((await h.handles.get(name))!.spec.block.b, workers);
  });
  return cases;
}
