/**
 * iptables as data. A `TableSpec` lists hostnic's own chains with their complete rule lists and
 * the jumps into them from built-in chains. Ensuring it costs one `iptables-save -t <table>` and,
 * only when something differs, one `iptables-restore --noflush` transaction that redeclares our
 * chains (which flushes and refills them atomically) and adds missing jumps / drops duplicates.
 * Deleting reads the same way and removes jumps, then flushes and deletes the chains.
 *
 * Invariant: only chains named in the spec are ever flushed; built-in chains are only touched by
 * exact `-A/-D <builtin> -j <our chain>` lines. Rules are written in the canonical form that
 * iptables-save prints, so reading back compares by string.
 */
import type { Runner } from "./exec.ts";
import { classifyError } from "./errors.ts";

export type IptablesTable = "raw" | "mangle" | "nat" | "filter";

/** One hostnic chain and its complete rule list (each rule = the args after `-A <chain> `). */
export interface ChainSpec {
  chain: string;
  rules: string[];
}

/** `-A <from> -j <to>`: a jump from a built-in chain into one of ours. */
export interface JumpSpec {
  from: string;
  to: string;
}

export interface TableSpec {
  table: IptablesTable;
  chains: ChainSpec[];
  jumps: JumpSpec[];
}

/** Parsed `iptables-save` output for one table: declared chains and their rules in order. */
export interface SavedTable {
  chains: Set<string>;
  rules: Map<string, string[]>;
}

/** Parses `iptables-save` output; tables absent from it are absent from the map. */
export function parseIptablesSave(text: string): Map<string, SavedTable> {
  const tables = new Map<string, SavedTable>();
  let cur: SavedTable | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("*")) {
      cur = { chains: new Set(), rules: new Map() };
      tables.set(line.slice(1), cur);
    } else if (line === "COMMIT") {
      cur = undefined;
    } else if (cur && line.startsWith(":")) {
      cur.chains.add(line.slice(1).split(" ")[0]);
    } else if (cur && line.startsWith("-A ")) {
      const rest = line.slice(3);
      const sp = rest.indexOf(" ");
      const chain = sp < 0 ? rest : rest.slice(0, sp);
      const rule = sp < 0 ? "" : rest.slice(sp + 1);
      cur.rules.set(chain, [...(cur.rules.get(chain) ?? []), rule]);
    }
  }
  return tables;
}

function jumpRule(j: JumpSpec): string {
  return `-j ${j.to}`;
}

function countJumps(t: SavedTable | undefined, j: JumpSpec): number {
  return (t?.rules.get(j.from) ?? []).filter((r) => r === jumpRule(j)).length;
}

/** Differences between the spec and saved state, one sentence each (empty = up to date). */
export function diffIptables(spec: TableSpec, saved: string): string[] {
  const t = parseIptablesSave(saved).get(spec.table);
  const out: string[] = [];
  for (const c of spec.chains) {
    if (!t?.chains.has(c.chain)) {
      out.push(`iptables chain ${spec.table}/${c.chain} is missing`);
      continue;
    }
    const have = t.rules.get(c.chain) ?? [];
    for (const r of c.rules) {
      if (!have.includes(r)) out.push(`iptables rule "-A ${c.chain} ${r}" is missing`);
    }
    for (const r of have) {
      if (!c.rules.includes(r)) out.push(`iptables rule "-A ${c.chain} ${r}" is unexpected`);
    }
    const sameSet = have.length === c.rules.length && have.every((r) => c.rules.includes(r));
    if (sameSet && have.some((r, i) => r !== c.rules[i])) {
      out.push(`iptables chain ${spec.table}/${c.chain} has its rules out of order`);
    }
  }
  for (const j of spec.jumps) {
    const n = countJumps(t, j);
    if (n === 0) out.push(`iptables jump "-A ${j.from} -j ${j.to}" is missing`);
    if (n > 1) out.push(`iptables jump "-A ${j.from} -j ${j.to}" appears ${n} times`);
  }
  return out;
}

/** `iptables-restore --noflush` input that makes the table match `spec`, or null if it does. */
export function planIptablesEnsure(spec: TableSpec, saved: string): string | null {
  if (diffIptables(spec, saved).length === 0) return null;
  const t = parseIptablesSave(saved).get(spec.table);
  const lines = [`*${spec.table}`];
  // With --noflush, declaring an existing user chain flushes it: our chains are rewritten whole.
  for (const c of spec.chains) lines.push(`:${c.chain} - [0:0]`);
  for (const c of spec.chains) for (const r of c.rules) lines.push(`-A ${c.chain} ${r}`);
  for (const j of spec.jumps) {
    const n = countJumps(t, j);
    if (n === 0) lines.push(`-A ${j.from} ${jumpRule(j)}`);
    for (let i = 1; i < n; i++) lines.push(`-D ${j.from} ${jumpRule(j)}`);
  }
  lines.push("COMMIT");
  return lines.join("\n") + "\n";
}

/** `iptables-restore --noflush` input that removes the spec's jumps and chains, or null. */
export function planIptablesDelete(spec: TableSpec, saved: string): string | null {
  const t = parseIptablesSave(saved).get(spec.table);
  if (!t) return null;
  const lines = [`*${spec.table}`];
  for (const j of spec.jumps) {
    for (let i = 0; i < countJumps(t, j); i++) lines.push(`-D ${j.from} ${jumpRule(j)}`);
  }
  for (const c of spec.chains) {
    if (t.chains.has(c.chain)) lines.push(`-F ${c.chain}`, `-X ${c.chain}`);
  }
  if (lines.length === 1) return null;
  lines.push("COMMIT");
  return lines.join("\n") + "\n";
}

export interface IptablesDeps {
  runner: Runner;
}

/** `iptables-save -t <table>` inside `netns`. */
export async function saveIptables(
  deps: IptablesDeps,
  table: IptablesTable,
  opts: { netns: string | undefined },
): Promise<string> {
  return (await deps.runner.run(["iptables-save", "-t", table], { netns: opts.netns })).stdout;
}

async function restore(deps: IptablesDeps, input: string, netns: string | undefined) {
  await deps.runner.run(["iptables-restore", "-w", "--noflush"], { netns, stdin: input });
}

// Another writer (a concurrent plugin call) may change the table between our read and write; the
// restore then fails on a vanished/duplicate object and we read and plan again.
const ATTEMPTS = 3;

async function readPlanWrite(
  deps: IptablesDeps,
  spec: TableSpec,
  netns: string | undefined,
  plan: (spec: TableSpec, saved: string) => string | null,
): Promise<boolean> {
  for (let attempt = 1;; attempt++) {
    const input = plan(spec, await saveIptables(deps, spec.table, { netns }));
    if (input === null) return false;
    try {
      await restore(deps, input, netns);
      return true;
    } catch (err) {
      const kind = classifyError(err);
      if (attempt >= ATTEMPTS || (kind !== "not-found" && kind !== "exists")) throw err;
    }
  }
}

/** Ensures `spec`; returns whether anything was written. 1 spawn when up to date, else 2. */
export function ensureIptables(
  deps: IptablesDeps,
  spec: TableSpec,
  opts: { netns: string | undefined },
): Promise<boolean> {
  return readPlanWrite(deps, spec, opts.netns, planIptablesEnsure);
}

/** Removes `spec`'s jumps and chains; absent ones are fine. Returns whether anything was written. */
export function deleteIptables(
  deps: IptablesDeps,
  spec: TableSpec,
  opts: { netns: string | undefined },
): Promise<boolean> {
  return readPlanWrite(deps, spec, opts.netns, planIptablesDelete);
}
