/**
 * The cloud side of preparing a vxnet for shared mode (upstream §2.9): its usable range reserved
 * as VIPs named `hostnic_<vxnet>` (so the IaaS never gives those addresses to anything else), and
 * the security-group rule letting the vxnet's CIDR in. Every step looks before it acts, so running
 * it again after a crash at any point converges without creating anything twice:
 * - VIPs: DescribeVips by name lists what exists; only the addresses of the usable range that are
 *   not yet VIPs are allocated, as contiguous `vip_range`s of at most 253 (the API's per-call cap).
 * - Rule: DescribeSecurityGroupRules finds an accept/all rule for the CIDR first; the group is
 *   applied when a rule was added or the group reports unapplied changes.
 */
import { z } from "zod";
import type { HttpIaasClient } from "../iaas/client.ts";
import { waitJobs } from "../iaas/jobs.ts";
import { describeAll } from "../iaas/paginate.ts";
import type { Vip } from "../iaas/types.ts";
import { formatIp, parseIp } from "../ipam/mod.ts";
import type { Logger } from "../log.ts";
import type { ControllerCloud, Step } from "./types.ts";

/** QingCloud's cap on VIPs per AllocateVips call (hostnic's `VIPNumLimit`). */
export const MAX_VIPS_PER_CALL = 253;
/** VIP ids per ReleaseVips call. */
const RELEASE_BATCH = 100;
const JOB_TIMEOUT_MS = 120_000;

/** Name of the VIPs reserving a vxnet's pod addresses (upstream's). */
export function vipName(vxnet: string): string {
  return `hostnic_${vxnet}`;
}

export interface VipRun {
  /** `a.b.c.d-a.b.c.e` */
  range: string;
  count: number;
}

/**
 * The AllocateVips calls that make every address of [start, end] a VIP, given the addresses that
 * already are: contiguous runs of missing ones, each at most `max` long. Pure.
 */
export function planVipRuns(
  o: { start: string; end: string; existing: Iterable<string>; max?: number },
): VipRun[] {
  const first = parseIp(o.start);
  const last = parseIp(o.end);
  if (first === undefined || last === undefined || last < first) return [];
  const max = o.max ?? MAX_VIPS_PER_CALL;
  const have = new Set<number>();
  for (const a of o.existing) {
    const n = parseIp(a);
    if (n !== undefined) have.add(n);
  }
  const runs: VipRun[] = [];
  let runStart: number | undefined;
  const close = (endIp: number) => {
    if (runStart === undefined) return;
    runs.push({ range: `${formatIp(runStart)}-${formatIp(endIp)}`, count: endIp - runStart + 1 });
    runStart = undefined;
  };
  for (let ip = first; ip <= last; ip++) {
    if (have.has(ip)) {
      close(ip - 1);
      continue;
    }
    if (runStart === undefined) runStart = ip;
    if (ip - runStart + 1 === max) close(ip);
  }
  close(last);
  return runs;
}

export interface CloudStepDeps {
  cloud: ControllerCloud;
  logger: Logger;
  afterStep(step: Step, detail: Record<string, unknown>): Promise<void>;
  /** Called with the number of VIPs each successful AllocateVips created (metrics). */
  onVipsAllocated?(vxnet: string, count: number): void;
  signal?: AbortSignal;
}

/** VIPs of the vxnet carrying hostnic's name. */
export async function listVips(cloud: ControllerCloud, vxnet: string): Promise<Vip[]> {
  return await describeAll(
    (p) => cloud.describeVips({ vxnets: [vxnet], vipName: vipName(vxnet), ...p }),
    { key: (v) => v.vip_id },
  );
}

/**
 * Makes every address of [rangeStart, rangeEnd] a `hostnic_<vxnet>` VIP and waits for the jobs.
 * Returns how many VIPs it allocated now (0 when they all existed).
 */
export async function ensureVips(
  d: CloudStepDeps,
  o: { vxnet: string; rangeStart: string; rangeEnd: string },
): Promise<number> {
  const existing = await listVips(d.cloud, o.vxnet);
  const runs = planVipRuns({
    start: o.rangeStart,
    end: o.rangeEnd,
    existing: existing.map((v) => v.vip_addr),
  });
  if (runs.length === 0) {
    await d.afterStep("vips-ready", { vxnet: o.vxnet });
    return 0;
  }
  const jobs: string[] = [];
  let allocated = 0;
  for (const run of runs) {
    const { jobId, vips } = await d.cloud.allocateVips({
      vxnetId: o.vxnet,
      vipName: vipName(o.vxnet),
      vipRange: run.range,
      count: run.count,
    });
    jobs.push(jobId);
    allocated += vips.length || run.count;
    d.onVipsAllocated?.(o.vxnet, vips.length || run.count);
    d.logger.info("VIPs allocated", { vxnet: o.vxnet, range: run.range, count: run.count, jobId });
    await d.afterStep("allocate-vips", { vxnet: o.vxnet, range: run.range });
  }
  await waitJobs(d.cloud, jobs, {
    timeoutMs: JOB_TIMEOUT_MS,
    logger: d.logger,
    ...(d.signal ? { signal: d.signal } : {}),
  });
  await d.afterStep("vips-ready", { vxnet: o.vxnet });
  return allocated;
}

/** Releases every `hostnic_<vxnet>` VIP and waits; returns how many it released. */
export async function releaseAllVips(d: CloudStepDeps, vxnet: string): Promise<number> {
  const vips = await listVips(d.cloud, vxnet);
  const jobs: string[] = [];
  for (let i = 0; i < vips.length; i += RELEASE_BATCH) {
    const ids = vips.slice(i, i + RELEASE_BATCH).map((v) => v.vip_id);
    jobs.push(await d.cloud.releaseVips({ vips: ids }));
  }
  if (jobs.length > 0) {
    await waitJobs(d.cloud, jobs, {
      timeoutMs: JOB_TIMEOUT_MS,
      logger: d.logger,
      ...(d.signal ? { signal: d.signal } : {}),
    });
    d.logger.info("VIPs released", { vxnet, count: vips.length });
  }
  await d.afterStep("vips-released", { vxnet, count: vips.length });
  return vips.length;
}

/** Name of the security-group rule letting a vxnet in (upstream's). */
export function ruleName(vxnet: string): string {
  return `hostnic_${vxnet}`;
}

/**
 * Ensures an ingress accept rule for `cidr` (all protocols) in `securityGroup` and that the group
 * is applied. Returns what it did.
 */
export async function ensureSecurityGroupRule(
  d: CloudStepDeps,
  o: { securityGroup: string; vxnet: string; cidr: string },
): Promise<{ added: boolean; applied: boolean }> {
  const rules = await describeAll(
    (p) =>
      d.cloud.describeSecurityGroupRules({ securityGroup: o.securityGroup, direction: 0, ...p }),
    { key: (r) => r.security_group_rule_id },
  );
  const found = rules.some((r) =>
    r.val3 === o.cidr && r.action === "accept" && r.protocol === "all" && (r.direction ?? 0) === 0
  );
  if (!found) {
    await d.cloud.addSecurityGroupRules({
      securityGroup: o.securityGroup,
      rules: [{
        name: ruleName(o.vxnet),
        action: "accept",
        direction: 0,
        priority: 0,
        protocol: "all",
        val3: o.cidr,
      }],
    });
    d.logger.info("security group rule added", { securityGroup: o.securityGroup, cidr: o.cidr });
    await d.afterStep("sg-rule-added", { vxnet: o.vxnet, securityGroup: o.securityGroup });
  }
  const groups = await d.cloud.describeSecurityGroups({ securityGroups: [o.securityGroup] });
  const group = groups.items.find((g) => g.security_group_id === o.securityGroup);
  if (!group) {
    throw new Error(`security group "${o.securityGroup}" does not exist`);
  }
  if (found && group.is_applied !== 0) return { added: false, applied: false };
  const job = await d.cloud.applySecurityGroup({ securityGroup: o.securityGroup });
  await waitJobs(d.cloud, [job], {
    timeoutMs: JOB_TIMEOUT_MS,
    logger: d.logger,
    ...(d.signal ? { signal: d.signal } : {}),
  });
  d.logger.info("security group applied", { securityGroup: o.securityGroup });
  await d.afterStep("sg-applied", { vxnet: o.vxnet, securityGroup: o.securityGroup });
  return { added: !found, applied: true };
}

const clustersReplySchema = z.object({
  cluster_set: z.array(z.object({
    cluster_id: z.string(),
    security_group_id: z.string().nullish(),
  })).nullish(),
});

/**
 * The controller's cloud over the real client: the typed methods as they are, plus DescribeClusters
 * (QKE's security group for `clusterID`) through the client's generic `request`.
 */
export function controllerCloud(client: HttpIaasClient): ControllerCloud {
  return {
    describeVxnets: (r) => client.describeVxnets(r),
    allocateVips: (r) => client.allocateVips(r),
    describeVips: (r) => client.describeVips(r),
    releaseVips: (r) => client.releaseVips(r),
    describeSecurityGroups: (r) => client.describeSecurityGroups(r),
    describeSecurityGroupRules: (r) => client.describeSecurityGroupRules(r),
    addSecurityGroupRules: (r) => client.addSecurityGroupRules(r),
    applySecurityGroup: (r) => client.applySecurityGroup(r),
    describeJobs: (r) => client.describeJobs(r),
    async describeClusterSecurityGroup(clusterId: string) {
      const reply = await client.request(
        "DescribeClusters",
        { clusters: [clusterId] },
        clustersReplySchema,
      );
      const c = (reply.cluster_set ?? []).find((x) => x.cluster_id === clusterId);
      return c?.security_group_id ?? undefined;
    },
  };
}
