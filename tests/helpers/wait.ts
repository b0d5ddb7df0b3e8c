/** Waiting on conditions with a deadline (never a bare sleep). */

/** Polls `cond` every `intervalMs` until it returns a truthy value; throws naming `what` on timeout. */
export async function waitFor<T>(
  what: string,
  cond: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 10));
  }
}
