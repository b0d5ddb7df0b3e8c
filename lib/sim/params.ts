/**
 * Request parameter decoding (reference/qingcloud-api.md §1.6, §2): the raw query or form body
 * into a flat map, then typed readers for scalars, ints, 1-based dotted lists (`nics.1`,
 * `nics.2`, gaps tolerated, ordered by index), lists of objects (`rules.1.protocol`) and
 * pagination (`offset`, `limit` with default 20, clamp 100, `limit<=0` → 20).
 * Every malformed value becomes a 1100 naming the parameter.
 */
import { invalidParameter, missingParameter } from "./errors.ts";

export type Params = Readonly<Record<string, string>>;

export const DEFAULT_LIMIT = 20;
export const MAX_LIMIT = 100;

function decodeComponent(s: string, form: boolean): string {
  return decodeURIComponent(form ? s.replace(/\+/g, " ") : s);
}

/**
 * Decodes `a=1&b=2` with form semantics (`+` is a space), except for `signature`, whose base64
 * `+` must survive: it is percent-decoded only. Duplicate keys are rejected (which one was signed
 * would be ambiguous).
 */
export function decodeParams(
  raw: string,
  into: Record<string, string> = {},
): Record<string, string> {
  if (raw.startsWith("?")) raw = raw.slice(1);
  if (raw === "") return into;
  for (const part of raw.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const rawKey = eq < 0 ? part : part.slice(0, eq);
    const rawVal = eq < 0 ? "" : part.slice(eq + 1);
    let key: string;
    let val: string;
    try {
      key = decodeComponent(rawKey, true);
      val = decodeComponent(rawVal, key !== "signature");
    } catch {
      throw invalidParameter(`malformed percent-encoding in parameter [${safeName(rawKey)}]`);
    }
    if (Object.hasOwn(into, key)) throw invalidParameter(`parameter [${key}] is given twice`);
    into[key] = val;
  }
  return into;
}

/** Parameter names in messages are trimmed so a garbage request cannot bloat the reply. */
function safeName(s: string): string {
  return s.length > 64 ? s.slice(0, 64) + "…" : s;
}

export function str(p: Params, name: string): string | undefined {
  return Object.hasOwn(p, name) ? p[name] : undefined;
}

export function requiredStr(p: Params, name: string): string {
  const v = str(p, name);
  if (v === undefined || v === "") throw missingParameter(name);
  return v;
}

function toInt(name: string, v: string): number {
  if (!/^-?\d{1,15}$/.test(v.trim())) throw invalidParameter(`${name} [${v}] is not an integer`);
  return Number(v.trim());
}

export function int(p: Params, name: string): number | undefined {
  const v = str(p, name);
  return v === undefined || v === "" ? undefined : toInt(name, v);
}

/** `0`/`1` flags (`verbose`, `disable_ip`). */
export function flag(p: Params, name: string): boolean {
  const v = int(p, name);
  if (v === undefined) return false;
  if (v !== 0 && v !== 1) throw invalidParameter(`${name} [${v}] must be 0 or 1`);
  return v === 1;
}

/** `name.N` values ordered by N (any non-negative N, gaps tolerated). */
export function list(p: Params, name: string): string[] {
  const re = new RegExp(`^${escapeRe(name)}\\.(\\d+)$`);
  const found: [number, string][] = [];
  for (const [k, v] of Object.entries(p)) {
    const m = re.exec(k);
    if (m && v !== "") found.push([Number(m[1]), v]);
  }
  return found.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

/** Accepts both the list form (`vxnet_type.1=1`, Go SDK) and a scalar (`vxnet_type=1`, Python). */
export function listOrScalar(p: Params, name: string): string[] {
  const l = list(p, name);
  const s = str(p, name);
  return s !== undefined && s !== "" ? [s, ...l] : l;
}

export function intList(p: Params, name: string): number[] {
  return listOrScalar(p, name).map((v) => toInt(name, v));
}

/** `name.N.field` objects ordered by N; fields not listed in `fields` are ignored. */
export function objectList<F extends string>(
  p: Params,
  name: string,
  fields: readonly F[],
): Partial<Record<F, string>>[] {
  const re = new RegExp(`^${escapeRe(name)}\\.(\\d+)\\.([a-z0-9_]+)$`);
  const byIndex = new Map<number, Partial<Record<F, string>>>();
  for (const [k, v] of Object.entries(p)) {
    const m = re.exec(k);
    if (!m || !(fields as readonly string[]).includes(m[2])) continue;
    const i = Number(m[1]);
    const obj: Partial<Record<F, string>> = byIndex.get(i) ?? {};
    obj[m[2] as F] = v;
    byIndex.set(i, obj);
  }
  return [...byIndex.entries()].sort((a, b) => a[0] - b[0]).map(([, o]) => o);
}

export interface Page {
  offset: number;
  limit: number;
}

/** `offset` default 0; `limit` default 20, `<=0` → 20 (Go SDK sends 0), silently capped at 100. */
export function page(p: Params): Page {
  const offset = int(p, "offset") ?? 0;
  if (offset < 0) throw invalidParameter(`offset [${offset}] must not be negative`);
  let limit = int(p, "limit") ?? DEFAULT_LIMIT;
  if (limit <= 0) limit = DEFAULT_LIMIT;
  return { offset, limit: Math.min(limit, MAX_LIMIT) };
}

export function paginate<T>(items: T[], pg: Page): { total: number; items: T[] } {
  return { total: items.length, items: items.slice(pg.offset, pg.offset + pg.limit) };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
