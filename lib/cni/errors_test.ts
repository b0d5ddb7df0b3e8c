import assert from "node:assert/strict";
import { ConfigError, HostnicError } from "../errors.ts";
import {
  CNI_CODES,
  CniCode,
  cniCodeId,
  CniError,
  errorObject,
  quote,
  toCniError,
} from "./errors.ts";

Deno.test("the code table holds the spec codes and hostnic's 100+", () => {
  const codes = CNI_CODES.map((c) => c.code);
  for (const spec of [1, 2, 3, 4, 5, 6, 7, 11, 50, 51]) {
    assert.ok(codes.includes(spec as never), `${spec}`);
  }
  assert.equal(new Set(codes).size, codes.length);
  for (const c of CNI_CODES) assert.equal(c.owner, c.code >= 100 ? "hostnic" : "spec");
  assert.equal(cniCodeId(CniCode.InvalidConfig), "CNI_INVALID_CONFIG");
  assert.equal(cniCodeId(CniCode.TryAgainLater), "CNI_TRY_AGAIN_LATER");
  assert.equal(cniCodeId(999), "CNI_999");
});

Deno.test("CniError is a HostnicError carrying code, msg and details", () => {
  const err = new CniError(CniCode.PoolExhausted, "No free NIC", { details: "pool is at maxNic" });
  assert.ok(err instanceof HostnicError);
  assert.equal(err.code, "CNI_POOL_EXHAUSTED");
  assert.equal(err.cniCode, 101);
  assert.equal(err.message, "No free NIC; pool is at maxNic");
  assert.deepEqual(errorObject(err, "0.4.0"), {
    cniVersion: "0.4.0",
    code: 101,
    msg: "No free NIC",
    details: "pool is at maxNic",
  });
});

Deno.test("toCniError maps anything to code 100 without a stack", () => {
  const plain = toCniError(new TypeError("boom"));
  assert.equal(plain.cniCode, 100);
  assert.equal(plain.msg, "boom");
  assert.ok(!JSON.stringify(errorObject(plain, "1.1.0")).includes("at "));
  const domain = toCniError(new ConfigError("mtu", "too big"));
  assert.equal(domain.cniCode, 100);
  assert.equal(domain.details, "reason INVALID_CONFIG");
  assert.equal(toCniError("str").msg, "str");
  const own = new CniError(3, "gone");
  assert.equal(toCniError(own), own);
});

Deno.test("quote shortens long values", () => {
  assert.equal(quote("a"), '"a"');
  assert.equal(quote(undefined), "undefined");
  assert.equal(quote("x".repeat(200)).length, 80);
});
