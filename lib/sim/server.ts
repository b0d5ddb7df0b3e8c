/**
 * The simulator's HTTP face: the QingCloud API on `/iaas/` and `/iaas` (GET query or POST form),
 * plus an unauthenticated control API under `/_sim/` for tests. Serves on TCP and optionally on a
 * unix socket with the same handler.
 *
 * Per request, in order: count the action (every request, rejected ones too) → maybe drop the
 * connection (transport fault) → authenticate (auth.ts) → zone/version → known action (else
 * 1400) → rate limit (2500) → injected error → finish due jobs → run the action → reply
 * `{action, ret_code: 0, …}` or `{ret_code, message}`, always HTTP 200 with JSON.
 *
 * Jobs finish on a timer at their due time and, at the latest, before the next request runs, so
 * a client never sees a stale job. With the Linux backend the job stays `working` until its
 * links exist (or are gone); backend work is serialised on one queue.
 */
import { errorMessage } from "../errors.ts";
import { sleep } from "../sleep.ts";
import type { Runner } from "../linux/exec.ts";
import { type Logger, nullLogger } from "../log.ts";
import { ACTIONS } from "./actions.ts";
import { verifyRequest } from "./auth.ts";
import {
  injectedError,
  invalidParameter,
  permissionDenied,
  quotaExceeded,
  SimApiError,
} from "./errors.ts";
import { DEFAULT_KNOBS, type Knobs, mergeKnobs, parseKnobs } from "./knobs.ts";
import { LinuxNetwork, type NicPlacement } from "./linux.ts";
import { decodeParams } from "./params.ts";
import { createRng, deriveSeed, type Rng } from "./prng.ts";
import type { Scenario } from "./scenario.ts";
import { type InstanceStatus, type Job, type JobPlan, World } from "./world.ts";

export interface SimControl {
  /** Changes knobs (validated; a bad value throws `ConfigError` naming the key). */
  setKnobs(patch: Partial<Knobs>): Knobs;
  knobs(): Knobs;
  /** API calls per action, rejected ones included. */
  counters(): Record<string, number>;
  /** Replies per ret_code (dropped connections under `dropped`). */
  retCodes(): Record<string, number>;
  resetCounters(): void;
  /** Node reboot: NICs stay attached; with Linux, the instance namespace is rebuilt. */
  reboot(instanceId: string): Promise<void>;
  setInstanceStatus(instanceId: string, status: InstanceStatus): void;
  /** Finishes every job that is due now (tests with an injected clock call this). */
  settle(): Promise<void>;
  /** Linux backend namespaces (empty without `linux`). */
  namespaces(): string[];
  /** Namespace of an instance with the Linux backend. */
  instanceNamespace(instanceId: string): string | undefined;
}

export type SimWorld = World;

export interface SimServer extends AsyncDisposable {
  /** e.g. `http://127.0.0.1:41234/iaas/`. */
  url: string;
  /** Set when also serving on a unix socket. */
  socketPath?: string;
  /** SDK config keys (+ `socket_path`) a client needs; first active access key by default. */
  clientConfig(o?: { accessKeyId?: string }): Record<string, string | number>;
  control: SimControl;
  world: SimWorld;
  /** Stops serving; with Linux, removes every namespace it made. */
  close(): Promise<void>;
}

export interface StartSimOptions {
  scenario: Scenario;
  /** `host:port`; default `127.0.0.1:0` (a free port). */
  listen?: string;
  socketPath?: string;
  linux?: boolean;
  logger?: Logger;
  now?: () => number;
  /** Command runner for the Linux backend (default: the real one). */
  runner?: Runner;
}

const JSON_HEADERS = { "content-type": "application/json; charset=utf-8" };

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

/**
 * A reply that never completes: headers go out, then the body stream errors and the connection
 * is cut. (Deno.serve cannot close a connection before the status line; a client sees the
 * same thing as a connection reset while reading the reply.)
 */
function dropped(): Response {
  return new Response(
    new ReadableStream({
      pull(c) {
        c.error(new DOMException("simulated transport failure", "AbortError"));
      },
    }),
    { headers: JSON_HEADERS },
  );
}

export function parseListen(listen: string): { hostname: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:]*)):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new SimApiError(1100, `Listen address "${listen}" must look like 127.0.0.1:8080`);
  }
  return { hostname: m[1] ?? (m[2] || "127.0.0.1"), port };
}

interface Bucket {
  tokens: number;
  lastMs: number;
}

class Sim {
  readonly world: World;
  #knobs: Knobs;
  #faults!: Rng;
  #latency!: Rng;
  #counters = new Map<string, number>();
  #retCodes = new Map<string, number>();
  #buckets = new Map<string, Bucket>();
  #queue: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Aborted on close: ends the calls `replyDelayMs` holds. */
  #closing = new AbortController();
  readonly now: () => number;
  readonly logger: Logger;
  readonly net: LinuxNetwork | null;

  constructor(o: StartSimOptions & { net?: (w: World) => LinuxNetwork }) {
    this.now = o.now ?? (() => Date.now());
    this.logger = o.logger ?? nullLogger;
    this.#knobs = mergeKnobs(DEFAULT_KNOBS, o.scenario.knobs);
    this.#reseed();
    this.world = new World({
      scenario: o.scenario,
      now: this.now,
      planJob: (action) => this.#planJob(action),
    });
    this.net = o.net ? o.net(this.world) : null;
  }

  #reseed() {
    this.#faults = createRng(deriveSeed(this.#knobs.seed, 1));
    this.#latency = createRng(deriveSeed(this.#knobs.seed, 2));
  }

  #planJob(action: string): JobPlan {
    const k = this.#knobs;
    const lat = k.jobLatencyMs;
    const totalMs = typeof lat === "number"
      ? lat
      : Math.round(lat[0] + this.#latency.next() * (lat[1] - lat[0]));
    const rate = k.jobFailureRate[action] ?? k.jobFailureRate["*"] ?? 0;
    return {
      totalMs,
      pendingMs: Math.min(200, totalMs * k.jobPendingShare),
      fail: rate > 0 && this.#faults.next() < rate,
    };
  }

  knobs(): Knobs {
    return structuredClone(this.#knobs);
  }

  setKnobs(patch: Partial<Knobs>): Knobs {
    const checked = parseKnobs(patch);
    this.#knobs = mergeKnobs(this.#knobs, checked);
    if (checked.seed !== undefined) this.#reseed();
    if (Object.hasOwn(checked, "rateLimit")) this.#buckets.clear();
    return this.knobs();
  }

  counters(): Record<string, number> {
    return Object.fromEntries(this.#counters);
  }

  retCodes(): Record<string, number> {
    return Object.fromEntries(this.#retCodes);
  }

  resetCounters() {
    this.#counters.clear();
    this.#retCodes.clear();
  }

  #bump(map: Map<string, number>, key: string) {
    map.set(key, (map.get(key) ?? 0) + 1);
  }

  // -------------------------------------------------------------- jobs

  /** Runs `fn` after everything queued before it (backend work must not interleave). */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.then(() => {}, () => {});
    return run;
  }

  settle(): Promise<void> {
    return this.#serial(() => this.#settleNow());
  }

  async #settleNow(): Promise<void> {
    for (;;) {
      const due = this.world.dueJobs(this.now());
      if (due.length === 0) break;
      for (const job of due) await this.#finish(job);
    }
    this.#schedule();
  }

  #placements(nicIds: string[], instanceId?: string): NicPlacement[] {
    const out: NicPlacement[] = [];
    for (const id of nicIds) {
      const nic = this.world.nics.get(id);
      if (!nic) continue;
      out.push({
        nicId: nic.id,
        ip: nic.privateIp,
        vxnetId: nic.vxnetId,
        instanceId: instanceId ?? nic.instanceId,
      });
    }
    return out;
  }

  async #finish(job: Job) {
    const e = job.effect;
    if (!this.net || job.willFail || (e.kind !== "attach" && e.kind !== "detach")) {
      this.world.finishJob(job.id, { ok: true });
      return;
    }
    this.world.claimJob(job.id);
    const placements = e.kind === "attach"
      ? this.#placements(e.nicIds, e.instanceId)
      : this.#placements(e.nicIds);
    try {
      if (e.kind === "attach") await this.net.attach(placements);
      else await this.net.detach(placements);
      this.world.finishJob(job.id, { ok: true });
    } catch (err) {
      this.logger.error("job failed in the linux backend", {
        job: job.id,
        action: job.action,
        error: errorMessage(err),
      });
      if (e.kind === "attach") {
        // Undo a partial plug so the failed job really leaves the NICs as they were.
        await this.net.detach(placements).catch(() => {});
      }
      this.world.finishJob(job.id, { ok: false, errorCode: "5000" });
    }
  }

  #schedule() {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#closed) return;
    const next = this.world.nextDueMs();
    if (next === undefined) return;
    const delay = Math.max(0, Math.min(next - this.now(), 2 ** 31 - 1));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.settle().catch((err) =>
        this.logger.error("settling jobs failed", { error: errorMessage(err) })
      );
    }, delay);
  }

  async reboot(instanceId: string): Promise<void> {
    await this.#serial(async () => {
      const inst = this.world.recordReboot(instanceId);
      if (this.net) {
        const attached = this.world.instanceNics(inst.id).filter((n) => n.role === 0);
        await this.net.reboot(inst.id, this.#placements(attached.map((n) => n.id), inst.id));
      }
      this.logger.info("instance rebooted", { instance: inst.id, boot: inst.bootCount });
    });
  }

  // -------------------------------------------------------------- API requests

  #takeToken(keyId: string): boolean {
    const rl = this.#knobs.rateLimit;
    if (!rl) return true;
    const now = this.now();
    const b = this.#buckets.get(keyId) ?? { tokens: rl.burst, lastMs: now };
    b.tokens = Math.min(rl.burst, b.tokens + ((now - b.lastMs) / 1000) * rl.perSecond);
    b.lastMs = now;
    this.#buckets.set(keyId, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  #transportFault(): "before" | "after" | null {
    const k = this.#knobs;
    if (k.transportFailureRate <= 0 || this.#faults.next() >= k.transportFailureRate) return null;
    if (k.transportFailureMode !== "mixed") return k.transportFailureMode;
    return this.#faults.next() < 0.5 ? "before" : "after";
  }

  async handleApi(req: Request, path: string): Promise<Response> {
    const started = performance.now();
    let params: Record<string, string>;
    try {
      params = decodeParams(new URL(req.url).search);
      if (req.method === "POST") decodeParams(await req.text(), params);
    } catch (err) {
      this.#bump(this.#counters, "(malformed)");
      const e = err instanceof SimApiError ? err : invalidParameter("unreadable request");
      this.#bump(this.#retCodes, String(e.retCode));
      return json({ ret_code: e.retCode, message: e.message });
    }
    const action = params["action"] ?? "";
    this.#bump(this.#counters, action === "" ? "(none)" : action);

    const hold = this.#knobs.replyDelayMs[action] ?? this.#knobs.replyDelayMs["*"] ?? 0;
    if (hold > 0) {
      // Not `req.signal`: in Deno 2 it also aborts on a delivered reply, and reading it warns.
      await sleep(hold, this.#closing.signal);
      if (this.#closing.signal.aborted) return dropped();
    }
    const fault = this.#transportFault();
    if (fault === "before") {
      this.#bump(this.#retCodes, "dropped");
      return dropped();
    }
    const body = await this.#execute(req.method as "GET" | "POST", path, params, action);
    this.logger.debug("api call", {
      action,
      ret_code: body.ret_code,
      ms: Math.round(performance.now() - started),
    });
    if (fault === "after") {
      this.#bump(this.#retCodes, "dropped");
      return dropped();
    }
    this.#bump(this.#retCodes, String(body.ret_code));
    return json(body);
  }

  async #execute(
    method: "GET" | "POST",
    path: string,
    params: Record<string, string>,
    action: string,
  ): Promise<Record<string, unknown> & { ret_code: number }> {
    try {
      const key = await verifyRequest({
        method,
        path,
        params,
        lookupKey: (id) => this.world.accessKey(id),
        nowMs: this.now(),
        timeWindowSec: this.#knobs.timeWindowSec,
        lenientPath: this.#knobs.lenientPath,
      });
      if (params["version"] !== undefined && params["version"] !== "1") {
        throw invalidParameter(`version [${params["version"]}] must be 1`);
      }
      const zone = params["zone"];
      if (zone === undefined || zone === "") throw invalidParameter("parameter [zone] is required");
      if (zone !== this.world.zone) throw invalidParameter(`zone [${zone}] does not exist`);
      if (action === "") throw invalidParameter("parameter [action] is required");
      const handler = Object.hasOwn(ACTIONS, action) ? ACTIONS[action] : undefined;
      if (!handler) throw permissionDenied("can't handle this request");
      if (!this.#takeToken(key.id)) {
        throw quotaExceeded("too many API requests in a short time, slow down");
      }
      const inj = this.#knobs.errors[action] ?? this.#knobs.errors["*"];
      if (inj && inj.rate > 0 && this.#faults.next() < inj.rate) {
        throw injectedError(inj.code, inj.message);
      }
      await this.settle();
      // Synchronous from here on: the action sees and leaves a consistent world.
      const out = handler({ world: this.world, owner: key.owner, params, knobs: this.#knobs });
      this.#schedule();
      return { action: `${action}Response`, ret_code: 0, ...out };
    } catch (err) {
      if (err instanceof SimApiError) return { ret_code: err.retCode, message: err.message };
      this.logger.error("simulator action crashed", { action, error: errorMessage(err) });
      return { ret_code: 5000, message: "InternalError, the simulator failed, see its log" };
    }
  }

  // -------------------------------------------------------------- control API

  async handleControl(req: Request, path: string): Promise<Response> {
    const parts = path.split("/").filter((p) => p !== "").slice(1); // drop "_sim"
    const route = `${req.method} ${parts.join("/")}`;
    try {
      if (route === "GET counters") {
        return json({ counters: this.counters(), ret_codes: this.retCodes() });
      }
      if (route === "POST counters/reset") {
        this.resetCounters();
        return json({ ok: true });
      }
      if (route === "GET knobs") return json(this.knobs());
      if (route === "POST knobs") return json(this.setKnobs(await readJson(req) as Partial<Knobs>));
      if (route === "GET state") return json(this.world.snapshot());
      if (route === "POST settle") {
        await this.settle();
        return json({ ok: true });
      }
      if (route === "POST clusters") {
        const body = await readJson(req) as { cluster_id?: unknown; security_group_id?: unknown };
        if (typeof body?.cluster_id !== "string" || typeof body?.security_group_id !== "string") {
          return json({ error: 'Fields "cluster_id" and "security_group_id" are required' }, 400);
        }
        const c = this.world.addCluster({
          id: body.cluster_id,
          securityGroupId: body.security_group_id,
        });
        return json({ ok: true, cluster_id: c.id });
      }
      if (req.method === "POST" && parts[0] === "instances" && parts.length === 3) {
        const id = decodeURIComponent(parts[1]);
        if (!this.world.instances.has(id)) return json({ error: `Unknown instance "${id}"` }, 404);
        if (parts[2] === "reboot") {
          await this.reboot(id);
          return json({ ok: true, boot_count: this.world.instances.get(id)!.bootCount });
        }
        if (parts[2] === "status") {
          const body = await readJson(req) as { status?: unknown };
          const allowed = ["pending", "running", "stopped", "suspended"];
          if (typeof body?.status !== "string" || !allowed.includes(body.status)) {
            return json({ error: `Field "status" must be one of ${allowed.join(", ")}` }, 400);
          }
          this.world.setInstanceStatus(id, body.status as InstanceStatus);
          return json({ ok: true });
        }
      }
      return json({ error: `Unknown control route "${route}"` }, 404);
    } catch (err) {
      return json({ error: errorMessage(err) }, 400);
    }
  }

  /** Ends the calls `replyDelayMs` holds (before the HTTP servers wait for their handlers). */
  releaseHeld(): void {
    this.#closing.abort();
  }

  async close() {
    this.#closed = true;
    this.releaseHeld();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#queue;
    if (this.net) await this.net.close();
  }
}

async function readJson(req: Request): Promise<unknown> {
  const text = await req.text();
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new Error("Request body is not valid JSON");
  }
}

async function removeStaleSocket(path: string) {
  try {
    const st = await Deno.lstat(path);
    if (!st.isSocket) {
      throw new SimApiError(5000, `Socket path "${path}" exists and is not a socket`);
    }
    await Deno.remove(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/** Starts the simulator. With `linux`, builds the namespaces first (root required). */
export async function startSim(o: StartSimOptions): Promise<SimServer> {
  const logger = o.logger ?? nullLogger;
  let runner = o.runner;
  if (o.linux && !runner) {
    const { CommandRunner } = await import("../linux/exec.ts");
    runner = new CommandRunner();
  }
  const sim = new Sim({
    ...o,
    logger,
    ...(o.linux
      ? {
        net: (w: World) =>
          new LinuxNetwork(w, {
            prefix: o.scenario.linuxPrefix,
            deps: { runner: runner!, logger },
          }),
      }
      : {}),
  });
  if (sim.net) await sim.net.setup();

  const handler = async (req: Request): Promise<Response> => {
    const path = new URL(req.url).pathname;
    if (path === "/iaas/" || path === "/iaas") {
      if (req.method !== "GET" && req.method !== "POST") {
        return new Response("method not allowed\n", {
          status: 405,
          headers: { allow: "GET, POST" },
        });
      }
      return await sim.handleApi(req, path);
    }
    if (path === "/_sim" || path.startsWith("/_sim/")) return await sim.handleControl(req, path);
    return new Response("not found\n", { status: 404 });
  };
  const onError = (err: unknown) => {
    // Simulated transport failures end here too; they are expected, anything else is logged.
    if (!(err instanceof DOMException && err.name === "AbortError")) {
      logger.error("http handler failed", { error: errorMessage(err) });
    }
    return json({ ret_code: 5000, message: "InternalError, the simulator failed" }, 500);
  };

  const servers: Deno.HttpServer[] = [];
  const { hostname, port } = parseListen(o.listen ?? "127.0.0.1:0");
  try {
    servers.push(Deno.serve({ hostname, port, onListen: () => {}, onError }, handler));
    if (o.socketPath) {
      await removeStaleSocket(o.socketPath);
      servers.push(
        Deno.serve({ transport: "unix", path: o.socketPath, onListen: () => {}, onError }, handler),
      );
    }
  } catch (err) {
    await Promise.all(servers.map((s) => s.shutdown()));
    await sim.close();
    throw err;
  }
  const addr = servers[0].addr as Deno.NetAddr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const url = `http://${host}:${addr.port}/iaas/`;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      sim.releaseHeld();
      await Promise.all(servers.map((s) => s.shutdown()));
      await sim.close();
      if (o.socketPath) await Deno.remove(o.socketPath).catch(() => {});
    })();
    return closing;
  };

  const control: SimControl = {
    setKnobs: (p) => sim.setKnobs(p),
    knobs: () => sim.knobs(),
    counters: () => sim.counters(),
    retCodes: () => sim.retCodes(),
    resetCounters: () => sim.resetCounters(),
    reboot: (id) => sim.reboot(id),
    setInstanceStatus: (id, s) => sim.world.setInstanceStatus(id, s),
    settle: () => sim.settle(),
    namespaces: () => sim.net?.namespaces() ?? [],
    instanceNamespace: (id) => sim.net?.topology.instances.get(id)?.namespace,
  };

  logger.info("simulator serving", { url, socket: o.socketPath, linux: !!o.linux });
  return {
    url,
    ...(o.socketPath ? { socketPath: o.socketPath } : {}),
    clientConfig(co = {}) {
      const key = co.accessKeyId
        ? sim.world.accessKey(co.accessKeyId)
        : [...sim.world.accessKeys.values()].find((k) => k.status === "active");
      if (!key) throw new SimApiError(1200, `No usable access key "${co.accessKeyId ?? ""}"`);
      return {
        qy_access_key_id: key.id,
        qy_secret_access_key: key.secret,
        zone: sim.world.zone,
        host: addr.hostname,
        port: addr.port,
        protocol: "http",
        uri: "/iaas/",
        connection_retries: 3,
        connection_timeout: 30,
        ...(o.socketPath ? { socket_path: o.socketPath } : {}),
      };
    },
    control,
    world: sim.world,
    close,
    [Symbol.asyncDispose]: close,
  };
}
