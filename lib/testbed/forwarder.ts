/**
 * A byte forwarder run as its own process, usually inside a network namespace: listens on one
 * endpoint and joins each connection to a new connection to the other. Unix sockets live in the
 * filesystem, so a `unix:` endpoint crosses network namespaces where TCP cannot.
 *
 *   deno run --allow-net --allow-read --allow-write forwarder.ts <listen> <connect>
 *     endpoints: tcp:<host>:<port> | unix:<path>
 *
 * Prints "ready" once listening; runs until killed. Used through `Forward` (forward.ts).
 */
import { parseEndpoint, splice } from "./forward.ts";

if (import.meta.main) {
  const [listenText, connectText] = Deno.args;
  let listen, connect;
  try {
    listen = parseEndpoint(listenText ?? "");
    connect = parseEndpoint(connectText ?? "");
  } catch (err) {
    console.error(`forwarder: ${(err as Error).message}`);
    console.error("usage: forwarder.ts <listen> <connect>  (tcp:<host>:<port> | unix:<path>)");
    Deno.exit(2);
  }
  const listener = listen.transport === "unix"
    ? Deno.listen({ transport: "unix", path: listen.path })
    : Deno.listen({ hostname: listen.hostname, port: listen.port });
  console.log("ready");
  for await (const conn of listener) {
    const target = connect.transport === "unix"
      ? Deno.connect({ transport: "unix", path: connect.path })
      : Deno.connect({ hostname: connect.hostname, port: connect.port });
    target.then((upstream) => splice(conn, upstream), () => conn.close());
  }
}
