/**
 * The recording datapath of a hollow node: a `Runner` (lib/linux/exec.ts) that answers every
 * command the daemon's Linux layer runs — `ip -batch -` and `ip -4 -json -d -batch -` (lib/linux/
 * ip.ts), `ip -j link show` (the pool's link poll), `sysctl -q -w`, `iptables-save` /
 * `iptables-restore --noflush` (lib/linux/iptables.ts) — from the node's `HollowKernel` model,
 * records each command and counts them per program and per `ip` verb. A command for a namespace
 * that does not exist fails as nsenter does; a verb the model does not know fails loudly (so a
 * new datapath command shows up as a failing pod, never as a silent success).
 */
import {
  ExecError,
  netnsPath,
  type Runner,
  type RunOptions,
  type RunResult,
} from "../../linux/exec.ts";
import { HollowKernel, IpLineError, type ModelNs, NODE_NS, words } from "./kernel.ts";

export interface RecordedCommand {
  argv: string[];
  netns?: string;
  stdin?: string;
}

export interface HollowRunnerOptions {
  kernel: HollowKernel;
  /** Called before each command (the hollow node plugs NICs the cloud attached meanwhile). */
  beforeRun?: () => void;
  /** Keep every command (tests); the bench keeps counts only. Default true. */
  keepLog?: boolean;
}

export class HollowRunner implements Runner {
  readonly kernel: HollowKernel;
  /** Spawns a real node would make, per program (`ip`, `sysctl`, `iptables-save`...). */
  readonly spawns = new Map<string, number>();
  /** `ip` batch lines per object and verb (`link add`, `route replace`...). */
  readonly ipLines = new Map<string, number>();
  readonly log: RecordedCommand[] = [];
  readonly #before?: () => void;
  readonly #keep: boolean;

  constructor(o: HollowRunnerOptions) {
    this.kernel = o.kernel;
    this.#before = o.beforeRun;
    this.#keep = o.keepLog ?? true;
  }

  /** Total spawns. */
  get total(): number {
    let n = 0;
    for (const v of this.spawns.values()) n += v;
    return n;
  }

  run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    try {
      return Promise.resolve(this.#run(argv, opts));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #run(argv: readonly string[], opts: RunOptions): RunResult {
    this.#before?.();
    const full = opts.netns ? ["nsenter", `--net=${netnsPath(opts.netns)}`, "--", ...argv] : [
      ...argv,
    ];
    const prog = argv[0].slice(argv[0].lastIndexOf("/") + 1);
    this.spawns.set(prog, (this.spawns.get(prog) ?? 0) + 1);
    if (this.#keep) {
      this.log.push({
        argv: [...argv],
        ...(opts.netns ? { netns: opts.netns } : {}),
        ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}),
      });
    }
    const key = this.#nsKey(opts.netns);
    if (!this.kernel.namespaces.has(key)) {
      throw new ExecError(
        full,
        1,
        `nsenter: cannot open ${netnsPath(opts.netns!)}: No such file or directory\n`,
      );
    }
    const ns = this.kernel.namespaces.get(key)!;
    switch (prog) {
      case "ip":
        return this.#ip(full, argv, key, opts.stdin ?? "");
      case "sysctl":
        for (const kv of argv.slice(1).filter((a) => a.includes("="))) {
          const [k, v] = kv.split("=");
          ns.sysctls.set(k.replaceAll(".", "/"), v);
        }
        return { stdout: "", stderr: "" };
      case "iptables-save":
        return { stdout: iptablesSave(ns, argv[argv.indexOf("-t") + 1] ?? "filter"), stderr: "" };
      case "iptables-restore":
        iptablesRestore(full, ns, opts.stdin ?? "");
        return { stdout: "", stderr: "" };
    }
    throw new ExecError(full, 127, `hollow node: "${prog}" is not modelled\n`);
  }

  /** The model's key for a namespace given as a name or path; this process's own is the node. */
  #nsKey(netns: string | undefined): string {
    if (!netns) return NODE_NS;
    const path = netnsPath(netns);
    if (path === `/proc/${Deno.pid}/ns/net` || path === "/proc/self/ns/net") return NODE_NS;
    return path;
  }

  #ip(full: string[], argv: readonly string[], key: string, stdin: string): RunResult {
    const batch = argv.includes("-batch");
    const lines = batch
      ? stdin.split("\n").filter((l) => l.trim() !== "")
      : [argv.slice(argv.findIndex((a, i) => i > 0 && !a.startsWith("-"))).join(" ")];
    const out: string[] = [];
    for (let i = 0; i < lines.length; i++) {
      const ws = words(lines[i]);
      const verb = `${ws[0]} ${ws[1] ?? ""}`.trim();
      this.ipLines.set(verb, (this.ipLines.get(verb) ?? 0) + 1);
      try {
        const o = this.kernel.line(key, this.#withNsPaths(lines[i]));
        if (o !== undefined) out.push(o);
      } catch (err) {
        if (!(err instanceof IpLineError)) throw err;
        const where = batch ? `\nCommand failed -:${i + 1}\n` : "\n";
        throw new ExecError(full, 1, `${err.message}${where}`);
      }
    }
    return { stdout: out.length ? out.join("\n") + "\n" : "", stderr: "" };
  }

  /** `netns <name|path>` in a line becomes the model's key (a path; this process's → the node). */
  #withNsPaths(line: string): string {
    return line.replace(/ netns (\S+)/, (_, ref: string) => {
      const k = this.#nsKey(ref);
      return ` netns ${k === NODE_NS ? '""' : k}`;
    });
  }
}

const BUILTIN: Record<string, string[]> = {
  raw: ["PREROUTING", "OUTPUT"],
  mangle: ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
  nat: ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
  filter: ["INPUT", "FORWARD", "OUTPUT"],
};

function table(ns: ModelNs, name: string): Map<string, string[]> {
  let t = ns.iptables.get(name);
  if (!t) {
    t = new Map((BUILTIN[name] ?? []).map((c) => [c, []]));
    ns.iptables.set(name, t);
  }
  return t;
}

/** `iptables-save -t <table>` as iptables prints it. */
export function iptablesSave(ns: ModelNs, name: string): string {
  const t = table(ns, name);
  const lines = [`*${name}`];
  for (const c of t.keys()) {
    lines.push(`:${c} ${(BUILTIN[name] ?? []).includes(c) ? "ACCEPT" : "-"} [0:0]`);
  }
  for (const [c, rules] of t) for (const r of rules) lines.push(`-A ${c} ${r}`);
  lines.push("COMMIT");
  return lines.join("\n") + "\n";
}

/** `iptables-restore --noflush`: one transaction per table, applied at COMMIT or not at all. */
function iptablesRestore(full: string[], ns: ModelNs, input: string): void {
  let name = "";
  let work: Map<string, string[]> | undefined;
  const fail = (n: number, why: string) => {
    throw new ExecError(full, 1, `iptables-restore: line ${n} failed: ${why}\n`);
  };
  input.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    const n = i + 1;
    if (line === "" || line.startsWith("#")) return;
    if (line.startsWith("*")) {
      name = line.slice(1);
      work = new Map([...table(ns, name)].map(([c, r]) => [c, [...r]]));
      return;
    }
    if (!work) return fail(n, "no table");
    if (line === "COMMIT") {
      ns.iptables.set(name, work);
      work = undefined;
      return;
    }
    // Rules stay as written (quotes included): iptables-save prints them back the same way.
    const m = /^(\S+)\s*(\S*)\s*(.*)$/.exec(line)!;
    const [op, chain, rule] = [m[1], m[2], m[3]];
    if (op.startsWith(":")) work.set(op.slice(1), []);
    else if (op === "-A") {
      if (!work.has(chain)) return fail(n, "No chain/target/match by that name");
      work.get(chain)!.push(rule);
    } else if (op === "-D") {
      const rules = work.get(chain);
      const at = rules?.indexOf(rule) ?? -1;
      if (at < 0) return fail(n, "Bad rule (does a matching rule exist in that chain?)");
      rules!.splice(at, 1);
    } else if (op === "-F") work.set(chain, []);
    else if (op === "-X") work.delete(chain);
    else fail(n, `hollow node: "${op}" is not modelled`);
  });
}
