/**
 * Logging surface. Library code takes a `Logger` through its deps; it never imports a concrete
 * logger. The daemon builds a pino-backed logger (`lib/log_pino.ts`, loaded lazily); the CNI
 * plugin and tests use `stderrLogger`/`nullLogger`, which import nothing.
 *
 * Invariant: secrets are never passed as fields. `redactKeys` lists field names that the pino
 * logger redacts anyway, as a second line of defence.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

/** Field names that must never reach a log line in clear. */
export const redactKeys: readonly string[] = [
  "secret",
  "secretAccessKey",
  "qy_secret_access_key",
  "secret_access_key",
  "signature",
];

export const nullLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return nullLogger;
  },
};

/** Minimal JSON-lines logger on stderr for short-lived processes (CNI plugin, CLI). */
export function stderrLogger(level: LogLevel = "info", base: LogFields = {}): Logger {
  const min = LOG_LEVELS.indexOf(level);
  const enc = new TextEncoder();
  const emit = (lvl: LogLevel, msg: string, fields?: LogFields) => {
    if (LOG_LEVELS.indexOf(lvl) < min) return;
    const line = JSON.stringify({
      level: lvl,
      time: new Date().toISOString(),
      msg,
      ...base,
      ...scrub(fields),
    });
    Deno.stderr.writeSync(enc.encode(line + "\n"));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (f) => stderrLogger(level, { ...base, ...f }),
  };
}

function scrub(fields?: LogFields): LogFields | undefined {
  if (!fields) return fields;
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields)) out[k] = redactKeys.includes(k) ? "[Redacted]" : v;
  return out;
}
