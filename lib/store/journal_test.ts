import assert from "node:assert/strict";
import {
  JournalError,
  listReleaseRecords,
  type ReleaseRecord,
  releaseRecordId,
  removeJournalGarbage,
  removeReleaseRecord,
  writeReleaseRecord,
} from "./journal.ts";

const TIME = "2026-01-02T03:04:05.000Z";

function rec(
  containerId: string,
  ifName = "eth0",
  extra: Partial<ReleaseRecord> = {},
): ReleaseRecord {
  return { containerId, ifName, reason: "daemon unreachable", time: TIME, ...extra };
}

async function tempDir(): Promise<{ path: string; dir: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "hostnic-journal-" });
  return {
    path,
    dir: `${path}/release`,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

async function names(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

Deno.test("journal: write, list, remove round-trip with every field", async () => {
  await using t = await tempDir();
  const full = rec("abc123", "eth0", {
    netns: "/var/run/netns/cni-1",
    podNamespace: "default",
    podName: "web-0",
    ip: "192.168.0.10",
    table: 261,
    mode: "nic",
  });
  const id = await writeReleaseRecord(t.dir, full);
  assert.equal(id, "abc123.eth0");
  assert.equal((await Deno.stat(t.dir)).mode! & 0o777, 0o700);
  assert.equal((await Deno.stat(`${t.dir}/${id}.json`)).mode! & 0o777, 0o600);
  assert.deepEqual(await listReleaseRecords(t.dir), {
    records: [{ id, record: full }],
    garbage: [],
  });
  await removeReleaseRecord(t.dir, id);
  assert.deepEqual(await listReleaseRecords(t.dir), { records: [], garbage: [] });
});

Deno.test("journal: a missing directory lists as empty", async () => {
  await using t = await tempDir();
  assert.deepEqual(await listReleaseRecords(t.dir), { records: [], garbage: [] });
});

Deno.test("journal: writing twice keeps one record (the latest); removing twice succeeds", async () => {
  await using t = await tempDir();
  const id1 = await writeReleaseRecord(t.dir, rec("c1", "eth0", { reason: "first" }));
  const id2 = await writeReleaseRecord(t.dir, rec("c1", "eth0", { reason: "second" }));
  assert.equal(id1, id2);
  const { records } = await listReleaseRecords(t.dir);
  assert.deepEqual(records.map((r) => r.record.reason), ["second"]);
  await removeReleaseRecord(t.dir, id1);
  await removeReleaseRecord(t.dir, id1);
  await removeReleaseRecord(t.dir, "never.written");
  assert.deepEqual(await names(t.dir), []);
});

Deno.test("journal: concurrent writers leave whole records and no temp files", async () => {
  await using t = await tempDir();
  const writes = Array.from(
    { length: 60 },
    (_, i) => writeReleaseRecord(t.dir, rec(`c${i % 20}`, "eth0", { reason: `w${i}` })),
  );
  const ids = await Promise.all(writes);
  assert.equal(new Set(ids).size, 20);
  const { records, garbage } = await listReleaseRecords(t.dir);
  assert.deepEqual(garbage, []);
  assert.deepEqual(records.map((r) => r.id), [...new Set(ids)].sort());
  for (const { record } of records) {
    // Whichever writer won, the content is one writer's whole record for that container.
    const i = Number(record.reason.slice(1));
    assert.equal(record.containerId, `c${i % 20}`);
  }
  assert.deepEqual(await names(t.dir), records.map((r) => `${r.id}.json`));
});

Deno.test("journal: hostile ids stay inside the directory and map one-to-one", async () => {
  await using t = await tempDir();
  const keys: [string, string][] = [
    ["../../etc/passwd", "eth0"],
    ["..", ".."],
    [".", "eth0"],
    ["a/b", "c"],
    ["a.b", "c"],
    ["a", "b.c"],
    ["a%2Fb", "c"],
    ["ké\u0000y", "net1"],
    ["x".repeat(300), "eth0"],
    ["x".repeat(300), "eth1"],
  ];
  const ids = [];
  for (const [c, i] of keys) ids.push(await writeReleaseRecord(t.dir, rec(c, i)));
  assert.equal(new Set(ids).size, keys.length, "distinct keys give distinct ids");
  for (const id of ids) {
    assert.ok(!id.includes("/") && id !== "." && id !== ".." && !id.startsWith("."), id);
  }
  assert.ok(ids[8].startsWith("h-"), "over-long keys are hashed");
  assert.deepEqual(await names(t.path), ["release"], "nothing escaped the directory");
  const { records, garbage } = await listReleaseRecords(t.dir);
  assert.deepEqual(garbage, []);
  assert.deepEqual(
    records.map((r) => [r.record.containerId, r.record.ifName]).sort(),
    [...keys].sort(),
  );
  assert.equal(await releaseRecordId("a/b", "c"), ids[3]);
});

Deno.test("journal: path-like ids and names are refused", async () => {
  await using t = await tempDir();
  await Deno.mkdir(t.dir);
  await Deno.writeTextFile(`${t.path}/victim.json`, "{}");
  for (const id of ["../victim", "/etc/passwd", "..", "a/b.c", ""]) {
    await assert.rejects(removeReleaseRecord(t.dir, id), JournalError, id);
  }
  for (const name of ["../victim.json", "..", ".", "a/b", ""]) {
    await assert.rejects(removeJournalGarbage(t.dir, name), JournalError, name);
  }
  assert.ok((await Deno.stat(`${t.path}/victim.json`)).isFile);
});

Deno.test("journal: invalid records are refused before anything is written", async () => {
  await using t = await tempDir();
  const bad: unknown[] = [
    rec(""),
    rec("c1", ""),
    { ...rec("c1"), reason: undefined },
    { ...rec("c1"), time: "yesterday" },
    { ...rec("c1"), table: "261" },
    { ...rec("c1"), ip: 10 },
    null,
  ];
  for (const r of bad) {
    await assert.rejects(writeReleaseRecord(t.dir, r as ReleaseRecord), JournalError);
  }
  assert.deepEqual(await listReleaseRecords(t.dir), { records: [], garbage: [] });
});

Deno.test("journal: garbage files are skipped and reported, valid records still listed", async () => {
  await using t = await tempDir();
  const good = await writeReleaseRecord(t.dir, rec("good"));
  const other = await releaseRecordId("other", "eth0");
  await Deno.writeTextFile(`${t.dir}/broken.eth0.json`, '{"containerId": "bro');
  await Deno.writeTextFile(`${t.dir}/fields.eth0.json`, '{"containerId": "fields"}');
  await Deno.writeTextFile(`${t.dir}/${other}.json`, JSON.stringify(rec("someone-else")));
  await Deno.writeTextFile(`${t.dir}/notes.txt`, "hello");
  await Deno.mkdir(`${t.dir}/dir.eth0.json`);
  // A temp file of a writer killed long ago is garbage; a fresh one may be a writer in progress.
  await Deno.writeTextFile(`${t.dir}/.tmp-old.eth0.1-2-3`, "{");
  await Deno.utime(`${t.dir}/.tmp-old.eth0.1-2-3`, 0, 0);
  await Deno.writeTextFile(`${t.dir}/.tmp-new.eth0.1-2-3`, "{");

  const { records, garbage } = await listReleaseRecords(t.dir);
  assert.deepEqual(records.map((r) => r.id), [good]);
  assert.deepEqual(garbage.map((g) => g.name).sort(), [
    ".tmp-old.eth0.1-2-3",
    "broken.eth0.json",
    "dir.eth0.json",
    "fields.eth0.json",
    "notes.txt",
    `${other}.json`,
  ]);
  assert.match(garbage.find((g) => g.name === `${other}.json`)!.problem, /does not match/);
  assert.match(garbage.find((g) => g.name === "broken.eth0.json")!.problem, /not valid JSON/);

  for (const g of garbage) {
    if (g.name !== "dir.eth0.json") await removeJournalGarbage(t.dir, g.name);
  }
  assert.deepEqual(await names(t.dir), [".tmp-new.eth0.1-2-3", "dir.eth0.json", `${good}.json`]);
});
