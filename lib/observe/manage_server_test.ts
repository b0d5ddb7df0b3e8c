import assert from "node:assert/strict";
import { parseListenAddr } from "./manage_server.ts";

Deno.test("listen addresses: host:port, :port, [v6]:port", () => {
  assert.deepEqual(parseListenAddr(":31081"), { hostname: "0.0.0.0", port: 31081 });
  assert.deepEqual(parseListenAddr("127.0.0.1:0"), { hostname: "127.0.0.1", port: 0 });
  assert.deepEqual(parseListenAddr("[::1]:80"), { hostname: "::1", port: 80 });
  assert.equal(parseListenAddr("70000"), undefined);
});
