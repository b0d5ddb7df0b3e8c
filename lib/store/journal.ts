/**
 * Release journal: durable "please release this attachment" records, one file each, written by
 * the CNI plugin when DEL cannot reach the daemon, and replayed (then removed) by the daemon.
 * This is what lets DEL succeed with the daemon down without leaking the IP or NIC.
 *
 * Imported by the CNI plugin: nothing beyond `Deno`, `crypto.subtle` and `lib/errors.ts` (start-up
 * cost).
 *
 * Invariants:
 * - A record file is complete or absent: written to a temp file, fsynced, renamed into place,
 *   then the directory is fsynced — so a plugin killed at any point leaves no half record.
 * - File names are derived from (containerId, ifName) by an injective, path-safe encoding; names
 *   read back from disk are never used as paths without re-validation.
 * - Writing the same record twice, or removing a missing one, succeeds (DEL may run twice).
 */

import { HostnicError } from "../errors.ts";

/** One attachment the daemon must release. Everything but the key fields is best effort. */
export interface ReleaseRecord {
  containerId: string;
  ifName: string;
  netns?: string;
  podNamespace?: string;
  podName?: string;
  ip?: string;
  table?: number;
  mode?: string;
  /** Why the plugin journaled instead of calling the daemon (e.g. "daemon unreachable"). */
  reason: string;
  /** ISO 8601 time of the DEL. */
  time: string;
}

export interface JournalEntry {
  /** The record's id (file name without `.json`); pass it to `removeReleaseRecord`. */
  id: string;
  record: ReleaseRecord;
}

/** A file in the journal directory that is not a valid record; reported, never fatal. */
export interface JournalGarbage {
  /** File name inside the directory. */
  name: string;
  problem: string;
}

export interface JournalListing {
  records: JournalEntry[];
  garbage: JournalGarbage[];
}

/** A record, id or file name that is not acceptable. Code `INVALID_RELEASE_RECORD`. */
export class JournalError extends HostnicError {
  constructor(message: string) {
    super("INVALID_RELEASE_RECORD", message);
  }
}

const SUFFIX = ".json";
const TEMP_PREFIX = ".tmp-";
// Readable ids: both components escaped so that "." only ever separates them.
const READABLE_ID = /^[A-Za-z0-9_%-]+\.[A-Za-z0-9_%-]+$/;
const HASHED_ID = /^h-[0-9a-f]{64}$/;
const MAX_READABLE_ID = 200; // file names are limited to 255 bytes
/** A temp file older than this is a leftover of a killed writer, not one in progress. */
const STALE_TEMP_MS = 10 * 60_000;

/**
 * The record id of (containerId, ifName): `<containerId>.<ifName>` with every character outside
 * `[A-Za-z0-9_-]` percent-encoded, or `h-<sha256>` when that would be too long. Injective, and
 * never contains "/" or a "." other than the separator.
 */
export async function releaseRecordId(containerId: string, ifName: string): Promise<string> {
  requireField("containerId", containerId);
  requireField("ifName", ifName);
  const readable = `${escapeComponent(containerId)}.${escapeComponent(ifName)}`;
  if (readable.length <= MAX_READABLE_ID) return readable;
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(`${containerId}\u0000${ifName}`),
  );
  return `h-${[...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Durably record `rec` in `dir` (created 0700 if missing); replaces a record for the same key. */
export async function writeReleaseRecord(dir: string, rec: ReleaseRecord): Promise<string> {
  validateRecord(rec);
  const id = await releaseRecordId(rec.containerId, rec.ifName);
  await ensureDir(dir);
  const rand = crypto.getRandomValues(new Uint32Array(2)).join("-");
  const temp = `${dir}/${TEMP_PREFIX}${id}.${Deno.pid}-${rand}`;
  const data = new TextEncoder().encode(JSON.stringify(rec) + "\n");
  try {
    const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
    try {
      let off = 0;
      while (off < data.length) off += await file.write(data.subarray(off));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, `${dir}/${id}${SUFFIX}`);
  } catch (err) {
    await Deno.remove(temp).catch(() => {});
    throw err;
  }
  await syncDir(dir);
  return id;
}

/**
 * Every valid record in `dir`, sorted by id, plus what is not one (unreadable JSON, wrong fields,
 * a name that does not match its content, stale temp files). A missing directory is empty.
 */
export async function listReleaseRecords(dir: string): Promise<JournalListing> {
  const records: JournalEntry[] = [];
  const garbage: JournalGarbage[] = [];
  let names: Deno.DirEntry[];
  try {
    names = await Array.fromAsync(Deno.readDir(dir));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return { records, garbage };
    throw err;
  }
  for (const entry of names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const { name } = entry;
    if (name.startsWith(TEMP_PREFIX)) {
      // A writer may be between write and rename right now: only old temp files are garbage.
      const info = await Deno.lstat(`${dir}/${name}`).catch(() => undefined);
      const age = info?.mtime ? Date.now() - info.mtime.getTime() : 0;
      if (info && age > STALE_TEMP_MS) garbage.push({ name, problem: "leftover temp file" });
      continue;
    }
    const problem = await readRecord(dir, entry, records);
    if (problem) garbage.push({ name, problem });
  }
  return { records, garbage };
}

/** Remove the record `id` (as returned by `writeReleaseRecord`/`listReleaseRecords`). Idempotent. */
export async function removeReleaseRecord(dir: string, id: string): Promise<void> {
  if (!isRecordId(id)) throw new JournalError(`Invalid release record id "${id}"`);
  await removeName(dir, `${id}${SUFFIX}`);
}

/** Remove a garbage file reported by `listReleaseRecords`. Idempotent; refuses path-like names. */
export async function removeJournalGarbage(dir: string, name: string): Promise<void> {
  if (!isPlainName(name)) throw new JournalError(`Invalid journal file name "${name}"`);
  await removeName(dir, name);
}

async function removeName(dir: string, name: string): Promise<void> {
  try {
    await Deno.remove(`${dir}/${name}`);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  await syncDir(dir);
}

async function readRecord(
  dir: string,
  entry: Deno.DirEntry,
  into: JournalEntry[],
): Promise<string | undefined> {
  if (!entry.name.endsWith(SUFFIX)) return "not a .json file";
  const id = entry.name.slice(0, -SUFFIX.length);
  if (!isRecordId(id)) return "file name is not a record id";
  if (!entry.isFile) return "not a regular file";
  let rec: unknown;
  try {
    rec = JSON.parse(await Deno.readTextFile(`${dir}/${entry.name}`));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined; // removed while listing
    return err instanceof SyntaxError ? "not valid JSON" : `unreadable: ${errMessage(err)}`;
  }
  try {
    validateRecord(rec);
  } catch (err) {
    return errMessage(err);
  }
  if ((await releaseRecordId(rec.containerId, rec.ifName)) !== id) {
    return "file name does not match the record's containerId/ifName";
  }
  into.push({ id, record: rec });
  return undefined;
}

function validateRecord(rec: unknown): asserts rec is ReleaseRecord {
  if (typeof rec !== "object" || rec === null || Array.isArray(rec)) {
    throw new JournalError("Release record must be an object");
  }
  const r = rec as Record<string, unknown>;
  for (const f of ["containerId", "ifName", "reason", "time"] as const) requireField(f, r[f]);
  for (const f of ["netns", "podNamespace", "podName", "ip", "mode"] as const) {
    if (r[f] !== undefined && typeof r[f] !== "string") {
      throw new JournalError(`Release record field "${f}" must be a string`);
    }
  }
  if (r.table !== undefined && !Number.isSafeInteger(r.table)) {
    throw new JournalError(`Release record field "table" must be an integer`);
  }
  if (Number.isNaN(Date.parse(r.time as string))) {
    throw new JournalError(`Release record field "time" is not a date: "${r.time}"`);
  }
}

function requireField(field: string, v: unknown): void {
  if (typeof v !== "string" || v.length === 0) {
    throw new JournalError(`Release record field "${field}" must be a non-empty string`);
  }
}

function escapeComponent(s: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function isRecordId(id: string): boolean {
  return typeof id === "string" &&
    ((READABLE_ID.test(id) && id.length <= MAX_READABLE_ID) || HASHED_ID.test(id));
}

function isPlainName(name: string): boolean {
  return typeof name === "string" && name.length > 0 && name.length <= 255 &&
    !name.includes("/") && !name.includes("\u0000") && name !== "." && name !== "..";
}

/** Create `dir` (0700) if missing, fsyncing its parent so the new entry survives power loss. */
async function ensureDir(dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { mode: 0o700 });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) return;
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  }
  const at = dir.replace(/\/+$/, "").lastIndexOf("/");
  await syncDir(at > 0 ? dir.slice(0, at) : at === 0 ? "/" : ".");
}

/** fsync the directory so a rename or unlink in it survives power loss. */
async function syncDir(dir: string): Promise<void> {
  const d = await Deno.open(dir, { read: true });
  try {
    await d.sync();
  } finally {
    d.close();
  }
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
