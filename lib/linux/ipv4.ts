/**
 * IPv4 address and CIDR helpers: just enough to validate inputs and compare what the kernel prints
 * (`ip -json` drops "/32" on host routes and rules) with what a plan asked for.
 */
import { InvalidSpecError } from "./errors.ts";

/** A parsed IPv4 prefix. `addr` keeps host bits as given (an interface address keeps them). */
export interface Ipv4Cidr {
  addr: string;
  prefix: number;
}

/** Numeric value of a dotted quad, or undefined when `s` is not one. */
export function ipv4ToNumber(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  let n = 0;
  for (const part of m.slice(1)) {
    const v = Number(part);
    if (v > 255 || (part.length > 1 && part.startsWith("0"))) return undefined;
    n = n * 256 + v;
  }
  return n;
}

export function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

export function isIpv4(s: string): boolean {
  return ipv4ToNumber(s) !== undefined;
}

/** Parses `a.b.c.d/len` (or a bare address, meaning /32); undefined when invalid. */
export function parseIpv4Cidr(s: string): Ipv4Cidr | undefined {
  const [addr, len, extra] = s.split("/");
  if (extra !== undefined || ipv4ToNumber(addr) === undefined) return undefined;
  if (len === undefined) return { addr, prefix: 32 };
  if (!/^\d{1,2}$/.test(len) || Number(len) > 32) return undefined;
  return { addr, prefix: Number(len) };
}

/** `a.b.c.d/len` with host bits cleared; `default` and `0.0.0.0/0` both give `0.0.0.0/0`. */
export function canonicalCidr(s: string): string {
  if (s === "default" || s === "all") return "0.0.0.0/0";
  const c = parseIpv4Cidr(s);
  if (!c) return s;
  const mask = c.prefix === 0 ? 0 : (0xffffffff << (32 - c.prefix)) >>> 0;
  return `${numberToIpv4((ipv4ToNumber(c.addr)! & mask) >>> 0)}/${c.prefix}`;
}

/** Whether address `ip` lies inside prefix `cidr`. */
export function cidrContains(cidr: string, ip: string): boolean {
  const c = parseIpv4Cidr(cidr);
  const n = ipv4ToNumber(ip);
  if (!c || n === undefined) return false;
  return canonicalCidr(`${ip}/${c.prefix}`) === canonicalCidr(cidr);
}

/** Validates an address input; `field` names it in the error. */
export function requireIpv4(field: string, value: string): string {
  if (!isIpv4(value)) throw new InvalidSpecError(field, `"${value}" is not an IPv4 address`);
  return value;
}

/** Validates a prefix input and returns its canonical form (host bits cleared). */
export function requireCidr(field: string, value: string): string {
  if (!parseIpv4Cidr(value) || !value.includes("/")) {
    throw new InvalidSpecError(field, `"${value}" is not an IPv4 CIDR such as "172.22.1.0/24"`);
  }
  return canonicalCidr(value);
}
