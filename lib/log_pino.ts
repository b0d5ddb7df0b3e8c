/**
 * The daemon's logger: pino, JSON lines on stderr, with secret-looking fields redacted.
 * Loaded only by long-running modes (never by the CNI plugin).
 */
import pino from "pino";
import { type LogFields, type Logger, type LogLevel, redactKeys } from "./log.ts";

export function pinoLogger(level: LogLevel, base: LogFields = {}): Logger {
  const root = pino({
    level,
    base,
    redact: { paths: [...redactKeys, ...redactKeys.map((k) => `*.${k}`)], censor: "[Redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
  }, pino.destination({ fd: 2, sync: true }));
  return wrap(root);
}

function wrap(p: pino.Logger): Logger {
  return {
    debug: (m, f) => p.debug(f ?? {}, m),
    info: (m, f) => p.info(f ?? {}, m),
    warn: (m, f) => p.warn(f ?? {}, m),
    error: (m, f) => p.error(f ?? {}, m),
    child: (f) => wrap(p.child(f)),
  };
}
