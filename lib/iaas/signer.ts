/**
 * QingCloud request signing (signature_version 1) for the client. (The simulator checks
 * signatures with its own code, lib/sim/signature.ts, so a bug here cannot hide behind a shared
 * verifier.) Parameters are sorted by key in byte order, keys and values are
 * percent-encoded (RFC 3986 unreserved kept, uppercase hex, space as %20), joined into a
 * canonical query, and `METHOD\nPATH\nquery` is HMAC'd with the secret and base64-encoded.
 */

export type SignatureMethod = "HmacSHA256" | "HmacSHA1";
export type HttpMethod = "GET" | "POST";

const enc = new TextEncoder();

/**
 * Percent-encodes `s` as UTF-8. Keeps only `A-Z a-z 0-9 - _ . ~`; everything else becomes `%XX`
 * with uppercase hex. `encodeURIComponent` already does this except that it leaves `! ' ( ) *`
 * alone, which the server would then canonicalise differently.
 */
export function percentEncode(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase(),
  );
}

/** Byte-order comparison of two ASCII-ish keys (what Go's sort.Strings and Python's sorted do). */
function compareBytes(a: string, b: string): number {
  const x = enc.encode(a);
  const y = enc.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

/** The canonical query: every parameter except `signature`, sorted by key, encoded, `&`-joined. */
export function canonicalQuery(params: Readonly<Record<string, string>>): string {
  return Object.keys(params)
    .filter((k) => k !== "signature")
    .sort(compareBytes)
    .map((k) => `${percentEncode(k)}=${percentEncode(params[k])}`)
    .join("&");
}

/** `METHOD + "\n" + path + "\n" + canonical query`; `path` is exactly the requested path. */
export function stringToSign(
  method: HttpMethod,
  path: string,
  params: Readonly<Record<string, string>>,
): string {
  return `${method}\n${path}\n${canonicalQuery(params)}`;
}

/** Base64 HMAC of the string to sign (standard alphabet, padded), via WebCrypto. */
export async function computeSignature(o: {
  method: HttpMethod;
  path: string;
  params: Readonly<Record<string, string>>;
  secret: string;
  signatureMethod: SignatureMethod;
}): Promise<string> {
  const hash = o.signatureMethod === "HmacSHA1" ? "SHA-1" : "SHA-256";
  const key = await crypto.subtle.importKey(
    "raw",
    enc.encode(o.secret),
    { name: "HMAC", hash },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign(
    "HMAC",
    key,
    enc.encode(stringToSign(o.method, o.path, o.params)),
  );
  return toBase64(new Uint8Array(mac));
}

function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/**
 * Constant-time string comparison (for signatures), so a verifier does not leak how many leading
 * characters of a forged signature were right. Length differences return false immediately;
 * signature lengths are public anyway.
 */
export function timingSafeEqual(a: string, b: string): boolean {
  const x = enc.encode(a);
  const y = enc.encode(b);
  if (x.length !== y.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

/** `YYYY-MM-DDThh:mm:ssZ` in UTC, no fractional seconds (the API rejects other forms). */
export function formatTimeStamp(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}
