/**
 * A hollow node's kernel: a small model of the network namespaces a hostnic daemon touches (the
 * node's own and the pods'), holding links, IPv4 addresses, routes, rules, neighbours and proxy
 * neighbours, and answering `ip` the way iproute2 does for the lines lib/linux writes (the
 * `ip -batch` verbs of lib/linux/ip.ts, veth.ts, nic.ts, the mode planners) and the JSON
 * `STATE_SCRIPT` reads back. It is the one stand-in of a hollow node (docs/scale.md): no packet
 * moves, but every object a real node would hold is here, so reading the node back, CHECK and
 * the daemon's start-up reconciliation see what they would see on Linux.
 *
 * Semantics kept from the kernel: objects refer to links by index (a rename carries its routes);
 * deleting a link deletes its addresses, routes, neighbours and (a veth) its peer; moving a link
 * into another namespace drops its addresses and routes; `add` of something present fails with
 * "File exists", `del` of something absent with the kernel's not-found texts (lib/linux/errors.ts
 * classifies them). Not modelled: the local table, carrier, packets.
 */
import { canonicalCidr } from "../../linux/ipv4.ts";

export interface ModelLink {
  index: number;
  name: string;
  mac: string;
  mtu: number;
  up: boolean;
  alias?: string;
  kind?: string;
  /** The other end of a veth: its namespace key and index. */
  peer?: { ns: string; index: number };
}

export interface ModelRoute {
  table: number;
  /** Canonical prefix. */
  dst: string;
  dev?: number;
  via?: string;
  src?: string;
  scope?: string;
}

export interface ModelRule {
  priority: number;
  from?: string;
  to?: string;
  iif?: string;
  fwmark?: number;
  fwmask?: number;
  table: number;
}

export interface ModelNs {
  links: Map<number, ModelLink>;
  addrs: { dev: number; cidr: string }[];
  routes: ModelRoute[];
  rules: ModelRule[];
  neighs: { dst: string; dev: number; lladdr?: string; permanent: boolean }[];
  proxies: { dst: string; dev: number }[];
  sysctls: Map<string, string>;
  /** iptables: table → chain → rules (iptables-save's canonical text after `-A <chain> `). */
  iptables: Map<string, Map<string, string[]>>;
}

/** A failing `ip` line: the message iproute2 prints for it. */
export class IpLineError extends Error {}

const TABLES: Record<string, number> = { main: 254, local: 255, default: 253 };
const tableOf = (t: string) => TABLES[t] ?? Number(t);
const tableText = (t: number) => t === 254 ? "main" : t === 255 ? "local" : String(t);

const NOT_FOUND_DEV = (name: string) => new IpLineError(`Cannot find device "${name}"`);
const EXISTS = () => new IpLineError("RTNETLINK answers: File exists");

export function newNs(): ModelNs {
  const ns: ModelNs = {
    links: new Map(),
    addrs: [],
    routes: [],
    rules: [
      { priority: 0, table: 255 },
      { priority: 32766, table: 254 },
      { priority: 32767, table: 253 },
    ],
    neighs: [],
    proxies: [],
    sysctls: new Map(),
    iptables: new Map(),
  };
  ns.links.set(1, { index: 1, name: "lo", mac: "00:00:00:00:00:00", mtu: 65536, up: true });
  return ns;
}

/** Splits an `ip -batch` line into words; `"…"` is one word (aliases, lib/linux/spec.ts). */
export function words(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) out.push(m[1] ?? m[2]);
  return out;
}

/** `key value` pairs after the first words, e.g. `dev x via y` → {dev: x, via: y}. */
function pairs(ws: string[], flags: string[] = []): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < ws.length; i++) {
    if (flags.includes(ws[i])) m.set(ws[i], "");
    else m.set(ws[i], ws[++i] ?? "");
  }
  return m;
}

/** The namespaces of one hollow node and the `ip` interpreter over them. */
export class HollowKernel {
  readonly namespaces = new Map<string, ModelNs>();
  #nextIndex = 2;

  constructor() {
    this.namespaces.set(NODE_NS, newNs());
  }

  get node(): ModelNs {
    return this.namespaces.get(NODE_NS)!;
  }

  /** A new link in `ns` (a hot-plugged NIC: `eth<N>`, down). */
  addLink(nsKey: string, l: Omit<ModelLink, "index">): ModelLink {
    const link = { ...l, index: this.#nextIndex++ };
    this.#ns(nsKey).links.set(link.index, link);
    return link;
  }

  /** Lowest free `eth<N>` in `ns`. */
  freeEthName(nsKey: string): string {
    const ns = this.#ns(nsKey);
    for (let n = 0;; n++) if (!byName(ns, `eth${n}`)) return `eth${n}`;
  }

  /** Removes the link with `mac` wherever it is (a NIC detached by the cloud). */
  unplug(mac: string): void {
    for (const [key, ns] of this.namespaces) {
      for (const l of ns.links.values()) {
        if (l.mac === mac && l.kind === undefined) this.#deleteLink(key, l);
      }
    }
  }

  /** MACs of the physical (non-veth) links in every namespace. */
  physicalMacs(): Set<string> {
    const out = new Set<string>();
    for (const ns of this.namespaces.values()) {
      for (const l of ns.links.values()) if (l.kind === undefined && l.index !== 1) out.add(l.mac);
    }
    return out;
  }

  createNetns(key: string): void {
    if (!this.namespaces.has(key)) this.namespaces.set(key, newNs());
  }

  /** Deletes a namespace; its veth ends die and take their peers with them, as in the kernel. */
  deleteNetns(key: string): void {
    const ns = this.namespaces.get(key);
    if (!ns || key === NODE_NS) return;
    for (const l of [...ns.links.values()]) if (l.kind === "veth") this.#deleteLink(key, l);
    this.namespaces.delete(key);
  }

  /** Runs one `ip -batch` line in `nsKey`; returns its JSON output line for `show`s. */
  line(nsKey: string, line: string): string | undefined {
    const ws = words(line);
    const [obj, verb, ...rest] = ws;
    const ns = this.#ns(nsKey);
    switch (obj) {
      case "link":
        return this.#link(nsKey, ns, verb, rest);
      case "address":
      case "addr":
        return this.#addr(ns, verb, rest);
      case "route":
        return this.#route(ns, verb, rest);
      case "rule":
        return this.#rule(ns, verb, rest);
      case "neigh":
        return this.#neigh(ns, verb, rest);
    }
    throw new IpLineError(`Object "${obj}" is unknown, try "ip help".`);
  }

  #ns(key: string): ModelNs {
    const ns = this.namespaces.get(key);
    if (!ns) throw new IpLineError(`Invalid "netns" value "${key}"`);
    return ns;
  }

  #link(nsKey: string, ns: ModelNs, verb: string, rest: string[]): string | undefined {
    if (verb === "show") {
      const p = pairs(rest);
      const links = [...ns.links.values()].filter((l) => !p.has("dev") || l.name === p.get("dev"));
      if (p.has("dev") && links.length === 0) throw NOT_FOUND_DEV(p.get("dev")!);
      return JSON.stringify(links.map(linkJson));
    }
    if (verb === "add") {
      // link add <name> mtu M address MAC type veth peer name <p> mtu M address MAC netns <path>
      const name = rest[0];
      const peerAt = rest.indexOf("peer");
      const own = pairs(rest.slice(1, peerAt < 0 ? undefined : peerAt));
      if (own.get("type") !== "veth" || peerAt < 0) {
        throw new IpLineError(`hollow kernel: only veth pairs are modelled ("${rest.join(" ")}")`);
      }
      const peer = pairs(rest.slice(peerAt + 1));
      const peerNs = peer.get("netns") ?? nsKey;
      if (byName(ns, name)) throw EXISTS();
      const pns = this.#ns(peerNs);
      const peerName = peer.get("name")!;
      if (byName(pns, peerName)) throw EXISTS();
      const a = this.addLink(nsKey, {
        name,
        mac: own.get("address") ?? randomMac(),
        mtu: Number(own.get("mtu") ?? 1500),
        up: false,
        kind: "veth",
      });
      const b = this.addLink(peerNs, {
        name: peerName,
        mac: peer.get("address") ?? randomMac(),
        mtu: Number(peer.get("mtu") ?? 1500),
        up: false,
        kind: "veth",
      });
      a.peer = { ns: peerNs, index: b.index };
      b.peer = { ns: nsKey, index: a.index };
      return;
    }
    if (verb === "del" || verb === "delete") {
      const name = rest[0] === "dev" ? rest[1] : rest[0];
      const l = byName(ns, name);
      if (!l) throw NOT_FOUND_DEV(name);
      this.#deleteLink(nsKey, l);
      return;
    }
    if (verb === "set") {
      const p = pairs(rest, ["up", "down"]);
      const name = p.get("dev")!;
      const l = byName(ns, name);
      if (!l) throw NOT_FOUND_DEV(name);
      let target = ns;
      let targetKey = nsKey;
      if (p.has("netns")) {
        targetKey = p.get("netns")!;
        target = this.#ns(targetKey);
      }
      const newName = p.get("name") ?? l.name;
      const clash = byName(target, newName);
      if (clash && clash !== l) throw EXISTS();
      if (target !== ns) {
        // Moving a link drops its addresses, routes and neighbours (the kernel does).
        this.#dropObjects(ns, l.index);
        ns.links.delete(l.index);
        target.links.set(l.index, l);
        if (l.peer) this.#peerOf(l)!.peer = { ns: targetKey, index: l.index };
      }
      l.name = newName;
      if (p.has("alias")) l.alias = p.get("alias") || undefined;
      if (p.has("mtu")) l.mtu = Number(p.get("mtu"));
      if (p.has("address")) l.mac = p.get("address")!.toLowerCase();
      if (p.has("up")) l.up = true;
      if (p.has("down")) l.up = false;
      return;
    }
    throw new IpLineError(`hollow kernel: "link ${verb}" is not modelled`);
  }

  #peerOf(l: ModelLink): ModelLink | undefined {
    return l.peer && this.namespaces.get(l.peer.ns)?.links.get(l.peer.index);
  }

  #deleteLink(nsKey: string, l: ModelLink): void {
    const ns = this.namespaces.get(nsKey)!;
    this.#dropObjects(ns, l.index);
    ns.links.delete(l.index);
    const peer = this.#peerOf(l);
    if (peer && l.peer) {
      peer.peer = undefined;
      this.#deleteLink(l.peer.ns, peer);
    }
  }

  #dropObjects(ns: ModelNs, index: number): void {
    ns.addrs = ns.addrs.filter((a) => a.dev !== index);
    ns.routes = ns.routes.filter((r) => r.dev !== index);
    ns.neighs = ns.neighs.filter((n) => n.dev !== index);
    ns.proxies = ns.proxies.filter((n) => n.dev !== index);
  }

  #dev(ns: ModelNs, name: string | undefined): number | undefined {
    if (name === undefined) return undefined;
    const l = byName(ns, name);
    if (!l) throw NOT_FOUND_DEV(name);
    return l.index;
  }

  #addr(ns: ModelNs, verb: string, rest: string[]): string | undefined {
    if (verb === "show") {
      return JSON.stringify([...ns.links.values()].map((l) => ({
        ifindex: l.index,
        ifname: l.name,
        addr_info: ns.addrs.filter((a) => a.dev === l.index).map((a) => ({
          family: "inet",
          local: a.cidr.split("/")[0],
          prefixlen: Number(a.cidr.split("/")[1]),
        })),
      })));
    }
    const cidr = rest[0].includes("/") ? rest[0] : `${rest[0]}/32`;
    const dev = this.#dev(ns, pairs(rest.slice(1)).get("dev"))!;
    const i = ns.addrs.findIndex((a) => a.dev === dev && a.cidr === cidr);
    if (verb === "del" || verb === "delete") {
      if (i < 0) throw new IpLineError("RTNETLINK answers: Cannot assign requested address");
      ns.addrs.splice(i, 1);
      return;
    }
    if (verb === "add" && i >= 0) throw EXISTS();
    if (i < 0) ns.addrs.push({ dev, cidr });
    return;
  }

  #route(ns: ModelNs, verb: string, rest: string[]): string | undefined {
    if (verb === "show") {
      return JSON.stringify(ns.routes.map((r) => ({
        type: "unicast",
        dst: r.dst === "0.0.0.0/0" ? "default" : r.dst.endsWith("/32") ? r.dst.slice(0, -3) : r.dst,
        ...(r.via ? { gateway: r.via } : {}),
        ...(r.dev !== undefined ? { dev: ns.links.get(r.dev)?.name } : {}),
        ...(r.table !== 254 ? { table: tableText(r.table) } : {}),
        ...(r.scope ? { scope: r.scope } : {}),
        ...(r.src ? { prefsrc: r.src } : {}),
        flags: [],
      })));
    }
    const p = pairs(rest.slice(1));
    const want: ModelRoute = {
      table: tableOf(p.get("table") ?? "main"),
      dst: canonicalCidr(rest[0]),
      dev: this.#dev(ns, p.get("dev")),
      via: p.get("via"),
      src: p.get("src"),
      scope: p.get("scope"),
    };
    const i = ns.routes.findIndex((r) => r.table === want.table && r.dst === want.dst);
    if (verb === "del" || verb === "delete") {
      const hit = i >= 0 && (want.dev === undefined || ns.routes[i].dev === want.dev) &&
        (want.via === undefined || ns.routes[i].via === want.via);
      if (!hit) throw new IpLineError("RTNETLINK answers: No such process");
      ns.routes.splice(i, 1);
      return;
    }
    if (verb === "add" && i >= 0) throw EXISTS();
    if (i >= 0) ns.routes[i] = want;
    else ns.routes.push(want);
    return;
  }

  #rule(ns: ModelNs, verb: string, rest: string[]): string | undefined {
    if (verb === "show") {
      return JSON.stringify(ns.rules.map((r) => {
        const [src, srclen] = (r.from ?? "").split("/");
        const [dst, dstlen] = (r.to ?? "").split("/");
        return {
          priority: r.priority,
          src: r.from ? src : "all",
          ...(r.from && srclen !== "32" ? { srclen: Number(srclen) } : {}),
          ...(r.to ? { dst, ...(dstlen !== "32" ? { dstlen: Number(dstlen) } : {}) } : {}),
          ...(r.iif ? { iif: r.iif } : {}),
          ...(r.fwmark !== undefined
            ? { fwmark: `0x${r.fwmark.toString(16)}`, fwmask: `0x${r.fwmask!.toString(16)}` }
            : {}),
          table: tableText(r.table),
        };
      }));
    }
    const p = pairs(rest);
    const [mark, mask] = (p.get("fwmark") ?? "").split("/");
    const want: ModelRule = {
      priority: Number(p.get("priority") ?? p.get("pref") ?? 0),
      from: p.has("from") ? canonicalCidr(withLen(p.get("from")!)) : undefined,
      to: p.has("to") ? canonicalCidr(withLen(p.get("to")!)) : undefined,
      iif: p.get("iif"),
      fwmark: mark ? Number(mark) : undefined,
      fwmask: mark ? Number(mask ?? "0xffffffff") : undefined,
      table: tableOf(p.get("lookup") ?? p.get("table") ?? "main"),
    };
    const same = (r: ModelRule) =>
      r.priority === want.priority && r.from === want.from && r.to === want.to &&
      r.iif === want.iif && r.fwmark === want.fwmark && r.fwmask === want.fwmask &&
      r.table === want.table;
    const i = ns.rules.findIndex(same);
    if (verb === "del" || verb === "delete") {
      if (i < 0) {
        throw new IpLineError("RTNETLINK answers: No such file or directory");
      }
      ns.rules.splice(i, 1);
      return;
    }
    if (i >= 0) throw EXISTS();
    ns.rules.push(want);
    ns.rules.sort((a, b) => a.priority - b.priority);
    return;
  }

  #neigh(ns: ModelNs, verb: string, rest: string[]): string | undefined {
    const proxy = rest[0] === "proxy";
    const args = proxy ? rest.slice(1) : rest;
    if (verb === "show") {
      if (proxy) {
        return JSON.stringify(
          ns.proxies.map((n) => ({ dst: n.dst, dev: ns.links.get(n.dev)?.name })),
        );
      }
      return JSON.stringify(ns.neighs.map((n) => ({
        dst: n.dst,
        dev: ns.links.get(n.dev)?.name,
        ...(n.lladdr ? { lladdr: n.lladdr } : {}),
        state: [n.permanent ? "PERMANENT" : "REACHABLE"],
      })));
    }
    const p = pairs(args.slice(1));
    const dst = args[0];
    const dev = this.#dev(ns, p.get("dev"))!;
    const list = proxy ? ns.proxies : ns.neighs;
    const i = list.findIndex((n) => n.dst === dst && n.dev === dev);
    if (verb === "del" || verb === "delete") {
      if (i < 0) throw new IpLineError("RTNETLINK answers: No such file or directory");
      list.splice(i, 1);
      return;
    }
    if (verb === "add" && i >= 0) throw EXISTS();
    if (i >= 0) list.splice(i, 1);
    if (proxy) ns.proxies.push({ dst, dev });
    else {
      ns.neighs.push({
        dst,
        dev,
        lladdr: p.get("lladdr")?.toLowerCase(),
        permanent: p.get("nud") === "permanent",
      });
    }
    return;
  }
}

/** The node's own namespace (commands run without a netns). */
export const NODE_NS = "";

function withLen(s: string): string {
  return s.includes("/") ? s : `${s}/32`;
}

function byName(ns: ModelNs, name: string): ModelLink | undefined {
  for (const l of ns.links.values()) if (l.name === name) return l;
  return undefined;
}

function linkJson(l: ModelLink): Record<string, unknown> {
  return {
    ifindex: l.index,
    ifname: l.name,
    flags: l.up ? ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"] : ["BROADCAST", "MULTICAST"],
    mtu: l.mtu,
    operstate: l.up ? "UP" : "DOWN",
    link_type: l.index === 1 ? "loopback" : "ether",
    address: l.mac,
    ...(l.alias ? { ifalias: l.alias } : {}),
    ...(l.kind ? { linkinfo: { info_kind: l.kind } } : {}),
  };
}

function randomMac(): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  b[0] = (b[0] & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}
