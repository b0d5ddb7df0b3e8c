import assert from "node:assert/strict";
import {
  canonicalQuery,
  computeSignature,
  formatTimeStamp,
  percentEncode,
  type SignatureMethod,
  stringToSign,
  timingSafeEqual,
} from "./signer.ts";
import { ENCODING_EXAMPLE, SIGNATURE_VECTORS } from "../../tests/fixtures/signature_vectors.ts";

Deno.test("percentEncode matches the spec's encoding-table example", () => {
  assert.equal(percentEncode(ENCODING_EXAMPLE.text), ENCODING_EXAMPLE.encoded);
  assert.equal(percentEncode("52:54:00:12:34:56"), "52%3A54%3A00%3A12%3A34%3A56");
  assert.equal(percentEncode("'"), "%27");
});

Deno.test("the spec's vectors V1-V3 and N1-N6: string to sign and signature", async (t) => {
  for (const v of SIGNATURE_VECTORS) {
    await t.step(v.id, async () => {
      if (v.toSign) assert.equal(stringToSign(v.method, v.path, v.params), v.toSign);
      const sig = await computeSignature({
        method: v.method,
        path: v.path,
        params: v.params,
        secret: v.secret,
        signatureMethod: v.params.signature_method as SignatureMethod,
      });
      assert.equal(sig, v.signature);
    });
  }
  // V1's signature as sent in the URL (§1.4 step 8).
  assert.equal(
    percentEncode(SIGNATURE_VECTORS[0].signature),
    "byjccvWIvAftaq%2BoublemagH3bYAlDWxxLFAzAsyslw%3D",
  );
  // V3's time_stamp is what formatTimeStamp makes of the zero time.
  assert.equal(formatTimeStamp(new Date("0001-01-01T00:00:00Z")), "0001-01-01T00:00:00Z");
});

Deno.test("canonicalQuery sorts by byte order and excludes signature", () => {
  const q = canonicalQuery({
    "jobs.2": "b",
    "jobs.10": "c",
    "jobs.1": "a",
    Zed: "upper",
    signature: "ignored",
    empty: "",
  });
  assert.equal(q, "Zed=upper&empty=&jobs.1=a&jobs.10=c&jobs.2=b");
});

Deno.test("timingSafeEqual compares content and length", () => {
  assert.equal(timingSafeEqual("abc=", "abc="), true);
  assert.equal(timingSafeEqual("abc=", "abd="), false);
  assert.equal(timingSafeEqual("abc", "abc="), false);
  assert.equal(timingSafeEqual("", ""), true);
});

Deno.test("formatTimeStamp drops milliseconds and keeps Z", () => {
  assert.equal(formatTimeStamp(new Date("2024-01-02T03:04:05.678Z")), "2024-01-02T03:04:05Z");
});
