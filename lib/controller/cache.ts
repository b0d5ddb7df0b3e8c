/**
 * What one controller process has already verified in the cloud, so a steady-state pass makes no
 * IaaS call (upstream caches the same way: vxnets and VIPs are described once). Entries age out
 * after `ttlMs`, which bounds how long a change made behind the controller's back (a VIP released
 * by hand, a rule deleted) goes unnoticed. The cache lives in memory only: a restarted controller
 * (or a new leader) starts empty and re-verifies everything, which is what crash convergence needs.
 */
import type { Vxnet } from "../iaas/types.ts";

export class CloudCache {
  readonly #vxnets = new Map<string, { v: Vxnet; at: number }>();
  readonly #prepared = new Map<string, { key: string; at: number }>();
  readonly #groups = new Map<string, { sg: string; at: number }>();
  readonly #poolStatus = new Map<string, string>();

  constructor(readonly ttlMs: number) {}

  #fresh(at: number, now: number): boolean {
    return now - at < this.ttlMs;
  }

  vxnet(name: string, now: number): Vxnet | undefined {
    const e = this.#vxnets.get(name);
    return e && this.#fresh(e.at, now) ? e.v : undefined;
  }

  setVxnet(v: Vxnet, now: number): void {
    this.#vxnets.set(v.vxnet_id, { v, at: now });
  }

  /** True when the VIPs and the rule of `vxnet` were verified for exactly `key` recently. */
  prepared(vxnet: string, key: string, now: number): boolean {
    const e = this.#prepared.get(vxnet);
    return e !== undefined && e.key === key && this.#fresh(e.at, now);
  }

  setPrepared(vxnet: string, key: string, now: number): void {
    this.#prepared.set(vxnet, { key, at: now });
  }

  clusterGroup(clusterId: string, now: number): string | undefined {
    const e = this.#groups.get(clusterId);
    return e && this.#fresh(e.at, now) ? e.sg : undefined;
  }

  setClusterGroup(clusterId: string, sg: string, now: number): void {
    this.#groups.set(clusterId, { sg, at: now });
  }

  poolStatusWritten(pool: string): string | undefined {
    return this.#poolStatus.get(pool);
  }

  setPoolStatusWritten(pool: string, text: string): void {
    this.#poolStatus.set(pool, text);
  }

  /** Drops everything about a vxnet (it left v-pool). */
  forget(vxnet: string): void {
    this.#vxnets.delete(vxnet);
    this.#prepared.delete(vxnet);
    this.#poolStatus.delete(vxnet);
  }
}
