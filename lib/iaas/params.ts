/**
 * The wire form of action parameters (reference/qingcloud-api.md §2): scalars as text, lists as
 * `name.1..n`, lists of objects as `name.N.field`. Pure; the transport signs what this returns.
 */

export type ParamScalar = string | number;
export type ParamObject = Readonly<Record<string, ParamScalar | undefined>>;
export type ParamValue =
  | ParamScalar
  | undefined
  | readonly ParamScalar[]
  | readonly ParamObject[];

/**
 * Wire form of action parameters: scalars as decimal/string, lists as `name.1..n`, lists of
 * objects as `name.N.field`; `undefined` and empty lists send nothing.
 */
export function flattenParams(
  params: Readonly<Record<string, ParamValue>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined) continue;
    if (!Array.isArray(value)) {
      out[name] = String(value);
      continue;
    }
    value.forEach((item: ParamScalar | ParamObject, i: number) => {
      const key = `${name}.${i + 1}`;
      if (typeof item === "object") {
        for (const [field, v] of Object.entries(item)) {
          if (v !== undefined) out[`${key}.${field}`] = String(v);
        }
      } else {
        out[key] = String(item);
      }
    });
  }
  return out;
}
