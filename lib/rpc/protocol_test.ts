import assert from "node:assert/strict";
import { parseReply, RPC, RPC_REASONS, RPC_ROUTES, RpcError } from "./protocol.ts";

Deno.test("protocol: every named path is a versioned route", () => {
  assert.deepEqual(Object.values(RPC).sort(), Object.keys(RPC_ROUTES).sort());
  for (const path of Object.keys(RPC_ROUTES)) assert.match(path, /^\/v1\/[a-z/]+$/);
});

Deno.test("protocol: RpcError fills CNI code and retryability from its reason", () => {
  const empty = new RpcError("POOL_EMPTY", "No free NIC");
  assert.equal(empty.code, "POOL_EMPTY");
  assert.equal(empty.cniCode, 11);
  assert.equal(empty.retryable, true);
  assert.deepEqual(empty.toBody(), {
    reason: "POOL_EMPTY",
    message: "No free NIC",
    retryable: true,
    cniCode: 11,
  });
  const bad = new RpcError("BAD_REQUEST", "x", { field: "a.b" });
  assert.deepEqual(bad.toBody(), {
    reason: "BAD_REQUEST",
    message: "x",
    retryable: false,
    field: "a.b",
  });
  const custom = new RpcError("IAAS_ERROR", "quota", { cniCode: 104, retryable: false });
  assert.deepEqual(RpcError.fromBody(custom.toBody()).toBody(), custom.toBody());
  for (const [reason, info] of Object.entries(RPC_REASONS)) {
    assert.ok(info.status >= 400, reason);
    assert.equal(info.cniCode === 11, info.retryable, `${reason}: retryable ⇔ CNI 11`);
  }
});

Deno.test("protocol: parseReply accepts envelopes and rejects anything else", () => {
  assert.deepEqual(parseReply({ ok: true, data: null }), { ok: true, data: null });
  assert.deepEqual(parseReply({ ok: false, error: { reason: "NOT_READY", message: "m" } }), {
    ok: false,
    error: { reason: "NOT_READY", message: "m" },
  });
  // Malformed optional members are dropped, not trusted.
  assert.deepEqual(
    parseReply({ ok: false, error: { reason: "CONFLICT", message: "m", cniCode: "11", field: 3 } }),
    { ok: false, error: { reason: "CONFLICT", message: "m" } },
  );
  for (
    const v of [null, 1, "ok", [], { ok: true }, { ok: false }, {
      ok: false,
      error: { reason: "X" },
    }]
  ) {
    assert.equal(parseReply(v), undefined, JSON.stringify(v));
  }
});
