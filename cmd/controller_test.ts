import assert from "node:assert/strict";
import { main } from "./controller.ts";

/** Runs `hostnic controller` in-process; every case fails before touching the network. */
async function run(args: string[], env: Record<string, string> = {}): Promise<number> {
  for (const [k, v] of Object.entries(env)) Deno.env.set(k, v);
  try {
    return await main(args);
  } finally {
    for (const k of Object.keys(env)) Deno.env.delete(k);
  }
}

Deno.test("hostnic controller refuses bad flags and a bad crash hook before doing anything", async () => {
  assert.equal(await run(["--help"]), 0);
  assert.equal(await run(["--no-such-flag"]), 2);
  assert.equal(await run(["--leader-elect=maybe"]), 1);
  assert.equal(await run(["--lease-duration", "5", "--renew-deadline", "6"]), 1);
  assert.equal(await run(["--sync-period", "0"]), 1);
  assert.equal(await run(["--sync-period", "10"], { HOSTNIC_CONTROLLER_EXIT_AFTER: "bogus" }), 1);
  // Valid flags get as far as the credentials file.
  assert.equal(await run(["--QyAccessFilePath", "/nonexistent/client.yaml"]), 1);
});
