/**
 * A fault-injecting HTTPS proxy in front of the real kube-apiserver, for the faults the real server
 * will not produce on demand: an error status (with a `Retry-After` or any header) for chosen
 * requests, a reply lost after the real server acted on the request, a custom (malformed) body, a
 * slow reply, a watch cut short (on a timer or on command) and a watch answered with an ERROR
 * event (410 Gone). Everything else passes through untouched (headers, bearer token, streaming
 * watch bodies), so the client under test still talks to the real server. It keeps a log of the
 * requests it saw (time, method, path with query, status, User-Agent) for tests to assert on.
 *
 *   deno run -A fault_proxy.ts --listen <host:port> --upstream <https url> --ca <file>
 *     --cert <file> --key <file> --control <unix socket>
 *
 * Run inside the master's namespace (beside the API server) by `FaultProxy` below, which
 * `ControlPlane.faultProxy()` starts; `FaultProxy` also forwards a port of this host's loopback to
 * it (`hostServer`), for clients in the test process. Prints "ready" once serving. The control
 * socket takes `POST /faults` (a `FaultRule`, appended), `DELETE /faults`, `POST /cut?path=<re>`
 * (cuts the watches in flight whose path matches) and `GET /stats` (requests seen, faults fired,
 * the request log).
 */
import { Forward } from "./forward.ts";

/** One rule; the first rule whose method and path match a request fires, `times` times. */
export interface FaultRule {
  /** HTTP method to match (any when absent). */
  method?: string;
  /** Regular expression over the request path plus query. */
  path: string;
  /**
   * Answer with this status instead of forwarding, with a Kubernetes `Status` body (or `body`).
   * With `forwardFirst`, the request is forwarded first and the real reply thrown away.
   */
  status?: number;
  reason?: string;
  message?: string;
  /** Answer with this body (status `status`, default 200) instead of forwarding. */
  body?: string;
  /** Content-Type of `body` (default application/json). */
  contentType?: string;
  /** Extra response headers of an injected answer, e.g. `{ "Retry-After": "1" }`. */
  headers?: Record<string, string>;
  /** Forward the request (the real server acts on it), then answer `status` instead: a lost reply. */
  forwardFirst?: boolean;
  /** Answer a watch with 200 and this one ERROR event (a `Status`), then end the stream. */
  watchError?: { code: number; reason: string; message?: string };
  /** Forward, but hold the request this long first. */
  delayMs?: number;
  /** Forward, then end the response body (a watch) after this long, mid-stream. */
  cutAfterMs?: number;
  /** How many requests it applies to (default 1). */
  times?: number;
}

interface Args {
  listen: { hostname: string; port: number };
  upstream: string;
  ca: string;
  cert: string;
  key: string;
  control: string;
}

function parseArgs(argv: string[]): Args {
  const get = (flag: string) => {
    const i = argv.indexOf(flag);
    const v = i >= 0 ? argv[i + 1] : undefined;
    if (!v) throw new Error(`fault_proxy: missing ${flag}`);
    return v;
  };
  const [hostname, port] = get("--listen").split(":");
  return {
    listen: { hostname, port: Number(port) },
    upstream: get("--upstream").replace(/\/$/, ""),
    ca: get("--ca"),
    cert: get("--cert"),
    key: get("--key"),
    control: get("--control"),
  };
}

const HOP = ["connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"];

/** One request as the proxy saw it. */
export interface ProxyLogEntry {
  /** Arrival time, ms since the epoch (the proxy's clock). */
  at: number;
  method: string;
  /** Path plus query. */
  path: string;
  /** The status answered (injected or the upstream's); 0 while unknown (upstream failure: 502). */
  status: number;
  /** Whether a rule fired for it. */
  fault: boolean;
  userAgent: string;
  /** The request's Content-Type ("" when none). */
  contentType: string;
}

const LOG_MAX = 5000;

function statusBody(rule: FaultRule): string {
  return JSON.stringify({
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: rule.message ?? "injected fault",
    reason: rule.reason ?? "InternalError",
    code: rule.status,
  });
}

async function main(): Promise<void> {
  const a = parseArgs(Deno.args);
  const rules: (FaultRule & { left: number })[] = [];
  const stats = {
    requests: 0,
    fired: 0,
    byPath: {} as Record<string, number>,
    userAgents: [] as string[],
    log: [] as ProxyLogEntry[],
  };
  /** Watch streams in flight, so `/cut` can end them. */
  const streams = new Set<{ path: string; cut: () => void }>();
  const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(a.ca)] });

  const take = (req: Request, path: string) => {
    const i = rules.findIndex((r) =>
      (!r.method || r.method === req.method) && new RegExp(r.path).test(path)
    );
    if (i < 0) return undefined;
    const rule = rules[i];
    if (--rule.left <= 0) rules.splice(i, 1);
    stats.fired++;
    return rule;
  };

  Deno.serve({
    hostname: a.listen.hostname,
    port: a.listen.port,
    cert: await Deno.readTextFile(a.cert),
    key: await Deno.readTextFile(a.key),
    onListen: () => console.log("ready"),
  }, async (req) => {
    const url = new URL(req.url);
    const path = url.pathname + url.search;
    stats.requests++;
    stats.byPath[url.pathname] = (stats.byPath[url.pathname] ?? 0) + 1;
    const agent = req.headers.get("user-agent") ?? "";
    if (!stats.userAgents.includes(agent) && stats.userAgents.length < 100) {
      stats.userAgents.push(agent);
    }
    const rule = take(req, path);
    const entry: ProxyLogEntry = {
      at: Date.now(),
      method: req.method,
      path,
      status: 0,
      fault: rule !== undefined,
      userAgent: agent,
      contentType: req.headers.get("content-type") ?? "",
    };
    if (stats.log.length >= LOG_MAX) stats.log.shift();
    stats.log.push(entry);
    const answer = (status: number, body: BodyInit | null, headers: HeadersInit) => {
      entry.status = status;
      return new Response(body, { status, headers });
    };
    if (rule?.watchError) {
      const event = JSON.stringify({
        type: "ERROR",
        object: {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          message: rule.watchError.message ?? "injected watch error",
          reason: rule.watchError.reason,
          code: rule.watchError.code,
        },
      });
      return answer(200, event + "\n", { "content-type": "application/json" });
    }
    if (rule && (rule.status || rule.body !== undefined) && !rule.forwardFirst) {
      return answer(rule.status ?? 200, rule.body ?? statusBody(rule), {
        "content-type": rule.contentType ?? "application/json",
        ...rule.headers,
      });
    }
    if (rule?.delayMs) await new Promise((r) => setTimeout(r, rule.delayMs));
    const headers = new Headers();
    for (const [k, v] of req.headers) if (!HOP.includes(k.toLowerCase())) headers.set(k, v);
    let up: Response;
    try {
      up = await fetch(a.upstream + path, {
        method: req.method,
        headers,
        body: req.body,
        client,
        signal: req.signal,
        redirect: "manual",
      });
    } catch (err) {
      return answer(502, `upstream: ${(err as Error).message}`, {});
    }
    if (rule?.forwardFirst && rule.status) {
      await up.body?.cancel().catch(() => {});
      return answer(rule.status, rule.body ?? statusBody(rule), {
        "content-type": rule.contentType ?? "application/json",
        ...rule.headers,
      });
    }
    const out = new Headers();
    for (const [k, v] of up.headers) if (!HOP.includes(k.toLowerCase())) out.set(k, v);
    let body = up.body;
    const isWatch = url.searchParams.get("watch") === "true";
    if (body && (isWatch || rule?.cutAfterMs)) {
      const reader = body.getReader();
      const cut = Promise.withResolvers<"cut">();
      const stream = { path, cut: () => cut.resolve("cut") };
      streams.add(stream);
      let timer: ReturnType<typeof setTimeout> | undefined;
      if (rule?.cutAfterMs) timer = setTimeout(stream.cut, rule.cutAfterMs);
      const end = () => {
        clearTimeout(timer);
        streams.delete(stream);
        reader.cancel().catch(() => {});
      };
      body = new ReadableStream<Uint8Array<ArrayBuffer>>({
        async pull(ctl) {
          const next = await Promise.race([reader.read(), cut.promise]).catch(() => "cut" as const);
          if (next === "cut") {
            // End the body where it stands. (Erroring the stream instead leaves Deno's server
            // holding the connection open, and the client never notices.)
            end();
            ctl.close();
          } else if (next.done) {
            end();
            ctl.close();
          } else ctl.enqueue(next.value);
        },
        cancel() {
          end();
        },
      });
    }
    return answer(up.status, body, out);
  });

  Deno.serve({ path: a.control, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/faults" && req.method === "POST") {
      const rule = await req.json() as FaultRule;
      if (typeof rule.path !== "string") return new Response("path required", { status: 400 });
      new RegExp(rule.path);
      rules.push({ ...rule, left: rule.times ?? 1 });
      return Response.json({ rules: rules.length });
    }
    if (url.pathname === "/faults" && req.method === "DELETE") {
      rules.splice(0);
      return Response.json({ rules: 0 });
    }
    if (url.pathname === "/cut" && req.method === "POST") {
      const re = new RegExp(url.searchParams.get("path") ?? "");
      let cut = 0;
      for (const st of [...streams]) {
        if (re.test(st.path)) {
          st.cut();
          cut++;
        }
      }
      return Response.json({ cut });
    }
    if (url.pathname === "/stats") {
      return Response.json({ ...stats, pending: rules.length, openWatches: streams.size });
    }
    return new Response("not found", { status: 404 });
  });
}

export interface ProxyStats {
  requests: number;
  fired: number;
  pending: number;
  /** Request counts by path (no query). */
  byPath: Record<string, number>;
  /** Distinct User-Agent headers seen (first 100). */
  userAgents: string[];
  /** Every request seen, oldest first (the last 5000). */
  log: ProxyLogEntry[];
  /** Watch streams open through the proxy now. */
  openWatches: number;
}

/** The proxy process, as tests drive it: rules in, counters out. `close()` kills it. */
export class FaultProxy implements AsyncDisposable {
  /** `https://<address>:<port>`: put it in a kubeconfig instead of the API server's URL. */
  readonly server: string;
  /**
   * `https://127.0.0.1:<port>`: the proxy from this process (a loopback forward into the
   * namespace; the API server's certificate covers 127.0.0.1). Put it in a kubeconfig used here.
   */
  hostServer = "";
  readonly #child: Deno.ChildProcess;
  readonly #control: Deno.HttpClient;
  readonly #forward: Forward;

  private constructor(
    server: string,
    child: Deno.ChildProcess,
    o: { control: string; forward: Forward },
  ) {
    this.server = server;
    this.#child = child;
    this.#control = Deno.createHttpClient({ proxy: { transport: "unix", path: o.control } });
    this.#forward = o.forward;
  }

  static async start(o: {
    netns: string;
    address: string;
    port: number;
    upstream: string;
    ca: string;
    cert: string;
    key: string;
    control: string;
    drain: (name: string, s: ReadableStream<Uint8Array>) => void;
  }): Promise<FaultProxy> {
    const child = new Deno.Command("nsenter", {
      args: [
        `--net=/run/netns/${o.netns}`,
        Deno.execPath(),
        "run",
        "-A",
        "--quiet",
        new URL(import.meta.url).pathname,
        "--listen",
        `0.0.0.0:${o.port}`,
        "--upstream",
        o.upstream,
        "--ca",
        o.ca,
        "--cert",
        o.cert,
        "--key",
        o.key,
        "--control",
        o.control,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
    }).spawn();
    const forward = await Forward.create();
    const proxy = new FaultProxy(`https://${o.address}:${o.port}`, child, {
      control: o.control,
      forward,
    });
    o.drain("fault-proxy", child.stderr);
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("ready\n")) {
      const r = await reader.read();
      if (r.done) {
        await proxy.close();
        throw new Error(`fault proxy did not start: ${out}`);
      }
      out += r.value;
    }
    (async () => {
      while (!(await reader.read()).done) { /* discard */ }
    })().catch(() => {});
    // The control socket appears right after the proxy reports ready.
    for (let i = 0; i < 100; i++) {
      if (await Deno.stat(o.control).then(() => true, () => false)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    try {
      const port = await forward.fromNamespace(o.netns, { hostname: "127.0.0.1", port: o.port });
      proxy.hostServer = `https://127.0.0.1:${port}`;
    } catch (err) {
      await proxy.close();
      throw err;
    }
    return proxy;
  }

  async #call(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
    const res = await fetch(`http://proxy${path}`, {
      method,
      client: this.#control,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (!res.ok) throw new Error(`fault proxy ${method} ${path}: ${await res.text()}`);
    return await res.json();
  }

  /** Adds a rule (first match fires). */
  async inject(rule: FaultRule): Promise<void> {
    await this.#call("POST", "/faults", rule);
  }

  async clear(): Promise<void> {
    await this.#call("DELETE", "/faults");
  }

  async stats(): Promise<ProxyStats> {
    return await this.#call("GET", "/stats") as unknown as ProxyStats;
  }

  /** The requests seen whose path (with query) matches `path`, oldest first. */
  async requests(path?: RegExp): Promise<ProxyLogEntry[]> {
    const { log } = await this.stats();
    return path ? log.filter((e) => path.test(e.path)) : log;
  }

  /** Cuts the watch streams in flight whose path (with query) matches; returns how many. */
  async cutWatches(path = ""): Promise<number> {
    const r = await this.#call("POST", `/cut?path=${encodeURIComponent(path)}`);
    return r.cut as number;
  }

  async close(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // gone already
    }
    await this.#child.status;
    this.#control.close();
    await this.#forward.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

if (import.meta.main) {
  main().catch((err) => {
    console.error(`fault_proxy: ${(err as Error).message}`);
    Deno.exit(1);
  });
}
