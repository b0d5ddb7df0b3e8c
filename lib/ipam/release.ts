/**
 * Release of what a handle holds (CNI DEL, undo of a failed ADD, GC), for `Ipam.release`.
 *
 * - Known allocation (the caller passes the allocation's `block` and `handleVersion`): the block
 *   write (through the group-commit writer, batched with concurrent ones) then a delete of the
 *   handle on that resourceVersion. Nothing is read. A handle that changed since (its version
 *   moved) falls back to the general path.
 * - General path: read the handle, release in every block it names (fresh reads: the blocks may
 *   be other nodes'), then delete the handle — or, when it still holds something (a stale
 *   sequence kept it), write what it still holds.
 * Blocks are always written before the handle, so a crash leaves a handle pointing at nothing,
 * never an address without a handle.
 */
import type { BlockCache } from "./block_cache.ts";
import type { BlockWriter } from "./block_writer.ts";
import type { IpamCounters } from "./cas_retry.ts";
import { ConflictError, IpamRequestError } from "./errors.ts";
import { parseIp } from "./ip.ts";
import { ordinalOf } from "./block.ts";
import type { ReleasedAddress, ReleaseResult } from "./request.ts";
import { handleName, type HandleStore } from "./store.ts";

export interface ReleaseDeps {
  handles: HandleStore;
  cache: BlockCache;
  writer: BlockWriter;
  counters: IpamCounters;
  retry: <T>(operation: string, attempt: () => Promise<T>) => Promise<T>;
}

/** An ordinal no block has: a release op carrying it frees nothing and counts what is held. */
const NO_ORDINAL = -1;

export async function releaseHandle(
  d: ReleaseDeps,
  handle: string,
  opts: { sequence?: number; ip?: string; block?: string; handleVersion?: string },
): Promise<ReleaseResult> {
  const ipNum = opts.ip === undefined ? undefined : parseIp(opts.ip);
  if (opts.ip !== undefined && ipNum === undefined) {
    throw new IpamRequestError("ip", `"${opts.ip}" is not an IPv4 address`);
  }
  const name = handleName(handle);
  const seq = opts.sequence !== undefined ? { sequence: opts.sequence } : {};
  let fast: ReleasedAddress[] = [];
  if (opts.block !== undefined && opts.handleVersion !== undefined && ipNum === undefined) {
    const r = await d.writer.submit(opts.block, { kind: "release", handle, ...seq });
    if (r.kind === "released") {
      fast = r.released.map((a) => tag(a, opts.block!));
      if (r.left === 0) {
        try {
          await d.handles.delete(name, { resourceVersion: opts.handleVersion });
          d.counters.releases += fast.length;
          return { released: fast, kept: [] };
        } catch (e) {
          if (!(e instanceof ConflictError)) throw e;
        }
      }
    }
  }
  const out = await general(d, { handle, name, ipNum, seq });
  out.released.unshift(...fast);
  d.counters.releases += out.released.length;
  return out;
}

async function general(
  d: ReleaseDeps,
  o: { handle: string; name: string; ipNum: number | undefined; seq: { sequence?: number } },
): Promise<ReleaseResult> {
  const h = await d.handles.get(o.name);
  const out: ReleaseResult = { released: [], kept: [] };
  if (!h) return out;
  /** Block → addresses the handle still holds there after this release. */
  const remaining = new Map<string, number>();
  for (const blockId of Object.keys(h.spec.block)) {
    let ordinal: number | undefined;
    if (o.ipNum !== undefined) {
      const b = await d.cache.get(blockId); // its CIDR only, which never changes
      if (!b) continue;
      ordinal = ordinalOf(b.spec, o.ipNum) ?? NO_ORDINAL;
    }
    const r = await d.writer.submit(blockId, {
      kind: "release",
      handle: o.handle,
      fresh: true,
      ...o.seq,
      ...(ordinal !== undefined ? { ordinal } : {}),
    });
    if (r.kind !== "released") continue;
    out.released.push(...r.released.map((a) => tag(a, blockId)));
    out.kept.push(...r.kept.map((a) => tag(a, blockId)));
    if (r.left > 0) remaining.set(blockId, r.left);
  }
  let cur: typeof h | undefined = h;
  await d.retry("release handle", async () => {
    if (!cur) return;
    try {
      if (remaining.size === 0) {
        await d.handles.delete(o.name, { resourceVersion: cur.resourceVersion });
      } else {
        await d.handles.update({
          ...cur,
          spec: { ...cur.spec, block: Object.fromEntries(remaining) },
        });
      }
    } catch (e) {
      if (e instanceof ConflictError) cur = await d.handles.get(o.name);
      throw e;
    }
  });
  return out;
}

function tag(a: { ip: string; sequence: number }, block: string): ReleasedAddress {
  return { ip: a.ip, block, sequence: a.sequence };
}
