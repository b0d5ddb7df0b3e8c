/**
 * The allocator's IPAMHandle writes: a create with no read first (the common case: one request),
 * AlreadyExists being the idempotent path — the call repeats one that got an address (that
 * address is the answer) or one that stopped between the handle and the block (the handle is
 * taken over) — and pointing a handle at another block after a lost round.
 */
import { casRetry, type CasRetryOptions } from "./cas_retry.ts";
import { AlreadyExistsError, ConflictError } from "./errors.ts";
import type { Allocation } from "./request.ts";
import type { HandleStore, Versioned } from "./store.ts";
import type { HandleSpec } from "./types.ts";

export interface HandleWriteDeps {
  handles: HandleStore;
  retry: CasRetryOptions;
  /** Addresses the handle holds, read fresh from the blocks it names. */
  held: (handle: string, h: Versioned<HandleSpec>) => Promise<Allocation[]>;
}

interface Target {
  /** Object name (`handleName(handleId)`). */
  name: string;
  handleId: string;
  /** The block the allocation is about to be written to. */
  block: string;
}

/** Creates the handle naming `block`; see the module comment for an existing one. */
export async function createHandle(
  d: HandleWriteDeps,
  t: Target,
): Promise<{ handle: Versioned<HandleSpec> } | { existing: Allocation }> {
  try {
    return { handle: await d.handles.create(t.name, specOf(t)) };
  } catch (e) {
    if (!(e instanceof AlreadyExistsError)) throw e;
  }
  const cur = await d.handles.get(t.name);
  if (cur) {
    const held = await d.held(t.handleId, cur);
    if (held.length > 0) return { existing: held[0] };
  }
  return { handle: await setHandle(d, t, cur) };
}

/** Makes the handle name `block` only (what it named before was not written). */
export function setHandle(
  d: HandleWriteDeps,
  t: Target,
  known: Versioned<HandleSpec> | undefined,
): Promise<Versioned<HandleSpec>> {
  let cur = known;
  return casRetry("write handle", d.retry, async () => {
    try {
      return cur
        ? await d.handles.update({ ...cur, spec: specOf(t) })
        : await d.handles.create(t.name, specOf(t));
    } catch (e) {
      if (e instanceof ConflictError || e instanceof AlreadyExistsError) {
        cur = await d.handles.get(t.name);
      }
      throw e;
    }
  });
}

/** True when the handle names `block` and nothing else. */
export function namesOnly(h: HandleSpec, block: string): boolean {
  const names = Object.keys(h.block);
  return names.length === 1 && names[0] === block;
}

function specOf(t: Target): HandleSpec {
  return { handleID: t.handleId, block: { [t.block]: 1 }, deleted: false };
}
