/** The CNI plugin path must not load the Kubernetes layer (it costs hundreds of ms per exec). */
import assert from "node:assert/strict";

async function moduleGraph(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL(entry, import.meta.url).pathname],
    env: { RUST_BACKTRACE: "0", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  return info.modules.map((m: { specifier: string }) => m.specifier);
}

Deno.test("cmd/cni.ts loads nothing under lib/k8s", async () => {
  const specifiers = await moduleGraph("../../cmd/cni.ts");
  assert.ok(specifiers.length > 3);
  assert.deepEqual(specifiers.filter((s) => s.includes("/lib/k8s/")), []);
});

Deno.test("lib/k8s/annotations.ts is pure (no npm package)", async () => {
  const specifiers = await moduleGraph("../../lib/k8s/annotations.ts");
  assert.deepEqual(specifiers.filter((s) => !s.startsWith("file://")), []);
});
