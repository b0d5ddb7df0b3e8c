import assert from "node:assert/strict";
import { removeFile, removeStaleTemps, sameFile, tempPrefix, writeAtomic } from "./files.ts";

async function tmp() {
  const dir = await Deno.makeTempDir();
  return { dir, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

Deno.test("writeAtomic writes bytes with the mode and leaves no temp file", async () => {
  await using t = await tmp();
  await writeAtomic(t.dir, "a.conf", new TextEncoder().encode("hello"), 0o644);
  assert.equal(await Deno.readTextFile(`${t.dir}/a.conf`), "hello");
  assert.equal((await Deno.stat(`${t.dir}/a.conf`)).mode! & 0o7777, 0o644);
  const names = [];
  for await (const e of Deno.readDir(t.dir)) names.push(e.name);
  assert.deepEqual(names, ["a.conf"]);
});

Deno.test("writeAtomic copies a file, and a failed copy leaves the target as it was", async () => {
  await using t = await tmp();
  await Deno.writeTextFile(`${t.dir}/src`, "binary");
  await writeAtomic(t.dir, "bin", { copyFrom: `${t.dir}/src` }, 0o755);
  assert.equal(await Deno.readTextFile(`${t.dir}/bin`), "binary");
  assert.ok(await sameFile(`${t.dir}/bin`, { copyFrom: `${t.dir}/src` }, 0o755));
  await assert.rejects(writeAtomic(t.dir, "bin", { copyFrom: `${t.dir}/missing` }, 0o755));
  assert.equal(await Deno.readTextFile(`${t.dir}/bin`), "binary");
  const names = [];
  for await (const e of Deno.readDir(t.dir)) names.push(e.name);
  assert.deepEqual(names.sort(), ["bin", "src"]);
});

Deno.test("sameFile compares bytes and mode", async () => {
  await using t = await tmp();
  const p = `${t.dir}/f`;
  const bytes = new TextEncoder().encode("abc");
  assert.equal(await sameFile(p, bytes, 0o644), false, "absent");
  await writeAtomic(t.dir, "f", bytes, 0o644);
  assert.equal(await sameFile(p, bytes, 0o644), true);
  assert.equal(await sameFile(p, bytes, 0o600), false, "mode differs");
  assert.equal(await sameFile(p, new TextEncoder().encode("abd"), 0o644), false);
});

Deno.test("temp names never look like CNI configs; stale ones are removed by prefix", async () => {
  await using t = await tmp();
  assert.doesNotMatch(`${tempPrefix("10-hostnic.conflist")}1-ab`, /\.(conflist|conf|json)$/);
  await Deno.writeTextFile(`${t.dir}/${tempPrefix("x")}1-a`, "");
  await Deno.writeTextFile(`${t.dir}/${tempPrefix("y")}1-a`, "");
  assert.deepEqual(await removeStaleTemps(t.dir, "x"), [`${tempPrefix("x")}1-a`]);
  assert.deepEqual(await removeStaleTemps(`${t.dir}/missing`, "x"), []);
  assert.equal(await removeFile(`${t.dir}/${tempPrefix("y")}1-a`), true);
  assert.equal(await removeFile(`${t.dir}/${tempPrefix("y")}1-a`), false);
});
