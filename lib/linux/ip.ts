/**
 * `ip` as data: object specs (addresses, routes, rules, neighbours) rendered to `ip -batch` lines,
 * a reader that fetches a namespace's whole IPv4 state in one spawn (`ip -4 -json -d -batch -`),
 * and batch runners with the two error policies hostnic needs:
 *
 * - `runIpBatch`: all-or-error. Without `-force`, ip stops at the first failing line, so on error
 *   the lines before it were applied and the rest were not (see `parseBatchFailure`).
 * - `runIpBatchForgiving`: delete/undo semantics. Lines failing with "not found" are skipped;
 *   other failures are collected and returned, and the remaining lines still run.
 *
 * Invariant: only IPv4 objects; table names are normalised to numbers (main 254, local 255).
 */
import { ExecError, type Runner } from "./exec.ts";
import { classifyError, classifyMessage, parseBatchFailure } from "./errors.ts";
import { canonicalCidr } from "./ipv4.ts";

export const TABLE_MAIN = 254;
export const TABLE_LOCAL = 255;
export const TABLE_DEFAULT = 253;

// ---------------------------------------------------------------------------------------------
// Specs (what a plan wants) and their batch lines

/** `ip address replace <cidr> dev <dev>` */
export interface AddrSpec {
  dev: string;
  /** Address with its prefix length, e.g. `172.22.1.5/32`. */
  cidr: string;
}

/** `ip route replace <dst> [via <via>] [dev <dev>] [src <src>] [scope link] [table <table>]` */
export interface RouteSpec {
  /** Destination prefix; `default` for 0.0.0.0/0. */
  dst: string;
  dev?: string;
  via?: string;
  src?: string;
  scope?: "link";
  /** Route table; main when omitted. */
  table?: number;
}

/** `ip rule add priority <p> [from <cidr>] [to <cidr>] [iif <dev>] [fwmark <v>/<m>] lookup <t>` */
export interface RuleSpec {
  priority: number;
  from?: string;
  to?: string;
  iif?: string;
  fwmark?: { value: number; mask: number };
  table: number;
}

/**
 * `ip neigh replace <dst> lladdr <mac> dev <dev> nud permanent`, or with `proxy`:
 * `ip neigh replace proxy <dst> dev <dev>` (answer ARP for <dst> on <dev> with <dev>'s MAC).
 */
export interface NeighSpec {
  dst: string;
  dev: string;
  lladdr?: string;
  proxy?: boolean;
}

const hex = (n: number) => `0x${n.toString(16)}`;
const tableName = (t: number) => t === TABLE_MAIN ? "main" : String(t);

export function addrAddLine(a: AddrSpec): string {
  return `address replace ${a.cidr} dev ${a.dev}`;
}
export function addrDelLine(a: AddrSpec): string {
  return `address del ${a.cidr} dev ${a.dev}`;
}

function routeArgs(r: RouteSpec, opts: { forDelete: boolean }): string {
  const parts = [r.dst];
  if (r.via) parts.push("via", r.via);
  if (r.dev) parts.push("dev", r.dev);
  if (!opts.forDelete && r.src) parts.push("src", r.src);
  if (!opts.forDelete && r.scope) parts.push("scope", r.scope);
  if (r.table !== undefined && r.table !== TABLE_MAIN) parts.push("table", String(r.table));
  return parts.join(" ");
}
export function routeAddLine(r: RouteSpec): string {
  return `route replace ${routeArgs(r, { forDelete: false })}`;
}
export function routeDelLine(r: RouteSpec): string {
  return `route del ${routeArgs(r, { forDelete: true })}`;
}

function ruleArgs(r: RuleSpec): string {
  const parts = ["priority", String(r.priority)];
  if (r.from) parts.push("from", r.from);
  if (r.to) parts.push("to", r.to);
  if (r.iif) parts.push("iif", r.iif);
  if (r.fwmark) parts.push("fwmark", `${hex(r.fwmark.value)}/${hex(r.fwmark.mask)}`);
  parts.push("lookup", tableName(r.table));
  return parts.join(" ");
}
export function ruleAddLine(r: RuleSpec): string {
  return `rule add ${ruleArgs(r)}`;
}
export function ruleDelLine(r: RuleSpec): string {
  return `rule del ${ruleArgs(r)}`;
}

export function neighAddLine(n: NeighSpec): string {
  return n.proxy
    ? `neigh replace proxy ${n.dst} dev ${n.dev}`
    : `neigh replace ${n.dst} lladdr ${n.lladdr} dev ${n.dev} nud permanent`;
}
export function neighDelLine(n: NeighSpec): string {
  return n.proxy ? `neigh del proxy ${n.dst} dev ${n.dev}` : `neigh del ${n.dst} dev ${n.dev}`;
}

/** Human description used in CHECK differences, e.g. `rule 1536 from 172.22.1.5 lookup 261`. */
export function describeRule(r: RuleSpec): string {
  return `rule ${ruleArgs(r).replace(/^priority /, "")}`;
}
export function describeRoute(r: RouteSpec): string {
  return `route ${routeArgs(r, { forDelete: false })}`;
}
export function describeNeigh(n: NeighSpec): string {
  return n.proxy
    ? `proxy neighbour ${n.dst} dev ${n.dev}`
    : `neighbour ${n.dst} lladdr ${n.lladdr} dev ${n.dev} permanent`;
}
export function describeAddr(a: AddrSpec): string {
  return `address ${a.cidr} dev ${a.dev}`;
}

// ---------------------------------------------------------------------------------------------
// State (what the kernel has), parsed from `ip -json`

export interface LinkState {
  index: number;
  name: string;
  mac?: string;
  mtu: number;
  /** Administratively up (IFF_UP), regardless of carrier. */
  up: boolean;
  alias?: string;
  /** `linkinfo.info_kind` (veth, bridge...); undefined for physical NICs. */
  kind?: string;
}

export interface AddrState {
  dev: string;
  /** `a.b.c.d/len` as configured (host bits kept). */
  cidr: string;
}

export interface RouteState {
  table: number;
  /** Canonical prefix, `0.0.0.0/0` for default. */
  dst: string;
  type: string;
  dev?: string;
  via?: string;
  scope?: string;
  src?: string;
}

export interface RuleState {
  priority: number;
  from?: string;
  to?: string;
  iif?: string;
  oif?: string;
  fwmark?: number;
  fwmask?: number;
  table?: number;
}

export interface NeighState {
  dst: string;
  dev: string;
  lladdr?: string;
  permanent: boolean;
}

export interface ProxyState {
  dst: string;
  dev: string;
}

/** Everything hostnic looks at in one namespace. */
export interface NsState {
  links: LinkState[];
  addrs: AddrState[];
  routes: RouteState[];
  rules: RuleState[];
  neighs: NeighState[];
  proxies: ProxyState[];
}

/** The `ip -batch` script `readNsState` runs: one JSON array per line of output, in this order. */
export const STATE_SCRIPT = [
  "link show",
  "address show",
  "route show table all",
  "rule show",
  "neigh show",
  "neigh show proxy",
].join("\n") + "\n";

type Json = Record<string, unknown>;

function tableNumber(t: unknown): number {
  if (t === undefined || t === "main") return TABLE_MAIN;
  if (t === "local") return TABLE_LOCAL;
  if (t === "default") return TABLE_DEFAULT;
  return Number(t);
}

const str = (v: unknown) => typeof v === "string" && v !== "" ? v : undefined;

function prefixed(addr: unknown, len: unknown): string | undefined {
  const a = str(addr);
  if (!a || a === "all") return undefined;
  return canonicalCidr(typeof len === "number" ? `${a}/${len}` : a.includes("/") ? a : `${a}/32`);
}

/** Parses the output of `STATE_SCRIPT` run with `ip -4 -json -d -batch -`. */
export function parseNsState(stdout: string): NsState {
  const arrays = stdout.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
  if (arrays.length !== 6) {
    throw new Error(`Unexpected "ip -json -batch" output: ${arrays.length} arrays instead of 6`);
  }
  const [links, addrs, routes, rules, neighs, proxies] = arrays as Json[][];
  return {
    links: links.map((l) => ({
      index: Number(l.ifindex),
      name: String(l.ifname),
      mac: str(l.address),
      mtu: Number(l.mtu),
      up: Array.isArray(l.flags) && l.flags.includes("UP"),
      alias: str(l.ifalias),
      kind: str((l.linkinfo as Json | undefined)?.info_kind),
    })),
    addrs: addrs.flatMap((l) =>
      ((l.addr_info as Json[] | undefined) ?? [])
        .filter((a) => a.family === "inet")
        .map((a) => ({ dev: String(l.ifname), cidr: `${a.local}/${a.prefixlen}` }))
    ),
    routes: routes.map((r) => ({
      table: tableNumber(r.table),
      dst: canonicalCidr(String(r.dst)),
      type: str(r.type) ?? "unicast",
      dev: str(r.dev),
      via: str(r.gateway),
      scope: str(r.scope),
      src: str(r.prefsrc),
    })),
    rules: rules.map((r) => ({
      priority: Number(r.priority),
      from: prefixed(r.src, r.srclen),
      to: prefixed(r.dst, r.dstlen),
      iif: str(r.iif),
      oif: str(r.oif),
      fwmark: r.fwmark === undefined ? undefined : Number(r.fwmark),
      fwmask: r.fwmark === undefined ? undefined : Number(r.fwmask ?? "0xffffffff"),
      table: r.table === undefined ? undefined : tableNumber(r.table),
    })),
    neighs: neighs.map((n) => ({
      dst: String(n.dst),
      dev: String(n.dev),
      lladdr: str(n.lladdr)?.toLowerCase(),
      permanent: Array.isArray(n.state) && n.state.includes("PERMANENT"),
    })),
    proxies: proxies.map((p) => ({ dst: String(p.dst), dev: String(p.dev) })),
  };
}

export interface IpDeps {
  runner: Runner;
}

/** Reads a namespace's links, IPv4 addresses, routes (all tables), rules and neighbours. */
export async function readNsState(deps: IpDeps, netns: string | undefined): Promise<NsState> {
  const { stdout } = await deps.runner.run(["ip", "-4", "-json", "-d", "-batch", "-"], {
    netns,
    stdin: STATE_SCRIPT,
  });
  return parseNsState(stdout);
}

// Lookups on state ----------------------------------------------------------------------------

export function linkByName(s: NsState, name: string): LinkState | undefined {
  return s.links.find((l) => l.name === name);
}

export function linkByMac(s: NsState, mac: string): LinkState | undefined {
  const m = mac.toLowerCase();
  return s.links.find((l) => l.mac?.toLowerCase() === m && l.kind !== "bridge");
}

export function findRoute(s: NsState, r: RouteSpec): RouteState | undefined {
  const table = r.table ?? TABLE_MAIN;
  const dst = canonicalCidr(r.dst);
  return s.routes.find((x) =>
    x.table === table && x.dst === dst && x.type === "unicast" &&
    (r.dev === undefined || x.dev === r.dev) && (r.via === undefined || x.via === r.via)
  );
}

export function ruleMatches(x: RuleState, r: RuleSpec): boolean {
  const norm = (c?: string) => c === undefined ? undefined : canonicalCidr(c);
  return x.priority === r.priority && x.from === norm(r.from) && x.to === norm(r.to) &&
    x.iif === r.iif && x.oif === undefined && x.table === r.table &&
    x.fwmark === r.fwmark?.value && (r.fwmark === undefined || x.fwmask === r.fwmark.mask);
}

export function hasRule(s: NsState, r: RuleSpec): boolean {
  return s.rules.some((x) => ruleMatches(x, r));
}

export function hasNeigh(s: NsState, n: NeighSpec): boolean {
  if (n.proxy) return s.proxies.some((p) => p.dst === n.dst && p.dev === n.dev);
  return s.neighs.some((x) =>
    x.dst === n.dst && x.dev === n.dev && x.permanent && x.lladdr === n.lladdr?.toLowerCase()
  );
}

export function hasAddr(s: NsState, a: AddrSpec): boolean {
  return s.addrs.some((x) => x.dev === a.dev && x.cidr === a.cidr);
}

/** Rule spec that deletes exactly the rule `x` read from the kernel. */
export function ruleSpecOf(x: RuleState): RuleSpec {
  return {
    priority: x.priority,
    from: x.from,
    to: x.to,
    iif: x.iif,
    fwmark: x.fwmark === undefined ? undefined : { value: x.fwmark, mask: x.fwmask ?? 0xffffffff },
    table: x.table ?? TABLE_MAIN,
  };
}

// ---------------------------------------------------------------------------------------------
// Running batches

export interface BatchOptions {
  /** Namespace name or path; undefined = the caller's own namespace. */
  netns: string | undefined;
}

/** Runs `ip -batch -` with `lines`; throws the `ExecError` of the first failing line. */
export async function runIpBatch(
  deps: IpDeps,
  lines: readonly string[],
  opts: BatchOptions,
): Promise<void> {
  if (lines.length === 0) return;
  await deps.runner.run(["ip", "-batch", "-"], {
    netns: opts.netns,
    stdin: lines.join("\n") + "\n",
  });
}

/**
 * Runs `lines`, then reads the namespace back in the same `ip` process (`STATE_SCRIPT` appended,
 * `ip -4 -json -d`): the state right after the batch, without a spawn of its own. Throws the
 * `ExecError` of the first failing line, as `runIpBatch` (then nothing was read).
 */
export async function runIpBatchReading(
  deps: IpDeps,
  lines: readonly string[],
  opts: BatchOptions,
): Promise<NsState> {
  const { stdout } = await deps.runner.run(["ip", "-4", "-json", "-d", "-batch", "-"], {
    netns: opts.netns,
    stdin: (lines.length ? lines.join("\n") + "\n" : "") + STATE_SCRIPT,
  });
  return parseNsState(stdout);
}

/** Outcome of a forgiving run: failures that were not "not found", and whether the netns exists. */
export interface ForgivingOptions extends BatchOptions {
  /** Also skip lines failing with "File exists" (undo lines that re-add what a setup removed). */
  forgiveExisting?: boolean;
  /** Read the namespace back at the end of the last run (`runIpBatchReading`). */
  read?: boolean;
}

export interface ForgivingResult {
  failures: string[];
  netnsMissing: boolean;
  /** With `read`: the state after the last line, when the last run got to read it. */
  state?: NsState;
}

/**
 * Runs `lines` with delete semantics: a line failing with "not found" (and, if asked, "exists")
 * is skipped, other failures are recorded, and the remaining lines still run. Costs one spawn plus one per failing line; `ip` exits without saying which
 * line failed for a few verbs (neigh), and then the rest runs one line per spawn.
 */
export async function runIpBatchForgiving(
  deps: IpDeps,
  lines: readonly string[],
  opts: ForgivingOptions,
): Promise<ForgivingResult> {
  const failures: string[] = [];
  let rest = [...lines];
  let oneByOne = false;
  let state: NsState | undefined;
  while (rest.length > 0) {
    const chunk = oneByOne ? rest.slice(0, 1) : rest;
    try {
      // Only a run that takes the remaining lines to their end reads the state back.
      if (opts.read && chunk.length === rest.length) {
        state = await runIpBatchReading(deps, chunk, opts);
      } else {
        await runIpBatch(deps, chunk, opts);
      }
      rest = rest.slice(chunk.length);
      continue;
    } catch (err) {
      if (classifyError(err) === "netns-missing") return { failures, netnsMissing: true };
      if (!(err instanceof ExecError)) throw err;
      const failed = chunk.length === 1
        ? { line: 1, message: err.stderr.trim() }
        : parseBatchFailure(err.stderr);
      if (!failed) {
        // Unknown position: re-run the remaining lines one by one (deletes are repeatable).
        oneByOne = true;
        continue;
      }
      const kind = classifyMessage(failed.message);
      if (kind !== "not-found" && !(kind === "exists" && opts.forgiveExisting)) {
        failures.push(`"${chunk[failed.line - 1]}": ${failed.message || "failed"}`);
      }
      rest = rest.slice(failed.line);
    }
  }
  return { failures, netnsMissing: false, ...(state ? { state } : {}) };
}
