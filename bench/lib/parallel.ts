/**
 * Running benchmark work with bounded concurrency: `mapLimit` keeps at most `limit` calls of `fn`
 * running and returns results in input order. The first failure stops new calls from starting and
 * is rethrown once the running ones have finished (so no call is left running behind the caller).
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  if (!(limit >= 1)) throw new RangeError(`Concurrency limit "${limit}" must be at least 1`);
  const out = new Array<R>(items.length);
  let next = 0;
  let failed: { err: unknown } | undefined;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i], i);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed) throw failed.err;
  return out;
}
