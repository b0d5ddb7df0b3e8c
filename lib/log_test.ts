import assert from "node:assert/strict";
import { jsonLogger } from "./log.ts";

function capture(level: "debug" | "info" = "info") {
  const lines: string[] = [];
  const logger = jsonLogger(level, {
    base: { component: "daemon" },
    write: (l) => lines.push(l),
    now: () => new Date("2026-12-01T00:00:00.000Z"),
  });
  return { logger, lines, parsed: () => lines.map((l) => JSON.parse(l)) };
}

Deno.test("jsonLogger writes pino's line format", () => {
  const { logger, lines } = capture();
  logger.info("NICs attached", { nics: ["a"] });
  assert.deepEqual(lines, [
    '{"level":30,"time":"2026-12-01T00:00:00.000Z","component":"daemon","nics":["a"],"msg":"NICs attached"}\n',
  ]);
});

Deno.test("jsonLogger: a child's binding replaces the parent's, one key per line", () => {
  const { logger, lines, parsed } = capture();
  logger.child({ component: "pool" }).child({ nic: "x" }).warn("trim", { component: "gc" });
  assert.equal(lines[0].match(/"component"/g)?.length, 1);
  const [a] = parsed();
  assert.deepEqual([a.component, a.nic, a.level, a.msg], ["gc", "x", 40, "trim"]);
});

Deno.test("jsonLogger masks secret fields, also one level down, and filters by level", () => {
  const { logger, parsed } = capture();
  logger.debug("not shown");
  logger.error("cloud", { secret: "s", cfg: { qy_secret_access_key: "k", zone: "z" } });
  logger.child({ signature: "sig" }).info("call");
  const [a, b] = parsed();
  assert.equal(parsed().length, 2);
  assert.equal(a.secret, "[Redacted]");
  assert.deepEqual(a.cfg, { qy_secret_access_key: "[Redacted]", zone: "z" });
  assert.equal(b.signature, "[Redacted]");
});

Deno.test("jsonLogger: errors as type and message; line keys cannot be shadowed", () => {
  const { logger, parsed } = capture();
  logger.info("failed", { err: new TypeError("boom"), msg: "other", level: 99 });
  const [a] = parsed();
  assert.deepEqual(a.err, { type: "TypeError", message: "boom" });
  assert.equal(a.msg, "failed");
  assert.equal(a.level, 30);
});
