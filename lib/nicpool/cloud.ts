/**
 * `PoolCloud` over the QingCloud client: the few calls the pool makes, with the facts it needs
 * pulled out of the API's replies.
 */
import { HostnicError } from "../errors.ts";
import type { IaasClient } from "../iaas/mod.ts";
import { waitJob } from "../iaas/jobs.ts";
import { isNotFound } from "../iaas/errors.ts";
import type { Logger } from "../log.ts";
import type { PoolCloud } from "./pool.ts";

/** Poll schedule of the pool's jobs (see `waitJob`); bench/lib/jobpoll.ts models it. */
export const POOL_JOB_POLL = { initialIntervalMs: 100, factor: 1.25, maxIntervalMs: 250 } as const;

export class VxnetError extends HostnicError {
  readonly vxnet: string;
  constructor(vxnet: string, message: string) {
    super("BAD_VXNET", message);
    this.vxnet = vxnet;
  }
}

export class IaasPoolCloud implements PoolCloud {
  readonly #iaas: IaasClient;
  readonly #logger: Logger;
  constructor(iaas: IaasClient, logger: Logger) {
    this.#iaas = iaas;
    this.#logger = logger;
  }

  async createNics(
    o: {
      vxnet: string;
      count: number;
      nicName: string;
      privateIps?: string[];
      disableIp?: boolean;
    },
  ): Promise<{ id: string; ip: string }[]> {
    const nics = await this.#iaas.createNics({
      vxnet: o.vxnet,
      count: o.count,
      nicName: o.nicName,
      privateIps: o.privateIps,
      ...(o.disableIp ? { disableIp: 1 as const } : {}),
    });
    return nics.map((n) => ({ id: n.nicId, ip: n.privateIp ?? "" }));
  }

  async tagNics(ids: string[], tag: string): Promise<void> {
    await this.#iaas.attachTags(
      ids.map((id) => ({ tagId: tag, resourceType: "nic", resourceId: id })),
    );
  }

  attachNics(ids: string[], instance: string): Promise<string> {
    return this.#iaas.attachNics({ nics: ids, instance });
  }

  async detachNics(ids: string[]): Promise<string> {
    return await this.#iaas.detachNics({ nics: ids });
  }

  async deleteNics(ids: string[]): Promise<void> {
    try {
      await this.#iaas.deleteNics({ nics: ids });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async nicStatus(
    ids: string[],
  ): Promise<Map<string, { status: "in-use" | "available"; instance: string }>> {
    const out = new Map<string, { status: "in-use" | "available"; instance: string }>();
    for (let i = 0; i < ids.length; i += 100) {
      const page = await this.#iaas.describeNics({ nics: ids.slice(i, i + 100), limit: 100 });
      for (const n of page.items) {
        out.set(n.nic_id, {
          status: n.status === "in-use" ? "in-use" : "available",
          instance: n.instance_id ?? "",
        });
      }
    }
    return out;
  }

  /**
   * Pool jobs are watched closely (pods wait on them): polls every 100 ms growing ×1.25 to 250 ms,
   * so a job is seen at most 250 ms after it is done rather than up to a third of its latency late
   * (the default schedule: 0, 100, 250, 475, 812, 1319, 2078, 3217 … ms). A 2 s job costs 11
   * DescribeJobs instead of 7; one call covers every job of the batches in flight.
   */
  async waitJob(jobId: string, timeoutMs: number): Promise<void> {
    await waitJob(this.#iaas, jobId, { timeoutMs, logger: this.#logger, ...POOL_JOB_POLL });
  }

  describeVxnet(id: string): Promise<{ id: string; cidr: string; gateway: string }> {
    return describeVxnetFacts(this.#iaas, id);
  }
}

/** CIDR and gateway of a vxnet; errors say which vxnet and why it cannot host pods. */
export async function describeVxnetFacts(
  iaas: IaasClient,
  id: string,
): Promise<{ id: string; cidr: string; gateway: string; routerId: string }> {
  const page = await iaas.describeVxnets({ vxnets: [id], verbose: 1 });
  const v = page.items.find((x) => x.vxnet_id === id);
  if (!v) throw new VxnetError(id, `Vxnet "${id}" does not exist in this zone`);
  const r = v.router;
  if (!r || !r.ip_network || !r.manager_ip) {
    throw new VxnetError(id, `Vxnet "${id}" is not joined to a VPC router`);
  }
  if (!r.dyn_ip_start || !r.dyn_ip_end) {
    throw new VxnetError(id, `Vxnet "${id}" has DHCP off (no dynamic IP range); turn DHCP on`);
  }
  return {
    id,
    cidr: r.ip_network,
    gateway: r.manager_ip,
    routerId: v.vpc_router_id ?? r.router_id ?? "",
  };
}
