/**
 * CNI spec versions hostnic speaks and how a request's version is chosen. The request's
 * `cniVersion` is authoritative: results and errors are encoded in it. Verbs that appeared later
 * than the request's version are refused with code 1 (CHECK needs 0.4.0, STATUS and GC 1.1.0);
 * for STATUS and GC, which print no result, a `cniVersions` list naming 1.1.0 is also accepted.
 */
import type { CniCommand } from "./env.ts";
import { CniCode, CniError, invalidConfig, quote } from "./errors.ts";

export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = "1.1.0";

/** Lowest request version per verb. */
export const MIN_VERSION: Readonly<Record<CniCommand, CniVersion>> = {
  ADD: "0.3.0",
  DEL: "0.3.0",
  VERSION: "0.3.0",
  CHECK: "0.4.0",
  STATUS: "1.1.0",
  GC: "1.1.0",
};

export function isSupportedVersion(v: unknown): v is CniVersion {
  return typeof v === "string" && (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** `[major, minor, patch]` of a `X.Y.Z` version (digits only), or `undefined`. */
export function parseSemver(v: string): [number, number, number] | undefined {
  const m = /^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})$/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** Compares two `X.Y.Z` versions; throws on text that is not one. */
export function compareVersions(a: string, b: string): number {
  const pa = parseSemver(a);
  const pb = parseSemver(b);
  if (!pa || !pb) throw new Error(`Cannot compare versions ${quote(a)} and ${quote(b)}`);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i];
  return 0;
}

export function versionAtLeast(v: CniVersion, min: CniVersion): boolean {
  return compareVersions(v, min) >= 0;
}

/** 0.3.x and 0.4.0 results carry `ips[].version`; 1.0.0 dropped it. */
export function hasIpVersionField(v: CniVersion): boolean {
  return !versionAtLeast(v, "1.0.0");
}

/** 1.1.0 added interface `mtu`/`socketPath`/`pciID` and route `mtu`/`advmss`/`priority`/`table`/`scope`. */
export function hasV11Fields(v: CniVersion): boolean {
  return versionAtLeast(v, "1.1.0");
}

const SUPPORTED_TEXT = SUPPORTED_VERSIONS.join(", ");

/**
 * The version a request is served in, from its decoded config. Missing `cniVersion` means the
 * pre-0.2 protocol (code 1); a non-string is code 7; an unsupported one, or one older than the
 * verb, is code 1.
 */
export function negotiateVersion(conf: Record<string, unknown>, command: CniCommand): CniVersion {
  const requested = conf.cniVersion;
  if (requested === undefined) {
    throw new CniError(CniCode.IncompatibleVersion, `Missing "cniVersion" (read as "0.1.0")`, {
      details: `hostnic supports CNI ${SUPPORTED_TEXT}`,
    });
  }
  if (typeof requested !== "string") {
    throw invalidConfig("cniVersion", `must be a string, got ${quote(requested)}`);
  }
  const min = MIN_VERSION[command];
  const listed = listedVersions(conf);
  if (isSupportedVersion(requested) && versionAtLeast(requested, min)) return requested;
  if (command === "STATUS" || command === "GC") {
    const best = listed.filter((v) => versionAtLeast(v, min)).sort(compareVersions).pop();
    if (best) return best;
  }
  if (!isSupportedVersion(requested)) {
    throw new CniError(
      CniCode.IncompatibleVersion,
      `Unsupported "cniVersion" ${quote(requested)}`,
      { details: `hostnic supports CNI ${SUPPORTED_TEXT}` },
    );
  }
  throw new CniError(
    CniCode.IncompatibleVersion,
    `${command} needs "cniVersion" ${min} or later, got ${quote(requested)}`,
  );
}

/** Supported versions named in `cniVersions` (validated as a list of strings by the config parser). */
function listedVersions(conf: Record<string, unknown>): CniVersion[] {
  const list = conf.cniVersions;
  if (!Array.isArray(list)) return [];
  return list.filter(isSupportedVersion);
}

export interface VersionInfo {
  cniVersion: string;
  supportedVersions: string[];
}

/** VERSION output: echoes the requested version when hostnic speaks it, else the latest. */
export function versionInfo(requested: unknown): VersionInfo {
  return {
    cniVersion: isSupportedVersion(requested) ? requested : LATEST_VERSION,
    supportedVersions: [...SUPPORTED_VERSIONS],
  };
}
