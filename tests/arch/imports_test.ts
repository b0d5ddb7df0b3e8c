/**
 * The import graph of lib/, cmd/ and main.ts keeps the layer table of tests/arch/layers.ts:
 * no cycle, no upward or sideways arrow, the daemon core sees a backend only through its mod.ts,
 * the simulator and the IaaS client stay apart, no lib/ file over 600 lines. The synthetic cases
 * first show that each rule can fail, then the repository is judged.
 */
import assert from "node:assert/strict";
import { checkGraph, cycles, formatReport, loadSources, parseImports } from "./graph.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

Deno.test("arch: imports are read from code, not from comments or strings", () => {
  const src = [
    `import { a } from "./a.ts";`,
    `import type {`,
    `  B,`,
    `} from "../b/b.ts";`,
    `export { c } from './c.ts';`,
    `export * from "./d.ts";`,
    `import "./side.ts";`,
    `import { z } from "zod";`,
    `// import { x } from "./comment.ts";`,
    `/* await import("./block.ts") */`,
    `const s = 'import("./string.ts")';`,
    'const t = `import("./template.ts")`;',
    `const m = await import("./dynamic.ts");`,
    `const n = await import(name);`,
    `const arr = Array.from("./not-an-import.ts");`,
  ].join("\n");
  assert.deepEqual(parseImports(src), [
    "./a.ts",
    "../b/b.ts",
    "./c.ts",
    "./d.ts",
    "./side.ts",
    "./dynamic.ts",
  ]);
});

Deno.test("arch: a cycle is reported with its path", () => {
  const g = new Map([
    ["a.ts", ["b.ts"]],
    ["b.ts", ["c.ts"]],
    ["c.ts", ["a.ts", "d.ts"]],
    ["d.ts", []],
    ["e.ts", ["e.ts"]],
  ]);
  assert.deepEqual(cycles(g), [["a.ts", "b.ts", "c.ts"], ["e.ts"]]);
});

Deno.test("arch: each rule fails with a readable line", async (t) => {
  const cases: { name: string; files: Record<string, string>; want: RegExp }[] = [
    {
      name: "upward",
      files: {
        "lib/linux/exec.ts": `import { x } from "../daemon/daemon.ts";`,
        "lib/daemon/daemon.ts": "",
      },
      want:
        /FAIL upward: lib\/linux\/exec\.ts → lib\/daemon\/daemon\.ts: layer "platform" may not import layer "modes"/,
    },
    {
      name: "sideways",
      files: {
        "lib/controller/vpool.ts": `import { x } from "../daemon/daemon.ts";`,
        "lib/daemon/daemon.ts": "",
      },
      want: /FAIL sideways: lib\/controller\/vpool\.ts → lib\/daemon\/daemon\.ts/,
    },
    {
      name: "cycle",
      files: {
        "lib/ipam/a.ts": `import "./b.ts";`,
        "lib/ipam/b.ts": `export * from "./a.ts";`,
      },
      want: /FAIL cycle: import cycle: lib\/ipam\/a\.ts → lib\/ipam\/b\.ts → lib\/ipam\/a\.ts/,
    },
    {
      name: "core into a backend's internals",
      files: {
        "lib/daemon/daemon.ts": `import { x } from "./nic/service.ts";`,
        "lib/daemon/nic/service.ts": "",
      },
      want: /FAIL backend: .* only through lib\/daemon\/nic\/mod\.ts/,
    },
    {
      name: "backend into another backend",
      files: {
        "lib/daemon/shared/mod.ts": `import { x } from "../nic/mod.ts";`,
        "lib/daemon/nic/mod.ts": "",
      },
      want:
        /FAIL backend: .*backend lib\/daemon\/shared\/ may not import backend lib\/daemon\/nic\//,
    },
    {
      name: "simulator into the client",
      files: {
        "lib/sim/world.ts": `import { x } from "../iaas/client.ts";`,
        "lib/iaas/client.ts": "",
      },
      want: /FAIL sim: lib\/sim\/world\.ts → lib\/iaas\/client\.ts/,
    },
    {
      name: "client into the simulator",
      files: {
        "lib/iaas/client.ts": `import { x } from "../sim/world.ts";`,
        "lib/sim/world.ts": "",
      },
      want: /FAIL (sim|upward): lib\/iaas\/client\.ts → lib\/sim\/world\.ts/,
    },
    {
      name: "a long file",
      files: { "lib/ipam/long.ts": "x;\n".repeat(601) },
      want: /FAIL size: lib\/ipam\/long\.ts: 601 lines/,
    },
    {
      name: "a file in no layer",
      files: { "lib/newthing/x.ts": "" },
      want: /FAIL layer: lib\/newthing\/x\.ts: in no layer/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const r = checkGraph(Object.entries(c.files).map(([path, text]) => ({ path, text })));
      assert.match(formatReport(r), c.want);
      assert.ok(r.violations.length > 0);
    });
  }
  await t.step("what the rules allow passes", () => {
    const r = checkGraph([
      { path: "lib/daemon/daemon.ts", text: `import "./nic/mod.ts"; import "../linux/exec.ts";` },
      { path: "lib/daemon/nic/mod.ts", text: `import "../backend.ts"; import "./service.ts";` },
      { path: "lib/daemon/nic/service.ts", text: `import "../../errors.ts";` },
      { path: "lib/daemon/backend.ts", text: `import type { X } from "../rpc/api.ts";` },
      { path: "lib/rpc/api.ts", text: `import type { Y } from "../cni/config.ts";` },
      { path: "lib/cni/config.ts", text: `import "../errors.ts";` },
      { path: "lib/linux/exec.ts", text: `import "../log.ts";` },
      { path: "lib/log.ts", text: `import "./errors.ts";` },
      { path: "lib/errors.ts", text: "" },
      { path: "lib/sim/world.ts", text: `import type { Z } from "./types.ts";` },
      { path: "lib/sim/types.ts", text: "" },
    ]);
    assert.deepEqual(r.violations, []);
  });
});

Deno.test("arch: the repository keeps the layer table", async () => {
  const report = checkGraph(await loadSources(root));
  const text = formatReport(report);
  assert.ok(report.files > 100, text);
  assert.equal(report.violations.length + report.stale.length, 0, `\n${text}`);
});
