/**
 * `HttpIaasClient`: the QingCloud API over HTTP(S), or over a unix socket when the config has
 * `socketPath`. Every attempt takes a rate-limit token, is freshly signed (new `time_stamp`) and
 * has its own timeout. Transport errors and ret_code 5000/5100 are retried with jittered backoff
 * up to `connectionRetries`; 2500 (quota/throttling) is retried more slowly, `quotaRetries` times.
 * Calls that create things (CreateNics, AllocateVips, …) are not resent after a transport error
 * that may have reached the server: a blind resend could create duplicates, so the caller
 * reconciles instead (e.g. DescribeNics by `nic_name`).
 */
import type { z } from "zod";
import { nullLogger } from "../log.ts";
import type { Logger } from "../log.ts";
import { backoffDelay, DEFAULT_RETRY_POLICY, type RetryPolicy } from "./backoff.ts";
import { type IaasConfig, iaasEndpoint } from "./config.ts";
import { IaasError, IaasTransportError, RetCode } from "./errors.ts";
import type { IaasClient } from "./mod.ts";
import { abortableSleep, type RateLimit, TokenBucket } from "./rate_limit.ts";
import {
  canonicalQuery,
  computeSignature,
  formatTimeStamp,
  type HttpMethod,
  percentEncode,
  type SignatureMethod,
} from "./signer.ts";
import {
  AccessKeySchema,
  AddSecurityGroupRulesReplySchema,
  AllocateVipsReplySchema,
  type AllocateVipsRequest,
  type CreatedNic,
  CreateNicsReplySchema,
  type CreateNicsRequest,
  CreateTagReplySchema,
  type DescribeAccessKeysRequest,
  type DescribeInstancesRequest,
  type DescribeJobsRequest,
  type DescribeNicsRequest,
  describeReply,
  type DescribeSecurityGroupRulesRequest,
  type DescribeSecurityGroupsRequest,
  type DescribeTagsRequest,
  type DescribeVipsRequest,
  type DescribeVxnetsRequest,
  EnvelopeSchema,
  InstanceSchema,
  JobReplySchema,
  JobSchema,
  NicSchema,
  type Page,
  parseReply,
  type SecurityGroupRuleInput,
  SecurityGroupRuleSchema,
  SecurityGroupSchema,
  type TagPairInput,
  TagSchema,
  VipSchema,
  VxnetSchema,
} from "./types.ts";
import type {
  AccessKey,
  Instance,
  Job,
  Nic,
  SecurityGroup,
  SecurityGroupRule,
  Tag,
  Vip,
  Vxnet,
} from "./types.ts";

// ---- parameter flattening ---------------------------------------------------------------------

export type ParamScalar = string | number;
export type ParamObject = Readonly<Record<string, ParamScalar | undefined>>;
export type ParamValue =
  | ParamScalar
  | undefined
  | readonly ParamScalar[]
  | readonly ParamObject[];

/**
 * Wire form of action parameters: scalars as decimal/string, lists as `name.1..n`, lists of
 * objects as `name.N.field`; `undefined` and empty lists send nothing.
 */
export function flattenParams(
  params: Readonly<Record<string, ParamValue>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined) continue;
    if (!Array.isArray(value)) {
      out[name] = String(value);
      continue;
    }
    value.forEach((item: ParamScalar | ParamObject, i: number) => {
      const key = `${name}.${i + 1}`;
      if (typeof item === "object") {
        for (const [field, v] of Object.entries(item)) {
          if (v !== undefined) out[`${key}.${field}`] = String(v);
        }
      } else {
        out[key] = String(item);
      }
    });
  }
  return out;
}

// ---- options ----------------------------------------------------------------------------------

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

// ---- the client -------------------------------------------------------------------------------

export class HttpIaasClient implements IaasClient, AsyncDisposable {
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

  /**
   * Calls `action` with `params` and validates the reply with `schema`. Public so that rarely
   * used actions can be called without a typed method; prefer the typed methods.
   */
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

  // ---- typed actions --------------------------------------------------------------------------

  async #describe<T extends z.ZodType>(
    action: string,
    setKey: string,
    item: T,
    params: Readonly<Record<string, ParamValue>>,
  ): Promise<Page<z.output<T>>> {
    return await this.request(action, params, describeReply(setKey, item));
  }

  describeInstances(r: DescribeInstancesRequest = {}): Promise<Page<Instance>> {
    return this.#describe("DescribeInstances", "instance_set", InstanceSchema, {
      instances: r.instances,
      status: r.status,
      tags: r.tags,
      search_word: r.searchWord,
      verbose: r.verbose,
      offset: r.offset,
      limit: r.limit,
    });
  }

  describeVxnets(r: DescribeVxnetsRequest = {}): Promise<Page<Vxnet>> {
    return this.#describe("DescribeVxnets", "vxnet_set", VxnetSchema, {
      vxnets: r.vxnets,
      vxnet_type: r.vxnetType,
      search_word: r.searchWord,
      tags: r.tags,
      verbose: r.verbose,
      offset: r.offset,
      limit: r.limit,
    });
  }

  async createNics(r: CreateNicsRequest): Promise<CreatedNic[]> {
    const reply = await this.request("CreateNics", {
      vxnet: r.vxnet,
      count: r.count ?? (r.privateIps?.length || 1),
      nic_name: r.nicName,
      private_ips: r.privateIps,
      disable_ip: r.disableIp,
    }, CreateNicsReplySchema);
    return reply.nics.map((n) => ({ nicId: n.nic_id, privateIp: n.private_ip }));
  }

  async attachNics(r: { nics: readonly string[]; instance: string }): Promise<string> {
    const reply = await this.request("AttachNics", {
      nics: r.nics,
      instance: r.instance,
    }, JobReplySchema);
    return reply.job_id;
  }

  async detachNics(r: { nics: readonly string[] }): Promise<string> {
    const reply = await this.request("DetachNics", { nics: r.nics }, JobReplySchema);
    return reply.job_id;
  }

  async deleteNics(r: { nics: readonly string[] }): Promise<void> {
    await this.request("DeleteNics", { nics: r.nics }, EnvelopeSchema);
  }

  describeNics(r: DescribeNicsRequest = {}): Promise<Page<Nic>> {
    return this.#describe("DescribeNics", "nic_set", NicSchema, {
      nics: r.nics,
      nic_name: r.nicName,
      status: r.status,
      vxnets: r.vxnets,
      vxnet_type: r.vxnetType,
      instances: r.instances,
      offset: r.offset,
      limit: r.limit,
    });
  }

  describeJobs(r: DescribeJobsRequest = {}): Promise<Page<Job>> {
    return this.#describe("DescribeJobs", "job_set", JobSchema, {
      jobs: r.jobs,
      status: r.status,
      offset: r.offset,
      limit: r.limit,
    });
  }

  async createTag(r: { tagName: string; color?: string }): Promise<string> {
    const reply = await this.request("CreateTag", {
      tag_name: r.tagName,
      color: r.color,
    }, CreateTagReplySchema);
    return reply.tag_id;
  }

  describeTags(r: DescribeTagsRequest = {}): Promise<Page<Tag>> {
    return this.#describe("DescribeTags", "tag_set", TagSchema, {
      tags: r.tags,
      search_word: r.searchWord,
      verbose: r.verbose,
      offset: r.offset,
      limit: r.limit,
    });
  }

  async attachTags(pairs: readonly TagPairInput[]): Promise<void> {
    await this.request("AttachTags", { resource_tag_pairs: tagPairs(pairs) }, EnvelopeSchema);
  }

  async detachTags(pairs: readonly TagPairInput[]): Promise<void> {
    await this.request("DetachTags", { resource_tag_pairs: tagPairs(pairs) }, EnvelopeSchema);
  }

  async allocateVips(r: AllocateVipsRequest): Promise<{ jobId: string; vips: string[] }> {
    const reply = await this.request("AllocateVips", {
      vxnet_id: r.vxnetId,
      vip_name: r.vipName,
      vip_range: r.vipRange,
      vip_addrs: r.vipAddrs,
      count: r.count,
    }, AllocateVipsReplySchema);
    return { jobId: reply.job_id, vips: reply.vips };
  }

  describeVips(r: DescribeVipsRequest = {}): Promise<Page<Vip>> {
    return this.#describe("DescribeVips", "vip_set", VipSchema, {
      vips: r.vips,
      vxnets: r.vxnets,
      vip_name: r.vipName,
      vip_addrs: r.vipAddrs,
      offset: r.offset,
      limit: r.limit,
    });
  }

  async releaseVips(r: { vips: readonly string[] }): Promise<string> {
    const reply = await this.request("ReleaseVips", { vips: r.vips }, JobReplySchema);
    return reply.job_id;
  }

  describeSecurityGroups(r: DescribeSecurityGroupsRequest = {}): Promise<Page<SecurityGroup>> {
    return this.#describe("DescribeSecurityGroups", "security_group_set", SecurityGroupSchema, {
      security_groups: r.securityGroups,
      search_word: r.searchWord,
      tags: r.tags,
      verbose: r.verbose,
      offset: r.offset,
      limit: r.limit,
    });
  }

  describeSecurityGroupRules(
    r: DescribeSecurityGroupRulesRequest = {},
  ): Promise<Page<SecurityGroupRule>> {
    return this.#describe(
      "DescribeSecurityGroupRules",
      "security_group_rule_set",
      SecurityGroupRuleSchema,
      {
        security_group: r.securityGroup,
        security_group_rules: r.securityGroupRules,
        direction: r.direction,
        offset: r.offset,
        limit: r.limit,
      },
    );
  }

  async addSecurityGroupRules(
    r: { securityGroup: string; rules: readonly SecurityGroupRuleInput[] },
  ): Promise<string[]> {
    const reply = await this.request("AddSecurityGroupRules", {
      security_group: r.securityGroup,
      rules: r.rules.map((x) => ({
        protocol: x.protocol,
        priority: x.priority,
        action: x.action,
        direction: x.direction,
        security_group_rule_name: x.name,
        val1: x.val1,
        val2: x.val2,
        val3: x.val3,
      })),
    }, AddSecurityGroupRulesReplySchema);
    return reply.security_group_rules;
  }

  async applySecurityGroup(
    r: { securityGroup: string; instances?: readonly string[] },
  ): Promise<string> {
    const reply = await this.request("ApplySecurityGroup", {
      security_group: r.securityGroup,
      instances: r.instances,
    }, JobReplySchema);
    return reply.job_id;
  }

  describeAccessKeys(r: DescribeAccessKeysRequest = {}): Promise<Page<AccessKey>> {
    return this.#describe("DescribeAccessKeys", "access_key_set", AccessKeySchema, {
      access_keys: r.accessKeys,
      status: r.status,
      verbose: r.verbose,
      offset: r.offset,
      limit: r.limit,
    });
  }
}

function tagPairs(pairs: readonly TagPairInput[]): ParamObject[] {
  return pairs.map((p) => ({
    tag_id: p.tagId,
    resource_type: p.resourceType,
    resource_id: p.resourceId,
  }));
}
