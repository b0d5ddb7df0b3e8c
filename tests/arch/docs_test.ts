/**
 * docs/architecture.md stays true: every file or folder it names in backticks exists, and its
 * layer table names every unit of tests/arch/layers.ts that exists in the repository.
 */
import assert from "node:assert/strict";
import { LAYERS } from "./layers.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const DOC = "docs/architecture.md";

/** Backticked tokens that name a repository path (placeholders like `<mode>` and globs skipped). */
export function namedPaths(markdown: string): string[] {
  const out = new Set<string>();
  for (const m of markdown.matchAll(/`([^`\s]+)`/g)) {
    const t = m[1];
    if (/[<>*]/.test(t)) continue;
    if (!/^[\w.\/-]+$/.test(t)) continue;
    if (!(t.includes("/") || /\.(ts|md|json|yaml|sh)$/.test(t))) continue;
    out.add(t);
  }
  return [...out];
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(`${root}/${path}`);
    return true;
  } catch {
    return false;
  }
}

Deno.test("docs: the paths a token names are found, placeholders and commands are not", () => {
  const md = "see `lib/daemon/mode.ts`, `main.ts`, `docs/<mode>-mode.md`, `lib/daemon/*.ts`, " +
    "`deno task arch`, `v-pool`, `cmd/`";
  assert.deepEqual(namedPaths(md), ["lib/daemon/mode.ts", "main.ts", "cmd/"]);
});

Deno.test("docs: every path docs/architecture.md names resolves in the repository", async () => {
  const text = await Deno.readTextFile(`${root}/${DOC}`);
  const paths = namedPaths(text);
  assert.ok(paths.length > 40, `only ${paths.length} paths found in ${DOC}`);
  const missing: string[] = [];
  for (const p of paths) if (!(await exists(p))) missing.push(p);
  assert.deepEqual(missing, [], `${DOC} names paths that do not exist: ${missing.join(", ")}`);
});

Deno.test("docs: the layer table of docs/architecture.md lists every unit of layers.ts", async () => {
  const text = await Deno.readTextFile(`${root}/${DOC}`);
  const missing: string[] = [];
  for (const layer of LAYERS) {
    const row = text.split("\n").find((l) => l.startsWith(`| ${layer.name} `));
    if (!row) {
      missing.push(`layer "${layer.name}"`);
      continue;
    }
    for (const unit of layer.units) {
      if ((await exists(unit)) && !row.includes(`\`${unit}\``)) {
        missing.push(`${unit} (layer "${layer.name}")`);
      }
    }
  }
  assert.deepEqual(missing, [], `${DOC}'s layer table misses: ${missing.join(", ")}`);
});
