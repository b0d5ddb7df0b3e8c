/**
 * The import graph of hostnic's sources and the rules of tests/arch/layers.ts applied to it.
 * Pure: `parseImports` reads one source text, `checkGraph` judges a set of files; `loadSources`
 * is the only part that reads the disk. Used by tests/arch/imports_test.ts and `deno task arch`.
 */
import {
  DAEMON_BACKENDS,
  DAEMON_CORE,
  IAAS_CLIENT,
  LAYERS,
  MAX_LINES,
  PENDING,
  type Pending,
  SIM_MAY_IMPORT,
  SIM_UNITS,
} from "./layers.ts";

export interface Source {
  /** Repository-relative path with "/" separators. */
  path: string;
  text: string;
}

export type ViolationKind = "cycle" | "upward" | "sideways" | "backend" | "sim" | "size" | "layer";

export interface Violation {
  kind: ViolationKind;
  /** The file the violation is about (the importer, the long file, the cycle's first file). */
  path: string;
  /** One line for people: `a.ts → b.ts: layer X may not import layer Y`. */
  message: string;
}

export interface Report {
  files: number;
  edges: number;
  violations: Violation[];
  /** Violations matched by a PENDING entry, with its owner. */
  pending: (Violation & { owner: string; why: string })[];
  /** PENDING entries that match nothing any more (their fix landed: delete them). */
  stale: Pending[];
}

/**
 * Relative module specifiers of static `import`/`export … from` and literal `import("…")`, in
 * source order. Comments, strings and templates are skipped, so an `import(` inside a comment or
 * a string does not count. Bare and `npm:`/`node:` specifiers are left out.
 */
export function parseImports(text: string): string[] {
  const code = blankCommentsAndStrings(text);
  const out: string[] = [];
  const re =
    /(?:^|[^\w$.])(?:import|export)(?:\s+type)?\s*(?:[\w$*{][^;]*?\bfrom\s*)?(["'])(@@\d+@@)\1|(?:^|[^\w$.])import\s*\(\s*(["'])(@@\d+@@)\3\s*\)/g;
  for (const m of code.code.matchAll(re)) {
    const token = m[2] ?? m[4];
    const spec = code.strings[Number(token.slice(2, -2))];
    if (spec.startsWith("./") || spec.startsWith("../")) out.push(spec);
  }
  return out;
}

/**
 * The text with comments removed and every quoted string replaced by `@@n@@` (its content kept
 * in `strings[n]`); template literals become empty. Enough JavaScript lexing for import lines:
 * a regex literal containing a quote could confuse it, which `checkGraph`'s tests would show.
 */
function blankCommentsAndStrings(text: string): { code: string; strings: string[] } {
  const strings: string[] = [];
  let code = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const next = text[i + 1];
    if (c === "/" && next === "/") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (c === "/" && next === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 2;
      code += " ";
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      let s = "";
      while (j < text.length && text[j] !== c && text[j] !== "\n") {
        if (text[j] === "\\") j++;
        s += text[j] ?? "";
        j++;
      }
      code += `${c}@@${strings.length}@@${c}`;
      strings.push(s);
      i = j + 1;
    } else if (c === "`") {
      let j = i + 1;
      let depth = 0;
      while (j < text.length && !(text[j] === "`" && depth === 0)) {
        if (text[j] === "\\") j++;
        else if (text[j] === "$" && text[j + 1] === "{") depth++;
        else if (text[j] === "}" && depth > 0) depth--;
        j++;
      }
      code += "``";
      i = j + 1;
    } else {
      code += c;
      i++;
    }
  }
  return { code, strings };
}

/** Resolves `spec` imported by `from` to a repository-relative path. */
export function resolve(from: string, spec: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const p of spec.split("/")) {
    if (p === "..") parts.pop();
    else if (p !== ".") parts.push(p);
  }
  return parts.join("/");
}

interface Placed {
  layer: number;
  unit: string;
}

function place(path: string): Placed | undefined {
  let best: Placed | undefined;
  LAYERS.forEach((l, layer) => {
    for (const unit of l.units) {
      const hit = unit.endsWith("/") ? path.startsWith(unit) : path === unit;
      if (hit && (!best || unit.length > best.unit.length)) best = { layer, unit };
    }
  });
  return best;
}

const under = (path: string, dirs: readonly string[]) => dirs.find((d) => path.startsWith(d));

/** Every rule of layers.ts over `sources` (test files are the caller's to leave out). */
export function checkGraph(sources: readonly Source[]): Report {
  const known = new Set(sources.map((s) => s.path));
  const graph = new Map<string, string[]>();
  const violations: Violation[] = [];
  let edges = 0;
  for (const s of sources) {
    const targets = [...new Set(parseImports(s.text).map((spec) => resolve(s.path, spec)))]
      .filter((t) => known.has(t));
    graph.set(s.path, targets);
    edges += targets.length;
    const lines = s.text.split("\n").length - (s.text.endsWith("\n") ? 1 : 0);
    if (s.path.startsWith("lib/") && lines > MAX_LINES) {
      violations.push({
        kind: "size",
        path: s.path,
        message: `${s.path}: ${lines} lines, over the limit of ${MAX_LINES} (split it by job)`,
      });
    }
    const from = place(s.path);
    if (!from) {
      violations.push({
        kind: "layer",
        path: s.path,
        message: `${s.path}: in no layer of tests/arch/layers.ts (add its folder to one)`,
      });
      continue;
    }
    for (const t of targets) {
      const v = judgeEdge(s.path, from, t);
      if (v) violations.push(v);
    }
  }
  for (const cycle of cycles(graph)) {
    violations.push({
      kind: "cycle",
      path: cycle[0],
      message: `import cycle: ${[...cycle, cycle[0]].join(" → ")}`,
    });
  }
  return sortOut(sources.length, edges, violations);
}

function judgeEdge(path: string, from: Placed, target: string): Violation | undefined {
  const to = place(target);
  const arrow = `${path} → ${target}`;
  if (!to) return undefined; // reported once, for the target itself
  const fromName = LAYERS[from.layer].name;
  const toName = LAYERS[to.layer].name;
  if (to.layer > from.layer) {
    return {
      kind: "upward",
      path,
      message: `${arrow}: layer "${fromName}" may not import layer "${toName}" (above it)`,
    };
  }
  if (to.layer === from.layer && to.unit !== from.unit && !LAYERS[from.layer].sideways) {
    return {
      kind: "sideways",
      path,
      message: `${arrow}: ${from.unit} and ${to.unit} are both in layer "${fromName}" ` +
        `and may not import each other`,
    };
  }
  const fromBackend = under(path, DAEMON_BACKENDS);
  const toBackend = under(target, DAEMON_BACKENDS);
  if (toBackend && fromBackend !== toBackend) {
    if (fromBackend) {
      return {
        kind: "backend",
        path,
        message: `${arrow}: backend ${fromBackend} may not import backend ${toBackend} ` +
          `(share through the daemon core's interface)`,
      };
    }
    if (path.startsWith(DAEMON_CORE) && target !== `${toBackend}mod.ts`) {
      return {
        kind: "backend",
        path,
        message: `${arrow}: the daemon core may import backend ${toBackend} only through ` +
          `${toBackend}mod.ts`,
      };
    }
  }
  const fromSim = under(path, SIM_UNITS);
  const toSim = under(target, SIM_UNITS);
  if (fromSim && !toSim && target.startsWith(IAAS_CLIENT) && !SIM_MAY_IMPORT.includes(target)) {
    return {
      kind: "sim",
      path,
      message: SIM_MAY_IMPORT.length
        ? `${arrow}: the simulator may take from ${IAAS_CLIENT} only ${SIM_MAY_IMPORT.join(", ")}`
        : `${arrow}: the simulator may not import the IaaS client it checks`,
    };
  }
  if (toSim && !fromSim && path.startsWith(IAAS_CLIENT)) {
    return {
      kind: "sim",
      path,
      message: `${arrow}: the IaaS client may not import the simulator it is checked against`,
    };
  }
  return undefined;
}

/** One cycle per strongly connected component (Tarjan), as a file path starting at its least file. */
export function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) !== idx.get(v)) return;
    const scc = new Set<string>();
    for (;;) {
      const w = stack.pop()!;
      onStack.delete(w);
      scc.add(w);
      if (w === v) break;
    }
    const selfLoop = (graph.get(v) ?? []).includes(v);
    if (scc.size > 1 || selfLoop) out.push(cycleIn(graph, scc));
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) visit(v);
  return out.sort((a, b) => a[0].localeCompare(b[0]));
}

/** A shortest cycle through the least file of `scc` (breadth-first inside the component). */
function cycleIn(graph: ReadonlyMap<string, readonly string[]>, scc: Set<string>): string[] {
  const start = [...scc].sort()[0];
  const prev = new Map<string, string>();
  const queue = [start];
  while (queue.length) {
    const v = queue.shift()!;
    for (const w of [...(graph.get(v) ?? [])].sort()) {
      if (!scc.has(w)) continue;
      if (w === start) {
        const path = [v];
        while (path[0] !== start) path.unshift(prev.get(path[0])!);
        return path;
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start];
}

function matches(p: Pending, v: Violation): boolean {
  if (p.kind !== v.kind) return false;
  if (p.kind === "cycle") {
    const files = v.message.replace(/^import cycle: /, "").split(" → ");
    return files.every((f) => f.startsWith(p.path));
  }
  return v.path === p.path;
}

function sortOut(files: number, edges: number, all: Violation[]): Report {
  const violations: Violation[] = [];
  const pending: Report["pending"] = [];
  const used = new Set<Pending>();
  for (const v of all) {
    const p = PENDING.find((p) => matches(p, v));
    if (p) {
      used.add(p);
      pending.push({ ...v, owner: p.owner, why: p.why });
    } else violations.push(v);
  }
  const stale = PENDING.filter((p) => !used.has(p));
  return { files, edges, violations, pending, stale };
}

/** Every non-test .ts under lib/ and cmd/, and main.ts, read from `root`. */
export async function loadSources(root: string): Promise<Source[]> {
  const out: Source[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(`${root}/${dir}`)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (e.isFile && path.endsWith(".ts") && !path.endsWith("_test.ts")) {
        out.push({ path, text: await Deno.readTextFile(`${root}/${path}`) });
      }
    }
  };
  await walk("lib");
  await walk("cmd");
  out.push({ path: "main.ts", text: await Deno.readTextFile(`${root}/main.ts`) });
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/** The report as lines for people: failures first, then what other branches still owe. */
export function formatReport(r: Report): string {
  const lines = [`import graph: ${r.files} files, ${r.edges} imports`];
  for (const v of r.violations) lines.push(`FAIL ${v.kind}: ${v.message}`);
  for (const p of r.stale) {
    lines.push(
      `FAIL stale: PENDING entry ${p.kind} ${p.path} (${p.owner}) matches nothing any more; ` +
        `delete it from tests/arch/layers.ts`,
    );
  }
  for (const p of r.pending) {
    lines.push(`pending (${p.owner}: ${p.why}) ${p.kind}: ${p.message}`);
  }
  const ok = r.violations.length === 0 && r.stale.length === 0;
  lines.push(
    ok
      ? `ok: no cycle, no upward arrow${r.pending.length ? `, ${r.pending.length} pending` : ""}`
      : `${r.violations.length + r.stale.length} problem(s)`,
  );
  return lines.join("\n");
}
