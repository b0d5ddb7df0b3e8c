import assert from "node:assert/strict";
import { ENCODING_EXAMPLE, SIGNATURE_VECTORS } from "../../tests/fixtures/signature_vectors.ts";
import {
  canonicalQuery,
  encodeComponent,
  formatTimeStamp,
  sameSignature,
  sign,
  type SignatureMethod,
  stringToSign,
} from "./signature.ts";

Deno.test("the simulator's encoding follows the spec's table", () => {
  assert.equal(encodeComponent(ENCODING_EXAMPLE.text), ENCODING_EXAMPLE.encoded);
  assert.equal(encodeComponent("52:54:00:12:34:56"), "52%3A54%3A00%3A12%3A34%3A56");
  assert.equal(encodeComponent("'"), "%27");
  assert.equal(encodeComponent("a b+c"), "a%20b%2Bc");
});

Deno.test("the simulator's signature matches every published vector", async (t) => {
  for (const v of SIGNATURE_VECTORS) {
    await t.step(v.id, async () => {
      if (v.toSign) assert.equal(stringToSign(v.method, v.path, v.params), v.toSign);
      const got = await sign({
        method: v.method,
        path: v.path,
        params: v.params,
        secret: v.secret,
        signatureMethod: v.params.signature_method as SignatureMethod,
      });
      assert.equal(got, v.signature);
    });
  }
});

Deno.test("canonical query: byte order of keys, signature left out, empty values kept", () => {
  assert.equal(
    canonicalQuery({
      "jobs.2": "b",
      "jobs.10": "c",
      "jobs.1": "a",
      Zed: "u",
      signature: "x",
      e: "",
    }),
    "Zed=u&e=&jobs.1=a&jobs.10=c&jobs.2=b",
  );
});

Deno.test("sameSignature compares content and length", () => {
  assert.equal(sameSignature("abc=", "abc="), true);
  assert.equal(sameSignature("abc=", "abd="), false);
  assert.equal(sameSignature("abc", "abc="), false);
  assert.equal(sameSignature("abc=", "abc"), false);
  assert.equal(sameSignature("", ""), true);
});

Deno.test("formatTimeStamp: UTC, no milliseconds, four-digit year", () => {
  assert.equal(formatTimeStamp(new Date("2024-01-02T03:04:05.678Z")), "2024-01-02T03:04:05Z");
  assert.equal(formatTimeStamp(new Date("0001-01-01T00:00:00Z")), "0001-01-01T00:00:00Z");
});
