/**
 * Base of hostnic's error classes. Every domain error has a stable machine-readable `code`
 * (UPPER_SNAKE) and structured fields; messages are sentence case, values quoted, no ANSI.
 * Only `main.ts` turns errors into exit codes (and, in CNI mode, CNI error JSON).
 */
export class HostnicError extends Error {
  /** Stable machine-readable reason, e.g. `POOL_EMPTY`, `INVALID_CONFIG`. */
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A config value (flag, file key, ConfigMap key, env) failed validation. `key` names it. */
export class ConfigError extends HostnicError {
  readonly key: string;
  constructor(key: string, message: string, options?: ErrorOptions) {
    super("INVALID_CONFIG", `Invalid configuration "${key}": ${message}`, options);
    this.key = key;
  }
}

/** Message of any thrown value, without stack. Safe to show to users. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
