import assert from "node:assert/strict";
import { describeAll } from "./paginate.ts";
import type { Page } from "./types.ts";

/** A server-side list that pages like the API (limit capped at 100). */
function pager(items: string[], opts: { onPage?: (offset: number) => void } = {}) {
  const calls: { offset: number; limit: number }[] = [];
  const fetchPage = (p: { offset: number; limit: number }): Promise<Page<string>> => {
    calls.push(p);
    opts.onPage?.(p.offset);
    const limit = Math.min(100, p.limit);
    return Promise.resolve({
      items: items.slice(p.offset, p.offset + limit),
      totalCount: items.length,
    });
  };
  return { calls, fetchPage };
}

const ids = (n: number) => Array.from({ length: n }, (_, i) => `id-${i}`);

Deno.test("describeAll follows total_count at 100 per page", async () => {
  const { calls, fetchPage } = pager(ids(250));
  const all = await describeAll(fetchPage, { key: (s) => s });
  assert.deepEqual(all, ids(250));
  assert.deepEqual(calls, [
    { offset: 0, limit: 100 },
    { offset: 100, limit: 100 },
    { offset: 200, limit: 100 },
  ]);
});

Deno.test("describeAll makes one call for an empty or exact result", async () => {
  for (const n of [0, 100]) {
    const { calls, fetchPage } = pager(ids(n));
    assert.equal((await describeAll(fetchPage, { key: (s) => s })).length, n);
    assert.equal(calls.length, 1);
  }
});

Deno.test("describeAll drops repeats when an item is inserted between pages", async () => {
  const items = ids(150);
  const { fetchPage } = pager(items, {
    onPage: (offset) => {
      if (offset === 100) items.unshift("new-first"); // shifts id-99 onto page two
    },
  });
  const all = await describeAll(fetchPage, { key: (s) => s });
  assert.equal(all.length, 150);
  assert.equal(new Set(all).size, all.length);
});

Deno.test("describeAll stops on an empty page even if total_count lies", async () => {
  let calls = 0;
  const all = await describeAll((p) => {
    calls++;
    return Promise.resolve({ items: p.offset === 0 ? ["a", "b"] : [], totalCount: 500 });
  }, { key: (s) => s });
  assert.deepEqual(all, ["a", "b"]);
  assert.equal(calls, 2);
});

Deno.test("describeAll honours maxPages and a smaller page size", async () => {
  const { calls, fetchPage } = pager(ids(50));
  const all = await describeAll(fetchPage, { key: (s) => s, pageSize: 10, maxPages: 3 });
  assert.equal(all.length, 30);
  assert.equal(calls.length, 3);
});
