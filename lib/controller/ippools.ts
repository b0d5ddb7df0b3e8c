/**
 * The IPPools and IPAMBlocks of a VxNetPool pass (vpool.ts runs it): an IPPool per vxnet with its
 * blocks carved (created once, never resized), the removal of IPPools whose vxnet left the spec
 * (disable → re-check → delete blocks with their resourceVersion → release VIPs → delete the
 * IPPool, so a crash resumes where it stopped), and the IPPool statuses (utilization).
 */
import { errorMessage } from "../errors.ts";
import {
  AlreadyExistsError,
  blockName,
  type BlockSpec,
  type BlockStats,
  blockStats,
  carveBlocks,
  ConflictError,
  type IpPoolSpec,
  newBlock,
  PATTERNS,
  sumBlockStats,
  type Versioned,
  VXNET_POOL_NAME,
} from "../ipam/mod.ts";
import type { Logger } from "../log.ts";
import { releaseAllVips } from "./cloud.ts";
import type { IpPoolStatus, ReconcileDeps, Step } from "./types.ts";
import { VxnetPrepareError } from "./types.ts";

/** What the IPPool steps report for metrics (part of vpool.ts `ReconcileObserver`). */
export interface PoolObserver {
  vipsReleased?(vxnet: string, count: number): void;
  poolUsage?(pool: string, usage: BlockStats & { blocks: number }): void;
  poolRemoved?(pool: string): void;
}

/** What the IPPool steps read of the pass's options (vpool.ts `ReconcileOptions`). */
export interface PoolPassOptions {
  logger: Logger;
  observer?: PoolObserver;
  cooldownMs?: number;
}

export interface RemovalBlock {
  pool: string;
  /** Block name → addresses still allocated there. */
  inUse: Record<string, number>;
}

const vxnetName = new RegExp(PATTERNS.vxnetId);

export function sumUsage(
  blocks: Versioned<BlockSpec>[],
  now: number,
  cooldownMs: number,
): BlockStats & { blocks: number } {
  return sumBlockStats(blocks.map((b) => b.spec), { now, cooldownMs });
}

export function describeBlocked(b: RemovalBlock): string {
  const total = Object.values(b.inUse).reduce((a, n) => a + n, 0);
  const where = Object.entries(b.inUse).map(([blk, n]) => `${blk} (${n})`).join(", ");
  return `vxnet "${b.pool}" was removed from ${VXNET_POOL_NAME} but ${total} address(es) are ` +
    `still allocated in block(s) ${where}; its IPPool and VIPs are kept (new block claims are ` +
    `disabled) until those pods are gone`;
}

export async function ensurePool(
  d: ReconcileDeps,
  o: {
    name: string;
    spec: IpPoolSpec;
    log: Logger;
    step: (s: Step, detail: Record<string, unknown>) => Promise<void>;
  },
): Promise<Versioned<IpPoolSpec>> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const cur = await d.pools.get(o.name);
    if (!cur) {
      try {
        const created = await d.pools.create(o.name, o.spec);
        o.log.info("IPPool created", { pool: o.name, cidr: o.spec.cidr });
        await o.step("ippool-created", { pool: o.name });
        return created;
      } catch (err) {
        if (err instanceof AlreadyExistsError) continue;
        throw err;
      }
    }
    if (cur.spec.cidr !== o.spec.cidr || cur.spec.blockSize !== o.spec.blockSize) {
      throw new VxnetPrepareError(
        o.name,
        `IPPool "${o.name}" exists with cidr "${cur.spec.cidr}" and blockSize ` +
          `${cur.spec.blockSize}, but the vxnet is now "${o.spec.cidr}" with blockSize ` +
          `${o.spec.blockSize}; both are immutable: remove the vxnet from ${VXNET_POOL_NAME}, wait ` +
          `for its IPPool to go, then add it again`,
      );
    }
    if (!cur.spec.disabled) return cur;
    // Re-added after a removal that was blocked: claims are allowed again.
    try {
      const { disabled: _d, ...rest } = cur.spec;
      return await d.pools.update({ ...cur, spec: rest });
    } catch (err) {
      if (err instanceof ConflictError) continue;
      throw err;
    }
  }
  throw new VxnetPrepareError(o.name, `IPPool "${o.name}" kept changing; will retry`);
}

/** Creates every block of the pool that has a usable address; returns their names in order. */
export async function ensureBlocks(
  d: ReconcileDeps,
  o: {
    pool: string;
    spec: IpPoolSpec;
    existing: Versioned<BlockSpec>[];
    step: (s: Step, detail: Record<string, unknown>) => Promise<void>;
  },
): Promise<string[]> {
  const have = new Set(o.existing.map((b) => b.name));
  const names: string[] = [];
  for (const cidr of carveBlocks(o.pool, o.spec)) {
    const name = blockName(cidr);
    if (have.has(name)) {
      names.push(name);
      continue;
    }
    const spec = newBlock({ pool: o.pool, spec: o.spec, cidr });
    if (spec.unallocated.length === 0) continue; // all reserved (gateway side, IaaS tail)
    try {
      await d.blocks.create(name, spec);
      await o.step("block-created", { pool: o.pool, block: name });
    } catch (err) {
      if (!(err instanceof AlreadyExistsError)) throw err; // a daemon claimed it first: fine
    }
    names.push(name);
  }
  return names;
}

export async function removeUnwanted(
  d: ReconcileDeps,
  o: PoolPassOptions,
  x: {
    wanted: Set<string>;
    result: { blockedRemovals: RemovalBlock[]; removed: string[] };
    cloudDeps: Parameters<typeof releaseAllVips>[0];
    step: (s: Step, detail: Record<string, unknown>) => Promise<void>;
  },
): Promise<void> {
  const pools = (await d.pools.list()).filter((p) =>
    !x.wanted.has(p.name) && vxnetName.test(p.name) && p.spec.type === "local"
  );
  for (const p of pools) {
    try {
      const outcome = await removePool(d, o, { pool: p, cloudDeps: x.cloudDeps, step: x.step });
      d.cache?.forget(p.name);
      if (outcome.removed) {
        x.result.removed.push(p.name);
        o.observer?.poolRemoved?.(p.name);
      } else if (outcome.inUse) {
        x.result.blockedRemovals.push({ pool: p.name, inUse: outcome.inUse });
      }
    } catch (err) {
      o.logger.warn("vxnet removal did not finish; will retry", {
        pool: p.name,
        error: errorMessage(err),
      });
    }
  }
}

export async function removePool(
  d: ReconcileDeps,
  o: PoolPassOptions,
  x: {
    pool: Versioned<IpPoolSpec>;
    cloudDeps: Parameters<typeof releaseAllVips>[0];
    step: (s: Step, detail: Record<string, unknown>) => Promise<void>;
  },
): Promise<{ removed: boolean; inUse?: Record<string, number> }> {
  const name = x.pool.name;
  const inUseOf = (blocks: Versioned<BlockSpec>[]) => {
    const inUse: Record<string, number> = {};
    for (const b of blocks) {
      const s = blockStats(b.spec, { now: d.now(), cooldownMs: 0 });
      if (s.allocated > 0) inUse[b.name] = s.allocated;
    }
    return Object.keys(inUse).length > 0 ? inUse : undefined;
  };
  // Stop new claims first, so the blocks we are about to look at cannot gain neighbours.
  let pool = x.pool;
  if (!pool.spec.disabled) {
    pool = await d.pools.update({ ...pool, spec: { ...pool.spec, disabled: true } });
    o.logger.info("IPPool disabled: its vxnet left v-pool", { pool: name });
  }
  const blocks = (await d.blocks.list()).filter((b) => b.spec.pool === name);
  const inUse = inUseOf(blocks);
  if (inUse) {
    o.logger.warn("vxnet removed from v-pool while in use; keeping its IPPool", {
      pool: name,
      inUse,
    });
    return { removed: false, inUse };
  }
  for (const b of blocks) {
    // The precondition makes this fail if a daemon allocated from the block after our read.
    await d.blocks.delete(b.name, { resourceVersion: b.resourceVersion });
  }
  await x.step("blocks-deleted", { pool: name, count: blocks.length });
  const late = (await d.blocks.list()).filter((b) => b.spec.pool === name);
  if (late.length > 0) {
    return { removed: false, ...(inUseOf(late) ? { inUse: inUseOf(late) } : {}) };
  }
  const released = await releaseAllVips(x.cloudDeps, name);
  o.observer?.vipsReleased?.(name, released);
  await d.pools.delete(name, { resourceVersion: pool.resourceVersion });
  o.logger.info("vxnet removed: blocks deleted, VIPs released, IPPool deleted", {
    pool: name,
    vips: released,
  });
  await x.step("ippool-deleted", { pool: name });
  return { removed: true };
}

/** IPPool status and utilization metrics from the blocks. */
export async function writePoolStatuses(
  d: ReconcileDeps,
  o: PoolPassOptions,
  names: string[],
): Promise<void> {
  const blocks = await d.blocks.list();
  const pools = await d.pools.list();
  for (const p of pools) {
    const mine = blocks.filter((b) => b.spec.pool === p.name);
    const u = sumUsage(mine, d.now(), o.cooldownMs ?? 0);
    o.observer?.poolUsage?.(p.name, u);
    if (!names.includes(p.name) && mine.length === 0) continue;
    const status: IpPoolStatus = {
      capacity: u.size,
      allocations: u.allocated,
      unallocated: u.free,
      reserved: u.reserved,
      synced: true,
    };
    const text = JSON.stringify(status);
    if (d.cache?.poolStatusWritten(p.name) === text) continue;
    try {
      await d.kube.writeIpPoolStatus(p.name, status);
      d.cache?.setPoolStatusWritten(p.name, text);
    } catch (err) {
      o.logger.warn("IPPool status not written", { pool: p.name, error: errorMessage(err) });
    }
  }
}
