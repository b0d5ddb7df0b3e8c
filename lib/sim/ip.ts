/**
 * IPv4 arithmetic for the simulator's IPAM: addresses as unsigned 32-bit numbers, CIDR blocks as
 * (network, prefix). Only IPv4: QingCloud vxnets are IPv4 subnets.
 */

export interface Cidr {
  /** Network address as a number (host bits zero). */
  network: number;
  prefix: number;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses dotted-quad text; `undefined` when it is not a valid IPv4 address. */
export function parseIp(text: string): number | undefined {
  const m = IPV4.exec(text);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const part = Number(m[i]);
    // Leading zeros are rejected because some tools read them as octal.
    if (part > 255 || (m[i].length > 1 && m[i][0] === "0")) return undefined;
    n = n * 256 + part;
  }
  return n;
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** Parses `a.b.c.d/p`; the address must be the network address (no host bits). */
export function parseCidr(text: string): Cidr | undefined {
  const [ip, p, extra] = text.split("/");
  if (extra !== undefined || p === undefined || !/^\d{1,2}$/.test(p)) return undefined;
  const prefix = Number(p);
  const addr = parseIp(ip);
  if (addr === undefined || prefix > 32) return undefined;
  if ((addr & hostMask(prefix)) !== 0) return undefined;
  return { network: addr, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.network)}/${c.prefix}`;
}

function hostMask(prefix: number): number {
  return prefix === 0 ? 0xffffffff : (2 ** (32 - prefix) - 1);
}

export function broadcast(c: Cidr): number {
  return c.network + hostMask(c.prefix);
}

export function cidrContains(c: Cidr, ip: number): boolean {
  return ip >= c.network && ip <= broadcast(c);
}

/** True when `inner` lies entirely inside `outer`. */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return inner.prefix >= outer.prefix && cidrContains(outer, inner.network);
}

/** The usable host range (network and broadcast excluded for prefixes up to /30). */
export function hostRange(c: Cidr): { first: number; last: number } {
  if (c.prefix >= 31) return { first: c.network, last: broadcast(c) };
  return { first: c.network + 1, last: broadcast(c) - 1 };
}
