/**
 * The QingCloud API as hostnic uses it: the `IaasClient` interface every caller depends on (the
 * daemon, the NIC pool, the controller, paginate.ts and jobs.ts) and `HttpIaasClient` (client.ts)
 * implements. It imports nothing but the wire types, so the modules that use the interface never
 * import the module that re-exports them all (mod.ts).
 */
import type {
  AccessKey,
  AllocateVipsRequest,
  CreatedNic,
  CreateNicsRequest,
  DescribeAccessKeysRequest,
  DescribeInstancesRequest,
  DescribeJobsRequest,
  DescribeNicsRequest,
  DescribeSecurityGroupRulesRequest,
  DescribeSecurityGroupsRequest,
  DescribeTagsRequest,
  DescribeVipsRequest,
  DescribeVxnetsRequest,
  Instance,
  Job,
  Nic,
  Page,
  SecurityGroup,
  SecurityGroupRule,
  SecurityGroupRuleInput,
  Tag,
  TagPairInput,
  Vip,
  Vxnet,
} from "./types.ts";

/** The QingCloud API as hostnic uses it. Real: `HttpIaasClient`. */
export interface IaasClient {
  /** DescribeInstances (instances.n, status.n, tags.n, search_word, verbose). */
  describeInstances(r?: DescribeInstancesRequest): Promise<Page<Instance>>;
  /** DescribeVxnets (vxnets.n, vxnet_type, verbose=1 adds instance_ids). */
  describeVxnets(r?: DescribeVxnetsRequest): Promise<Page<Vxnet>>;
  /** CreateNics (vxnet, count 1–252, nic_name, private_ips.n, disable_ip); synchronous. */
  createNics(r: CreateNicsRequest): Promise<CreatedNic[]>;
  /** AttachNics (nics.n, instance) → job id. NICs become in-use when the job succeeds. */
  attachNics(r: { nics: readonly string[]; instance: string }): Promise<string>;
  /** DetachNics (nics.n) → job id. */
  detachNics(r: { nics: readonly string[] }): Promise<string>;
  /** DeleteNics (nics.n); only available NICs; 2100 means already gone. */
  deleteNics(r: { nics: readonly string[] }): Promise<void>;
  /** DescribeNics (nics.n, nic_name, status, vxnets.n, vxnet_type, instances.n). */
  describeNics(r?: DescribeNicsRequest): Promise<Page<Nic>>;
  /** DescribeJobs (jobs.n, status.n). */
  describeJobs(r?: DescribeJobsRequest): Promise<Page<Job>>;
  /** CreateTag (tag_name, color) → tag id. */
  createTag(r: { tagName: string; color?: string }): Promise<string>;
  /** DescribeTags (tags.n, search_word, verbose=1 adds resource_tag_pairs). */
  describeTags(r?: DescribeTagsRequest): Promise<Page<Tag>>;
  /** AttachTags (resource_tag_pairs.n.{tag_id,resource_type,resource_id}). */
  attachTags(pairs: readonly TagPairInput[]): Promise<void>;
  /** DetachTags (resource_tag_pairs.n.{…}). */
  detachTags(pairs: readonly TagPairInput[]): Promise<void>;
  /** AllocateVips (vxnet_id, vip_name, vip_range | vip_addrs.n, count) → job id and VIP ids. */
  allocateVips(r: AllocateVipsRequest): Promise<{ jobId: string; vips: string[] }>;
  /** DescribeVips (vips.n, vxnets.n, vip_name, vip_addrs.n). */
  describeVips(r?: DescribeVipsRequest): Promise<Page<Vip>>;
  /** ReleaseVips (vips.n) → job id. */
  releaseVips(r: { vips: readonly string[] }): Promise<string>;
  /** DescribeSecurityGroups (security_groups.n, search_word, tags.n, verbose). */
  describeSecurityGroups(r?: DescribeSecurityGroupsRequest): Promise<Page<SecurityGroup>>;
  /** DescribeSecurityGroupRules (security_group, security_group_rules.n, direction). */
  describeSecurityGroupRules(
    r?: DescribeSecurityGroupRulesRequest,
  ): Promise<Page<SecurityGroupRule>>;
  /** AddSecurityGroupRules (security_group, rules.n.{…}) → rule ids; needs ApplySecurityGroup. */
  addSecurityGroupRules(
    r: { securityGroup: string; rules: readonly SecurityGroupRuleInput[] },
  ): Promise<string[]>;
  /** ApplySecurityGroup (security_group, instances.n) → job id. */
  applySecurityGroup(r: { securityGroup: string; instances?: readonly string[] }): Promise<string>;
  /** DescribeAccessKeys (access_keys.n, status.n); hostnic reads `owner` (the user id). */
  describeAccessKeys(r?: DescribeAccessKeysRequest): Promise<Page<AccessKey>>;
}
