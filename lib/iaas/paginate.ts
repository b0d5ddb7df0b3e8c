/**
 * Following `total_count` across Describe* pages. The server caps `limit` at 100 and results can
 * shift while we page (a NIC created between two calls moves everything by one), so pages are
 * requested until the offset reaches the latest `total_count` or a page comes back empty, and
 * items are de-duplicated by id.
 */
import type { IaasClient } from "./api.ts";
import type {
  DescribeInstancesRequest,
  DescribeJobsRequest,
  DescribeNicsRequest,
  DescribeTagsRequest,
  DescribeVipsRequest,
  DescribeVxnetsRequest,
  Instance,
  Job,
  Nic,
  Page,
  Tag,
  Vip,
  Vxnet,
} from "./types.ts";

/** The server's maximum page size. */
export const MAX_PAGE = 100;

export interface PaginateOptions<T> {
  /** Page size; at most 100. */
  pageSize?: number;
  /** Identity of an item, to drop repeats when results shift between pages. */
  key: (item: T) => string;
  /** Safety stop against a server whose total_count never converges. Default 1000 pages. */
  maxPages?: number;
}

/** Calls `fetchPage(offset, limit)` until every item is collected. */
export async function describeAll<T>(
  fetchPage: (p: { offset: number; limit: number }) => Promise<Page<T>>,
  o: PaginateOptions<T>,
): Promise<T[]> {
  const limit = Math.min(MAX_PAGE, Math.max(1, o.pageSize ?? MAX_PAGE));
  const maxPages = o.maxPages ?? 1000;
  const seen = new Set<string>();
  const out: T[] = [];
  let offset = 0;
  for (let page = 0; page < maxPages; page++) {
    const { items, totalCount } = await fetchPage({ offset, limit });
    for (const item of items) {
      const k = o.key(item);
      if (seen.has(k)) continue;
      seen.add(k);
      out.push(item);
    }
    offset += items.length;
    if (items.length === 0 || offset >= totalCount) return out;
  }
  return out;
}

type Filter<R> = Omit<R, "offset" | "limit">;

export function describeAllNics(
  c: IaasClient,
  f: Filter<DescribeNicsRequest> = {},
): Promise<Nic[]> {
  return describeAll((p) => c.describeNics({ ...f, ...p }), { key: (n) => n.nic_id });
}

export function describeAllVxnets(
  c: IaasClient,
  f: Filter<DescribeVxnetsRequest> = {},
): Promise<Vxnet[]> {
  return describeAll((p) => c.describeVxnets({ ...f, ...p }), { key: (v) => v.vxnet_id });
}

export function describeAllInstances(
  c: IaasClient,
  f: Filter<DescribeInstancesRequest> = {},
): Promise<Instance[]> {
  return describeAll((p) => c.describeInstances({ ...f, ...p }), { key: (i) => i.instance_id });
}

export function describeAllJobs(
  c: IaasClient,
  f: Filter<DescribeJobsRequest> = {},
): Promise<Job[]> {
  return describeAll((p) => c.describeJobs({ ...f, ...p }), { key: (j) => j.job_id });
}

export function describeAllTags(
  c: IaasClient,
  f: Filter<DescribeTagsRequest> = {},
): Promise<Tag[]> {
  return describeAll((p) => c.describeTags({ ...f, ...p }), { key: (t) => t.tag_id });
}

export function describeAllVips(
  c: IaasClient,
  f: Filter<DescribeVipsRequest> = {},
): Promise<Vip[]> {
  return describeAll((p) => c.describeVips({ ...f, ...p }), { key: (v) => v.vip_id });
}
