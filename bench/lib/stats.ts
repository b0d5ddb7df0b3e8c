/**
 * Summary statistics for benchmark samples. Percentiles interpolate linearly between the two
 * nearest ranks (the "R-7" rule numpy and most spreadsheets use), so p50 of an even-sized sample is
 * the mean of the middle two and p99 of 50 samples lies between the two largest.
 */

export interface Summary {
  n: number;
  min: number;
  max: number;
  mean: number;
  p50: number;
  p99: number;
}

/** The `p`-th percentile (0 ≤ p ≤ 100) of `samples`; throws on an empty list. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) throw new RangeError("Percentile of an empty sample is undefined");
  if (!(p >= 0 && p <= 100)) throw new RangeError(`Percentile "${p}" is outside 0..100`);
  const sorted = [...samples].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * (p / 100);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function mean(samples: readonly number[]): number {
  if (samples.length === 0) throw new RangeError("Mean of an empty sample is undefined");
  return samples.reduce((s, x) => s + x, 0) / samples.length;
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

export function summarize(samples: readonly number[]): Summary {
  return {
    n: samples.length,
    min: Math.min(...samples),
    max: Math.max(...samples),
    mean: mean(samples),
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
  };
}

/** Events (with `at`, ms) inside [from, to), per second of that window. */
export function rateIn(events: readonly { at: number }[], from: number, to: number): number {
  if (!(to > from)) throw new RangeError(`Empty window [${from}, ${to})`);
  return events.filter((e) => e.at >= from && e.at < to).length / ((to - from) / 1000);
}
