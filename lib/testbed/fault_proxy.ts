/**
 * A fault-injecting HTTPS proxy in front of the real kube-apiserver, for the faults the real server
 * will not produce on demand: an error status for chosen requests, a slow reply, a watch cut short.
 * Everything else passes through untouched (headers, bearer token, streaming watch bodies), so the
 * client under test still talks to the real server.
 *
 *   deno run -A fault_proxy.ts --listen <host:port> --upstream <https url> --ca <file>
 *     --cert <file> --key <file> --control <unix socket>
 *
 * Run inside the master's namespace (beside the API server) by `FaultProxy` below, which
 * `ControlPlane.faultProxy()` starts. Prints "ready" once serving. The control socket takes `POST /faults` (a `FaultRule`, appended),
 * `DELETE /faults`, and `GET /stats` (requests seen, faults fired).
 */

/** One rule; the first rule whose method and path match a request fires, `times` times. */
export interface FaultRule {
  /** HTTP method to match (any when absent). */
  method?: string;
  /** Regular expression over the request path plus query. */
  path: string;
  /** Answer with this status and a Kubernetes `Status` body instead of forwarding. */
  status?: number;
  reason?: string;
  message?: string;
  /** Forward, but hold the request this long first. */
  delayMs?: number;
  /** Forward, then end the response body (a watch) abruptly after this long. */
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
  };
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
    if (rule?.status) {
      return new Response(statusBody(rule), {
        status: rule.status,
        headers: { "content-type": "application/json" },
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
      return new Response(`upstream: ${(err as Error).message}`, { status: 502 });
    }
    const out = new Headers();
    for (const [k, v] of up.headers) if (!HOP.includes(k.toLowerCase())) out.set(k, v);
    let body = up.body;
    if (rule?.cutAfterMs && body) {
      const reader = body.getReader();
      const cutAt = Date.now() + rule.cutAfterMs;
      body = new ReadableStream<Uint8Array<ArrayBuffer>>({
        async pull(ctl) {
          const left = cutAt - Date.now();
          const next = await Promise.race([
            reader.read(),
            new Promise<"cut">((r) => setTimeout(() => r("cut"), Math.max(0, left))),
          ]);
          if (next === "cut") {
            reader.cancel().catch(() => {});
            ctl.error(new Error("cut by fault proxy"));
          } else if (next.done) ctl.close();
          else ctl.enqueue(next.value);
        },
        cancel() {
          reader.cancel().catch(() => {});
        },
      });
    }
    return new Response(body, { status: up.status, headers: out });
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
    if (url.pathname === "/stats") return Response.json({ ...stats, pending: rules.length });
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
}

/** The proxy process, as tests drive it: rules in, counters out. `close()` kills it. */
export class FaultProxy implements AsyncDisposable {
  /** `https://<address>:<port>`: put it in a kubeconfig instead of the API server's URL. */
  readonly server: string;
  readonly #child: Deno.ChildProcess;
  readonly #control: Deno.HttpClient;

  private constructor(server: string, child: Deno.ChildProcess, control: string) {
    this.server = server;
    this.#child = child;
    this.#control = Deno.createHttpClient({ proxy: { transport: "unix", path: control } });
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
    const proxy = new FaultProxy(`https://${o.address}:${o.port}`, child, o.control);
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

  async close(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // gone already
    }
    await this.#child.status;
    this.#control.close();
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
