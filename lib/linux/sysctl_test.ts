import assert from "node:assert/strict";
import { FakeRunner } from "./fake_runner.ts";
import { RealProcSys, writeSysctls } from "./sysctl.ts";

/** A stand-in /proc/sys with the given keys (each file holds "0"). */
async function procSysRoot(keys: string[]): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "hostnic-procsys-" });
  for (const k of keys) {
    await Deno.mkdir(`${root}/${k.slice(0, k.lastIndexOf("/"))}`, { recursive: true });
    await Deno.writeTextFile(`${root}/${k}`, "0");
  }
  return root;
}

Deno.test("writeSysctls: own namespace with a ProcSys writes the files, no spawn", async () => {
  const keys = ["net/ipv4/ip_forward", "net/ipv4/conf/vnic.1/forwarding"];
  const root = await procSysRoot(keys);
  try {
    const runner = new FakeRunner();
    await writeSysctls({ runner, procSys: new RealProcSys(root) }, {
      [keys[0]]: "1",
      [keys[1]]: "1",
    }, { netns: undefined });
    assert.equal(runner.calls.length, 0);
    for (const k of keys) assert.equal(await Deno.readTextFile(`${root}/${k}`), "1");
    // A key that does not exist (the device is gone) fails, as `sysctl -w` did.
    await assert.rejects(() =>
      writeSysctls({ runner, procSys: new RealProcSys(root) }, {
        "net/ipv4/conf/gone/forwarding": "1",
      }, { netns: undefined })
    );
    await assert.rejects(() => new RealProcSys(root).write("net/../../etc/x", "1"), /Invalid/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("writeSysctls: another namespace, or no ProcSys, is one sysctl spawn", async () => {
  const runner = new FakeRunner();
  const procSys = new RealProcSys("/nonexistent");
  await writeSysctls({ runner, procSys }, { "net/ipv4/ip_forward": "1" }, { netns: "node1" });
  await writeSysctls({ runner }, { "net/ipv4/ip_forward": "1" }, { netns: undefined });
  assert.deepEqual(runner.calls.map((c) => [c.argv.join(" "), c.netns]), [
    ["sysctl -q -w net/ipv4/ip_forward=1", "node1"],
    ["sysctl -q -w net/ipv4/ip_forward=1", undefined],
  ]);
});
