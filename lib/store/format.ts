/**
 * Versioning of the on-disk state: the `meta/format` stamp and the migrations between formats.
 * Runs at open, before any caller sees the store, on a raw view that both `LevelStore` and
 * `MemoryStore` provide — so the fake refuses and migrates exactly like the real thing.
 *
 * Format history:
 *   0 — no stamp but data present: state left by the Go hostnic (goleveldb, NIC ID → JSON).
 *       Kept under `legacy/<escaped key>` so start-up can adopt those NICs instead of orphaning
 *       them (upstream's "wipe /var/lib/hostnic" advice leaked every NIC).
 *   1 — this layout (`nic/`, `alloc/`, `job/`, `cooldown/`, …).
 */
import type { Logger } from "../log.ts";
import { FORMAT_KEY, MAX_KEY_LENGTH, STORE_FORMAT, StoreError } from "./store.ts";

export interface RawEntry {
  readonly key: string;
  readonly value: string;
}

export type RawOp =
  | { readonly type: "put"; readonly key: string; readonly value: string }
  | { readonly type: "del"; readonly key: string };

/** What a backend offers the format logic: raw reads and one durable atomic raw write. */
export interface RawKv {
  getRaw(key: string): Promise<string | undefined>;
  /** All entries, sorted by key, including `meta/`. */
  entriesRaw(): Promise<RawEntry[]>;
  /** Atomic and durable, like `Store.batch`. */
  writeRaw(ops: readonly RawOp[]): Promise<void>;
}

/** Turns format `from` into `from + 1`. `plan` must be pure: it is applied as one atomic batch. */
export interface Migration {
  readonly from: number;
  readonly describe: string;
  plan(entries: readonly RawEntry[]): { ops: RawOp[]; warnings: string[] };
}

/** Options for tests that exercise the framework with formats this build does not have yet. */
export interface FormatOptions {
  /** Format to open at (default `STORE_FORMAT`). */
  readonly formatVersion?: number;
  /** Migration chain (default `MIGRATIONS`). */
  readonly migrations?: readonly Migration[];
}

const LEGACY_PREFIX = "legacy/";

/** Format 0 → 1: move upstream hostnic's keys under `legacy/`. */
export const legacyToV1: Migration = {
  from: 0,
  describe: "keep state of the Go hostnic under legacy/",
  plan(entries) {
    const ops: RawOp[] = [];
    const warnings: string[] = [];
    for (const { key, value } of entries) {
      const moved = LEGACY_PREFIX + escapeLegacyKey(key);
      if (moved.length > MAX_KEY_LENGTH) {
        warnings.push(`dropped legacy key of ${key.length} characters (too long)`);
        ops.push({ type: "del", key });
        continue;
      }
      ops.push({ type: "del", key });
      ops.push({
        type: "put",
        key: moved,
        value: isJson(value) ? value : JSON.stringify({ unparsed: value }),
      });
    }
    return { ops, warnings };
  },
};

export const MIGRATIONS: readonly Migration[] = [legacyToV1];

/**
 * Make the state readable at `formatVersion`: stamp a fresh one, migrate an older one step by
 * step (each step one atomic batch with its new stamp, so a crash resumes from the last finished
 * step), refuse a newer one.
 */
export async function prepareFormat(
  kv: RawKv,
  opts: FormatOptions & { where: string; logger: Logger },
): Promise<void> {
  const target = opts.formatVersion ?? STORE_FORMAT;
  const migrations = opts.migrations ?? MIGRATIONS;
  const stamped = await readFormat(kv, opts.where);
  let current: number;
  if (stamped === undefined) {
    const entries = await kv.entriesRaw();
    if (entries.length === 0) {
      await kv.writeRaw([{ type: "put", key: FORMAT_KEY, value: JSON.stringify(target) }]);
      opts.logger.info("state stamped", { where: opts.where, format: target });
      return;
    }
    current = 0;
  } else {
    current = stamped;
  }
  if (current > target) {
    throw new StoreError(
      "STORE_FORMAT_NEWER",
      `State in ${opts.where} was written by a newer hostnic (format ${current}); this hostnic ` +
        `understands up to ${target}. Upgrade hostnic, or move the directory away to start ` +
        `from scratch (NICs are then re-adopted from the cloud by their tags)`,
      { dir: opts.where },
    );
  }
  while (current < target) {
    const step = migrations.find((m) => m.from === current);
    if (!step) {
      throw new StoreError(
        "STORE_CORRUPT",
        `State in ${opts.where} has format ${current} and this hostnic has no migration from it`,
        { dir: opts.where },
      );
    }
    const entries = (await kv.entriesRaw()).filter((e) => e.key !== FORMAT_KEY);
    const { ops, warnings } = step.plan(entries);
    for (const w of warnings) opts.logger.warn("state migration", { where: opts.where, note: w });
    const next: number = current + 1;
    await kv.writeRaw([...ops, { type: "put", key: FORMAT_KEY, value: JSON.stringify(next) }]);
    opts.logger.info("state migrated", {
      where: opts.where,
      from: current,
      to: next,
      step: step.describe,
    });
    current = next;
  }
}

async function readFormat(kv: RawKv, where: string): Promise<number | undefined> {
  const raw = await kv.getRaw(FORMAT_KEY);
  if (raw === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    v = undefined;
  }
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new StoreError(
      "STORE_CORRUPT",
      `State in ${where} has an unreadable format stamp "${FORMAT_KEY}" = ${JSON.stringify(raw)}`,
      { key: FORMAT_KEY, dir: where },
    );
  }
  return v;
}

/** Percent-encode every byte outside the key charset (and "%" and "/"): injective, one segment. */
export function escapeLegacyKey(key: string): string {
  if (key === "") return "%"; // a lone "%" is never produced by escaping
  let out = "";
  for (const byte of new TextEncoder().encode(key)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9._:@=+~-]/.test(c)
      ? c
      : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function isJson(s: string): boolean {
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
}
