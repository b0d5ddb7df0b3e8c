import assert from "node:assert/strict";
import { Level } from "level";
import { LevelStore } from "./level_store.ts";
import { openLevelStore } from "./mod.ts";
import { assertStoreError, storeContract } from "./store_contract.ts";

storeContract("LevelStore", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostnic-store-" });
  const raw = async <T>(fn: (db: Level<string, string>) => Promise<T>): Promise<T> => {
    const db = new Level<string, string>(dir, { keyEncoding: "utf8", valueEncoding: "utf8" });
    await db.open();
    try {
      return await fn(db);
    } finally {
      await db.close();
    }
  };
  return {
    where: dir,
    open: (opts) => LevelStore.open({ ...opts, dir }),
    writeRaw: (key, value) => raw((db) => db.put(key, value)),
    readRaw: () =>
      raw(async (db) => (await db.iterator().all()).map(([key, value]) => ({ key, value }))),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
});

Deno.test("LevelStore: creates a missing state directory, private to root", async () => {
  await using tmp = await tempDir();
  const dir = `${tmp.path}/var/lib/hostnic`;
  await using s = await LevelStore.open({ dir });
  await s.put("nic/n1", 1);
  assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
});

Deno.test("LevelStore: openLevelStore (lazy import from mod.ts) opens the same state", async () => {
  await using tmp = await tempDir();
  {
    await using s = await openLevelStore({ dir: tmp.path });
    assert.ok(s instanceof LevelStore);
    await s.put("nic/n1", { ok: 1 });
  }
  await using s = await LevelStore.open({ dir: tmp.path });
  assert.deepEqual(await s.get("nic/n1"), { ok: 1 });
});

Deno.test("LevelStore: an unusable directory is a STORE_IO error naming it", async () => {
  await using tmp = await tempDir();
  const file = `${tmp.path}/not-a-dir`;
  await Deno.writeTextFile(file, "");
  const err = await assertStoreError(LevelStore.open({ dir: file }), "STORE_IO", "open a file");
  assert.ok(err.message.includes(file), err.message);
});

Deno.test("LevelStore: a directory held by another process is refused, then freed by its death", async () => {
  await using tmp = await tempDir();
  await using child = spawnWriter(tmp.path, "hold");
  assert.equal(await child.nextLine(), "ready");
  const err = await assertStoreError(LevelStore.open({ dir: tmp.path }), "STORE_LOCKED", "open");
  assert.equal(
    err.message,
    `State in ${tmp.path} is locked by another process (another hostnic daemon is running?)`,
  );
  child.kill();
  assert.equal((await child.process.status).signal, "SIGKILL");
  // LevelDB's LOCK file is left behind, but the kernel released the lock with the process.
  await using s = await LevelStore.open({ dir: tmp.path });
  assert.equal(await s.get("nic/x"), undefined);
});

Deno.test("LevelStore: SIGKILL during batches leaves each batch whole or absent", async () => {
  await using tmp = await tempDir();
  const acked = new Set<number>();
  {
    await using child = spawnWriter(tmp.path, "batches");
    while (acked.size < 40) {
      const line = await child.nextLine();
      const m = line?.match(/^committed (\d+)$/);
      assert.ok(m, `unexpected child output ${JSON.stringify(line)}`);
      acked.add(Number(m[1]));
    }
    child.kill(); // while it is in the middle of further batches
    assert.equal((await child.process.status).signal, "SIGKILL");
  }
  await using s = await LevelStore.open({ dir: tmp.path });
  const byBatch = new Map<number, string[]>();
  for (const { key, value } of await s.list<{ i: number; part: string }>("crash/")) {
    assert.equal(key, `crash/${String(value.i).padStart(6, "0")}/${value.part}`);
    byBatch.set(value.i, [...(byBatch.get(value.i) ?? []), value.part]);
  }
  for (const [i, parts] of byBatch) assert.deepEqual(parts, ["a", "b", "c"], `batch ${i} is torn`);
  // Every acknowledged batch survived (written before success was reported), and batches landed
  // in order: present ones are 0..n with nothing missing in between.
  for (const i of acked) assert.ok(byBatch.has(i), `acknowledged batch ${i} was lost`);
  const present = [...byBatch.keys()].sort((a, b) => a - b);
  assert.deepEqual(present, present.map((_, i) => i));
});

/** A temp dir removed on dispose. */
async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "hostnic-store-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

interface Writer extends AsyncDisposable {
  readonly process: Deno.ChildProcess;
  /** Next stdout line, or undefined at end of output. */
  nextLine(): Promise<string | undefined>;
  kill(): void;
}

/** `testdata/batch_writer.ts` as a child; disposal kills it and reaps it. */
function spawnWriter(dir: string, mode: "batches" | "hold"): Writer {
  const script = new URL("./testdata/batch_writer.ts", import.meta.url).pathname;
  const config = new URL("../../deno.json", import.meta.url).pathname;
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      "--no-prompt",
      "--cached-only",
      "--config",
      config,
      script,
      dir,
      mode,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
    env: { RUST_BACKTRACE: "0" },
  }).spawn();
  const lines = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let dead = false;
  // A hung child must fail the test, not hang it.
  const guard = setTimeout(() => kill(), 60_000);
  function kill() {
    if (dead) return;
    dead = true;
    try {
      process.kill("SIGKILL");
    } catch { /* already exited */ }
  }
  return {
    process,
    kill,
    async nextLine() {
      while (!buffered.includes("\n")) {
        const { value, done } = await lines.read();
        if (done) return undefined;
        buffered += value;
      }
      const at = buffered.indexOf("\n");
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      return line;
    },
    async [Symbol.asyncDispose]() {
      clearTimeout(guard);
      kill();
      await lines.cancel().catch(() => {});
      await process.stdin.close().catch(() => {});
      await process.status;
    },
  };
}

Deno.test("LevelStore: concurrent batches are written in arrival order, each durable when it resolves", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostnic-store-" });
  try {
    let store = await LevelStore.open({ dir });
    // 32 writers at once (16 DELs' worth): later batches overwrite earlier ones for the same key.
    await Promise.all(Array.from({ length: 32 }, (_, i) =>
      store.batch([
        { type: "put", key: `alloc/p${i}`, value: { i } },
        { type: "put", key: "nic/shared", value: { last: i } },
        ...(i % 2 ? [{ type: "del" as const, key: `alloc/p${i - 1}` }] : []),
      ])));
    // Queued writes accepted before close are written by it, not dropped.
    const late = store.batch([{ type: "put", key: "alloc/late", value: { late: true } }]);
    await store.close();
    await late;
    store = await LevelStore.open({ dir });
    try {
      const allocs = (await store.list("alloc/")).map((e) => e.key);
      assert.deepEqual(
        allocs.sort(),
        [
          "alloc/late",
          ...Array.from({ length: 16 }, (_, k) => `alloc/p${2 * k + 1}`),
        ].sort(),
      );
      assert.deepEqual(await store.get("nic/shared"), { last: 31 });
    } finally {
      await store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("LevelStore: a batch written right after another resolves (group commit never strands it)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostnic-store-" });
  try {
    const store = await LevelStore.open({ dir });
    try {
      // Each write starts from the continuation of the previous one, the moment a drain ends.
      for (let i = 0; i < 50; i++) {
        const wrote = store.batch([{ type: "put", key: `k/${i}`, value: i }]).then(() => true);
        const stuck = new Promise<false>((r) => {
          const t = setTimeout(() => r(false), 5000);
          wrote.finally(() => clearTimeout(t));
        });
        assert.ok(await Promise.race([wrote, stuck]), `write ${i} never resolved`);
      }
      assert.equal((await store.list("k/")).length, 50);
    } finally {
      await store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
