/**
 * Logging surface. Library code takes a `Logger` through its deps; it never imports a concrete
 * logger. Long-running modes use `jsonLogger` (pino's line format: numeric `level`, ISO `time`,
 * the bindings, the fields, `msg`); the CNI plugin and tests use `stderrLogger`/`nullLogger`.
 * Nothing here imports a package: the daemon's RSS pays for every npm module it loads.
 *
 * Invariants: one key per line — a child's binding or a call's field replaces a parent's binding
 * of the same name (pino wrote both: `{"component":"daemon","component":"pool",…}`); secrets are
 * never passed as fields, and `redactKeys` names fields masked anyway (top level and one level
 * down), as a second line of defence.
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

/** pino's numeric levels, which log shippers and `bench/lib/observe.ts` already read. */
export const PINO_LEVELS: Readonly<Record<LogLevel, number>> = {
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
};

const REDACTED = "[Redacted]";

/** A field value as it goes on the line: errors as `{type, message}`, secrets one level down masked. */
function lineValue(v: unknown): unknown {
  if (v instanceof Error) return { type: v.name, message: v.message };
  if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
  let out: Record<string, unknown> | undefined;
  for (const k of redactKeys) {
    if (k in v) {
      out ??= { ...(v as Record<string, unknown>) };
      out[k] = REDACTED;
    }
  }
  return out ?? v;
}

/** Merges `fields` into `into` (later keys replace earlier ones), masking secrets. */
function mergeFields(into: LogFields, fields: LogFields | undefined): LogFields {
  if (!fields) return into;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    into[k] = redactKeys.includes(k) ? REDACTED : lineValue(v);
  }
  return into;
}

export interface JsonLoggerOptions {
  /** Fields on every line (e.g. `{component: "daemon"}`). */
  base?: LogFields;
  /** Where lines go (default: stderr, written synchronously so a crash loses nothing). */
  write?: (line: string) => void;
  /** Clock for `time` (tests). */
  now?: () => Date;
}

/** JSON lines in pino's format, one key per line, without pino. */
export function jsonLogger(level: LogLevel, opts: JsonLoggerOptions = {}): Logger {
  const min = LOG_LEVELS.indexOf(level);
  const enc = new TextEncoder();
  const write = opts.write ?? ((line: string) => {
    const bytes = enc.encode(line);
    for (let off = 0; off < bytes.length;) off += Deno.stderr.writeSync(bytes.subarray(off));
  });
  const now = opts.now ?? (() => new Date());
  const make = (bindings: LogFields): Logger => {
    const emit = (lvl: LogLevel, msg: string, fields?: LogFields) => {
      if (LOG_LEVELS.indexOf(lvl) < min) return;
      const rec = mergeFields({ ...bindings }, fields);
      // level, time and msg are the line's own: a field of the same name cannot shadow them.
      delete rec.level;
      delete rec.time;
      delete rec.msg;
      write(
        JSON.stringify({ level: PINO_LEVELS[lvl], time: now().toISOString(), ...rec, msg }) + "\n",
      );
    };
    return {
      debug: (m, f) => emit("debug", m, f),
      info: (m, f) => emit("info", m, f),
      warn: (m, f) => emit("warn", m, f),
      error: (m, f) => emit("error", m, f),
      child: (f) => make(mergeFields({ ...bindings }, f)),
    };
  };
  return make(mergeFields({}, opts.base));
}
