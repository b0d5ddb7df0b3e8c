/**
 * A TCP → unix socket forwarder, run inside a node's network namespace by `NetnsBridge`
 * (netns_bridge.ts): listens on 127.0.0.1:<port> there and forwards each connection to <socket>,
 * which a process in the host namespace serves. Unix sockets live in the filesystem, so they cross
 * network namespaces where TCP to the host's loopback cannot.
 *
 *   deno run --allow-net --allow-read --allow-write tcp_to_unix.ts <port> <socket>
 *
 * Prints "ready" once listening; runs until killed.
 */
import { splice } from "./splice.ts";

const [portText, path] = Deno.args;
const port = Number(portText);
if (!Number.isInteger(port) || port < 1 || port > 65535 || !path) {
  console.error("usage: tcp_to_unix.ts <port> <socket>");
  Deno.exit(2);
}
const listener = Deno.listen({ hostname: "127.0.0.1", port });
console.log("ready");
for await (const conn of listener) {
  Deno.connect({ transport: "unix", path }).then(
    (upstream) => splice(conn, upstream),
    () => conn.close(),
  );
}
