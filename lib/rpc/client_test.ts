import assert from "node:assert/strict";
import { DaemonUnreachableError, RpcClient } from "./client.ts";
import { RPC, RpcError } from "./protocol.ts";

const enc = new TextEncoder();

/**
 * A hand-written daemon on a unix socket: reads one request, then lets `respond` write raw
 * bytes — to feed the client replies a well-behaved server never sends.
 */
async function fakeDaemon(
  respond: (conn: Deno.UnixConn, request: string) => Promise<void>,
): Promise<{ path: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "hostnic-rpc-client-" });
  const path = `${dir}/d.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const served: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      served.push((async () => {
        try {
          await respond(conn, await readRequest(conn));
        } catch {
          /* the client may be gone */
        } finally {
          try {
            conn.close();
          } catch { /* closed by respond */ }
        }
      })());
    }
  })();
  return {
    path,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting.catch(() => {});
      await Promise.all(served);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Read one request with a content-length body. */
async function readRequest(conn: Deno.UnixConn): Promise<string> {
  let text = "";
  const buf = new Uint8Array(4096);
  for (;;) {
    const at = text.indexOf("\r\n\r\n");
    if (at >= 0) {
      const len = Number(text.match(/content-length: (\d+)/i)?.[1] ?? 0);
      if (enc.encode(text.slice(at + 4)).length >= len) return text;
    }
    const n = await conn.read(buf);
    if (n === null) return text;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
}

async function write(conn: Deno.UnixConn, s: string | Uint8Array): Promise<void> {
  const bytes = typeof s === "string" ? enc.encode(s) : s;
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

function httpReply(body: string, headers = `content-length: ${enc.encode(body).length}\r\n`) {
  return `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n${headers}\r\n${body}`;
}

async function unreachable(p: Promise<unknown>, kind: string): Promise<DaemonUnreachableError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof DaemonUnreachableError, `expected unreachable ${kind}, got ${err}`);
    assert.equal(err.kind, kind, err.message);
    return err;
  }
  assert.fail(`expected DaemonUnreachableError ${kind}, but the call succeeded`);
}

Deno.test("client: sends a well-formed request and reads a content-length reply", async () => {
  let seen = "";
  await using d = await fakeDaemon(async (conn, req) => {
    seen = req;
    await write(conn, httpReply('{"ok":true,"data":{"ip":"10.0.0.3"}}'));
  });
  const data = await new RpcClient(d.path).call(RPC.cniAdd, { containerId: "c1" });
  assert.deepEqual(data, { ip: "10.0.0.3" });
  assert.match(seen, /^POST \/v1\/cni\/add HTTP\/1\.1\r\n/);
  assert.match(seen, /\r\ncontent-length: 20\r\n/);
  assert.ok(seen.endsWith('\r\n\r\n{"containerId":"c1"}'), seen);
});

Deno.test("client: GET routes send no body", async () => {
  let seen = "";
  await using d = await fakeDaemon(async (conn, req) => {
    seen = req;
    await write(conn, httpReply('{"ok":true,"data":null}'));
  });
  assert.equal(await new RpcClient(d.path).call(RPC.healthz, { ignored: true }), null);
  assert.match(seen, /^GET \/v1\/healthz HTTP\/1\.1\r\n/);
  assert.ok(seen.endsWith("content-length: 0\r\n\r\n"), seen);
});

Deno.test("client: chunked, dribbled and read-to-close replies all parse", async () => {
  const body = JSON.stringify({
    ok: true,
    data: { list: Array.from({ length: 500 }, (_, i) => i) },
  });
  const chunked = `${(20).toString(16)}\r\n${body.slice(0, 20)}\r\n` +
    `${enc.encode(body.slice(20)).length.toString(16)};ext=1\r\n${body.slice(20)}\r\n0\r\n\r\n`;
  const replies = [
    httpReply(chunked, "transfer-encoding: chunked\r\n"),
    httpReply(body, ""), // no length: the body ends when the connection closes
    httpReply(body), // written a few bytes at a time, below
  ];
  for (const [i, reply] of replies.entries()) {
    await using d = await fakeDaemon(async (conn) => {
      if (i < 2) return await write(conn, reply);
      const bytes = enc.encode(reply);
      for (let off = 0; off < bytes.length; off += 7) {
        await write(conn, bytes.subarray(off, off + 7));
      }
    });
    const data = await new RpcClient(d.path).call<{ list: number[] }>(RPC.adminPods);
    assert.equal(data.list.length, 500, `reply ${i}`);
  }
});

Deno.test("client: an error envelope becomes RpcError; an unknown reason is INTERNAL", async () => {
  const replies = [
    '{"ok":false,"error":{"reason":"POOL_TIMEOUT","message":"No NIC within 30 s","cniCode":11,"retryable":true}}',
    '{"ok":false,"error":{"reason":"FROM_THE_FUTURE","message":"Something new","retryable":true}}',
  ];
  const got: RpcError[] = [];
  for (const reply of replies) {
    await using d = await fakeDaemon((conn) => write(conn, httpReply(reply)));
    await assert.rejects(new RpcClient(d.path).call(RPC.cniAdd, {}), (err: unknown) => {
      assert.ok(err instanceof RpcError);
      got.push(err);
      return true;
    });
  }
  assert.deepEqual(
    got.map((e) => [e.reason, e.message, e.cniCode, e.retryable]),
    [
      ["POOL_TIMEOUT", "No NIC within 30 s", 11, true],
      ["INTERNAL", 'Something new (reason "FROM_THE_FUTURE")', undefined, true],
    ],
  );
});

Deno.test("client: replies that are not the protocol are BAD_REPLY", async () => {
  const replies = [
    httpReply("<html>hello</html>"),
    httpReply('{"status":"fine"}'),
    httpReply('{"ok":false,"error":"nope"}'),
    "SSH-2.0-OpenSSH_9.2\r\n\r\n",
    httpReply("{}", "content-length: -1\r\n"),
    httpReply("zz\r\nxx\r\n", "transfer-encoding: chunked\r\n"),
  ];
  for (const reply of replies) {
    await using d = await fakeDaemon((conn) => write(conn, reply));
    const e = await unreachable(new RpcClient(d.path).call(RPC.cniAdd, {}), "BAD_REPLY");
    assert.equal(e.requestSent, true);
  }
  await using big = await fakeDaemon((conn) => write(conn, httpReply(`"${"x".repeat(5000)}"`)));
  await unreachable(
    new RpcClient(big.path, { maxReplyBytes: 1000 }).call(RPC.adminPods),
    "BAD_REPLY",
  );
});

Deno.test("client: a connection that drops before a complete reply is CONNECTION_LOST", async () => {
  const partials = ["", 'HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{"ok":true', "HTTP/1.1 200"];
  for (const partial of partials) {
    await using d = await fakeDaemon((conn) => write(conn, partial));
    const e = await unreachable(new RpcClient(d.path).call(RPC.cniDel, {}), "CONNECTION_LOST");
    assert.equal(e.requestSent, true);
  }
});

Deno.test("client: a daemon that accepts but never answers is TIMEOUT", async () => {
  let release!: () => void;
  const hold = new Promise<void>((r) => release = r);
  await using d = await fakeDaemon(() => hold);
  try {
    const e = await unreachable(
      new RpcClient(d.path, { timeoutMs: 5000 }).call(RPC.cniDel, {}, { timeoutMs: 50 }),
      "TIMEOUT",
    );
    assert.match(e.message, /within 50 ms/);
  } finally {
    release();
  }
});

Deno.test("client: the plugin-side modules import nothing heavy", async () => {
  for (const file of ["./client.ts", "./protocol.ts", "../store/journal.ts"]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", new URL(file, import.meta.url).pathname],
      stdout: "piped",
      stderr: "inherit",
      env: { NO_COLOR: "1" },
    }).output();
    assert.ok(out.success, `deno info ${file}`);
    // (`npmPackages` in this output lists the whole lockfile, so look at the module graph.)
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: { specifier: string }[];
    };
    const foreign = info.modules.map((m) => m.specifier).filter((s) =>
      !s.startsWith("file:///") || !s.includes("/lib/")
    );
    assert.deepEqual(foreign, [], `${file} pulls in ${foreign.join(", ")}`);
  }
});
