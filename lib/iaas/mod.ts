/**
 * QingCloud IaaS client: the cloud calls hostnic makes (NICs, vxnets, instances, jobs, tags, VIPs,
 * security groups, access keys), per /work/shared/reference/qingcloud-api.md.
 *
 * Invariants:
 * - Every call is signed (signer.ts), rate-limited by one token bucket per client, re-signed on
 *   each retry, and retried only where that is safe (see client.ts). Metrics come from `onCall`.
 * - Errors are typed (errors.ts): callers branch on `retCode` / `isRetryable` / `isQuota` /
 *   `isNotFound`, never on message text. No error or log line carries a secret or signature.
 * - Replies are validated (types.ts): a malformed reply is an `IaasReplyError`, never a crash.
 *   Reply items keep the API's snake_case names; request options are camelCase.
 * - Describe* return one page (`{items, totalCount}`); `describeAll*` (paginate.ts) follow
 *   `total_count` at 100 per page. Async actions return a job id; `waitJobs` (jobs.ts) waits.
 * - Layout: api.ts (the `IaasClient` interface), client.ts (`HttpIaasClient`), types.ts (wire
 *   types and reply schemas), and one file per concern beside them; this file only re-exports.
 * - The simulator of this API is lib/sim/; the two share no code and import nothing from each other.
 */
export type { IaasClient } from "./api.ts";
export * from "./types.ts";
export * from "./errors.ts";
export * from "./signer.ts";
export * from "./config.ts";
export * from "./backoff.ts";
export * from "./rate_limit.ts";
export * from "./params.ts";
export * from "./transport.ts";
export * from "./client.ts";
export * from "./paginate.ts";
export * from "./jobs.ts";
