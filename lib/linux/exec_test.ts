import assert from "node:assert/strict";
import { parseBatchFailure } from "./errors.ts";
import { CommandRunner, ExecError } from "./exec.ts";

async function inputFiles(): Promise<string[]> {
  const dir = Deno.env.get("TMPDIR") || "/tmp";
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith("hostnic-input-")) out.push(e.name);
  }
  return out.sort();
}

Deno.test("CommandRunner: stdin named '-' comes as a file, removed after the run", async () => {
  const spawned: string[] = [];
  const runner = new CommandRunner({ onSpawn: (argv) => spawned.push(argv.join(" ")) });
  const before = await inputFiles();
  const text = "line one\nline two\n";
  assert.equal((await runner.run(["cat", "-"], { stdin: text })).stdout, text);
  // No "-" in argv: the text arrives on a piped stdin.
  assert.equal((await runner.run(["cat"], { stdin: text })).stdout, text);
  assert.deepEqual(spawned, ["cat -", "cat"]);
  assert.deepEqual(await inputFiles(), before);
});

Deno.test("CommandRunner: ip -batch from a file still says which line failed", async () => {
  const runner = new CommandRunner();
  const before = await inputFiles();
  const err = await runner.run(["ip", "-batch", "-"], {
    stdin: "link show dev lo\nlink show dev hostnic-no-such0\n",
  }).catch((e) => e);
  assert.ok(err instanceof ExecError);
  assert.deepEqual(err.argv, ["ip", "-batch", "-"]);
  assert.equal(parseBatchFailure(err.stderr)?.line, 2);
  assert.deepEqual(await inputFiles(), before);
});
