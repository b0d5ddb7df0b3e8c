/**
 * The `Store` role: JSON values under namespaced string keys, with atomic batches. Shared by the
 * real store (`LevelStore`) and the fake (`MemoryStore`); both pass `store_contract.ts`.
 *
 * No dependencies: the validation here is what makes both implementations behave identically.
 */
import { HostnicError } from "../errors.ts";

/** Stable codes of `StoreError`. */
export type StoreErrorCode =
  | "STORE_INVALID_KEY"
  | "STORE_INVALID_VALUE"
  | "STORE_CORRUPT"
  | "STORE_FORMAT_NEWER"
  | "STORE_LOCKED"
  | "STORE_CLOSED"
  | "STORE_IO";

/** A store operation failed. `key` names the record and `dir` the state directory when known. */
export class StoreError extends HostnicError {
  override readonly code: StoreErrorCode;
  readonly key: string | undefined;
  readonly dir: string | undefined;
  constructor(
    code: StoreErrorCode,
    message: string,
    options?: ErrorOptions & { key?: string; dir?: string },
  ) {
    super(code, message, options);
    this.code = code;
    this.key = options?.key;
    this.dir = options?.dir;
  }
}

/** One write of a batch. `value` must be JSON-serialisable (see `validateValue`). */
export type BatchOp =
  | { readonly type: "put"; readonly key: string; readonly value: unknown }
  | { readonly type: "del"; readonly key: string };

export interface StoreEntry<T> {
  readonly key: string;
  readonly value: T;
}

/**
 * Durable key/value state of the node daemon. Keys look like `nic/<id>`,
 * `alloc/<containerId>/<ifname>`, `job/<id>`, `cooldown/<ip>`.
 *
 * Invariants: a resolved write is durable; a batch is all or nothing, even across a crash; values
 * come back as fresh copies (mutating a result never changes the store).
 */
export interface Store extends AsyncDisposable {
  /** The value under `key`, or `undefined`. The cast to `T` is unchecked: validate what matters. */
  get<T = unknown>(key: string): Promise<T | undefined>;
  /** Every entry whose key starts with `prefix` ("" = all), sorted by key. */
  list<T = unknown>(prefix: string): Promise<StoreEntry<T>[]>;
  /** `batch([{ type: "put", key, value }])`. */
  put(key: string, value: unknown): Promise<void>;
  /** `batch([{ type: "del", key }])`; deleting a missing key succeeds. */
  del(key: string): Promise<void>;
  /** Apply all `ops` atomically, in order (a later op on the same key wins). */
  batch(ops: readonly BatchOp[]): Promise<void>;
  /** Release the store (and its directory lock). Idempotent. */
  close(): Promise<void>;
}

/**
 * Newest state format this build writes. Bump it together with a migration in `level_store.ts`
 * whenever the meaning of stored keys or values changes.
 */
export const STORE_FORMAT = 1;

/** Namespace the store keeps for itself (format stamp). Callers can neither write nor list it. */
export const META_PREFIX = "meta/";
export const FORMAT_KEY = "meta/format";

export const MAX_KEY_LENGTH = 1024;

// Segments carry container IDs, interface names, IPv4/IPv6 addresses, NIC IDs (MACs) and job IDs.
// The charset is ASCII so byte order (LevelDB) equals JS string order (MemoryStore).
const SEGMENT = "[A-Za-z0-9._:@%=+~-]+";
const KEY_RE = new RegExp(`^${SEGMENT}(?:/${SEGMENT})*$`);
// A prefix may stop anywhere: mid-segment or right after a `/`.
const PREFIX_RE = /^[A-Za-z0-9._:@%=+~\/-]*$/;

/** Throws `STORE_INVALID_KEY` unless `key` is a valid, non-reserved key. */
export function validateKey(key: unknown): string {
  if (typeof key !== "string") {
    throw new StoreError("STORE_INVALID_KEY", `Store key must be a string, got ${typeof key}`);
  }
  if (key.length === 0 || key.length > MAX_KEY_LENGTH || !KEY_RE.test(key)) {
    throw new StoreError(
      "STORE_INVALID_KEY",
      `Invalid store key "${clip(key)}": use 1–${MAX_KEY_LENGTH} characters of ` +
        `[A-Za-z0-9._:@%=+~-] in non-empty segments separated by "/"`,
      { key },
    );
  }
  if (key.startsWith(META_PREFIX)) {
    throw new StoreError(
      "STORE_INVALID_KEY",
      `Invalid store key "${key}": the "${META_PREFIX}" namespace is reserved for the store`,
      { key },
    );
  }
  return key;
}

/** Throws `STORE_INVALID_KEY` unless `prefix` could start a valid key ("" is allowed). */
export function validatePrefix(prefix: unknown): string {
  if (typeof prefix !== "string" || prefix.length > MAX_KEY_LENGTH || !PREFIX_RE.test(prefix)) {
    throw new StoreError(
      "STORE_INVALID_KEY",
      `Invalid store prefix "${clip(String(prefix))}"`,
    );
  }
  return prefix;
}

/**
 * Serialise `value` to JSON, refusing anything that would not round-trip: `undefined`,
 * functions, symbols, bigints, non-finite numbers, class instances (Date, Map…), cycles.
 */
export function encodeValue(key: string, value: unknown): string {
  const problem = findNonJson(value, "$", new Set());
  if (problem) {
    throw new StoreError(
      "STORE_INVALID_VALUE",
      `Value for store key "${key}" is not plain JSON: ${problem}`,
      { key },
    );
  }
  return JSON.stringify(value);
}

/** Parse a stored value; a damaged one becomes `STORE_CORRUPT` naming the key. */
export function decodeValue<T>(key: string, raw: string): T {
  try {
    return JSON.parse(raw) as T;
  } catch (err) {
    throw new StoreError(
      "STORE_CORRUPT",
      `Stored value for key "${key}" is not valid JSON (${raw.length} bytes); ` +
        `delete the key or restore the state directory`,
      { key, cause: err },
    );
  }
}

/** Validate and encode a whole batch before anything is written (validation is all or nothing). */
export function encodeBatch(
  ops: readonly BatchOp[],
): ({ type: "put"; key: string; value: string } | { type: "del"; key: string })[] {
  if (!Array.isArray(ops)) {
    throw new StoreError("STORE_INVALID_VALUE", "Store batch must be an array of operations");
  }
  return ops.map((op) => {
    const key = validateKey(op?.key);
    if (op.type === "put") return { type: "put" as const, key, value: encodeValue(key, op.value) };
    if (op.type === "del") return { type: "del" as const, key };
    throw new StoreError(
      "STORE_INVALID_VALUE",
      `Store batch operation on "${key}" has unknown type "${
        String((op as { type: unknown }).type)
      }"`,
      { key },
    );
  });
}

function findNonJson(v: unknown, path: string, seen: Set<object>): string | undefined {
  switch (typeof v) {
    case "string":
    case "boolean":
      return undefined;
    case "number":
      return Number.isFinite(v) ? undefined : `${path} is ${v}`;
    case "object": {
      if (v === null) return undefined;
      if (seen.has(v)) return `${path} is a cycle`;
      seen.add(v);
      try {
        if (Array.isArray(v)) {
          for (let i = 0; i < v.length; i++) {
            const p = findNonJson(v[i], `${path}[${i}]`, seen);
            if (p) return p;
          }
          return undefined;
        }
        const proto = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) {
          return `${path} is a ${proto?.constructor?.name ?? "non-plain object"}`;
        }
        for (const [k, item] of Object.entries(v)) {
          const p = findNonJson(item, `${path}.${k}`, seen);
          if (p) return p;
        }
        return undefined;
      } finally {
        seen.delete(v);
      }
    }
    default:
      return `${path} is ${typeof v}`;
  }
}

function clip(s: string): string {
  return s.length > 64 ? `${s.slice(0, 61)}...` : s;
}
