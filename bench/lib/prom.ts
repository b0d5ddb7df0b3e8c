/**
 * Reading the daemon's Prometheus text exposition (`/metrics`) for benchmarks: samples by metric
 * name with their labels, sums over label sets, and the mean of a histogram between two scrapes.
 * Only the text format prom-client writes (no timestamps, no exemplars) needs to be understood.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)\s*$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/g;

/** Every sample line of an exposition; comments and blank lines are skipped. */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL)) {
      labels[l[1]] = l[2].replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    }
    const value = m[3] === "+Inf" ? Infinity : m[3] === "-Inf" ? -Infinity : Number(m[3]);
    out.push({ name: m[1], labels, value });
  }
  return out;
}

/** Sum of the samples named `name` whose labels include all of `match`. */
export function sumOf(
  samples: readonly Sample[],
  name: string,
  match: Record<string, string> = {},
): number {
  let s = 0;
  for (const x of samples) {
    if (x.name !== name) continue;
    if (Object.entries(match).every(([k, v]) => x.labels[k] === v)) s += x.value;
  }
  return s;
}

/** First sample named `name` (undefined when the metric is absent). */
export function valueOf(samples: readonly Sample[], name: string): number | undefined {
  return samples.find((x) => x.name === name)?.value;
}

/**
 * Mean of a histogram's observations made between two scrapes (`_sum` and `_count` deltas),
 * restricted to the label set `match`; undefined when nothing was observed in between.
 */
export function histogramMeanBetween(
  before: readonly Sample[],
  after: readonly Sample[],
  name: string,
  match: Record<string, string> = {},
): number | undefined {
  const n = sumOf(after, `${name}_count`, match) - sumOf(before, `${name}_count`, match);
  if (n <= 0) return undefined;
  return (sumOf(after, `${name}_sum`, match) - sumOf(before, `${name}_sum`, match)) / n;
}
