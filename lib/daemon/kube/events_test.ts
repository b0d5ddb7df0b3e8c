/**
 * The Warning event wording of failed ADDs.
 */
import assert from "node:assert/strict";
import { HostnicError } from "../../errors.ts";
import { describeAddFailure } from "./events.ts";

Deno.test("describeAddFailure: a reason and what to do for each failure", () => {
  const cases: [string, string, RegExp][] = [
    ["POOL_TIMEOUT", "NicPoolTimeout", /hostnic admin pool ls/],
    ["MAX_NIC", "NicLimitReached", /Raise pool\.maxNic/],
    ["IAAS_FAILED", "CloudApiError", /fixed IP must be free/],
    ["NOT_READY", "HostnicNotReady", /starting or stopping/],
    ["DATAPATH_SETUP_FAILED", "DataplaneFailure", /hostnic-node log/],
    ["SOMETHING_ELSE", "FailedHostnicNetwork", /hostnic-node log/],
  ];
  for (const [code, reason, advice] of cases) {
    const ev = describeAddFailure(new HostnicError(code, "It broke"));
    assert.equal(ev.type, "Warning");
    assert.equal(ev.reason, reason, code);
    assert.match(ev.message, /^It broke\. /);
    assert.match(ev.message, advice);
  }
  assert.equal(describeAddFailure(new Error("plain")).reason, "FailedHostnicNetwork");
});
