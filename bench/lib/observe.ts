/**
 * What the daemon benchmarks read from the simulator and the daemon, as plain data: differences
 * of the simulator's per-action API call counters (the cloud's own count of every IaaS call), and
 * events from the daemon's JSON log (pino lines: `{"level":30,"time":"…","msg":"…",…}`).
 */

/** The simulator's per-action call counters. */
export type Counters = Record<string, number>;

/** Calls made between two counter snapshots: total and the non-zero actions. */
export function countersDelta(before: Counters, after: Counters): { total: number; by: Counters } {
  const by: Counters = {};
  let total = 0;
  for (const [action, n] of Object.entries(after)) {
    const d = n - (before[action] ?? 0);
    if (d !== 0) {
      by[action] = d;
      total += d;
    }
  }
  return { total, by };
}

/** `CreateNics 2, AttachNics 2` (largest first); "none" when empty. */
export function formatCounts(by: Counters): string {
  const e = Object.entries(by).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return e.length === 0 ? "none" : e.map(([k, v]) => `${k} ${v}`).join(", ");
}

/** A daemon log line (pino JSON) of interest: its message, time (epoch ms) and fields. */
export interface LogEvent {
  msg: string;
  time: number;
  fields: Record<string, unknown>;
}

/** JSON log lines with one of `messages`; other lines (and non-JSON text) are skipped. */
export function logEvents(text: string, messages: readonly string[]): LogEvent[] {
  const out: LogEvent[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line);
    } catch {
      continue;
    }
    const msg = rec.msg;
    if (typeof msg !== "string" || !messages.includes(msg)) continue;
    const t = typeof rec.time === "number" ? rec.time : Date.parse(String(rec.time));
    if (!Number.isFinite(t)) continue;
    out.push({ msg, time: t, fields: rec });
  }
  return out;
}

/** `size@seconds` per batch the daemon logged as attached, relative to `t0` (epoch ms). */
export function batchTimeline(
  events: { msg: string; time: number; fields: Record<string, unknown> }[],
  t0: number,
): string {
  return events
    .filter((e) => e.msg === "NICs attached" && e.time >= t0)
    .map((e) => {
      const nics = e.fields.nics;
      const n = Array.isArray(nics) ? nics.length : 0;
      return `${n}@${((e.time - t0) / 1000).toFixed(1)}s`;
    })
    .join(" ");
}
