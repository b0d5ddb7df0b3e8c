/**
 * Per-key turn-taking for the backends' requests: calls with the same key (one pod attachment,
 * one shared NIC) run one after another in arrival order; calls with different keys run at once.
 * A failed call does not block the next one. Keys with nothing queued are forgotten.
 */
export class KeyedSerial {
  readonly #tails = new Map<string, Promise<void>>();

  /** Runs `fn` after every earlier call with `key` has settled. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const settled = run.then(() => {}, () => {});
    this.#tails.set(key, settled);
    try {
      return await run;
    } finally {
      if (this.#tails.get(key) === settled) this.#tails.delete(key);
    }
  }

  /** Keys with a call running or queued (tests). */
  get busy(): number {
    return this.#tails.size;
  }
}
