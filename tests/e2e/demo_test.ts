/**
 * `deno task demo` is what a newcomer runs first: it must pass on a clean machine and leave
 * nothing behind.
 */
import assert from "node:assert/strict";

Deno.test("the demo passes every check and leaves no namespace behind", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "demo"],
    cwd: new URL("../..", import.meta.url).pathname,
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, text + new TextDecoder().decode(out.stderr));
  assert.match(text, /PASS {2}web-1 → web-2 across nodes/);
  assert.match(text, /INSTANCE +VXNET +FREE/);
  assert.match(text, /\d+ checks passed, 0 failed/);
  const prefix = /namespaces (\w+)-\*/.exec(text)?.[1];
  assert.ok(prefix, "the demo names its namespace prefix");
  assert.deepEqual((await netnsList()).filter((n) => n.startsWith(prefix)), []);
});

async function netnsList(): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.split(" ")[0]).filter(
    Boolean,
  ).sort();
}
