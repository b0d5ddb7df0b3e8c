/**
 * The network configuration on stdin: decoding (size cap, UTF-8, JSON object) and validation into
 * a typed `NetConf`. Protocol keys are checked per the spec; hostnic's own keys are checked and
 * given defaults in `NetConf.hostnic`; every other key is ignored (kept in `raw`). Each error is
 * code 7 and names the field, except undecodable input (6) and a bad version (1, in version.ts).
 */
import type { LogLevel } from "../log.ts";
import type { CniCommand } from "./env.ts";
import { CniCode, CniError, invalidConfig, quote } from "./errors.ts";
import { isMac, isUnspecified, parseCidr, parseIp, parseIpMaybeCidr } from "./net.ts";
import {
  asObject,
  type Dns,
  isObject,
  optArray,
  optBool,
  optString,
  optStringArray,
  parseDns,
  parseResult,
  parseRoute,
  reqString,
  type Result,
} from "./result.ts";
import { type CniVersion, parseSemver } from "./version.ts";

/** Largest stdin accepted (a config with a big prevResult is a few KiB). */
export const MAX_CONFIG_BYTES = 1024 * 1024;

export interface HostnicNetConf {
  /** Host-side veth name prefix; the name is prefix + 11 hex chars, so at most 4 chars. */
  vethPrefix: string;
  /** Pod interface MTU. */
  mtu: number;
  /** Service network (IPv4); traffic to it is marked so replies return through the main table. */
  serviceCIDR?: string;
  /** Send same-node pod-to-pod traffic out through the NIC and back. */
  hairpin: boolean;
  /** fwmark for service/NodePort return traffic; never overlaps kube-proxy's or Calico's bits. */
  natMark: number;
  /** Unix socket of the node daemon. */
  socketPath: string;
  /** Where DEL leaves release records when the daemon is unreachable (the daemon replays them). */
  journalDir: string;
  logLevel: LogLevel;
  /** Plugin log file (absolute path); stderr only when absent. */
  logFile?: string;
}

export const HOSTNIC_DEFAULTS: Readonly<HostnicNetConf> = {
  vethPrefix: "vnic",
  mtu: 1500,
  hairpin: false,
  natMark: 0x10000,
  socketPath: "/var/run/hostnic/hostnic.sock",
  journalDir: "/var/lib/hostnic/journal",
  logLevel: "info",
};

/**
 * Marks owned by others: kube-proxy (0x4000 masquerade, 0x8000 drop) and the Calico bits upstream
 * hostnic keeps clear of (0xff000000). Felix's default mask 0xffff0000 would also cover the default
 * natMark 0x10000, so it is not used here; see the design's services section.
 */
export const FOREIGN_MARK_BITS = (0x4000 | 0x8000 | 0xff000000) >>> 0;

export interface IpamRoute {
  dst: string;
  /** Next hop; absent when none was given or when it was the legacy `0.0.0.0`. */
  gw?: string;
  /**
   * Legacy `"gw": "0.0.0.0"`: route via a host "gateway NIC" in the pod's vxnet whose IP replaces
   * 0.0.0.0, so service traffic comes back to the host.
   */
  viaGatewayNic: boolean;
}

export interface IpamConf {
  /** hostnic does not delegate IPAM; a `type` is kept only for diagnostics. */
  type?: string;
  routes: IpamRoute[];
}

export interface RuntimeConfig {
  /** Capability `ips`: requested addresses, `<ip>[/<prefix>]`. */
  ips?: string[];
  /** Capability `mac`. */
  mac?: string;
  readonly [key: string]: unknown;
}

/** An entry of `cni.dev/valid-attachments` (GC). */
export interface Attachment {
  containerID: string;
  ifname: string;
}

export interface NetConf {
  /** As given; the request is served in `CniRequest.version`. */
  cniVersion: string;
  cniVersions?: string[];
  name: string;
  type: string;
  capabilities?: Record<string, boolean>;
  runtimeConfig: RuntimeConfig;
  /** `args.cni.ips`: requested addresses, `<ip>[/<prefix>]`. */
  args?: { cni?: { ips?: string[] } };
  prevResult?: Result;
  ipam?: IpamConf;
  dns?: Dns;
  /** GC only: attachments the runtime still has. */
  validAttachments?: Attachment[];
  hostnic: HostnicNetConf;
  /** The decoded object, unknown keys included. */
  raw: Readonly<Record<string, unknown>>;
}

/** Decodes stdin: too large → 7, not UTF-8 / not JSON / not an object → 6. */
export function decodeConfig(bytes: Uint8Array): Record<string, unknown> {
  if (bytes.length > MAX_CONFIG_BYTES) {
    throw new CniError(
      CniCode.InvalidConfig,
      `Network configuration on stdin is too large (more than ${MAX_CONFIG_BYTES} bytes)`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new CniError(CniCode.DecodingFailure, "Network configuration on stdin is not UTF-8");
  }
  if (text.trim() === "") {
    throw new CniError(CniCode.DecodingFailure, "Network configuration on stdin is empty", {
      details: "expected a JSON object with cniVersion, name and type",
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CniError(
      CniCode.DecodingFailure,
      "Network configuration on stdin is not valid JSON",
      { details: err instanceof Error ? err.message : String(err) },
    );
  }
  if (!isObject(value)) {
    throw new CniError(
      CniCode.DecodingFailure,
      `Network configuration on stdin must be a JSON object, got ${quote(value)}`,
    );
  }
  return value;
}

/**
 * The `cniVersion` to put in an error before the config is fully validated: the requested one if
 * it looks like a version, else the latest.
 */
export function peekVersion(bytes: Uint8Array, fallback: string): string {
  if (bytes.length === 0 || bytes.length > MAX_CONFIG_BYTES) return fallback;
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes))?.cniVersion;
    return typeof v === "string" && parseSemver(v) ? v : fallback;
  } catch {
    return fallback;
  }
}

export interface ParseOptions {
  command: CniCommand;
  /** Negotiated version; prevResult is read in it. */
  version: CniVersion;
}

/** Validates a decoded config into a `NetConf`. */
export function parseNetConf(raw: Record<string, unknown>, opts: ParseOptions): NetConf {
  if (raw.type === undefined && Array.isArray(raw.plugins)) {
    throw invalidConfig(
      "type",
      "is required; stdin holds a whole network configuration list, but a plugin gets one member of it",
    );
  }
  const name = reqString(raw.name, "name");
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
    throw invalidConfig(
      "name",
      `must start with a letter or digit and contain only letters, digits, "_", "." and "-", got ${
        quote(name)
      }`,
    );
  }
  const type = reqString(raw.type, "type");
  if (/[/\\]/.test(type)) {
    throw invalidConfig("type", `must not contain "/" or "\\", got ${quote(type)}`);
  }

  const conf: NetConf = {
    cniVersion: typeof raw.cniVersion === "string" ? raw.cniVersion : opts.version,
    name,
    type,
    runtimeConfig: parseRuntimeConfig(raw.runtimeConfig),
    hostnic: parseHostnic(raw),
    raw,
  };
  if (raw.cniVersions !== undefined) {
    conf.cniVersions = optStringArray(raw.cniVersions, "cniVersions");
  }
  if (raw.capabilities !== undefined && raw.capabilities !== null) {
    const caps = asObject(raw.capabilities, "capabilities");
    for (const [k, v] of Object.entries(caps)) optBool(v, `capabilities.${k}`);
    conf.capabilities = caps as Record<string, boolean>;
  }
  const args = parseArgs(raw.args);
  if (args) conf.args = args;
  if (raw.prevResult !== undefined && raw.prevResult !== null) {
    conf.prevResult = parseResult(raw.prevResult, opts.version, "prevResult");
  }
  if (raw.ipam !== undefined && raw.ipam !== null) conf.ipam = parseIpam(raw.ipam);
  if (raw.dns !== undefined && raw.dns !== null) conf.dns = parseDns(raw.dns, "dns");
  if (opts.command === "GC") {
    const key = "cni.dev/valid-attachments";
    // Without the list nothing can be told stale; treating it as empty would release every pod.
    if (raw[key] === undefined || raw[key] === null) throw invalidConfig(key, "is required for GC");
    conf.validAttachments = optArray(raw[key], key).map((x, i) => {
      const o = asObject(x, `${key}[${i}]`);
      return {
        containerID: reqString(o.containerID, `${key}[${i}].containerID`),
        ifname: reqString(o.ifname, `${key}[${i}].ifname`),
      };
    });
  }
  if (opts.command === "CHECK" && !conf.prevResult) {
    throw invalidConfig(
      "prevResult",
      "is required for CHECK (the result of the ADD being checked)",
    );
  }
  return conf;
}

function parseRuntimeConfig(v: unknown): RuntimeConfig {
  if (v === undefined || v === null) return {};
  const o = asObject(v, "runtimeConfig");
  const out: Record<string, unknown> = { ...o };
  if (o.ips !== undefined) out.ips = ipList(o.ips, "runtimeConfig.ips");
  const mac = optString(o.mac, "runtimeConfig.mac");
  if (mac !== undefined) {
    if (!isMac(mac)) {
      throw invalidConfig("runtimeConfig.mac", `must be a hardware address, got ${quote(mac)}`);
    }
    out.mac = mac;
  }
  return out as RuntimeConfig;
}

function parseArgs(v: unknown): NetConf["args"] {
  if (v === undefined || v === null) return undefined;
  const o = asObject(v, "args");
  if (o.cni === undefined || o.cni === null) return {};
  const cni = asObject(o.cni, "args.cni");
  if (cni.ips === undefined || cni.ips === null) return { cni: {} };
  return { cni: { ips: ipList(cni.ips, "args.cni.ips") } };
}

function ipList(v: unknown, field: string): string[] {
  const list = optStringArray(v, field);
  list.forEach((s, i) => {
    if (!parseIpMaybeCidr(s)) {
      throw invalidConfig(`${field}[${i}]`, `must be an IP address or CIDR, got ${quote(s)}`);
    }
  });
  return list;
}

function parseIpam(v: unknown): IpamConf {
  const o = asObject(v, "ipam");
  const out: IpamConf = { routes: [] };
  const type = optString(o.type, "ipam.type");
  if (type) out.type = type;
  out.routes = optArray(o.routes, "ipam.routes").map((x, i) => {
    const field = `ipam.routes[${i}]`;
    const route = parseRoute(x, field, false);
    const gw = route.gw === undefined ? undefined : parseIp(route.gw);
    if (gw && isUnspecified(gw)) {
      if (gw.family !== 4) {
        throw invalidConfig(`${field}.gw`, `only "0.0.0.0" means "via the gateway NIC"`);
      }
      return { dst: route.dst, viaGatewayNic: true };
    }
    // hostnic's pods are IPv4 only (parseRoute has checked that gw has the family of dst).
    if (parseCidr(route.dst)?.ip.family !== 4) {
      throw invalidConfig(`${field}.dst`, `must be an IPv4 CIDR, got ${quote(route.dst)}`);
    }
    return route.gw === undefined
      ? { dst: route.dst, viaGatewayNic: false }
      : { dst: route.dst, gw: route.gw, viaGatewayNic: false };
  });
  return out;
}

const LOGRUS_LEVELS: Record<number, LogLevel> = {
  0: "info", // upstream: 0 (unset) means info
  1: "error", // fatal
  2: "error",
  3: "warn",
  4: "info",
  5: "debug",
  6: "debug", // trace
};

function parseHostnic(raw: Record<string, unknown>): HostnicNetConf {
  const out: HostnicNetConf = { ...HOSTNIC_DEFAULTS };

  const prefix = optString(raw.vethPrefix, "vethPrefix");
  if (prefix !== undefined) {
    if (!/^[A-Za-z0-9_-]{1,4}$/.test(prefix)) {
      throw invalidConfig(
        "vethPrefix",
        `must be 1 to 4 letters, digits, "_" or "-" (the veth name adds 11 hex chars, max 15), got ${
          quote(prefix)
        }`,
      );
    }
    out.vethPrefix = prefix;
  }

  if (raw.mtu !== undefined && raw.mtu !== null) {
    const mtu = raw.mtu;
    if (typeof mtu !== "number" || !Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
      throw invalidConfig("mtu", `must be an integer from 68 to 65535, got ${quote(mtu)}`);
    }
    out.mtu = mtu;
  }

  const svc = optString(raw.serviceCIDR, "serviceCIDR");
  if (svc !== undefined && svc !== "") {
    if (parseCidr(svc)?.ip.family !== 4) {
      throw invalidConfig("serviceCIDR", `must be an IPv4 CIDR, got ${quote(svc)}`);
    }
    out.serviceCIDR = svc;
  }

  const hairpin = optBool(raw.hairpin, "hairpin");
  if (hairpin !== undefined) out.hairpin = hairpin;

  if (raw.natMark !== undefined && raw.natMark !== null) out.natMark = parseMark(raw.natMark);

  const socketPath = optString(raw.socketPath, "socketPath");
  if (socketPath !== undefined) {
    if (!socketPath.startsWith("/")) {
      throw invalidConfig("socketPath", `must be an absolute path, got ${quote(socketPath)}`);
    }
    out.socketPath = socketPath;
  }

  const journalDir = optString(raw.journalDir, "journalDir");
  if (journalDir !== undefined) {
    if (!journalDir.startsWith("/")) {
      throw invalidConfig("journalDir", `must be an absolute path, got ${quote(journalDir)}`);
    }
    out.journalDir = journalDir;
  }

  if (raw.logLevel !== undefined && raw.logLevel !== null) {
    out.logLevel = parseLogLevel(raw.logLevel);
  }

  const logFile = optString(raw.logFile, "logFile");
  if (logFile !== undefined && logFile !== "") {
    if (!logFile.startsWith("/")) {
      throw invalidConfig("logFile", `must be an absolute path, got ${quote(logFile)}`);
    }
    out.logFile = logFile;
  }
  return out;
}

/** `"0x10000"`, `"65536"` or `65536`; nonzero, 32-bit, clear of kube-proxy's and Calico's bits. */
function parseMark(v: unknown): number {
  let n: number | undefined;
  if (typeof v === "number" && Number.isInteger(v)) n = v;
  else if (typeof v === "string" && /^0x[0-9a-fA-F]{1,8}$/.test(v)) n = parseInt(v.slice(2), 16);
  else if (typeof v === "string" && /^[1-9][0-9]{0,9}$/.test(v)) n = Number(v);
  if (n === undefined || n <= 0 || n > 0xffffffff) {
    throw invalidConfig("natMark", `must be a nonzero 32-bit mark like "0x10000", got ${quote(v)}`);
  }
  if ((n & FOREIGN_MARK_BITS) !== 0) {
    throw invalidConfig(
      "natMark",
      `${quote(v)} overlaps marks used by kube-proxy (0x4000, 0x8000) or Calico (0xff000000)`,
    );
  }
  return n;
}

function parseLogLevel(v: unknown): LogLevel {
  if (typeof v === "number" && Number.isInteger(v) && LOGRUS_LEVELS[v]) return LOGRUS_LEVELS[v];
  if (typeof v === "string") {
    const s = v.toLowerCase();
    if (s === "debug" || s === "info" || s === "warn" || s === "error") return s;
    if (s === "warning") return "warn";
    if (s === "trace") return "debug";
  }
  throw invalidConfig("logLevel", `must be "debug", "info", "warn" or "error", got ${quote(v)}`);
}
