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

Deno.test("CommandRunner: input files of processes that are gone are swept by the next one", async () => {
  const dir = Deno.env.get("TMPDIR") || "/tmp";
  let dead = 3_999_999;
  while (await Deno.stat(`/proc/${dead}`).then(() => true, () => false)) dead--;
  const stale = `${dir}/hostnic-input-${dead}-stale`;
  const live = `${dir}/hostnic-input-1-live`; // pid 1 is always there
  await Deno.writeTextFile(stale, "link show\n");
  await Deno.writeTextFile(live, "link show\n");
  try {
    const exec = new URL("./exec.ts", import.meta.url).href;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { CommandRunner } from "${exec}";` +
        `await new CommandRunner().run(["cat", "-"], { stdin: "x" });`,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(await Deno.stat(stale).then(() => true, () => false), false, "stale file swept");
    assert.equal(await Deno.stat(live).then(() => true, () => false), true, "live one kept");
  } finally {
    await Deno.remove(stale).catch(() => {});
    await Deno.remove(live).catch(() => {});
  }
});
