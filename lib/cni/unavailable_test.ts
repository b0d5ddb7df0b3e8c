import assert from "node:assert/strict";
import { parseNetConf } from "./config.ts";
import type { AddRequest, StatusRequest } from "./dispatch.ts";
import { parseEnv } from "./env.ts";
import { CniError } from "./errors.ts";
import { daemonUnreachable, unavailableHandlers } from "./unavailable.ts";

const config = parseNetConf(
  { cniVersion: "1.1.0", name: "hostnic", type: "hostnic", socketPath: "/run/custom/h.sock" },
  { command: "ADD", version: "1.1.0" },
);

Deno.test("unavailable handlers name the configured socket", async () => {
  const env = parseEnv((n) =>
    ({
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "c1",
      CNI_NETNS: "/proc/1/ns/net",
      CNI_IFNAME: "eth0",
    })[n]
  );
  const add: AddRequest = {
    command: "ADD",
    version: "1.1.0",
    config,
    env,
    containerId: "c1",
    netns: "/proc/1/ns/net",
    ifname: "eth0",
    args: env.args,
  };
  await assert.rejects(async () => await unavailableHandlers.add(add), (err: unknown) => {
    assert.ok(err instanceof CniError);
    assert.equal(err.cniCode, 11);
    assert.match(err.msg, /"\/run\/custom\/h\.sock"/);
    return true;
  });
  const status: StatusRequest = { command: "STATUS", version: "1.1.0", config, env };
  await assert.rejects(async () => await unavailableHandlers.status(status), (err: unknown) => {
    assert.ok(err instanceof CniError);
    assert.equal(err.cniCode, 50);
    return true;
  });
});

Deno.test("daemonUnreachable tells the operator where to look", () => {
  const err = daemonUnreachable("/var/run/hostnic/hostnic.sock", 11);
  assert.equal(err.code, "CNI_TRY_AGAIN_LATER");
  assert.match(err.details, /hostnic-node pod/);
});
