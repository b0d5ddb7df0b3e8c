/**
 * The allocator's copies of IPAMBlocks: the last version this process saw of each block (from a
 * list, a read or its own write), so a normal allocation reads nothing from the store.
 *
 * Invariants:
 * - A copy may be stale (other nodes borrow, their GC releases, the controller tombstones), and
 *   that is safe: every block write is a compare-and-swap on the copy's resourceVersion, and a
 *   writer that loses re-reads the block (`read`), which replaces the copy.
 * - Nothing is refused on a copy: "address in use" and "block full" are decided on a fresh read
 *   (block_writer.ts), "nothing free anywhere" on a fresh list (ipam.ts).
 * - A list that was in flight while this process wrote a block does not bring back the version
 *   from before that write (each copy remembers when it was noted).
 */
import type { BlockStore, Versioned } from "./store.ts";
import type { BlockSpec } from "./types.ts";

type Block = Versioned<BlockSpec>;

export class BlockCache {
  readonly #store: BlockStore;
  readonly #copies = new Map<string, { obj: Block; epoch: number }>();
  #epoch = 0;
  #listed = false;
  #listing: Promise<Block[]> | undefined;

  constructor(store: BlockStore) {
    this.#store = store;
  }

  /** Every block, sorted by name: the copies once a list was seen, else (or `fresh`) a list. */
  async list(o: { fresh?: boolean } = {}): Promise<Block[]> {
    if (!o.fresh && this.#listed) {
      return [...this.#copies.values()].map((c) => c.obj)
        .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    }
    return await this.refresh();
  }

  /** A list from the store (concurrent callers share one), replacing the copies. */
  refresh(): Promise<Block[]> {
    this.#listing ??= (async () => {
      const since = this.#epoch;
      const all = await this.#store.list();
      const seen = new Set(all.map((b) => b.name));
      for (const [name, c] of this.#copies) {
        if (!seen.has(name) && c.epoch <= since) this.#copies.delete(name);
      }
      for (const b of all) {
        const c = this.#copies.get(b.name);
        if (!c || c.epoch <= since) this.#copies.set(b.name, { obj: b, epoch: since });
      }
      this.#listed = true;
      return all;
    })().finally(() => (this.#listing = undefined));
    return this.#listing;
  }

  /** The copy of `name`, without I/O; undefined when none is held. */
  peek(name: string): Block | undefined {
    return this.#copies.get(name)?.obj;
  }

  /** A fresh read of `name` from the store, kept as its copy (dropped when the block is gone). */
  async read(name: string): Promise<Block | undefined> {
    const b = await this.#store.get(name);
    if (b) this.note(b);
    else this.forget(name);
    return b;
  }

  /** The copy when held, else a read. */
  async get(name: string): Promise<Block | undefined> {
    return this.peek(name) ?? await this.read(name);
  }

  /** Keeps `b` as the newest version of its block (a write reply or a read). */
  note(b: Block): void {
    this.#copies.set(b.name, { obj: b, epoch: ++this.#epoch });
  }

  forget(name: string): void {
    this.#epoch++;
    this.#copies.delete(name);
  }

  /** `create` through the store, keeping the reply. */
  async create(name: string, spec: BlockSpec): Promise<Block> {
    const b = await this.#store.create(name, spec);
    this.note(b);
    return b;
  }

  /** `update` through the store, keeping the reply. */
  async update(b: Block): Promise<Block> {
    const out = await this.#store.update(b);
    this.note(out);
    return out;
  }
}
