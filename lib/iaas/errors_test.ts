import assert from "node:assert/strict";
import { HostnicError } from "../errors.ts";
import {
  IaasError,
  IaasJobError,
  IaasTransportError,
  isNotFound,
  isPermissionDenied,
  isQuota,
  isRetryable,
  RetCode,
} from "./errors.ts";

Deno.test("error helpers classify by ret_code and class", () => {
  const api = (code: number) => new IaasError("DescribeNics", code, "x");
  const transport = new IaasTransportError({
    action: "DescribeNics",
    reason: "connection",
    detail: "cannot connect",
    maybeSent: false,
  });
  assert.deepEqual(
    [transport, api(5000), api(5100), api(2500), api(1400), api(2100), new Error("x")].map(
      isRetryable,
    ),
    [true, true, true, false, false, false, false],
  );
  assert.ok(isQuota(api(RetCode.QUOTA_EXCEEDED)) && !isQuota(api(5100)) && !isQuota(transport));
  assert.ok(isNotFound(api(2100)) && !isNotFound(api(1400)));
  assert.ok(isPermissionDenied(api(1400)) && !isPermissionDenied(api(1200)));
});

Deno.test("errors are HostnicErrors with stable codes and quoted names", () => {
  const e = new IaasError("DeleteNics", 1400, "PermissionDenied, nic is in-use");
  assert.ok(e instanceof HostnicError);
  assert.equal(e.code, "IAAS_ERROR");
  assert.equal(e.name, "IaasError");
  assert.equal(
    e.message,
    'QingCloud action "DeleteNics" failed with ret_code 1400: PermissionDenied, nic is in-use',
  );
  const j = new IaasJobError({ jobId: "j-1", jobAction: "AttachNics", status: "failed" });
  assert.equal(j.code, "IAAS_JOB_FAILED");
  assert.equal(j.message, 'QingCloud job "j-1" (AttachNics) ended with status "failed"');
});
