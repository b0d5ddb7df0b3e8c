/**
 * `HttpIaasClient`: the `IaasClient` (api.ts) over HTTP(S) or a unix socket. This file maps each
 * typed action to its wire parameters and reply schema; transport.ts owns the exchange itself
 * (rate limit, signing, timeouts, which failures are retried and which creating calls are never
 * resent blindly).
 */
import type { z } from "zod";
import type { IaasClient } from "./api.ts";
import type { IaasConfig } from "./config.ts";
import type { ParamObject, ParamValue } from "./params.ts";
import { type HttpIaasClientOptions, IaasTransport } from "./transport.ts";
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

export class HttpIaasClient implements IaasClient, AsyncDisposable {
  readonly config: IaasConfig;
  #transport: IaasTransport;

  constructor(o: HttpIaasClientOptions) {
    this.#transport = new IaasTransport(o);
    this.config = this.#transport.config;
  }

  /** Aborts waits in progress and releases the unix-socket HTTP client. */
  close(): Promise<void> {
    return this.#transport.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Calls `action` with `params` and validates the reply with `schema`. Public so that rarely
   * used actions can be called without a typed method; prefer the typed methods.
   */
  request<T extends z.ZodType>(
    action: string,
    params: Readonly<Record<string, ParamValue>>,
    schema: T,
  ): Promise<z.output<T>> {
    return this.#transport.request(action, params, schema);
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
