/**
 * HttpIaasClient against real loopback servers (Deno.serve on 127.0.0.1:0, a unix socket, and raw
 * TCP listeners for dropped and hung connections). Sleeps are injected and recorded so retry and
 * rate-limit schedules are checked exactly without waiting them out.
 */
import assert from "node:assert/strict";
import { HttpIaasClient } from "./client.ts";
import type { HttpIaasClientOptions, IaasCallEvent } from "./transport.ts";
import type { IaasConfig } from "./config.ts";
import {
  IaasError,
  IaasReplyError,
  IaasTransportError,
  isQuota,
  isRetryable,
  RetCode,
} from "./errors.ts";
import {
  computeSignature,
  type HttpMethod,
  type SignatureMethod,
  timingSafeEqual,
} from "./signer.ts";

const SECRET = "TEST-SECRET-never-in-errors";

interface Received {
  method: HttpMethod;
  path: string;
  host: string;
  contentType: string;
  params: Record<string, string>;
  signatureOk: boolean;
}

type Reply = Record<string, unknown> | Response;

/** A fake API that verifies signatures like the real one and answers from a script. */
function fakeApi(answer: (r: Received, n: number) => Reply, o: { path?: string } = {}) {
  const received: Received[] = [];
  const handler = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const method = req.method as HttpMethod;
    const form = method === "POST" ? new URLSearchParams(await req.text()) : url.searchParams;
    const params: Record<string, string> = {};
    for (const [k, v] of form) params[k] = v;
    const expected = await computeSignature({
      method,
      path: url.pathname,
      params,
      secret: SECRET,
      signatureMethod: params.signature_method as SignatureMethod,
    });
    const r: Received = {
      method,
      path: url.pathname,
      host: req.headers.get("host") ?? "",
      contentType: req.headers.get("content-type") ?? "",
      params,
      signatureOk: timingSafeEqual(expected, params.signature ?? ""),
    };
    received.push(r);
    const out = answer(r, received.length);
    return out instanceof Response ? out : Response.json(out);
  };
  const server = o.path
    ? Deno.serve({ path: o.path, onListen() {} }, handler)
    : Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  const port = "port" in server.addr ? server.addr.port : 0;
  return {
    received,
    port,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

function config(port: number, over: Partial<IaasConfig> = {}): IaasConfig {
  return {
    accessKeyId: "AKIDTEST",
    secretAccessKey: SECRET,
    zone: "pek3a",
    host: "127.0.0.1",
    port,
    protocol: "http",
    uri: "/iaas/",
    connectionRetries: 3,
    timeoutMs: 5000,
    ...over,
  };
}

/** Client with recorded, instant sleeps and a fixed jitter. */
function client(cfg: IaasConfig, over: Partial<HttpIaasClientOptions> = {}) {
  const sleeps: number[] = [];
  const events: IaasCallEvent[] = [];
  let t = 0;
  const c = new HttpIaasClient({
    config: cfg,
    rateLimit: null,
    onCall: (e) => events.push(e),
    ...over,
    deps: {
      now: () => t,
      sleep: (ms) => {
        sleeps.push(ms);
        t += ms;
        return Promise.resolve();
      },
      random: () => 0.5,
      ...over.deps,
    },
  });
  return { c, sleeps, events };
}

const NIC = { nic_id: "52:54:00:12:34:56", status: "available", vxnet_id: "vxnet-a", role: 0 };
const ok = (extra: Record<string, unknown> = {}) => ({ ret_code: 0, ...extra });

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return await p.then(() => assert.fail("expected a rejection"), (e) => e);
}

Deno.test("GET: common params, flattened lists, valid signature, parsed page", async () => {
  await using api = fakeApi(() => ok({ total_count: 1, nic_set: [NIC] }));
  const { c, events } = client(config(api.port), {
    deps: { wallClock: () => new Date("2024-01-02T03:04:05.999Z") },
  });
  const page = await c.describeNics({
    nics: ["52:54:00:12:34:56", "52:54:00:ab:cd:ef"],
    status: "in-use",
    limit: 100,
  });
  assert.deepEqual(page.items.map((n) => n.nic_id), ["52:54:00:12:34:56"]);
  assert.equal(page.totalCount, 1);
  const r = api.received[0];
  assert.equal(r.method, "GET");
  assert.equal(r.path, "/iaas/");
  assert.ok(r.signatureOk);
  const { signature: _sig, ...rest } = r.params;
  assert.deepEqual(rest, {
    action: "DescribeNics",
    zone: "pek3a",
    access_key_id: "AKIDTEST",
    signature_method: "HmacSHA256",
    signature_version: "1",
    time_stamp: "2024-01-02T03:04:05Z",
    "nics.1": "52:54:00:12:34:56",
    "nics.2": "52:54:00:ab:cd:ef",
    status: "in-use",
    limit: "100",
  });
  assert.deepEqual(events.map((e) => [e.action, e.outcome, e.attempt]), [[
    "DescribeNics",
    "ok",
    1,
  ]]);
});

Deno.test("object lists are sent as name.N.field and HmacSHA1 verifies", async () => {
  await using api = fakeApi(() => ok());
  const { c } = client(config(api.port), { signatureMethod: "HmacSHA1" });
  await c.attachTags([
    { tagId: "tag-1", resourceType: "nic", resourceId: "52:54:00:00:00:01" },
    { tagId: "tag-1", resourceType: "nic", resourceId: "52:54:00:00:00:02" },
  ]);
  const p = api.received[0].params;
  assert.ok(api.received[0].signatureOk);
  assert.equal(p.signature_method, "HmacSHA1");
  assert.equal(p["resource_tag_pairs.2.resource_id"], "52:54:00:00:00:02");
  assert.equal(p["resource_tag_pairs.1.resource_type"], "nic");
});

Deno.test("a long request switches to a signed form POST", async () => {
  await using api = fakeApi(() => ok({ job_id: "j-aaaa1111" }));
  const { c } = client(config(api.port));
  const nics = Array.from({ length: 200 }, (_, i) => `52:54:00:00:${(i >> 8).toString(16)}:${i}`);
  assert.equal(await c.detachNics({ nics }), "j-aaaa1111");
  await c.detachNics({ nics: nics.slice(0, 2) });
  const [long, short] = api.received;
  assert.equal(long.method, "POST");
  assert.equal(long.contentType, "application/x-www-form-urlencoded");
  assert.ok(long.signatureOk);
  assert.equal(long.params["nics.200"], nics[199]);
  assert.equal(short.method, "GET");
  assert.ok(short.signatureOk);
});

Deno.test("httpMethod POST is honoured for short requests too", async () => {
  await using api = fakeApi(() => ok({ total_count: 0, job_set: [] }));
  const { c } = client(config(api.port), { httpMethod: "POST" });
  await c.describeJobs({ jobs: ["j-1"] });
  assert.equal(api.received[0].method, "POST");
  assert.ok(api.received[0].signatureOk);
});

Deno.test("5100 then 5000 are retried with backoff and each attempt is re-signed", async () => {
  await using api = fakeApi((_r, n) =>
    n === 1
      ? { ret_code: 5100, message: "ServerBusy, try later" }
      : n === 2
      ? { ret_code: 5000, message: "InternalError" }
      : ok({ total_count: 0, vxnet_set: [] })
  );
  let second = 0;
  const { c, sleeps, events } = client(config(api.port), {
    deps: { wallClock: () => new Date(Date.UTC(2024, 0, 1, 0, 0, second++)) },
  });
  const page = await c.describeVxnets({ vxnets: ["vxnet-a"] });
  assert.equal(page.totalCount, 0);
  assert.equal(api.received.length, 3);
  assert.ok(api.received.every((r) => r.signatureOk));
  assert.equal(new Set(api.received.map((r) => r.params.time_stamp)).size, 3);
  assert.equal(new Set(api.received.map((r) => r.params.signature)).size, 3);
  // baseMs 200, random 0.5: 150 then 300.
  assert.deepEqual(sleeps, [150, 300]);
  assert.deepEqual(events.map((e) => [e.outcome, e.retCode, e.attempt]), [
    ["error", 5100, 1],
    ["error", 5000, 2],
    ["ok", undefined, 3],
  ]);
});

Deno.test("retries stop at connection_retries and the last error surfaces", async () => {
  await using api = fakeApi(() => ({ ret_code: 5100, message: "ServerBusy" }));
  const { c } = client(config(api.port, { connectionRetries: 2 }));
  const err = await rejection(c.describeInstances());
  assert.ok(err instanceof IaasError);
  assert.equal(err.retCode, RetCode.SERVER_BUSY);
  assert.equal(err.action, "DescribeInstances");
  assert.ok(isRetryable(err));
  assert.equal(api.received.length, 3);
});

Deno.test("quota 2500 backs off slower, bounded by quotaRetries", async () => {
  await using api = fakeApi(() => ({ ret_code: 2500, message: "QuotaExceeded" }));
  const { c, sleeps } = client(config(api.port), { retry: { quotaRetries: 2 } });
  const err = await rejection(c.describeAccessKeys({ accessKeys: ["AKIDTEST"] }));
  assert.ok(isQuota(err));
  assert.equal(api.received.length, 3);
  assert.deepEqual(sleeps, [750, 1500]);
});

Deno.test("API errors that are not transient fail at once with typed fields", async () => {
  await using api = fakeApi(() => ({
    ret_code: 1400,
    message: "PermissionDenied, nic [52:54:00:12:34:56] is in-use",
  }));
  const { c } = client(config(api.port));
  const err = await rejection(c.deleteNics({ nics: ["52:54:00:12:34:56"] }));
  assert.ok(err instanceof IaasError);
  assert.equal(err.code, "IAAS_ERROR");
  assert.equal(err.retCode, 1400);
  assert.equal(err.action, "DeleteNics");
  assert.match(err.apiMessage, /is in-use/);
  assert.match(err.message, /"DeleteNics" failed with ret_code 1400/);
  assert.equal(api.received.length, 1);
});

Deno.test("a malformed successful reply is an IaasReplyError, not retried", async () => {
  await using api = fakeApi(() => ok({ total_count: 1, nic_set: [{ nic_id: 5 }] }));
  const { c } = client(config(api.port));
  const err = await rejection(c.describeNics());
  assert.ok(err instanceof IaasReplyError);
  assert.equal(err.action, "DescribeNics");
  assert.equal(err.field, "nic_set.0.nic_id");
  assert.equal(api.received.length, 1);
});

Deno.test("non-200 status and non-JSON body are transport errors and retried", async () => {
  await using api = fakeApi((_r, n) =>
    n === 1
      ? new Response("bad gateway", { status: 502 })
      : n === 2
      ? new Response("<html>", { status: 200 })
      : ok({ total_count: 0, tag_set: [] })
  );
  const { c, events } = client(config(api.port));
  await c.describeTags();
  assert.deepEqual(events.map((e) => e.outcome), ["transport", "transport", "ok"]);
  await using api2 = fakeApi(() => new Response("nope", { status: 503 }));
  const { c: c2 } = client(config(api2.port, { connectionRetries: 0 }));
  const err = await rejection(c2.describeTags());
  assert.ok(err instanceof IaasTransportError);
  assert.equal(err.reason, "http_status");
  assert.equal(err.httpStatus, 503);
});

/** A TCP server that reads a request and then closes the connection without answering. */
function droppingServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = 0;
  const done = (async () => {
    for await (const conn of listener) {
      accepted++;
      await conn.read(new Uint8Array(65536)).catch(() => null);
      conn.close();
    }
  })();
  return {
    port: listener.addr.port,
    accepted: () => accepted,
    async [Symbol.asyncDispose]() {
      listener.close();
      await done.catch(() => {});
    },
  };
}

Deno.test("dropped connections: reads retry, creating calls do not resend", async () => {
  await using srv = droppingServer();
  const { c, sleeps } = client(config(srv.port, { connectionRetries: 2 }));
  const err = await rejection(c.describeNics());
  assert.ok(err instanceof IaasTransportError);
  assert.equal(err.reason, "connection");
  assert.equal(err.maybeSent, true);
  assert.equal(srv.accepted(), 3);
  assert.equal(sleeps.length, 2);
  const before = srv.accepted();
  const err2 = await rejection(c.createNics({ vxnet: "vxnet-a", count: 2 }));
  assert.ok(err2 instanceof IaasTransportError);
  assert.equal(srv.accepted() - before, 1);
  for (const e of [err, err2] as IaasTransportError[]) {
    assert.ok(!e.message.includes("signature") && !e.message.includes(SECRET));
    assert.ok(!e.message.includes("AKIDTEST"));
  }
});

Deno.test("refused connections are retried even for creating calls", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  const { c, events } = client(config(port, { connectionRetries: 1 }));
  const err = await rejection(c.createNics({ vxnet: "vxnet-a" }));
  assert.ok(err instanceof IaasTransportError);
  assert.equal(err.maybeSent, false);
  assert.match(err.message, /cannot connect to "127\.0\.0\.1:\d+"/);
  assert.deepEqual(events.map((e) => e.attempt), [1, 2]);
});

Deno.test("a hung server hits the per-request timeout", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  try {
    const { c } = client(config(listener.addr.port, { timeoutMs: 150, connectionRetries: 1 }));
    const started = performance.now();
    const err = await rejection(c.describeJobs());
    assert.ok(err instanceof IaasTransportError);
    assert.equal(err.reason, "timeout");
    assert.equal(held.length, 2);
    assert.ok(performance.now() - started < 3000);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of held) conn.close();
  }
});

Deno.test("unix socket transport keeps host, port and path in the request", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostnic-iaas-sock-" });
  try {
    const path = `${dir}/api.sock`;
    await using api = fakeApi(() => ok({ total_count: 0, instance_set: [] }), { path });
    const cfg = config(0, { host: "api.example.test", port: 8443, uri: "/iaas", socketPath: path });
    const { c } = client(cfg);
    try {
      await c.describeInstances({ instances: ["i-1"] });
    } finally {
      await c.close();
    }
    const r = api.received[0];
    assert.equal(r.path, "/iaas");
    assert.equal(r.host, "api.example.test:8443");
    assert.ok(r.signatureOk);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a missing unix socket is a connect error", async () => {
  const { c } = client(
    config(80, { socketPath: "/nonexistent/hostnic-iaas.sock", connectionRetries: 0 }),
  );
  try {
    const err = await rejection(c.describeNics());
    assert.ok(err instanceof IaasTransportError);
    assert.equal(err.maybeSent, false);
    assert.match(err.message, /unix socket "\/nonexistent\/hostnic-iaas\.sock"/);
  } finally {
    await c.close();
  }
});

Deno.test("the token bucket paces calls: burst, then perSecond", async () => {
  await using api = fakeApi(() => ok({ total_count: 0, job_set: [] }));
  const { c, sleeps } = client(config(api.port), { rateLimit: { perSecond: 20, burst: 2 } });
  for (let i = 0; i < 6; i++) await c.describeJobs();
  assert.equal(api.received.length, 6);
  // The fake clock only advances while sleeping, so each of the 4 calls past the burst waits
  // for one token: 1000 / 20 = 50 ms.
  assert.deepEqual(sleeps, [50, 50, 50, 50]);
});

Deno.test("close() aborts a backoff in progress", async () => {
  await using api = fakeApi(() => ({ ret_code: 5100, message: "ServerBusy" }));
  const c = new HttpIaasClient({
    config: config(api.port),
    rateLimit: null,
    retry: { baseMs: 60_000 },
  });
  const pending = rejection(c.describeNics());
  // Wait for the first attempt to be answered, then close during the 30-60 s backoff.
  const deadline = Date.now() + 5000;
  while (api.received.length === 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 5));
  }
  await c.close();
  const err = await pending;
  assert.match(String(err), /closed/);
  assert.equal(api.received.length, 1);
});

Deno.test("an onCall hook that throws does not break the call", async () => {
  await using api = fakeApi(() => ok({ tag_id: "tag-abc" }));
  const { c } = client(config(api.port), {
    onCall: () => {
      throw new Error("metrics down");
    },
  });
  assert.equal(await c.createTag({ tagName: "hostnic" }), "tag-abc");
});
