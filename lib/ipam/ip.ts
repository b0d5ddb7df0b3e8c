/**
 * IPv4 arithmetic for block IPAM: addresses as unsigned 32-bit numbers, CIDRs as (network, prefix).
 * QingCloud vxnets are IPv4 subnets, so IPv6 is out of scope here.
 */

export interface Cidr {
  /** Network address as a number (host bits zero). */
  readonly network: number;
  readonly prefix: number;
}

const DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Dotted-quad text → number; `undefined` when not a canonical IPv4 address (no leading zeros). */
export function parseIp(text: string): number | undefined {
  const m = DOTTED.exec(text);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const part = Number(m[i]);
    // Leading zeros are refused: some tools read them as octal.
    if (part > 255 || (m[i].length > 1 && m[i][0] === "0")) return undefined;
    n = n * 256 + part;
  }
  return n;
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** `a.b.c.d/p` → Cidr; `undefined` when malformed or when host bits are set. */
export function parseCidr(text: string): Cidr | undefined {
  const [ip, p, extra] = text.split("/");
  if (extra !== undefined || p === undefined || !/^(0|[1-9]\d?)$/.test(p)) return undefined;
  const prefix = Number(p);
  const network = parseIp(ip);
  if (network === undefined || prefix > 32) return undefined;
  if (network % cidrSize({ network: 0, prefix }) !== 0) return undefined;
  return { network, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.network)}/${c.prefix}`;
}

/** Number of addresses in the CIDR (2^(32-prefix)). */
export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function lastIp(c: Cidr): number {
  return c.network + cidrSize(c) - 1;
}

export function cidrContains(c: Cidr, ip: number): boolean {
  return ip >= c.network && ip <= lastIp(c);
}

/** True when `inner` lies entirely inside `outer`. */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return inner.prefix >= outer.prefix && cidrContains(outer, inner.network);
}
