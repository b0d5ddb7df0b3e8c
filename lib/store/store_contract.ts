/**
 * The one behaviour suite every `Store` passes (`LevelStore` and `MemoryStore`), so the fake
 * cannot drift from the real store. Each implementation's `_test.ts` supplies a harness and calls
 * `storeContract`.
 */
import assert from "node:assert/strict";
import type { FormatOptions, Migration, RawEntry } from "./format.ts";
import { type Store, STORE_FORMAT, StoreError, type StoreErrorCode } from "./store.ts";

/** One store's backing state (a directory, a `MemoryDisk`), reopenable like after a restart. */
export interface StoreHarness extends AsyncDisposable {
  /** What messages name as the state's location (the directory). */
  readonly where: string;
  /** Open a store on this state; call again after `close()` to reopen. */
  open(opts?: FormatOptions): Promise<Store>;
  /** Write a raw, unvalidated value. Only while no store is open. */
  writeRaw(key: string, raw: string): Promise<void>;
  /** Every raw entry, sorted. Only while no store is open. */
  readRaw(): Promise<RawEntry[]>;
}

export function storeContract(name: string, harness: () => Promise<StoreHarness>): void {
  const test = (title: string, fn: (h: StoreHarness) => Promise<void>) =>
    Deno.test(`${name} contract: ${title}`, async () => {
      await using h = await harness();
      await fn(h);
    });

  test("get of a missing key is undefined; put/get round-trips plain JSON", async (h) => {
    await using s = await h.open();
    assert.equal(await s.get("nic/none"), undefined);
    const value = {
      id: "52:54:9e:00:00:01",
      n: -1.5,
      t: true,
      z: null,
      list: [1, "x", { deep: ["é", "\u0000"] }],
    };
    await s.put("nic/52:54:9e:00:00:01", value);
    assert.deepEqual(await s.get("nic/52:54:9e:00:00:01"), value);
    for (const scalar of [0, "", false, null, "text"]) {
      await s.put("x/scalar", scalar);
      assert.deepEqual(await s.get("x/scalar"), scalar);
    }
  });

  test("values are copies: mutating input or output never changes the store", async (h) => {
    await using s = await h.open();
    const v = { ips: ["10.0.0.1"] };
    await s.put("alloc/c1/eth0", v);
    v.ips.push("mutated");
    const got = await s.get<{ ips: string[] }>("alloc/c1/eth0");
    assert.deepEqual(got, { ips: ["10.0.0.1"] });
    got!.ips.push("mutated");
    assert.deepEqual(await s.get("alloc/c1/eth0"), { ips: ["10.0.0.1"] });
  });

  test("put overwrites, del removes, del of a missing key succeeds", async (h) => {
    await using s = await h.open();
    await s.put("job/j-1", { state: "pending" });
    await s.put("job/j-1", { state: "done" });
    assert.deepEqual(await s.get("job/j-1"), { state: "done" });
    await s.del("job/j-1");
    assert.equal(await s.get("job/j-1"), undefined);
    await s.del("job/j-1");
    await s.del("job/never-existed");
  });

  test("list is sorted by key and isolated by prefix", async (h) => {
    await using s = await h.open();
    const keys = [
      "nicx/c",
      "alloc/c10/eth0",
      "nic/b",
      "alloc/c1/net1",
      "nic/a",
      "alloc/c1/eth0",
      "cooldown/10.0.0.9",
      "cooldown/fd00::1",
    ];
    for (const k of keys) await s.put(k, { k });
    const listed = async (p: string) => (await s.list<{ k: string }>(p)).map((e) => e.key);
    assert.deepEqual(await listed("nic/"), ["nic/a", "nic/b"]);
    assert.deepEqual(await listed("alloc/c1/"), ["alloc/c1/eth0", "alloc/c1/net1"]);
    assert.deepEqual(await listed("alloc/c1"), [
      "alloc/c1/eth0",
      "alloc/c1/net1",
      "alloc/c10/eth0",
    ]);
    assert.deepEqual(await listed("job/"), []);
    // "" lists everything the caller wrote, sorted, without the store's own meta/ records.
    assert.deepEqual(await listed(""), [...keys].sort());
    const entries = await s.list<{ k: string }>("cooldown/");
    assert.deepEqual(entries, [
      { key: "cooldown/10.0.0.9", value: { k: "cooldown/10.0.0.9" } },
      { key: "cooldown/fd00::1", value: { k: "cooldown/fd00::1" } },
    ]);
  });

  test("invalid keys and prefixes are refused", async (h) => {
    await using s = await h.open();
    const bad = ["", "/a", "a/", "a//b", "a b", "ké", "a\nb", "meta/format", "x".repeat(1025)];
    for (const key of bad) {
      await assertStoreError(s.put(key, 1), "STORE_INVALID_KEY", `put ${JSON.stringify(key)}`);
      await assertStoreError(s.get(key), "STORE_INVALID_KEY", `get ${JSON.stringify(key)}`);
      await assertStoreError(s.del(key), "STORE_INVALID_KEY", `del ${JSON.stringify(key)}`);
    }
    await assertStoreError(s.list("a b"), "STORE_INVALID_KEY", "list with a space");
    await assertStoreError(s.get(42 as unknown as string), "STORE_INVALID_KEY", "number key");
    assert.deepEqual(await s.list(""), []);
  });

  test("values that are not plain JSON are refused", async (h) => {
    await using s = await h.open();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const bad: [string, unknown][] = [
      ["undefined", undefined],
      ["NaN", NaN],
      ["Infinity", { n: Infinity }],
      ["function", { f: () => 1 }],
      ["bigint", 1n],
      ["Date", { at: new Date(0) }],
      ["Map", new Map()],
      ["nested undefined", { a: [undefined] }],
      ["cycle", cyclic],
    ];
    for (const [what, value] of bad) {
      await assertStoreError(s.put("x/bad", value), "STORE_INVALID_VALUE", what);
    }
    // The same object twice (not a cycle) is fine.
    const shared = { a: 1 };
    await s.put("x/shared", { l: shared, r: shared });
    assert.deepEqual(await s.get("x/shared"), { l: { a: 1 }, r: { a: 1 } });
    assert.equal(await s.get("x/bad"), undefined);
  });

  test("batch is all or nothing and applied in order", async (h) => {
    await using s = await h.open();
    await s.put("nic/keep", 1);
    await assertStoreError(
      s.batch([
        { type: "put", key: "nic/a", value: 1 },
        { type: "del", key: "nic/keep" },
        { type: "put", key: "nic/b", value: { bad: NaN } },
      ]),
      "STORE_INVALID_VALUE",
      "batch with a bad value last",
    );
    await assertStoreError(
      s.batch([{ type: "put", key: "nic/a", value: 1 }, { type: "put", key: "bad key", value: 1 }]),
      "STORE_INVALID_KEY",
      "batch with a bad key last",
    );
    assert.deepEqual((await s.list("")).map((e) => e.key), ["nic/keep"]);

    await s.batch([
      { type: "put", key: "alloc/c1/eth0", value: { nic: "n1" } },
      { type: "put", key: "nic/n1", value: { used: true } },
      { type: "del", key: "nic/keep" },
      { type: "put", key: "x/put-then-del", value: 1 },
      { type: "del", key: "x/put-then-del" },
      { type: "del", key: "x/del-then-put" },
      { type: "put", key: "x/del-then-put", value: 2 },
    ]);
    assert.deepEqual(await s.list(""), [
      { key: "alloc/c1/eth0", value: { nic: "n1" } },
      { key: "nic/n1", value: { used: true } },
      { key: "x/del-then-put", value: 2 },
    ]);
    await s.batch([]);
  });

  test("parallel writes all land", async (h) => {
    await using s = await h.open();
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        s.batch([
          { type: "put", key: `alloc/c${i}/eth0`, value: i },
          { type: "put", key: `cooldown/10.0.0.${i}`, value: i },
        ])),
    );
    assert.equal((await s.list("alloc/")).length, 50);
    assert.equal((await s.list("cooldown/")).length, 50);
  });

  test("state persists across close and reopen; a closed store refuses calls", async (h) => {
    const s1 = await h.open();
    await s1.batch([
      { type: "put", key: "nic/n1", value: { vxnet: "vxnet-a" } },
      { type: "put", key: "alloc/c1/eth0", value: { nic: "n1" } },
    ]);
    await s1.close();
    await s1.close(); // idempotent
    await assertStoreError(s1.get("nic/n1"), "STORE_CLOSED", "get after close");
    await assertStoreError(s1.put("nic/n2", 1), "STORE_CLOSED", "put after close");
    await assertStoreError(s1.list(""), "STORE_CLOSED", "list after close");
    await using s2 = await h.open();
    assert.deepEqual(await s2.get("nic/n1"), { vxnet: "vxnet-a" });
    assert.deepEqual(await s2.get("alloc/c1/eth0"), { nic: "n1" });
  });

  test("a second opener of the same state is refused until the first closes", async (h) => {
    const s1 = await h.open();
    const err = await assertStoreError(h.open(), "STORE_LOCKED", "second open");
    assert.match(err.message, /another hostnic daemon is running\?/);
    assert.ok(err.message.includes(h.where), `message names the state: ${err.message}`);
    await s1.close();
    await using s2 = await h.open();
    assert.equal(await s2.get("nic/x"), undefined);
  });

  test("a fresh state is stamped with the current format", async (h) => {
    const s = await h.open();
    await s.close();
    assert.deepEqual(await h.readRaw(), [{ key: "meta/format", value: String(STORE_FORMAT) }]);
  });

  test("a state written by a newer hostnic is refused, untouched", async (h) => {
    await (await h.open()).close();
    await h.writeRaw("meta/format", "3");
    await h.writeRaw("nic/n1", '{"future":true}');
    const before = await h.readRaw();
    const err = await assertStoreError(h.open(), "STORE_FORMAT_NEWER", "open newer");
    assert.ok(err.message.includes(`format 3`), err.message);
    assert.ok(err.message.includes(`understands up to ${STORE_FORMAT}`), err.message);
    assert.ok(err.message.includes(h.where), err.message);
    assert.deepEqual(await h.readRaw(), before);
    // Refusal released the lock: a newer build (here: one that reads format 3) can open it.
    await using s = await h.open({ formatVersion: 3 });
    assert.deepEqual(await s.get("nic/n1"), { future: true });
  });

  test("an unreadable format stamp is refused", async (h) => {
    await h.writeRaw("meta/format", '"one"');
    await assertStoreError(h.open(), "STORE_CORRUPT", "open with a bad stamp");
  });

  test("older formats are migrated step by step, then refused by the older build", async (h) => {
    const s1 = await h.open();
    await s1.put("old/a", { v: 1 });
    await s1.put("keep/b", 2);
    await s1.close();
    const renameOld: Migration = {
      from: STORE_FORMAT,
      describe: "test: old/ becomes new/",
      plan: (entries) => ({
        ops: entries.filter((e) => e.key.startsWith("old/")).flatMap((e) => [
          { type: "del" as const, key: e.key },
          { type: "put" as const, key: `new/${e.key.slice(4)}`, value: e.value },
        ]),
        warnings: [],
      }),
    };
    const next = STORE_FORMAT + 1;
    const s2 = await h.open({ formatVersion: next, migrations: [renameOld] });
    assert.deepEqual(await s2.list(""), [
      { key: "keep/b", value: 2 },
      { key: "new/a", value: { v: 1 } },
    ]);
    await s2.close();
    assert.equal((await h.readRaw()).find((e) => e.key === "meta/format")?.value, String(next));
    await assertStoreError(h.open(), "STORE_FORMAT_NEWER", "current build after migration");
    // A gap in the chain is an error, not a silent skip.
    await assertStoreError(
      h.open({ formatVersion: next + 1, migrations: [renameOld] }),
      "STORE_CORRUPT",
      "missing migration",
    );
  });

  test("unstamped data (Go hostnic) is kept under legacy/", async (h) => {
    await h.writeRaw("52:54:9e:00:00:01", '{"Nic":{"ID":"52:54:9e:00:00:01"}}');
    await h.writeRaw("vxnet-abc/x y", "not json");
    await using s = await h.open();
    assert.deepEqual(await s.list(""), [
      { key: "legacy/52:54:9e:00:00:01", value: { Nic: { ID: "52:54:9e:00:00:01" } } },
      { key: "legacy/vxnet-abc%2Fx%20y", value: { unparsed: "not json" } },
    ]);
  });

  test("a corrupt value is an error naming its key; other keys stay readable", async (h) => {
    await (await h.open()).close();
    await h.writeRaw("nic/bad", "{not json");
    await h.writeRaw("nic/good", '{"ok":true}');
    await using s = await h.open();
    const e1 = await assertStoreError(s.get("nic/bad"), "STORE_CORRUPT", "get corrupt");
    assert.equal(e1.key, "nic/bad");
    assert.ok(e1.message.includes('"nic/bad"'), e1.message);
    const e2 = await assertStoreError(s.list("nic/"), "STORE_CORRUPT", "list corrupt");
    assert.equal(e2.key, "nic/bad");
    assert.deepEqual(await s.get("nic/good"), { ok: true });
    await s.del("nic/bad"); // the way out
    assert.deepEqual((await s.list("nic/")).map((e) => e.key), ["nic/good"]);
  });
}

/** Await `p`, assert it rejects with a `StoreError` of `code`, return the error. */
export async function assertStoreError(
  p: Promise<unknown>,
  code: StoreErrorCode,
  what: string,
): Promise<StoreError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof StoreError, `${what}: expected StoreError, got ${err}`);
    assert.equal(err.code, code, `${what}: ${err.message}`);
    return err;
  }
  assert.fail(`${what}: expected ${code}, but it succeeded`);
}
