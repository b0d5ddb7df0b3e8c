/**
 * Hand-written IP, CIDR and MAC parsers for validating CNI input without importing anything.
 * Rules follow what the kernel and the Go CNI runtimes accept: dotted-quad IPv4 without leading
 * zeros, RFC 4291 IPv6 text (with `::` and an optional dotted-quad tail, no zone), a decimal prefix
 * length without leading zeros.
 */

export type IpFamily = 4 | 6;

export interface IpAddr {
  readonly family: IpFamily;
  /** 4 bytes for IPv4, 16 for IPv6, network order. */
  readonly bytes: Uint8Array;
}

export interface IpNet {
  /** The address as written (host bits may be set, as in a CNI result `10.0.0.5/24`). */
  readonly ip: IpAddr;
  readonly prefix: number;
}

const DEC = /^(0|[1-9][0-9]*)$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** Parses dotted-quad IPv4 text into 4 bytes, or `undefined`. */
export function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (p.length > 3 || !DEC.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

/** Parses IPv6 text (no zone, no brackets) into 16 bytes, or `undefined`. */
export function parseIPv6(text: string): Uint8Array | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = wordsOf(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? wordsOf(halves[1], true) : [];
  if (head === undefined || tail === undefined) return undefined;
  let words: number[];
  if (halves.length === 2) {
    // "::" stands for at least one zero group.
    if (head.length + tail.length > 7) return undefined;
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    if (head.length !== 8) return undefined;
    words = head;
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[i * 2] = words[i] >> 8;
    out[i * 2 + 1] = words[i] & 0xff;
  }
  return out;
}

/** 16-bit words of one side of `::`; a dotted quad is allowed only as the address's last group. */
function wordsOf(part: string, mayEndInV4: boolean): number[] | undefined {
  if (part === "") return [];
  const groups = part.split(":");
  const words: number[] = [];
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i];
    if (g.includes(".")) {
      const v4 = mayEndInV4 && i === groups.length - 1 ? parseIPv4(g) : undefined;
      if (!v4) return undefined;
      words.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    } else if (HEX_GROUP.test(g)) {
      words.push(parseInt(g, 16));
    } else {
      return undefined;
    }
  }
  return words;
}

/** Parses an IPv4 or IPv6 address. */
export function parseIp(text: string): IpAddr | undefined {
  if (text.includes(":")) {
    const bytes = parseIPv6(text);
    return bytes && { family: 6, bytes };
  }
  const bytes = parseIPv4(text);
  return bytes && { family: 4, bytes };
}

/** Parses `<ip>/<prefix>`; the prefix must fit the family (0–32 or 0–128). */
export function parseCidr(text: string): IpNet | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const ip = parseIp(text.slice(0, slash));
  const p = text.slice(slash + 1);
  if (!ip || !DEC.test(p) || p.length > 3) return undefined;
  const prefix = Number(p);
  if (prefix > (ip.family === 4 ? 32 : 128)) return undefined;
  return { ip, prefix };
}

/** Parses `<ip>` or `<ip>/<prefix>` (the `ips` convention); `prefix` is absent for a bare IP. */
export function parseIpMaybeCidr(text: string): { ip: IpAddr; prefix?: number } | undefined {
  if (text.includes("/")) return parseCidr(text);
  const ip = parseIp(text);
  return ip && { ip };
}

/** True if the address is all zeros (`0.0.0.0`, `::`). */
export function isUnspecified(ip: IpAddr): boolean {
  return ip.bytes.every((b) => b === 0);
}

/**
 * Canonical text of an address: dotted quad, or RFC 5952 IPv6 (lower case, longest run of two or
 * more zero groups compressed, first run on a tie).
 */
export function formatIp(ip: IpAddr): string {
  const b = ip.bytes;
  if (ip.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((b[i * 2] << 8) | b[i * 2 + 1]);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(":");
  if (bestLen < 2) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

/** The network address of a CIDR (host bits cleared), e.g. `10.0.0.0/24` for `10.0.0.5/24`. */
export function networkOf(net: IpNet): IpNet {
  const bytes = new Uint8Array(net.ip.bytes);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, net.prefix - i * 8));
    bytes[i] &= keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
  }
  return { ip: { family: net.ip.family, bytes }, prefix: net.prefix };
}

/**
 * Hardware address: 6 (Ethernet), 8 (EUI-64) or 20 (InfiniBand) bytes as two-digit hex groups
 * separated by `:` (or all by `-`).
 */
export function isMac(text: string): boolean {
  const sep = text.includes("-") ? "-" : ":";
  const groups = text.split(sep);
  if (![6, 8, 20].includes(groups.length)) return false;
  return groups.every((g) => /^[0-9a-fA-F]{2}$/.test(g));
}
