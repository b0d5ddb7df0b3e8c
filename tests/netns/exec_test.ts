/**
 * The command runner as the CNI plugin uses it: started by a runtime with an empty environment
 * (no PATH), it must still run `ip` inside a namespace, where nsenter is the one starting it.
 */
import assert from "node:assert/strict";
import { NetnsLab } from "../helpers/netns.ts";

const EXEC = new URL("../../lib/linux/exec.ts", import.meta.url).href;

Deno.test("CommandRunner runs ip inside a namespace without a PATH", async () => {
  await using lab = new NetnsLab();
  const [ns] = await lab.addNetns("pod");
  const dir = await Deno.makeTempDir({ prefix: "hostnic-exec" });
  try {
    const script = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      script,
      `import { CommandRunner } from "${EXEC}";\n` +
        `const r = await new CommandRunner().run(["ip", "-j", "link", "show"], { netns: Deno.args[0] });\n` +
        `console.log(JSON.parse(r.stdout).map((l: { ifname: string }) => l.ifname).join(","));\n`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", script, ns],
      clearEnv: true,
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    assert.equal(out.code, 0, dec.decode(out.stderr));
    assert.equal(dec.decode(out.stdout).trim(), "lo");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
