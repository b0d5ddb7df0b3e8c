import assert from "node:assert/strict";
import { parseTimeStamp, type VerifyOptions, verifyRequest } from "./auth.ts";
import { SimApiError } from "./errors.ts";
import type { AccessKey } from "./world.ts";

// Vectors from reference/qingcloud-api.md §1.7 (N3: HmacSHA1; N6: Go SDK path /iaas).
const KEY: AccessKey = {
  id: "QYACCESSKEYIDEXAMPLE",
  secret: "SECRETACCESSKEY",
  owner: "usr-Test0001",
  name: "k",
  status: "active",
  createMs: 0,
};
const COMMON = {
  access_key_id: "QYACCESSKEYIDEXAMPLE",
  time_stamp: "2024-01-02T03:04:05Z",
  zone: "pek3a",
  signature_version: "1",
};
const N3 = {
  ...COMMON,
  version: "1",
  signature_method: "HmacSHA1",
  action: "AttachNics",
  "nics.1": "52:54:00:12:34:56",
  instance: "i-abcd1234",
  signature: "jVqIR2FgXZLrd2rL88VuJM7hyos=",
};
const N6 = {
  ...COMMON,
  signature_method: "HmacSHA256",
  action: "DescribeNics",
  "nics.1": "52:54:00:12:34:56",
  limit: "20",
  offset: "0",
  signature: "enNw69VkUBkFsxsqge2brgy2EKU63uHkO0CaMsrSyp8=",
};

function opts(params: Record<string, string>, o: Partial<VerifyOptions> = {}): VerifyOptions {
  return {
    method: "GET",
    path: "/iaas/",
    params,
    lookupKey: (id) => (id === KEY.id ? KEY : undefined),
    nowMs: Date.UTC(2024, 0, 2, 3, 4, 30),
    timeWindowSec: 60,
    lenientPath: false,
    ...o,
  };
}

async function code(o: VerifyOptions): Promise<number> {
  try {
    await verifyRequest(o);
    return 0;
  } catch (err) {
    if (err instanceof SimApiError) return err.retCode;
    throw err;
  }
}

Deno.test("published vectors verify (SHA1 on /iaas/, SHA256 on /iaas)", async () => {
  assert.equal(await code(opts(N3)), 0);
  assert.equal(await code(opts(N6, { path: "/iaas" })), 0);
});

Deno.test("the path is the received one; lenient mode toggles the trailing slash", async () => {
  assert.equal(await code(opts(N6, { path: "/iaas/" })), 1200);
  assert.equal(await code(opts(N6, { path: "/iaas/", lenientPath: true })), 0);
});

Deno.test("rejections: 1200 key/signature/method, 1100 time_stamp format, 1300 stale", async () => {
  assert.equal(await code(opts({ ...N3, signature: "AAAA" + N3.signature.slice(4) })), 1200);
  assert.equal(await code(opts({ ...N3, instance: "i-other" })), 1200);
  assert.equal(await code(opts({ ...N3, access_key_id: "NOPE" })), 1200);
  const { signature: _s, ...unsigned } = N3;
  assert.equal(await code(opts(unsigned)), 1200);
  assert.equal(await code(opts({ ...N3, signature_method: "HmacMD5" })), 1200);
  assert.equal(await code(opts({ ...N3, signature_version: "2" })), 1200);
  assert.equal(await code(opts({ ...N3, time_stamp: "2024-01-02 03:04:05" })), 1100);
  assert.equal(await code(opts(N3, { nowMs: Date.UTC(2024, 0, 2, 3, 5, 6) })), 1300);
  assert.equal(await code(opts(N3, { nowMs: Date.UTC(2024, 0, 2, 3, 3, 4) })), 1300);
  assert.equal(await code(opts(N3, { nowMs: Date.UTC(2024, 0, 2, 3, 5, 5) })), 0);
  assert.equal(await code(opts(N3, { lookupKey: () => ({ ...KEY, status: "disabled" }) })), 1200);
});

Deno.test("messages never contain the secret", async () => {
  try {
    await verifyRequest(opts({ ...N3, instance: "i-other" }));
  } catch (err) {
    assert.ok(!(err as Error).message.includes(KEY.secret));
  }
});

Deno.test("time stamps: strict format and calendar", () => {
  assert.equal(parseTimeStamp("2024-01-02T03:04:05Z"), Date.UTC(2024, 0, 2, 3, 4, 5));
  for (const bad of ["2024-02-31T00:00:00Z", "2024-01-02T03:04:05.123Z", "2024-01-02T24:00:00Z"]) {
    assert.equal(parseTimeStamp(bad), undefined, bad);
  }
});
