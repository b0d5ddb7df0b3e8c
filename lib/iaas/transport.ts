/**
 * The QingCloud API's transport for `HttpIaasClient` (client.ts): HTTP(S), or a unix socket when
 * the config has `socketPath`. Every attempt takes a rate-limit token, is freshly signed (new
 * `time_stamp`) and has its own timeout. Transport errors and ret_code 5000/5100 are retried with
 * jittered backoff up to `connectionRetries`; 2500 (quota/throttling) is retried more slowly,
 * `quotaRetries` times. Calls that create things (CreateNics, AllocateVips, …) are not resent
 * after a transport error that may have reached the server: a blind resend could create
 * duplicates, so the caller reconciles instead (e.g. DescribeNics by `nic_name`).
 * Errors never carry the URL (it holds the signature) or the secret.
 */
import type { z } from "zod";
import { nullLogger } from "../log.ts";
import type { Logger } from "../log.ts";
import { backoffDelay, DEFAULT_RETRY_POLICY, type RetryPolicy } from "./backoff.ts";
import { type IaasConfig, iaasEndpoint } from "./config.ts";
import { IaasError, IaasTransportError, RetCode } from "./errors.ts";
import { flattenParams, type ParamValue } from "./params.ts";
import { abortableSleep, type RateLimit, TokenBucket } from "./rate_limit.ts";
import {
  canonicalQuery,
  computeSignature,
  formatTimeStamp,
  type HttpMethod,
  percentEncode,
  type SignatureMethod,
} from "./signer.ts";
import { EnvelopeSchema, parseReply } from "./types.ts";

/** One attempt of one action, for metrics. */
export interface IaasCallEvent {
  action: string;
  outcome: "ok" | "error" | "transport";
  /** Set when the server answered with `ret_code != 0`. */
  retCode?: number;
  durationMs: number;
  /** 1 for the first attempt. */
  attempt: number;
}

export interface HttpIaasClientDeps {
  /** Wall clock for `time_stamp`. */
  wallClock(): Date;
  /** Monotonic milliseconds for durations and the rate limiter. */
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** [0, 1), for backoff jitter. */
  random(): number;
}

export interface HttpIaasClientOptions {
  config: IaasConfig;
  /** Token bucket shared by all calls of this client; `null` disables it. Default 10/s, burst 20. */
  rateLimit?: RateLimit | null;
  retry?: Partial<RetryPolicy>;
  /** Default HmacSHA256. */
  signatureMethod?: SignatureMethod;
  /** "auto" (default) uses GET unless the URL would exceed `postThresholdBytes`. */
  httpMethod?: "auto" | HttpMethod;
  /** Default 4096. */
  postThresholdBytes?: number;
  onCall?: (e: IaasCallEvent) => void;
  logger?: Logger;
  deps?: Partial<HttpIaasClientDeps>;
}

export const DEFAULT_RATE_LIMIT: RateLimit = { perSecond: 10, burst: 20 };

/** Actions whose blind resend could create a second object. */
const CREATING_ACTIONS: ReadonlySet<string> = new Set([
  "CreateNics",
  "CreateTag",
  "AllocateVips",
  "AddSecurityGroupRules",
]);

interface RawReply {
  [key: string]: unknown;
}

/** One client's transport: rate limit, signing, one attempt, retries. */
export class IaasTransport implements AsyncDisposable {
  readonly config: IaasConfig;
  #endpoint: string;
  #bucket: TokenBucket | null;
  #retry: RetryPolicy;
  #signatureMethod: SignatureMethod;
  #httpMethod: "auto" | HttpMethod;
  #postThreshold: number;
  #onCall?: (e: IaasCallEvent) => void;
  #log: Logger;
  #deps: HttpIaasClientDeps;
  #httpClient?: Deno.HttpClient;
  #closed = new AbortController();

  constructor(o: HttpIaasClientOptions) {
    this.config = o.config;
    this.#endpoint = iaasEndpoint(o.config);
    this.#deps = {
      wallClock: () => new Date(),
      now: () => performance.now(),
      sleep: abortableSleep,
      random: Math.random,
      ...o.deps,
    };
    const limit = o.rateLimit === undefined ? DEFAULT_RATE_LIMIT : o.rateLimit;
    this.#bucket = limit ? new TokenBucket(limit, this.#deps) : null;
    this.#retry = { ...DEFAULT_RETRY_POLICY, ...o.retry };
    this.#signatureMethod = o.signatureMethod ?? "HmacSHA256";
    this.#httpMethod = o.httpMethod ?? "auto";
    this.#postThreshold = o.postThresholdBytes ?? 4096;
    this.#onCall = o.onCall;
    this.#log = (o.logger ?? nullLogger).child({ component: "iaas" });
    if (o.config.socketPath) {
      this.#httpClient = Deno.createHttpClient({
        proxy: { transport: "unix", path: o.config.socketPath },
      });
    }
  }

  /** Aborts waits in progress and releases the unix-socket HTTP client. */
  close(): Promise<void> {
    this.#closed.abort(new Error("IaaS client closed"));
    this.#httpClient?.close();
    this.#httpClient = undefined;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Calls `action` with `params` (retrying where safe) and validates the reply with `schema`. */
  async request<T extends z.ZodType>(
    action: string,
    params: Readonly<Record<string, ParamValue>>,
    schema: T,
  ): Promise<z.output<T>> {
    const raw = await this.#callWithRetry(action, flattenParams(params));
    return parseReply(action, schema, raw);
  }

  async #callWithRetry(action: string, params: Record<string, string>): Promise<RawReply> {
    let retries = 0;
    let quotaRetries = 0;
    for (let attempt = 1;; attempt++) {
      if (this.#bucket) await this.#bucket.acquire(this.#closed.signal);
      const started = this.#deps.now();
      let reply: RawReply;
      try {
        reply = await this.#attempt(action, params);
      } catch (err) {
        const durationMs = this.#deps.now() - started;
        if (!(err instanceof IaasTransportError)) throw err;
        this.#emit({ action, outcome: "transport", durationMs, attempt });
        const resendable = !err.maybeSent || !CREATING_ACTIONS.has(action);
        if (!resendable || retries >= this.config.connectionRetries) throw err;
        retries++;
        await this.#backoff(action, attempt, this.#retry.baseMs, retries, err.message);
        continue;
      }
      const durationMs = this.#deps.now() - started;
      const env = parseReply(action, EnvelopeSchema, reply);
      if (env.ret_code === RetCode.OK) {
        this.#emit({ action, outcome: "ok", durationMs, attempt });
        return reply;
      }
      this.#emit({ action, outcome: "error", retCode: env.ret_code, durationMs, attempt });
      const err = new IaasError(action, env.ret_code, env.message);
      const busy = env.ret_code === RetCode.INTERNAL_ERROR || env.ret_code === RetCode.SERVER_BUSY;
      if (busy && retries < this.config.connectionRetries) {
        retries++;
        await this.#backoff(action, attempt, this.#retry.baseMs, retries, err.message);
        continue;
      }
      if (env.ret_code === RetCode.QUOTA_EXCEEDED && quotaRetries < this.#retry.quotaRetries) {
        quotaRetries++;
        await this.#backoff(action, attempt, this.#retry.quotaBaseMs, quotaRetries, err.message);
        continue;
      }
      throw err;
    }
  }

  async #backoff(
    action: string,
    attempt: number,
    baseMs: number,
    retry: number,
    why: string,
  ): Promise<void> {
    const delayMs = backoffDelay(retry, {
      baseMs,
      capMs: this.#retry.capMs,
      random: this.#deps.random,
    });
    this.#log.warn("Retrying QingCloud call", { action, attempt, delayMs, reason: why });
    await this.#deps.sleep(delayMs, this.#closed.signal);
  }

  #emit(e: IaasCallEvent): void {
    this.#log.debug("QingCloud call", { ...e });
    try {
      this.#onCall?.(e);
    } catch (err) {
      // A metrics hook must never break a cloud call.
      this.#log.warn("onCall hook failed", { error: String(err) });
    }
  }

  /** One signed HTTP exchange; returns the parsed JSON object or throws IaasTransportError. */
  async #attempt(action: string, actionParams: Record<string, string>): Promise<RawReply> {
    const cfg = this.config;
    const params: Record<string, string> = {
      ...actionParams,
      action,
      zone: cfg.zone,
      access_key_id: cfg.accessKeyId,
      signature_method: this.#signatureMethod,
      signature_version: "1",
      time_stamp: formatTimeStamp(this.#deps.wallClock()),
    };
    const query = canonicalQuery(params);
    // ~60 bytes for "&signature=<44 base64 chars, url-encoded>".
    const method: HttpMethod = this.#httpMethod !== "auto"
      ? this.#httpMethod
      : this.#endpoint.length + 1 + query.length + 60 > this.#postThreshold
      ? "POST"
      : "GET";
    const signature = await computeSignature({
      method,
      path: cfg.uri,
      params,
      secret: cfg.secretAccessKey,
      signatureMethod: this.#signatureMethod,
    });
    const signed = `${query}&signature=${percentEncode(signature)}`;
    const init: RequestInit & { client?: Deno.HttpClient } = method === "GET" ? { method } : {
      method,
      body: signed,
      headers: { "content-type": "application/x-www-form-urlencoded" },
    };
    if (this.#httpClient) init.client = this.#httpClient;
    const url = method === "GET" ? `${this.#endpoint}?${signed}` : this.#endpoint;

    const timeout = new AbortController();
    const timer = setTimeout(
      () => timeout.abort(new DOMException("request timed out", "TimeoutError")),
      cfg.timeoutMs,
    );
    const onClose = () => timeout.abort(this.#closed.signal.reason);
    this.#closed.signal.addEventListener("abort", onClose, { once: true });
    init.signal = timeout.signal;
    let status: number;
    let text: string;
    try {
      const res = await fetch(url, init);
      status = res.status;
      text = await res.text();
    } catch (err) {
      throw this.#transportError(action, err, timeout.signal.aborted);
    } finally {
      clearTimeout(timer);
      this.#closed.signal.removeEventListener("abort", onClose);
    }
    if (status !== 200) {
      throw new IaasTransportError({
        action,
        reason: "http_status",
        detail: `HTTP status ${status}`,
        httpStatus: status,
        maybeSent: true,
      });
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      throw new IaasTransportError({
        action,
        reason: "bad_body",
        detail: "the reply is not a JSON object",
        maybeSent: true,
      });
    }
    return body as RawReply;
  }

  #transportError(action: string, err: unknown, aborted: boolean): IaasTransportError {
    if (this.#closed.signal.aborted) {
      return new IaasTransportError({
        action,
        reason: "connection",
        detail: "the client was closed",
        maybeSent: true,
      });
    }
    if (aborted) {
      return new IaasTransportError({
        action,
        reason: "timeout",
        detail: `no reply within ${this.config.timeoutMs} ms`,
        maybeSent: true,
      });
    }
    // Deno's fetch error text includes the full URL (with signature): never copy it. The
    // "(Connect)" marker tells that the connection was never established.
    const causeText = err instanceof Error && err.cause instanceof Error ? err.cause.message : "";
    const connect = causeText.includes("(Connect)");
    const where = this.config.socketPath
      ? `unix socket "${this.config.socketPath}"`
      : `"${this.config.host}:${this.config.port}"`;
    return new IaasTransportError({
      action,
      reason: "connection",
      detail: connect
        ? `cannot connect to ${where}`
        : `connection to ${where} failed before a reply`,
      maybeSent: !connect,
    });
  }
}
