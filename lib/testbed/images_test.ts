import assert from "node:assert/strict";
import { cached, pruneCache } from "./images.ts";

Deno.test("pruneCache removes only archives of its kind that nothing used for an hour", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostnic-images-test-" });
  try {
    const now = Date.now();
    const at = async (name: string, ageMs: number) => {
      const path = `${dir}/${name}`;
      await Deno.writeTextFile(path, name);
      const t = new Date(now - ageMs);
      await Deno.utime(path, t, t);
      return path;
    };
    const keep = await at("hostnic-new.tar", 0);
    const stale = await at("hostnic-stale.tar", 2 * 3600_000);
    const inUse = await at("hostnic-other-checkout.tar", 60_000);
    const otherKind = await at("busybox-old.tar", 5 * 3600_000);
    const removed = await pruneCache("hostnic-", keep, { dir, now, unusedMs: 3600_000 });
    assert.deepEqual(removed, [stale]);
    for (const p of [keep, inUse, otherKind]) await Deno.stat(p);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cached renews an archive's mtime when it serves it, so a prune spares it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostnic-images-test-" });
  try {
    const path = `${dir}/hostnic-used.tar`;
    await Deno.writeTextFile(path, "x");
    const old = new Date(Date.now() - 2 * 3600_000);
    await Deno.utime(path, old, old);
    const img = await cached(path, "ref", () => Promise.reject(new Error("must not build")));
    assert.equal(img.built, false);
    const removed = await pruneCache("hostnic-", `${dir}/hostnic-new.tar`, { dir });
    assert.deepEqual(removed, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
