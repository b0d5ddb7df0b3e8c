/**
 * Network-namespace lab for tests that need real kernels objects. It creates namespaces named
 * `tdp<4 hex>-<role>` (unique per lab), veth pairs between them, runs commands inside them and
 * dumps their state normalised for before/after diffs. Disposing the lab deletes every namespace
 * carrying its tag (and with them every link, route and iptables rule inside), even after a
 * failed test. It never creates anything in the machine's root namespace.
 *
 *   await using lab = new NetnsLab();
 *   const node = await lab.addNetns("node");
 */
import { CommandRunner, netnsPath, type Runner, type RunResult } from "../../lib/linux/exec.ts";

export interface VethEnd {
  netns: string;
  name: string;
  mac?: string;
  /** Addresses with prefix, e.g. `172.22.0.2/24`. */
  addrs?: string[];
  up?: boolean;
  /** Bridge to enslave this end to. */
  master?: string;
}

export interface AddNetnsOptions {
  /** Keep IPv6 enabled (off by default: link-local addresses appear asynchronously). */
  ipv6?: boolean;
}

/** State of one namespace, normalised so that equal states compare equal as JSON. */
export interface NetnsDump {
  links: string[];
  addrs: string[];
  routes: string[];
  rules: string[];
  neighs: string[];
  iptables: string[];
}

const VOLATILE_LINK_KEYS = new Set(["stats", "stats64", "qdisc", "operstate", "linkmode"]);

export class NetnsLab implements AsyncDisposable {
  readonly tag: string;
  readonly runner: Runner;

  constructor(opts: { runner?: Runner } = {}) {
    const rnd = crypto.getRandomValues(new Uint8Array(2));
    this.tag = `tdp${[...rnd].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
    this.runner = opts.runner ?? new CommandRunner();
  }

  /** The namespace name for `role` (whether or not it exists). */
  name(role: string): string {
    return `${this.tag}-${role}`;
  }

  /** Creates namespaces `tdpXXXX-<role>` (one spawn for all, plus one per namespace setup). */
  async addNetns(roles: string | string[], opts: AddNetnsOptions = {}): Promise<string[]> {
    const names = (Array.isArray(roles) ? roles : [roles]).map((r) => this.name(r));
    await this.runner.run(["ip", "-batch", "-"], {
      stdin: names.map((n) => `netns add ${n}`).join("\n") + "\n",
    });
    await Promise.all(names.map(async (n) => {
      await this.run(n, ["ip", "link", "set", "lo", "up"]);
      if (!opts.ipv6) {
        await this.run(n, [
          "sysctl",
          "-q",
          "-w",
          "net.ipv6.conf.all.disable_ipv6=1",
          "net.ipv6.conf.default.disable_ipv6=1",
        ]);
      }
    }));
    return names;
  }

  /** Deletes a namespace (and everything in it); absent is fine. */
  async deleteNetns(name: string): Promise<void> {
    if (!name.startsWith(`${this.tag}-`)) throw new Error(`"${name}" is not this lab's namespace`);
    try {
      await this.runner.run(["ip", "netns", "del", name]);
    } catch (err) {
      if (await exists(netnsPath(name))) throw err;
    }
  }

  /** Runs argv inside `netns` (a lab namespace; never the root namespace). */
  run(netns: string, argv: string[], opts: { stdin?: string } = {}): Promise<RunResult> {
    if (!netns) throw new Error("NetnsLab.run needs a namespace");
    return this.runner.run(argv, { netns, stdin: opts.stdin });
  }

  /** `ip <args>` inside `netns`; args split on spaces. */
  async ip(netns: string, args: string): Promise<string> {
    return (await this.run(netns, ["ip", ...args.split(/\s+/).filter(Boolean)])).stdout;
  }

  async ipBatch(netns: string, lines: string[]): Promise<void> {
    if (lines.length > 0) {
      await this.run(netns, ["ip", "-batch", "-"], { stdin: lines.join("\n") + "\n" });
    }
  }

  /** `ip -json <args>` parsed. */
  async ipJson<T = Record<string, unknown>[]>(netns: string, args: string): Promise<T> {
    return JSON.parse(await this.ip(netns, `-json ${args}`) || "[]") as T;
  }

  /** Creates a veth pair between `a.netns` and `b.netns` (2 spawns). */
  async veth(a: VethEnd, b: VethEnd, opts: { mtu?: number } = {}): Promise<void> {
    const mtu = opts.mtu ? ` mtu ${opts.mtu}` : "";
    const mac = (e: VethEnd) => e.mac ? ` address ${e.mac}` : "";
    await this.ipBatch(a.netns, [
      `link add ${a.name}${mtu}${mac(a)} type veth peer name ${b.name}${mtu}${mac(b)} ` +
      `netns ${netnsPath(b.netns)}`,
      ...endLines(a),
    ]);
    await this.ipBatch(b.netns, endLines(b));
  }

  /** One ping attempt (1 s timeout). */
  async canPing(netns: string, dst: string): Promise<boolean> {
    try {
      await this.run(netns, ["ping", "-c", "1", "-W", "1", "-q", dst]);
      return true;
    } catch {
      return false;
    }
  }

  /** Pings until a reply arrives or `timeoutMs` passes (the first packet may wait for ARP). */
  async ping(netns: string, dst: string, opts: { timeoutMs?: number } = {}): Promise<void> {
    await waitFor(`${netns} to reach ${dst}`, () => this.canPing(netns, dst), opts);
  }

  /** Normalised dump of links, IPv4 addresses, routes (all tables), rules, neighbours, iptables. */
  async dump(netns: string): Promise<NetnsDump> {
    const script = [
      "link show",
      "address show",
      "route show table all",
      "rule show",
      "neigh show",
      "neigh show proxy",
    ];
    // Options cannot go on batch lines, so -d (link details) applies to all commands.
    const out = await this.run(netns, ["ip", "-json", "-d", "-batch", "-"], {
      stdin: script.join("\n") + "\n",
    });
    const [links, addrs, routes, rules, neighs, proxies] = out.stdout.split("\n")
      .filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>[]);
    const ipt = await this.run(netns, ["iptables-save"]);
    return {
      links: sorted(links.map((l) => JSON.stringify(stripKeys(l, VOLATILE_LINK_KEYS)))),
      addrs: sorted(
        addrs.flatMap((l) =>
          ((l.addr_info ?? []) as Record<string, unknown>[]).map((a) =>
            `${l.ifname} ${a.family} ${a.local}/${a.prefixlen} scope ${a.scope}`
          )
        ),
      ),
      routes: sorted(routes.map((r) => JSON.stringify(r))),
      rules: sorted(rules.map((r) => JSON.stringify(r))),
      neighs: sorted([
        ...neighs.filter((n) => (n.state as string[] | undefined)?.includes("PERMANENT"))
          .map((n) => `${n.dst} dev ${n.dev} lladdr ${n.lladdr} PERMANENT`),
        ...proxies.map((p) => `proxy ${p.dst} dev ${p.dev}`),
      ]),
      iptables: normaliseIptables(ipt.stdout),
    };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    let names: string[] = [];
    try {
      for await (const e of Deno.readDir("/run/netns")) {
        if (e.name.startsWith(`${this.tag}-`)) names.push(e.name);
      }
    } catch {
      names = [];
    }
    if (names.length === 0) return;
    try {
      await this.runner.run(["ip", "-force", "-batch", "-"], {
        stdin: names.map((n) => `netns del ${n}`).join("\n") + "\n",
      });
    } catch {
      // Reported below by whatever is left.
    }
    const left = [];
    for (const n of names) if (await exists(netnsPath(n))) left.push(n);
    if (left.length) throw new Error(`NetnsLab could not delete namespaces: ${left.join(", ")}`);
  }
}

function endLines(e: VethEnd): string[] {
  const lines = (e.addrs ?? []).map((a) => `address add ${a} dev ${e.name}`);
  if (e.master) lines.push(`link set dev ${e.name} master ${e.master}`);
  if (e.up ?? true) lines.push(`link set dev ${e.name} up`);
  return lines;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

function sorted(xs: string[]): string[] {
  return [...xs].sort();
}

function stripKeys(v: unknown, keys: Set<string>): unknown {
  if (Array.isArray(v)) return v.map((x) => stripKeys(x, keys));
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (!keys.has(k) && !/timer/.test(k)) out[k] = stripKeys(x, keys);
    }
    return out;
  }
  return v;
}

/**
 * iptables-save as `<table> <line>` lines, without comments and counters. A table holding only
 * built-in chains with policy ACCEPT and no rules is dropped: iptables-nft creates such tables
 * just by listing them, and they behave exactly like an absent table.
 */
export function normaliseIptables(text: string): string[] {
  const out: string[] = [];
  let table = "";
  let lines: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim().replace(/\[\d+:\d+\]/g, "[0:0]");
    if (!line || line.startsWith("#")) continue;
    if (line.startsWith("*")) {
      table = line.slice(1);
      lines = [];
    } else if (line === "COMMIT") {
      if (lines.some((l) => !/^:[A-Z]+ ACCEPT \[0:0\]$/.test(l))) {
        out.push(...lines.map((l) => `${table} ${l}`));
      }
    } else lines.push(line);
  }
  return out;
}

/**
 * Differences between two dumps: `- <category>: <line>` (gone) and `+ …` (new), counting
 * duplicates; for iptables, also a changed order of the same lines (rule order matters).
 */
export function diffDumps(before: NetnsDump, after: NetnsDump): string[] {
  const out: string[] = [];
  for (const key of Object.keys(before) as (keyof NetnsDump)[]) {
    const left = [...after[key]];
    for (const x of before[key]) {
      const i = left.indexOf(x);
      if (i >= 0) left.splice(i, 1);
      else out.push(`- ${key}: ${x}`);
    }
    const right = [...before[key]];
    for (const x of after[key]) {
      const i = right.indexOf(x);
      if (i >= 0) right.splice(i, 1);
      else out.push(`+ ${key}: ${x}`);
    }
  }
  const same = out.length === 0;
  if (same && before.iptables.join("\n") !== after.iptables.join("\n")) {
    out.push("~ iptables: same lines in another order");
  }
  return out;
}

/** Polls `cond` every `intervalMs` until it is true; throws after `timeoutMs`. */
export async function waitFor(
  what: string,
  cond: () => Promise<boolean>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
