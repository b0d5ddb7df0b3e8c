/**
 * CNI error codes and the error object printed on stdout. Codes 1–99 are the spec's; 100+ are
 * hostnic's own (see `CNI_CODES`). Anything thrown that is not a `CniError` becomes code 100 with
 * its message only (never a stack).
 */
import { HostnicError } from "../errors.ts";

/** Numeric CNI error codes: the spec's well-known ones, then hostnic's. */
export const CniCode = {
  /** Incompatible CNI version. */
  IncompatibleVersion: 1,
  /** Unsupported field in network configuration (message names key and value). */
  UnsupportedField: 2,
  /** Container unknown or does not exist; the runtime need not clean up. */
  UnknownContainer: 3,
  /** Invalid necessary environment variables (message names them). */
  InvalidEnvironment: 4,
  /** I/O failure, e.g. reading stdin. */
  IoFailure: 5,
  /** Failed to decode content, e.g. stdin is not JSON. */
  DecodingFailure: 6,
  /** Invalid network configuration (message names the field). */
  InvalidConfig: 7,
  /** Transient condition; the runtime should retry later. */
  TryAgainLater: 11,
  /** Plugin cannot serve ADD (STATUS). */
  NotAvailable: 50,
  /** Plugin cannot serve ADD and existing containers may have limited connectivity (STATUS). */
  NotAvailableLimitedConnectivity: 51,
  /** hostnic: a bug or an unexpected failure inside the plugin. */
  Internal: 100,
  /** hostnic: no NIC or IP can be given to the pod right now (pool empty, limit reached). */
  PoolExhausted: 101,
  /** hostnic: the QingCloud API refused or failed a call. */
  CloudApiFailure: 102,
  /** hostnic: a pod or node annotation (`hostnic.network.kubesphere.io/*`) is invalid. */
  InvalidAnnotation: 103,
  /** hostnic: a Linux networking change (link, address, route, rule, iptables) failed. */
  DataplaneFailure: 104,
  /** hostnic: the daemon answered something the plugin does not understand (version skew). */
  DaemonProtocol: 105,
} as const;

export type CniCodeName = keyof typeof CniCode;
export type CniCodeNumber = (typeof CniCode)[CniCodeName];

/** Table of every code hostnic emits, for documentation and `hostnic admin doctor`. */
export const CNI_CODES: readonly {
  code: CniCodeNumber;
  name: CniCodeName;
  owner: "spec" | "hostnic";
}[] = (Object.entries(CniCode) as [CniCodeName, CniCodeNumber][]).map(([name, code]) => ({
  code,
  name,
  owner: code >= 100 ? "hostnic" : "spec",
}));

/** Stable string code (`HostnicError.code`) for a numeric CNI code, e.g. `CNI_INVALID_CONFIG`. */
export function cniCodeId(code: number): string {
  const entry = CNI_CODES.find((c) => c.code === code);
  if (!entry) return `CNI_${code}`;
  return "CNI_" + entry.name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

export interface CniErrorOptions {
  /** Longer explanation or what to do about it. */
  details?: string;
  cause?: unknown;
}

/** An error that maps to one CNI error object. `msg` is short and names the field or variable. */
export class CniError extends HostnicError {
  /** Numeric CNI code (spec 1–99, hostnic 100+). */
  readonly cniCode: number;
  readonly msg: string;
  readonly details: string;
  constructor(cniCode: number, msg: string, opts: CniErrorOptions = {}) {
    const details = opts.details ?? "";
    super(cniCodeId(cniCode), details ? `${msg}; ${details}` : msg, { cause: opts.cause });
    this.cniCode = cniCode;
    this.msg = msg;
    this.details = details;
  }
}

/** `Invalid "<field>": <problem>` as a code-7 error. */
export function invalidConfig(field: string, problem: string): CniError {
  return new CniError(CniCode.InvalidConfig, `Invalid "${field}": ${problem}`);
}

/** The spec's error result. */
export interface CniErrorObject {
  cniVersion: string;
  code: number;
  msg: string;
  details: string;
}

/** Any thrown value as a `CniError`: itself, or code 100 with the message and no stack. */
export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof HostnicError) {
    return new CniError(CniCode.Internal, err.message, {
      details: `reason ${err.code}`,
      cause: err,
    });
  }
  if (err instanceof Error) {
    return new CniError(CniCode.Internal, err.message || err.name, { cause: err });
  }
  return new CniError(CniCode.Internal, String(err));
}

export function errorObject(err: CniError, cniVersion: string): CniErrorObject {
  return { cniVersion, code: err.cniCode, msg: err.msg, details: err.details };
}

/** `…` shown for a value inside a message: JSON-quoted and cut to a readable length. */
export function quote(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
