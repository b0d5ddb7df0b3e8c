import assert from "node:assert/strict";
import { z } from "zod";
import type { LogFields, Logger } from "../log.ts";
import { DaemonUnreachableError, RpcClient } from "./client.ts";
import { RPC, RpcError, type RpcReason } from "./protocol.ts";
import { route, type RpcRoute, type RpcServer, RpcSetupError, startRpcServer } from "./server.ts";

// ---- fixtures ------------------------------------------------------------------------------

interface Line {
  level: string;
  msg: string;
  fields: LogFields;
}

/** A logger that keeps its lines, to assert on what the daemon logs. */
function memoryLogger(lines: Line[] = [], base: LogFields = {}): Logger & { lines: Line[] } {
  const at = (level: string) => (msg: string, fields: LogFields = {}) =>
    lines.push({ level, msg, fields: { ...base, ...fields } });
  return {
    lines,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: (f) => memoryLogger(lines, { ...base, ...f }),
  };
}

const AddRequest = z.object({
  containerId: z.string().min(1),
  ifName: z.string().default("eth0"),
  args: z.object({ podName: z.string(), podNamespace: z.string() }).optional(),
});

/** A temp dir with a server on `<dir>/run/hostnic.sock`; disposal closes both, even on failure. */
async function fixture(
  routes: RpcRoute[] = defaultRoutes(),
  opts: { maxBodyBytes?: number } = {},
): Promise<
  {
    dir: string;
    server: RpcServer;
    client: RpcClient;
    logger: ReturnType<typeof memoryLogger>;
  } & AsyncDisposable
> {
  const dir = await Deno.makeTempDir({ prefix: "hostnic-rpc-" });
  const logger = memoryLogger();
  try {
    const server = await startRpcServer({
      socketPath: `${dir}/run/hostnic.sock`,
      routes,
      logger,
      ...opts,
    });
    return {
      dir,
      server,
      client: new RpcClient(server.socketPath, { timeoutMs: 10_000 }),
      logger,
      async [Symbol.asyncDispose]() {
        await server.close();
        await Deno.remove(dir, { recursive: true });
      },
    };
  } catch (err) {
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
}

function defaultRoutes(): RpcRoute[] {
  return [
    route(RPC.cniAdd, AddRequest, (body) => ({ ip: "10.0.0.7", echo: body })),
    route(RPC.healthz, null, () => ({ ready: true })),
    route(RPC.cniDel, z.object({ reason: z.string() }), (body) => {
      throw new RpcError(body.reason as RpcReason, `Refused because ${body.reason}`);
    }),
    route(RPC.adminGc, null, () => {
      throw new Error("secret detail: token=abc at /internal/path.ts");
    }),
  ];
}

async function rejectsRpc(p: Promise<unknown>, reason: RpcReason): Promise<RpcError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof RpcError, `expected RpcError ${reason}, got ${err}`);
    assert.equal(err.reason, reason, err.message);
    return err;
  }
  assert.fail(`expected RpcError ${reason}, but the call succeeded`);
}

async function rejectsUnreachable(
  p: Promise<unknown>,
  kind: DaemonUnreachableError["kind"],
): Promise<DaemonUnreachableError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof DaemonUnreachableError, `expected unreachable ${kind}, got ${err}`);
    assert.equal(err.kind, kind, err.message);
    return err;
  }
  assert.fail(`expected DaemonUnreachableError ${kind}, but the call succeeded`);
}

/** Raw HTTP through Deno's own client: an independent check of what the server speaks. */
async function rawHttp(
  socketPath: string,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; json: unknown }> {
  using http = Deno.createHttpClient({ proxy: { transport: "unix", path: socketPath } });
  const res = await fetch(`http://hostnic${path}`, { ...init, client: http });
  return { status: res.status, json: await res.json() };
}

/**
 * Leave a socket file nobody serves, as a killed daemon does. (Deno unlinks the path it bound
 * when the listener closes, so bind elsewhere and move the file.)
 */
async function staleSocket(path: string): Promise<void> {
  const listener = Deno.listen({ transport: "unix", path: `${path}.bind` });
  await Deno.rename(`${path}.bind`, path);
  listener.close();
}

// ---- behaviour -----------------------------------------------------------------------------

Deno.test("rpc: POST and GET round trips; the schema's defaults reach the handler", async () => {
  await using f = await fixture();
  const data = await f.client.call(RPC.cniAdd, { containerId: "c1" });
  assert.deepEqual(data, { ip: "10.0.0.7", echo: { containerId: "c1", ifName: "eth0" } });
  assert.deepEqual(await f.client.call(RPC.healthz), { ready: true });
  const raw = await rawHttp(f.server.socketPath, "/v1/healthz");
  assert.deepEqual(raw, { status: 200, json: { ok: true, data: { ready: true } } });
});

Deno.test("rpc: the socket is 0600 from the start and no staging files remain", async () => {
  await using f = await fixture();
  const info = await Deno.lstat(f.server.socketPath);
  assert.ok(info.isSocket);
  assert.equal(info.mode! & 0o777, 0o600);
  const names = (await Array.fromAsync(Deno.readDir(`${f.dir}/run`))).map((e) => e.name);
  assert.deepEqual(names, ["hostnic.sock"]);
});

Deno.test("rpc: bodies over the limit are TOO_LARGE, small or huge, and the server lives on", async () => {
  await using f = await fixture(defaultRoutes(), { maxBodyBytes: 1024 });
  const big = (n: number) => ({ containerId: "c1", pad: "x".repeat(n) });
  const e = await rejectsRpc(f.client.call(RPC.cniAdd, big(2000)), "TOO_LARGE");
  assert.match(e.message, /1024 bytes/);
  // Far beyond socket buffers: the refusal must still arrive while we are still writing.
  await rejectsRpc(f.client.call(RPC.cniAdd, big(8 << 20)), "TOO_LARGE");
  // Without content-length (chunked upload) the limit holds while streaming.
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new TextEncoder().encode(JSON.stringify(big(4000))));
      c.close();
    },
  });
  const raw = await rawHttp(f.server.socketPath, "/v1/cni/add", { method: "POST", body: stream });
  assert.equal(raw.status, 413);
  assert.equal((raw.json as { error: { reason: string } }).error.reason, "TOO_LARGE");
  assert.deepEqual(await f.client.call(RPC.healthz), { ready: true });
});

Deno.test("rpc: malformed bodies are BAD_REQUEST", async () => {
  await using f = await fixture();
  for (const body of ['{"containerId": "c1"', "not json", new Uint8Array([0xff, 0xfe])]) {
    const raw = await rawHttp(f.server.socketPath, "/v1/cni/add", { method: "POST", body });
    assert.equal(raw.status, 400);
    const err = raw.json as { ok: boolean; error: { reason: string } };
    assert.equal(err.ok, false);
    assert.equal(err.error.reason, "BAD_REQUEST");
  }
});

Deno.test("rpc: schema errors are BAD_REQUEST naming the field", async () => {
  await using f = await fixture();
  const e1 = await rejectsRpc(f.client.call(RPC.cniAdd, { containerId: 5 }), "BAD_REQUEST");
  assert.equal(e1.field, "containerId");
  assert.match(e1.message, /"containerId"/);
  const e2 = await rejectsRpc(
    f.client.call(RPC.cniAdd, { containerId: "c1", args: { podName: 1, podNamespace: "ns" } }),
    "BAD_REQUEST",
  );
  assert.equal(e2.field, "args.podName");
  const e3 = await rejectsRpc(f.client.call(RPC.cniAdd, [1, 2]), "BAD_REQUEST");
  assert.equal(e3.field, undefined);
  assert.equal(e3.retryable, false);
});

Deno.test("rpc: unknown paths and methods are NOT_FOUND; other versions UNSUPPORTED_VERSION", async () => {
  await using f = await fixture();
  await rejectsRpc(f.client.call("/v1/nope", {}), "NOT_FOUND");
  await rejectsRpc(f.client.call(RPC.cniCheck, {}), "NOT_FOUND"); // in the protocol, not served
  const wrongMethod = await rawHttp(f.server.socketPath, "/v1/cni/add");
  assert.equal((wrongMethod.json as { error: { reason: string } }).error.reason, "NOT_FOUND");
  const e = await rejectsRpc(f.client.call("/v2/cni/add", {}), "UNSUPPORTED_VERSION");
  assert.match(e.message, /v1, not v2/);
});

Deno.test("rpc: a handler's RpcError reaches the client with reason, CNI code and retryability", async () => {
  await using f = await fixture([
    ...defaultRoutes().filter((r) => r.path !== RPC.cniDel),
    route(RPC.cniDel, z.object({ reason: z.string() }), (body) => {
      if (body.reason === "override") {
        throw new RpcError("CONFLICT", "IP 10.0.0.9 is held by pod default/a", { cniCode: 101 });
      }
      throw new RpcError(body.reason as RpcReason, `Refused because ${body.reason}`);
    }),
  ]);
  const empty = await rejectsRpc(f.client.call(RPC.cniDel, { reason: "POOL_EMPTY" }), "POOL_EMPTY");
  assert.equal(empty.cniCode, 11);
  assert.equal(empty.retryable, true);
  assert.equal(empty.message, "Refused because POOL_EMPTY");
  const conflict = await rejectsRpc(f.client.call(RPC.cniDel, { reason: "override" }), "CONFLICT");
  assert.equal(conflict.cniCode, 101);
  assert.equal(conflict.retryable, false);
  assert.equal(conflict.code, "CONFLICT");
});

Deno.test("rpc: unexpected errors are INTERNAL without details; the log has them", async () => {
  await using f = await fixture();
  const e = await rejectsRpc(f.client.call(RPC.adminGc, {}), "INTERNAL");
  assert.doesNotMatch(e.message, /secret|token|internal\/path|\bat\b/);
  assert.match(e.message, /see the daemon log for request \d+/);
  const logged = f.logger.lines.find((l) => l.msg === "rpc handler failed");
  assert.ok(logged, "the failure is logged");
  assert.match(String(logged.fields.error), /secret detail/);
  assert.match(String(logged.fields.stack), /server_test\.ts/);
  assert.equal(logged.fields.path, "/v1/admin/gc");
});

Deno.test("rpc: a handler result that is not JSON is INTERNAL, not a hung request", async () => {
  await using f = await fixture([route(RPC.healthz, null, () => ({ n: 1n }))]);
  await rejectsRpc(f.client.call(RPC.healthz), "INTERNAL");
});

Deno.test("rpc: unreachable daemon — no socket, stale socket, closed server", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostnic-rpc-" });
  try {
    const path = `${dir}/hostnic.sock`;
    const add = () => new RpcClient(path).call(RPC.cniAdd, { containerId: "c1" });
    const none = await rejectsUnreachable(add(), "NO_SOCKET");
    assert.equal(none.requestSent, false);
    assert.equal(none.code, "DAEMON_UNREACHABLE");
    assert.ok(none.message.includes(path));

    await staleSocket(path);
    assert.ok((await Deno.lstat(path)).isSocket);
    await rejectsUnreachable(add(), "REFUSED");

    const server = await startRpcServer({
      socketPath: path,
      routes: defaultRoutes(),
      logger: memoryLogger(),
    });
    assert.deepEqual(await new RpcClient(path).call(RPC.healthz), { ready: true }); // replaced it
    assert.equal((await Deno.lstat(path)).mode! & 0o777, 0o600);
    await server.close();
    await server.close(); // idempotent
    await rejectsUnreachable(add(), "NO_SOCKET");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rpc: a call that outlives its timeout is TIMEOUT, and the handler sees the abort", async () => {
  let aborted!: () => void;
  const handlerSawAbort = new Promise<void>((r) => aborted = r);
  await using f = await fixture([
    route(RPC.cniAdd, AddRequest, async (_body, ctx) => {
      await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
      aborted();
      return "too late";
    }),
    route(RPC.healthz, null, () => "ok"),
  ]);
  const e = await rejectsUnreachable(
    f.client.call(RPC.cniAdd, { containerId: "c1" }, { timeoutMs: 100 }),
    "TIMEOUT",
  );
  assert.equal(e.requestSent, true, "the daemon may have acted: retries must be idempotent");
  await handlerSawAbort;
  assert.equal(await f.client.call(RPC.healthz), "ok");
});

Deno.test("rpc: closing the server aborts waiting handlers with NOT_READY", async () => {
  let entered!: () => void;
  const inHandler = new Promise<void>((r) => entered = r);
  const f = await fixture([
    route(RPC.cniAdd, AddRequest, async (_body, ctx) => {
      entered();
      await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
      throw ctx.signal.reason;
    }),
  ]);
  try {
    const call = f.client.call(RPC.cniAdd, { containerId: "c1" });
    await inHandler;
    await f.server.close();
    await rejectsRpc(call, "NOT_READY");
  } finally {
    await f[Symbol.asyncDispose]();
  }
});

Deno.test("rpc: start refuses a live socket and a non-socket file", async () => {
  await using f = await fixture();
  const path = f.server.socketPath;
  await assert.rejects(
    startRpcServer({ socketPath: path, routes: defaultRoutes(), logger: memoryLogger() }),
    (err: unknown) => err instanceof RpcSetupError && err.code === "RPC_SOCKET_IN_USE",
  );
  assert.deepEqual(await f.client.call(RPC.healthz), { ready: true }, "first server untouched");

  const file = `${f.dir}/not-a-socket`;
  await Deno.writeTextFile(file, "keep me");
  await assert.rejects(
    startRpcServer({ socketPath: file, routes: defaultRoutes(), logger: memoryLogger() }),
    (err: unknown) => err instanceof RpcSetupError && err.code === "RPC_SOCKET_PATH",
  );
  assert.equal(await Deno.readTextFile(file), "keep me");
});

Deno.test("rpc: a closing server leaves its successor's socket alone", async () => {
  await using a = await fixture();
  const path = a.server.socketPath;
  await Deno.remove(path); // e.g. an operator cleaned up; a new daemon started meanwhile
  const b = await startRpcServer({
    socketPath: path,
    routes: defaultRoutes(),
    logger: memoryLogger(),
  });
  try {
    await a.server.close();
    assert.deepEqual(await new RpcClient(path).call(RPC.healthz), { ready: true });
  } finally {
    await b.close();
  }
  await assert.rejects(Deno.lstat(path), Deno.errors.NotFound);
});

Deno.test("rpc: bad route tables are refused at start", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostnic-rpc-" });
  try {
    const bad: RpcRoute[][] = [
      [route(RPC.healthz, null, () => 1), route(RPC.healthz, null, () => 2)],
      [route(RPC.healthz, z.object({}), () => 1)],
      [{ path: "/v1/other" as typeof RPC.healthz, schema: null, handle: () => 1 }],
    ];
    for (const routes of bad) {
      await assert.rejects(
        startRpcServer({ socketPath: `${dir}/s.sock`, routes, logger: memoryLogger() }),
        (err: unknown) => err instanceof RpcSetupError && err.code === "RPC_ROUTES",
      );
    }
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rpc: 100 concurrent calls each get their own answer", async () => {
  await using f = await fixture([
    route(RPC.cniAdd, AddRequest, async (body) => {
      await Promise.resolve(); // interleave handlers
      return { containerId: body.containerId };
    }),
  ]);
  const ids = Array.from({ length: 100 }, (_, i) => `c${i}`);
  const got = await Promise.all(
    ids.map((id) => f.client.call<{ containerId: string }>(RPC.cniAdd, { containerId: id })),
  );
  assert.deepEqual(got.map((g) => g.containerId), ids);
});
