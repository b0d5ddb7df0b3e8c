/**
 * The simulator's own QingCloud signature (signature_version 1, reference/qingcloud-api.md
 * §1.4–1.5): canonical query, string to sign, HMAC and a constant-time comparison.
 *
 * Written apart from the client's signer (lib/iaas/signer.ts) on purpose, like ip.ts: the
 * simulator is the client's examiner, and a canonicalisation bug shared by both sides would sign
 * and verify the same wrong string, so the round-trip tests would pass and the real API would
 * answer 1200. This file follows the spec text byte by byte (UTF-8 bytes, unreserved set, keys
 * sorted by their bytes) instead of post-processing `encodeURIComponent` as the client does, and
 * its tests check it against the spec's published vectors, not against the client.
 */

export type SignatureMethod = "HmacSHA256" | "HmacSHA1";
export type HttpMethod = "GET" | "POST";

const utf8 = new TextEncoder();
const HEX_DIGITS = "0123456789ABCDEF";

/** RFC 3986 unreserved: `A-Z a-z 0-9 - _ . ~` (the only bytes left as they are). */
function unreserved(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || // A-Z
    (b >= 0x61 && b <= 0x7a) || // a-z
    (b >= 0x30 && b <= 0x39) || // 0-9
    b === 0x2d || b === 0x5f || b === 0x2e || b === 0x7e; // - _ . ~
}

/** §1.5: every UTF-8 byte outside the unreserved set as `%XX`, uppercase hex; space is `%20`. */
export function encodeComponent(s: string): string {
  let out = "";
  for (const b of utf8.encode(s)) {
    out += unreserved(b) ? String.fromCharCode(b) : "%" + HEX_DIGITS[b >> 4] + HEX_DIGITS[b & 15];
  }
  return out;
}

/** Ascending order of the keys' UTF-8 bytes (§1.4 step 2: `nics.10` before `nics.2`). */
function byteOrder(a: Uint8Array, b: Uint8Array): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return a.length - b.length;
}

/** §1.4 steps 2–4 over every parameter but `signature`. */
export function canonicalQuery(params: Readonly<Record<string, string>>): string {
  const keys = Object.keys(params)
    .filter((k) => k !== "signature")
    .map((k) => ({ k, bytes: utf8.encode(k) }))
    .sort((x, y) => byteOrder(x.bytes, y.bytes));
  const pairs: string[] = [];
  for (const { k } of keys) pairs.push(encodeComponent(k) + "=" + encodeComponent(params[k]));
  return pairs.join("&");
}

/** §1.4 step 5: `METHOD LF path LF canonical-query`, the path exactly as requested. */
export function stringToSign(
  method: HttpMethod,
  path: string,
  params: Readonly<Record<string, string>>,
): string {
  return [method, path, canonicalQuery(params)].join("\n");
}

/** §1.4 steps 6–7: the padded standard base64 of HMAC-SHA256/SHA1(secret, string to sign). */
export async function sign(o: {
  method: HttpMethod;
  path: string;
  params: Readonly<Record<string, string>>;
  secret: string;
  signatureMethod: SignatureMethod;
}): Promise<string> {
  const algorithm = { name: "HMAC", hash: o.signatureMethod === "HmacSHA1" ? "SHA-1" : "SHA-256" };
  const key = await crypto.subtle.importKey("raw", utf8.encode(o.secret), algorithm, false, [
    "sign",
  ]);
  const digest = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, utf8.encode(stringToSign(o.method, o.path, o.params))),
  );
  return btoa(Array.from(digest, (b) => String.fromCharCode(b)).join(""));
}

/**
 * Compares two signatures without stopping at the first differing character, so the time a
 * rejection takes does not tell a forger how much of a guess was right. (Lengths are public.)
 */
export function sameSignature(a: string, b: string): boolean {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < x.length && i < y.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

/** `YYYY-MM-DDThh:mm:ssZ` in UTC, the only `time_stamp` form the API accepts. */
export function formatTimeStamp(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getUTCFullYear(), 4)}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}T` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}Z`;
}
