/**
 * Locks on node link names, for teardowns that run at the same time. Releasing a NIC renames its
 * link back to the name it was attached under, and two NICs may remember the same name (the
 * kernel gives a name out again once the first NIC was renamed away), so two releases could both
 * pick it. Teardowns that claim the same name take turns; all others run in parallel.
 *
 * Invariant: names are taken in sorted order, so two claims never wait on each other in a cycle.
 */

/** A held claim on some names. */
export interface NameClaim {
  /** True when another holder had one of the names first: a plan read before may be stale. */
  readonly waited: boolean;
  release(): void;
}

export class NameLocks {
  readonly #tails = new Map<string, Promise<void>>();

  /** Waits until every one of `names` is free, then holds them until `release()`. */
  async claim(names: readonly string[]): Promise<NameClaim> {
    const sorted = [...new Set(names)].sort();
    const releases: (() => void)[] = [];
    let waited = false;
    for (const name of sorted) {
      const prev = this.#tails.get(name);
      let release!: () => void;
      const mine = new Promise<void>((r) => release = r);
      const tail = (prev ?? Promise.resolve()).then(() => mine);
      this.#tails.set(name, tail);
      releases.push(() => {
        release();
        if (this.#tails.get(name) === tail) this.#tails.delete(name);
      });
      if (prev) {
        waited = true;
        await prev;
      }
    }
    let released = false;
    return {
      waited,
      release: () => {
        if (released) return;
        released = true;
        for (const r of releases) r();
      },
    };
  }

  /** Names held or waited for right now (tests). */
  get busy(): number {
    return this.#tails.size;
  }
}
