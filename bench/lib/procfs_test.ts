import assert from "node:assert/strict";
import { childCpu, ownCpu, parseStat, parseStatus } from "./procfs.ts";

Deno.test("parseStatus reads VmRSS, VmHWM and the anon/file split in bytes", () => {
  const text = [
    "Name:\tdeno",
    "VmHWM:\t  130000 kB",
    "VmRSS:\t  120000 kB",
    "RssAnon:\t   70000 kB",
    "RssFile:\t   50000 kB",
    "RssShmem:\t       0 kB",
  ].join("\n");
  assert.deepEqual(parseStatus(text), {
    rss: 120000 * 1024,
    hwm: 130000 * 1024,
    anon: 70000 * 1024,
    file: 50000 * 1024,
  });
  assert.throws(() => parseStatus("Name:\tkthreadd\n"), /VmRSS/);
});

Deno.test("parseStat counts fields after the last parenthesis of the command name", () => {
  // comm "(a) b)" contains a space and a parenthesis; utime 250, stime 50, cutime 1000, cstime 300.
  const line = "4242 ((a) b)) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 1000 300 20 0 3 0 " +
    "100 1000000 2000 18446744073709551615";
  const t = parseStat(line);
  assert.deepEqual(t, { user: 2.5, system: 0.5, childUser: 10, childSystem: 3 });
  assert.equal(ownCpu(t), 3);
  assert.equal(childCpu(t), 13);
  assert.throws(() => parseStat("no parenthesis here"));
  assert.throws(() => parseStat("1 (x) S 1 2"), /Short/);
});
