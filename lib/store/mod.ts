/**
 * Durable state of the node daemon, and the release journal the CNI plugin writes when the daemon
 * is down.
 *
 * - `Store` (store.ts): JSON values under namespaced keys (`nic/<id>`, `alloc/<containerId>/<if>`,
 *   `job/<id>`, `cooldown/<ip>`), atomic batches, sorted prefix listing.
 * - `LevelStore` (level_store.ts): LevelDB in `/var/lib/hostnic`, format-stamped, one opener.
 *   Loaded lazily by `openLevelStore` because it pulls in a native addon.
 * - `MemoryStore` (memory_store.ts): the fake, on a `MemoryDisk` that survives close and crash.
 * - journal.ts: one fsynced file per release record.
 *
 * Invariants: a write resolves only once durable; a batch is all or nothing across crashes; both
 * stores pass the same contract suite (store_contract.ts); state written by a newer hostnic is
 * refused, never misread. The CNI plugin imports `journal.ts` directly (no heavy dependencies);
 * this module stays light too, so importing it never loads LevelDB.
 */
export {
  type BatchOp,
  FORMAT_KEY,
  type Store,
  STORE_FORMAT,
  type StoreEntry,
  StoreError,
  type StoreErrorCode,
} from "./store.ts";
export {
  type FormatOptions,
  type Migration,
  MIGRATIONS,
  type RawEntry,
  type RawOp,
} from "./format.ts";
export { MemoryDisk, MemoryStore, type MemoryStoreOptions } from "./memory_store.ts";
export type { LevelStore, LevelStoreOptions } from "./level_store.ts";
export {
  type JournalEntry,
  JournalError,
  type JournalGarbage,
  type JournalListing,
  listReleaseRecords,
  type ReleaseRecord,
  releaseRecordId,
  removeJournalGarbage,
  removeReleaseRecord,
  writeReleaseRecord,
} from "./journal.ts";

import type { LevelStore, LevelStoreOptions } from "./level_store.ts";

/** Open the LevelDB store in `opts.dir` (see `LevelStore.open`); loads LevelDB on first use. */
export async function openLevelStore(opts: LevelStoreOptions): Promise<LevelStore> {
  const { LevelStore } = await import("./level_store.ts");
  return await LevelStore.open(opts);
}
