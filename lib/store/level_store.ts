/**
 * `LevelStore`: the daemon's `Store` on LevelDB (npm `level` → classic-level) in a directory,
 * `/var/lib/hostnic` in production. Daemon only: it loads a native addon (needs --allow-ffi) and
 * costs ~100 ms at start, so the CNI plugin must never import this file.
 *
 * Invariants: every write is a LevelDB batch with `sync: true` (fsync before the promise
 * resolves), because the daemon reports success only after its state is written; LevelDB's batch
 * is atomic across crashes (one log record); values are JSON text we encode ourselves, so a
 * damaged value surfaces as `STORE_CORRUPT` naming its key instead of a decoder crash.
 *
 * Group commit: while one batch is being written (its fsync takes milliseconds), the batches that
 * arrive are queued and written together as one LevelDB batch, in arrival order, so 16 concurrent
 * DELs cost two or three fsyncs instead of 32. Each caller's promise still resolves only once its
 * own ops are durable, and a merged batch is as atomic as each batch in it.
 */
import { Level } from "level";
import { type Logger, nullLogger } from "../log.ts";
import { type FormatOptions, prepareFormat, type RawEntry, type RawOp } from "./format.ts";
import {
  type BatchOp,
  decodeValue,
  encodeBatch,
  META_PREFIX,
  type Store,
  type StoreEntry,
  StoreError,
  validateKey,
  validatePrefix,
} from "./store.ts";

export interface LevelStoreOptions extends FormatOptions {
  /** State directory; created (0700) if missing. */
  readonly dir: string;
  readonly logger?: Logger;
}

// Above every character a valid key may contain ("~" is 0x7e): the end of a prefix range.
const PREFIX_END = "\x7f";

export class LevelStore implements Store {
  readonly dir: string;
  readonly #db: Level<string, string>;
  /** Batches accepted while a write was in flight (group commit). */
  readonly #queued: { ops: readonly RawOp[]; done: PromiseWithResolvers<void> }[] = [];
  #writing = false;
  #draining: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(dir: string, db: Level<string, string>) {
    this.dir = dir;
    this.#db = db;
  }

  /**
   * Open the state in `opts.dir`: stamp a fresh directory, migrate an older format, refuse a newer
   * one (`STORE_FORMAT_NEWER`) or one locked by another process (`STORE_LOCKED`).
   */
  static async open(opts: LevelStoreOptions): Promise<LevelStore> {
    const { dir } = opts;
    try {
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new StoreError("STORE_IO", `Cannot create state directory ${dir}: ${msg(err)}`, {
        dir,
        cause: err,
      });
    }
    const db = new Level<string, string>(dir, { keyEncoding: "utf8", valueEncoding: "utf8" });
    try {
      await db.open();
    } catch (err) {
      throw openError(dir, err);
    }
    const store = new LevelStore(dir, db);
    try {
      await prepareFormat({
        getRaw: (key) => store.#io(() => db.get(key)),
        entriesRaw: () => store.#io(() => store.#range({})),
        writeRaw: (ops) => store.#write(ops),
      }, { ...opts, where: dir, logger: opts.logger ?? nullLogger });
    } catch (err) {
      await db.close().catch(() => {});
      throw err;
    }
    return store;
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    this.#assertOpen();
    validateKey(key);
    const raw = await this.#io(() => this.#db.get(key));
    return raw === undefined ? undefined : decodeValue<T>(key, raw);
  }

  async list<T = unknown>(prefix: string): Promise<StoreEntry<T>[]> {
    this.#assertOpen();
    validatePrefix(prefix);
    const raw = await this.#io(() => this.#range({ gte: prefix, lt: prefix + PREFIX_END }));
    return raw
      .filter((e) => !e.key.startsWith(META_PREFIX))
      .map((e) => ({ key: e.key, value: decodeValue<T>(e.key, e.value) }));
  }

  put(key: string, value: unknown): Promise<void> {
    return this.batch([{ type: "put", key, value }]);
  }

  del(key: string): Promise<void> {
    return this.batch([{ type: "del", key }]);
  }

  async batch(ops: readonly BatchOp[]): Promise<void> {
    this.#assertOpen();
    const encoded = encodeBatch(ops); // throws before anything is written
    if (encoded.length === 0) return;
    await this.#write(encoded);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#draining; // queued writes were accepted: they are written before the close
    await this.#io(() => this.#db.close());
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #write(ops: readonly RawOp[]): Promise<void> {
    const done = Promise.withResolvers<void>();
    this.#queued.push({ ops, done });
    if (!this.#writing) {
      this.#writing = true;
      this.#draining = this.#drain();
    }
    return done.promise;
  }

  /**
   * Writes the queued batches, each group of them as one batch (group commit). `#writing` is
   * cleared in the same synchronous step that finds the queue empty, so a batch queued by a
   * caller resumed from the last group's write always starts a new drain (it cannot be left
   * behind by one that is just ending).
   */
  async #drain(): Promise<void> {
    try {
      while (this.#queued.length > 0) {
        const group = this.#queued.splice(0);
        const ops = group.flatMap((g) => g.ops.map((op) => ({ ...op })));
        try {
          // sync: LevelDB fsyncs its log before resolving — durable across power loss.
          await this.#io(() => this.#db.batch(ops, { sync: true }));
          for (const g of group) g.done.resolve();
        } catch (err) {
          for (const g of group) g.done.reject(err);
        }
      }
    } finally {
      this.#writing = false;
    }
  }

  async #range(range: { gte?: string; lt?: string }): Promise<RawEntry[]> {
    const entries = await this.#db.iterator(range).all();
    return entries.map(([key, value]) => ({ key, value }));
  }

  async #io<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new StoreError("STORE_IO", `State in ${this.dir}: ${msg(err)}`, {
        dir: this.dir,
        cause: err,
      });
    }
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new StoreError("STORE_CLOSED", `Store on ${this.dir} is closed`, { dir: this.dir });
    }
  }
}

function openError(dir: string, err: unknown): StoreError {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } })?.cause;
  if (cause?.code === "LEVEL_LOCKED") {
    return new StoreError(
      "STORE_LOCKED",
      `State in ${dir} is locked by another process (another hostnic daemon is running?)`,
      { dir, cause: err },
    );
  }
  const detail = typeof cause?.message === "string" ? cause.message : msg(err);
  return new StoreError("STORE_IO", `Cannot open state in ${dir}: ${detail}`, { dir, cause: err });
}

function msg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
