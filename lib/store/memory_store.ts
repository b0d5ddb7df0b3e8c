/**
 * `MemoryStore`: the fake `Store` for tests, with the same semantics as `LevelStore` (passes
 * `store_contract.ts`). Its "disk" is a `MemoryDisk` object that outlives the store, so tests can
 * close or crash a store and open another on the same state, like a daemon restart.
 */
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

/** What survives a `MemoryStore`: committed data and the one-opener lock (LevelDB's LOCK). */
export class MemoryDisk {
  /** Committed raw entries. Tests may poke raw values here to simulate damage. */
  readonly data: Map<string, string> = new Map();
  /** Shown in messages where `LevelStore` shows its directory. */
  readonly name: string;
  #holder: MemoryStore | undefined;
  #crashAfter: number | undefined;

  constructor(name = "memory") {
    this.name = name;
  }

  /**
   * Let the next `n` batches commit, then crash the store holding this disk: batch `n + 1` is
   * not applied and throws, every later call on that store throws `STORE_CLOSED`, and the lock is
   * released so a new store can open the disk (= a daemon killed between two batches).
   */
  crashAfterBatches(n: number): void {
    this.#crashAfter = n;
  }

  /** @internal lock handling for `MemoryStore`. */
  acquire(store: MemoryStore): void {
    if (this.#holder) {
      throw new StoreError(
        "STORE_LOCKED",
        `State in ${this.name} is locked by another process (another hostnic daemon is running?)`,
        { dir: this.name },
      );
    }
    this.#holder = store;
  }

  /** @internal */
  release(store: MemoryStore): void {
    if (this.#holder === store) this.#holder = undefined;
  }

  /** @internal true if this commit must be the crash instead. */
  consumeCrash(): boolean {
    if (this.#crashAfter === undefined) return false;
    if (this.#crashAfter === 0) {
      this.#crashAfter = undefined;
      return true;
    }
    this.#crashAfter--;
    return false;
  }

  /** @internal synchronous, so no reader and no simulated crash can see half of it. */
  commit(ops: readonly RawOp[]): void {
    for (const op of ops) {
      if (op.type === "put") this.data.set(op.key, op.value);
      else this.data.delete(op.key);
    }
  }

  /** @internal */
  sortedEntries(): RawEntry[] {
    return [...this.data.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, value]) => ({ key, value }));
  }
}

export interface MemoryStoreOptions extends FormatOptions {
  /** State to open; a fresh disk when omitted. */
  readonly disk?: MemoryDisk;
  readonly logger?: Logger;
}

export class MemoryStore implements Store {
  readonly disk: MemoryDisk;
  #state: "open" | "closed" | "crashed" = "open";

  private constructor(disk: MemoryDisk) {
    this.disk = disk;
  }

  /** Open (and stamp or migrate) the state on `opts.disk`; `STORE_LOCKED` if a store holds it. */
  static async open(opts: MemoryStoreOptions = {}): Promise<MemoryStore> {
    const disk = opts.disk ?? new MemoryDisk();
    const store = new MemoryStore(disk);
    disk.acquire(store);
    try {
      await prepareFormat({
        getRaw: (key) => Promise.resolve(disk.data.get(key)),
        entriesRaw: () => Promise.resolve(disk.sortedEntries()),
        writeRaw: (ops) => Promise.resolve(disk.commit(ops)),
      }, { ...opts, where: disk.name, logger: opts.logger ?? nullLogger });
    } catch (err) {
      disk.release(store);
      throw err;
    }
    return store;
  }

  get<T = unknown>(key: string): Promise<T | undefined> {
    return later(() => {
      this.#assertOpen();
      validateKey(key);
      const raw = this.disk.data.get(key);
      return raw === undefined ? undefined : decodeValue<T>(key, raw);
    });
  }

  list<T = unknown>(prefix: string): Promise<StoreEntry<T>[]> {
    return later(() => {
      this.#assertOpen();
      validatePrefix(prefix);
      return this.disk.sortedEntries()
        .filter((e) => e.key.startsWith(prefix) && !e.key.startsWith(META_PREFIX))
        .map((e) => ({ key: e.key, value: decodeValue<T>(e.key, e.value) }));
    });
  }

  put(key: string, value: unknown): Promise<void> {
    return this.batch([{ type: "put", key, value }]);
  }

  del(key: string): Promise<void> {
    return this.batch([{ type: "del", key }]);
  }

  batch(ops: readonly BatchOp[]): Promise<void> {
    return later(() => {
      this.#assertOpen();
      const encoded = encodeBatch(ops);
      if (this.disk.consumeCrash()) {
        this.crash();
        throw new StoreError("STORE_IO", `Simulated crash of the store on ${this.disk.name}`, {
          dir: this.disk.name,
        });
      }
      this.disk.commit(encoded);
    });
  }

  /** Die without closing: the handle becomes unusable and the disk lock is released. */
  crash(): void {
    if (this.#state !== "open") return;
    this.#state = "crashed";
    this.disk.release(this);
  }

  close(): Promise<void> {
    if (this.#state === "open") this.#state = "closed";
    this.disk.release(this);
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #assertOpen(): void {
    if (this.#state !== "open") {
      throw new StoreError(
        "STORE_CLOSED",
        `Store on ${this.disk.name} is ${this.#state === "crashed" ? "crashed" : "closed"}`,
        { dir: this.disk.name },
      );
    }
  }
}

/** Run `fn` on a later microtask so callers see the same async ordering as with LevelDB. */
function later<T>(fn: () => T): Promise<T> {
  return Promise.resolve().then(fn);
}
