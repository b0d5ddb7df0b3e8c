/**
 * The ADD result in one version-free model, and its wire form per spec version:
 *
 *   0.3.0 – 0.4.0   `ips[].version` "4"|"6" present (required on input; inferred if absent)
 *   1.0.0           no `ips[].version`
 *   1.1.0           + interface `mtu`, `socketPath`, `pciID`; route `mtu`, `advmss`, `priority`,
 *                   `table`, `scope`
 *
 * Encoding drops what a version cannot carry; parsing accepts the fields of the version it is told
 * (later fields in an older version are ignored, as unknown fields are). Converting is
 * parse-then-encode, so a prevResult given in one version can be printed in another.
 */
import { CniCode, CniError, invalidConfig, quote } from "./errors.ts";
import { type IpFamily, isMac, parseCidr, parseIp } from "./net.ts";
import {
  type CniVersion,
  hasIpVersionField,
  hasV11Fields,
  isSupportedVersion,
  SUPPORTED_VERSIONS,
} from "./version.ts";

export interface Interface {
  name: string;
  mac?: string;
  /** 1.1.0+ */
  mtu?: number;
  /** netns path for container-side interfaces; absent for host-side ones. */
  sandbox?: string;
  /** 1.1.0+ */
  socketPath?: string;
  /** 1.1.0+ */
  pciID?: string;
}

export interface IpConfig {
  /** CIDR with host bits, e.g. `10.0.0.5/32`. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface Route {
  dst: string;
  gw?: string;
  /** 1.1.0+ */
  mtu?: number;
  /** 1.1.0+ */
  advmss?: number;
  /** 1.1.0+ */
  priority?: number;
  /** 1.1.0+ */
  table?: number;
  /** 1.1.0+: 0 global, 253 link, 254 host. */
  scope?: number;
}

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Result {
  interfaces: Interface[];
  ips: IpConfig[];
  routes: Route[];
  dns: Dns;
}

/** The JSON object printed for a result. */
export type EncodedResult = Record<string, unknown> & { cniVersion: string };

export function emptyResult(): Result {
  return { interfaces: [], ips: [], routes: [], dns: {} };
}

/** Address family of a CIDR or bare IP. Throws for text that is neither. */
export function ipFamilyOf(address: string): IpFamily {
  const parsed = address.includes("/") ? parseCidr(address)?.ip : parseIp(address);
  if (!parsed) throw new Error(`Not an IP address: ${quote(address)}`);
  return parsed.family;
}

/** Wire form of `result` in `version`. */
export function encodeResult(result: Result, version: CniVersion): EncodedResult {
  const v11 = hasV11Fields(version);
  const interfaces = result.interfaces.map((i) => {
    const out: Record<string, unknown> = { name: i.name };
    if (i.mac !== undefined && i.mac !== "") out.mac = i.mac;
    if (v11 && i.mtu !== undefined) out.mtu = i.mtu;
    if (i.sandbox !== undefined && i.sandbox !== "") out.sandbox = i.sandbox;
    if (v11 && i.socketPath !== undefined && i.socketPath !== "") out.socketPath = i.socketPath;
    if (v11 && i.pciID !== undefined && i.pciID !== "") out.pciID = i.pciID;
    return out;
  });
  const ips = result.ips.map((ip) => {
    const out: Record<string, unknown> = {};
    if (hasIpVersionField(version)) out.version = String(ipFamilyOf(ip.address));
    out.address = ip.address;
    if (ip.gateway !== undefined && ip.gateway !== "") out.gateway = ip.gateway;
    if (ip.interface !== undefined) out.interface = ip.interface;
    return out;
  });
  const routes = result.routes.map((r) => {
    const out: Record<string, unknown> = { dst: r.dst };
    if (r.gw !== undefined && r.gw !== "") out.gw = r.gw;
    if (v11) {
      for (const k of ROUTE_V11_KEYS) if (r[k] !== undefined) out[k] = r[k];
    }
    return out;
  });
  const dns: Record<string, unknown> = {};
  if (result.dns.nameservers?.length) dns.nameservers = [...result.dns.nameservers];
  if (result.dns.domain) dns.domain = result.dns.domain;
  if (result.dns.search?.length) dns.search = [...result.dns.search];
  if (result.dns.options?.length) dns.options = [...result.dns.options];
  return { cniVersion: version, interfaces, ips, routes, dns };
}

const ROUTE_V11_KEYS = ["mtu", "advmss", "priority", "table", "scope"] as const;
const MAX_U32 = 0xffffffff;

/**
 * Parses a result given in `version` (a prevResult, or a handler's output read back). A
 * `cniVersion` inside the object, when present, names its version instead. Errors are code 7 and
 * name the field under `field` (e.g. `prevResult.ips[0].address`).
 */
export function parseResult(raw: unknown, version: CniVersion, field = "prevResult"): Result {
  const obj = asObject(raw, field);
  let v = version;
  if (obj.cniVersion !== undefined) {
    if (!isSupportedVersion(obj.cniVersion)) {
      throw new CniError(
        CniCode.IncompatibleVersion,
        `Unsupported "${field}.cniVersion" ${quote(obj.cniVersion)}`,
        { details: `hostnic reads results of CNI ${SUPPORTED_VERSIONS.join(", ")}` },
      );
    }
    v = obj.cniVersion;
  }
  const v11 = hasV11Fields(v);

  const interfaces = optArray(obj.interfaces, `${field}.interfaces`).map((x, i): Interface => {
    const f = `${field}.interfaces[${i}]`;
    const o = asObject(x, f);
    const out: Interface = { name: reqString(o.name, `${f}.name`) };
    const mac = optString(o.mac, `${f}.mac`);
    if (mac) {
      if (!isMac(mac)) {
        throw invalidConfig(`${f}.mac`, `must be a hardware address, got ${quote(mac)}`);
      }
      out.mac = mac;
    }
    const sandbox = optString(o.sandbox, `${f}.sandbox`);
    if (sandbox) out.sandbox = sandbox;
    if (v11) {
      const mtu = optUint(o.mtu, `${f}.mtu`);
      if (mtu !== undefined) out.mtu = mtu;
      const socketPath = optString(o.socketPath, `${f}.socketPath`);
      if (socketPath) out.socketPath = socketPath;
      const pciID = optString(o.pciID, `${f}.pciID`);
      if (pciID) out.pciID = pciID;
    }
    return out;
  });

  const ips = optArray(obj.ips, `${field}.ips`).map((x, i): IpConfig => {
    const f = `${field}.ips[${i}]`;
    const o = asObject(x, f);
    const address = reqString(o.address, `${f}.address`);
    const net = parseCidr(address);
    if (!net) {
      throw invalidConfig(
        `${f}.address`,
        `must be an IP address in CIDR notation, got ${quote(address)}`,
      );
    }
    if (hasIpVersionField(v) && o.version !== undefined) {
      if (o.version !== "4" && o.version !== "6") {
        throw invalidConfig(`${f}.version`, `must be "4" or "6", got ${quote(o.version)}`);
      }
      if (Number(o.version) !== net.ip.family) {
        throw invalidConfig(
          `${f}.version`,
          `is ${quote(o.version)} but address ${quote(address)} is IPv${net.ip.family}`,
        );
      }
    }
    const out: IpConfig = { address };
    const gateway = optString(o.gateway, `${f}.gateway`);
    if (gateway) {
      const gw = parseIp(gateway);
      if (!gw) throw invalidConfig(`${f}.gateway`, `must be an IP address, got ${quote(gateway)}`);
      if (gw.family !== net.ip.family) {
        throw invalidConfig(
          `${f}.gateway`,
          `must be IPv${net.ip.family} like the address, got ${quote(gateway)}`,
        );
      }
      out.gateway = gateway;
    }
    const index = optUint(o.interface, `${f}.interface`);
    if (index !== undefined) {
      if (index >= interfaces.length) {
        throw invalidConfig(
          `${f}.interface`,
          `is ${index} but there ${
            interfaces.length === 1 ? "is 1 interface" : `are ${interfaces.length} interfaces`
          }`,
        );
      }
      out.interface = index;
    }
    return out;
  });

  const routes = optArray(obj.routes, `${field}.routes`).map((x, i) =>
    parseRoute(x, `${field}.routes[${i}]`, v11)
  );
  const dns = parseDns(obj.dns, `${field}.dns`);
  return { interfaces, ips, routes, dns };
}

/** Re-encodes a result given in `from` as `to` (e.g. a 0.4.0 prevResult printed as 1.1.0). */
export function convertResult(raw: unknown, from: CniVersion, to: CniVersion): EncodedResult {
  return encodeResult(parseResult(raw, from), to);
}

/** Parses one route; 1.1 fields only when `v11`. Shared with `ipam.routes` in the config. */
export function parseRoute(raw: unknown, field: string, v11: boolean): Route {
  const o = asObject(raw, field);
  const dst = reqString(o.dst, `${field}.dst`);
  const net = parseCidr(dst);
  if (!net) throw invalidConfig(`${field}.dst`, `must be a CIDR, got ${quote(dst)}`);
  const out: Route = { dst };
  const gw = optString(o.gw, `${field}.gw`);
  if (gw) {
    const ip = parseIp(gw);
    if (!ip) throw invalidConfig(`${field}.gw`, `must be an IP address, got ${quote(gw)}`);
    if (ip.family !== net.ip.family) {
      throw invalidConfig(
        `${field}.gw`,
        `must be IPv${net.ip.family} like "dst", got ${quote(gw)}`,
      );
    }
    out.gw = gw;
  }
  if (v11) {
    for (const k of ROUTE_V11_KEYS) {
      const n = optUint(o[k], `${field}.${k}`);
      if (n !== undefined) out[k] = n;
    }
  }
  return out;
}

/** Parses a `dns` object (result or config). */
export function parseDns(raw: unknown, field: string): Dns {
  if (raw === undefined || raw === null) return {};
  const o = asObject(raw, field);
  const out: Dns = {};
  const nameservers = optStringArray(o.nameservers, `${field}.nameservers`);
  nameservers.forEach((ns, i) => {
    if (!parseIp(ns)) {
      throw invalidConfig(`${field}.nameservers[${i}]`, `must be an IP address, got ${quote(ns)}`);
    }
  });
  if (nameservers.length) out.nameservers = nameservers;
  const domain = optString(o.domain, `${field}.domain`);
  if (domain) out.domain = domain;
  const search = optStringArray(o.search, `${field}.search`);
  if (search.length) out.search = search;
  const options = optStringArray(o.options, `${field}.options`);
  if (options.length) out.options = options;
  return out;
}

// Small field readers shared with config.ts. Each names the field in its error.

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function asObject(v: unknown, field: string): Record<string, unknown> {
  if (!isObject(v)) throw invalidConfig(field, `must be an object, got ${quote(v)}`);
  return v;
}

export function reqString(v: unknown, field: string): string {
  if (v === undefined || v === null || v === "") throw invalidConfig(field, "is required");
  if (typeof v !== "string") throw invalidConfig(field, `must be a string, got ${quote(v)}`);
  return v;
}

export function optString(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw invalidConfig(field, `must be a string, got ${quote(v)}`);
  return v;
}

export function optBool(v: unknown, field: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") throw invalidConfig(field, `must be true or false, got ${quote(v)}`);
  return v;
}

export function optUint(v: unknown, field: string, max = MAX_U32): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) {
    throw invalidConfig(field, `must be an integer from 0 to ${max}, got ${quote(v)}`);
  }
  return v;
}

export function optArray(v: unknown, field: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalidConfig(field, `must be a list, got ${quote(v)}`);
  return v;
}

export function optStringArray(v: unknown, field: string): string[] {
  return optArray(v, field).map((x, i) => {
    if (typeof x !== "string") {
      throw invalidConfig(`${field}[${i}]`, `must be a string, got ${quote(x)}`);
    }
    return x;
  });
}
