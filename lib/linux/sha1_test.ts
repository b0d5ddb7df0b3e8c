import assert from "node:assert/strict";
import { sha1Hex } from "./sha1.ts";

Deno.test("sha1Hex matches the FIPS 180 test vectors", () => {
  assert.equal(sha1Hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  assert.equal(sha1Hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  assert.equal(
    sha1Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
    "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
  );
});

Deno.test("sha1Hex handles multi-block and non-ASCII input", () => {
  assert.equal(sha1Hex("a".repeat(1000)), "291e9a6c66994949b57ba5e650361e98fc36b1ba");
  assert.equal(sha1Hex("default.nginx"), "c440f455693b69cdd48a37aa5ecd78038f50413d");
  assert.equal(sha1Hex("ü"), "94a759fd37735430753c7b6b80684306d80ea16e");
});
