/**
 * A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text
 * exposition format (0.0.4), plus the process metrics the daemon reports. It replaces
 * prom-client, which was ~8.5 MiB of the daemon's RSS for these few metrics (docs/benchmarks.md).
 *
 * The text is what prom-client wrote, so dashboards and scrapers see the same series: a metric's
 * own labels come first and the registry's default labels (`node_name`) after them, except in
 * histograms, where the default labels come first and `le` last.
 */

type Labels = Record<string, string>;

/** Label values as the exposition format quotes them. */
function escapeValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function renderLabels(pairs: [string, string][]): string {
  if (pairs.length === 0) return "";
  return `{${pairs.map(([k, v]) => `${k}="${escapeValue(v)}"`).join(",")}}`;
}

function renderNumber(x: number): string {
  if (x === Infinity) return "+Inf";
  if (x === -Infinity) return "-Inf";
  return String(x);
}

/** The key of a label set: its values in the metric's label order. */
function keyOf(names: readonly string[], labels: Labels): string {
  return JSON.stringify(names.map((n) => labels[n] ?? ""));
}

function checkLabels(metric: string, names: readonly string[], labels: Labels): void {
  for (const k of Object.keys(labels)) {
    if (!names.includes(k)) throw new Error(`Metric "${metric}" has no label "${k}"`);
  }
}

interface Metric {
  readonly name: string;
  /** Runs before each scrape (gauges that read their value then). */
  collect?(): void | Promise<void>;
  render(defaults: [string, string][]): string;
}

interface MetricOptions<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
}

abstract class Scalar<L extends string> implements Metric {
  readonly name: string;
  readonly #help: string;
  readonly #type: string;
  protected readonly labelNames: readonly L[];
  protected readonly values = new Map<string, { labels: Labels; value: number }>();

  constructor(o: MetricOptions<L>, type: string) {
    this.name = o.name;
    this.#help = o.help;
    this.#type = type;
    this.labelNames = o.labelNames ?? [];
  }

  protected entry(labels: Partial<Record<L, string>>): { labels: Labels; value: number } {
    const l = labels as Labels;
    checkLabels(this.name, this.labelNames, l);
    const key = keyOf(this.labelNames, l);
    let e = this.values.get(key);
    if (!e) {
      e = { labels: { ...l }, value: 0 };
      this.values.set(key, e);
    }
    return e;
  }

  /** Drops one labelled series (a pool that is gone). */
  remove(labels: Partial<Record<L, string>>): void {
    this.values.delete(keyOf(this.labelNames, labels as Labels));
  }

  /** Drops every series. */
  reset(): void {
    this.values.clear();
  }

  render(defaults: [string, string][]): string {
    const lines = [`# HELP ${this.name} ${this.#help}`, `# TYPE ${this.name} ${this.#type}`];
    const entries = this.values.size > 0 || this.labelNames.length > 0
      ? [...this.values.values()]
      : [{ labels: {}, value: 0 }];
    for (const e of entries) {
      const own = this.labelNames.filter((n) => n in e.labels).map((n) =>
        [n, e.labels[n]] as [string, string]
      );
      lines.push(`${this.name}${renderLabels([...own, ...defaults])} ${renderNumber(e.value)}`);
    }
    return lines.join("\n");
  }
}

export class Counter<L extends string = never> extends Scalar<L> {
  constructor(o: MetricOptions<L>) {
    super(o, "counter");
  }
  inc(labels: Partial<Record<L, string>> = {}, by = 1): void {
    if (by < 0) throw new Error(`Counter "${this.name}" cannot go down`);
    this.entry(labels).value += by;
  }
}

export class Gauge<L extends string = never> extends Scalar<L> {
  readonly #collect?: (g: Gauge<L>) => void | Promise<void>;
  /** `collect` sets the value(s) right before each scrape (a count read from elsewhere). */
  constructor(o: MetricOptions<L> & { collect?: (g: Gauge<L>) => void | Promise<void> }) {
    super(o, "gauge");
    this.#collect = o.collect;
  }
  collect(): void | Promise<void> {
    return this.#collect?.(this);
  }
  /** `set(value)` or `set(labels, value)`, as prom-client. */
  set(labelsOrValue: Partial<Record<L, string>> | number, value?: number): void {
    if (typeof labelsOrValue === "number") this.entry({}).value = labelsOrValue;
    else this.entry(labelsOrValue).value = value ?? 0;
  }
}

export class Histogram<L extends string = never> implements Metric {
  readonly name: string;
  readonly #help: string;
  readonly #labelNames: readonly L[];
  readonly #buckets: readonly number[];
  readonly #series = new Map<
    string,
    { labels: Labels; counts: number[]; sum: number; n: number }
  >();

  constructor(o: MetricOptions<L> & { buckets: readonly number[] }) {
    this.name = o.name;
    this.#help = o.help;
    this.#labelNames = o.labelNames ?? [];
    this.#buckets = [...o.buckets].sort((a, b) => a - b);
  }

  observe(labels: Partial<Record<L, string>>, value: number): void {
    const l = labels as Labels;
    checkLabels(this.name, this.#labelNames, l);
    const key = keyOf(this.#labelNames, l);
    let s = this.#series.get(key);
    if (!s) {
      s = { labels: { ...l }, counts: this.#buckets.map(() => 0), sum: 0, n: 0 };
      this.#series.set(key, s);
    }
    for (let i = 0; i < this.#buckets.length; i++) if (value <= this.#buckets[i]) s.counts[i]++;
    s.sum += value;
    s.n++;
  }

  /** Starts a timer; `end(more)` observes the seconds since, with `labels` and `more`. */
  startTimer(labels: Partial<Record<L, string>> = {}): (more?: Partial<Record<L, string>>) => void {
    const t0 = performance.now();
    return (more = {}) => this.observe({ ...labels, ...more }, (performance.now() - t0) / 1000);
  }

  render(defaults: [string, string][]): string {
    const lines = [`# HELP ${this.name} ${this.#help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.#series.values()) {
      const own = this.#labelNames.filter((n) => n in s.labels).map((n) =>
        [n, s.labels[n]] as [string, string]
      );
      const base = [...defaults, ...own];
      this.#buckets.forEach((b, i) => {
        lines.push(
          `${this.name}_bucket${renderLabels([...base, ["le", renderNumber(b)]])} ${s.counts[i]}`,
        );
      });
      lines.push(`${this.name}_bucket${renderLabels([...base, ["le", "+Inf"]])} ${s.n}`);
      lines.push(`${this.name}_sum${renderLabels(base)} ${renderNumber(s.sum)}`);
      lines.push(`${this.name}_count${renderLabels(base)} ${s.n}`);
    }
    return lines.join("\n");
  }
}

/** Gauges read when scraped (process metrics). */
class Collected implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "gauge" | "counter",
    readonly read: () => number,
  ) {}
  render(defaults: [string, string][]): string {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} ${this.type}`,
      `${this.name}${renderLabels(defaults)} ${renderNumber(this.read())}`,
    ].join("\n");
  }
}

export class Registry {
  readonly contentType = "text/plain; version=0.0.4; charset=utf-8";
  readonly #metrics: Metric[] = [];
  #defaults: [string, string][] = [];

  setDefaultLabels(labels: Labels): void {
    this.#defaults = Object.entries(labels);
  }

  register<M extends Metric>(m: M): M {
    if (this.#metrics.some((x) => x.name === m.name)) {
      throw new Error(`Metric "${m.name}" is registered twice`);
    }
    this.#metrics.push(m);
    return m;
  }

  /** The exposition text of every metric, after the scrape-time collectors ran. */
  async metrics(): Promise<string> {
    for (const m of this.#metrics) await m.collect?.();
    return this.#metrics.map((m) => m.render(this.#defaults)).join("\n\n") + "\n";
  }
}

/** RSS and CPU of this process from /proc (Linux), 0 where unreadable. */
function procStat(): { rssBytes: number; vmBytes: number; user: number; system: number } {
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = 100;
    return {
      user: Number(f[11]) / ticks,
      system: Number(f[12]) / ticks,
      vmBytes: Number(f[20]),
      rssBytes: Number(f[21]) * 4096,
    };
  } catch {
    return { rssBytes: 0, vmBytes: 0, user: 0, system: 0 };
  }
}

/**
 * The process metrics prom-client's default collector wrote under the same names that the
 * benchmarks and dashboards read: CPU, start time, memory, V8's heap.
 */
export function collectProcessMetrics(registry: Registry, prefix: string): void {
  const start = Date.now() / 1000 - performance.now() / 1000;
  const add = (name: string, help: string, type: "gauge" | "counter", read: () => number) =>
    registry.register(new Collected(`${prefix}${name}`, help, type, read));
  add(
    "process_cpu_user_seconds_total",
    "Total user CPU time spent in seconds.",
    "counter",
    () => procStat().user,
  );
  add(
    "process_cpu_system_seconds_total",
    "Total system CPU time spent in seconds.",
    "counter",
    () => procStat().system,
  );
  add(
    "process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds.",
    "counter",
    () => {
      const s = procStat();
      return s.user + s.system;
    },
  );
  add(
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
    "gauge",
    () => Math.round(start),
  );
  add(
    "process_resident_memory_bytes",
    "Resident memory size in bytes.",
    "gauge",
    () => procStat().rssBytes,
  );
  add(
    "process_virtual_memory_bytes",
    "Virtual memory size in bytes.",
    "gauge",
    () => procStat().vmBytes,
  );
  add(
    "nodejs_heap_size_total_bytes",
    "Process heap size from V8 in bytes.",
    "gauge",
    () => Deno.memoryUsage().heapTotal,
  );
  add(
    "nodejs_heap_size_used_bytes",
    "Process heap size used from V8 in bytes.",
    "gauge",
    () => Deno.memoryUsage().heapUsed,
  );
  add(
    "nodejs_external_memory_bytes",
    "V8 external memory size in bytes.",
    "gauge",
    () => Deno.memoryUsage().external,
  );
}
