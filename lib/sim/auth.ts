/**
 * Server-side request authentication (reference/qingcloud-api.md §1.6), in the documented order:
 * key and signature present and key known (1200) → `time_stamp` well-formed (1100) and within
 * the window (1300) → signature method/version (1200) → HMAC over the canonical query of the
 * decoded parameters and the path exactly as received (1200, compared in constant time).
 * Errors never include the secret or the expected signature.
 */
import { type HttpMethod, sameSignature, sign, type SignatureMethod } from "./signature.ts";
import { authFailure, invalidParameter, SimApiError } from "./errors.ts";
import type { Params } from "./params.ts";
import type { AccessKey } from "./world.ts";

const TIME_STAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;

/** Parses `YYYY-MM-DDThh:mm:ssZ`; `undefined` when malformed. */
export function parseTimeStamp(s: string): number | undefined {
  const m = TIME_STAMP.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number);
  const ms = Date.UTC(y, mo - 1, d, h, mi, se);
  // Date.UTC rolls over out-of-range fields (Feb 31); a round trip catches that.
  const back = new Date(ms);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d) {
    return undefined;
  }
  if (h > 23 || mi > 59 || se > 59) return undefined;
  return ms;
}

export interface VerifyOptions {
  method: HttpMethod;
  path: string;
  params: Params;
  lookupKey: (id: string) => AccessKey | undefined;
  nowMs: number;
  timeWindowSec: number;
  /** Also accept the path with its trailing slash toggled. */
  lenientPath: boolean;
}

/** Returns the caller's access key, or throws `SimApiError` (1100/1200/1300). */
export async function verifyRequest(o: VerifyOptions): Promise<AccessKey> {
  const p = o.params;
  const keyId = p["access_key_id"];
  if (keyId === undefined || keyId === "") throw authFailure("access_key_id is missing");
  const signature = p["signature"];
  if (signature === undefined || signature === "") throw authFailure("signature is missing");
  const key = o.lookupKey(keyId);
  if (!key) throw authFailure(`access key [${keyId}] not found`);
  if (key.status !== "active") throw authFailure(`access key [${keyId}] is disabled`);

  const ts = p["time_stamp"];
  if (ts === undefined || ts === "") throw invalidParameter("parameter [time_stamp] is required");
  const tsMs = parseTimeStamp(ts);
  if (tsMs === undefined) {
    throw invalidParameter(`time_stamp [${ts}] must look like 2024-01-02T03:04:05Z`);
  }
  if (Math.abs(o.nowMs - tsMs) > o.timeWindowSec * 1000) {
    throw new SimApiError(
      1300,
      `MessageExpired, time_stamp [${ts}] is more than [${o.timeWindowSec}] seconds from server time`,
    );
  }

  const method = p["signature_method"];
  if (method !== "HmacSHA256" && method !== "HmacSHA1") {
    throw authFailure("signature_method must be HmacSHA256 or HmacSHA1");
  }
  if (p["signature_version"] !== "1") throw authFailure("signature_version must be 1");

  const paths = [o.path];
  if (o.lenientPath) paths.push(o.path.endsWith("/") ? o.path.slice(0, -1) : o.path + "/");
  for (const path of paths) {
    const expected = await sign({
      method: o.method,
      path,
      params: p,
      secret: key.secret,
      signatureMethod: method as SignatureMethod,
    });
    if (sameSignature(expected, signature)) return key;
  }
  throw authFailure("signature not matched");
}
