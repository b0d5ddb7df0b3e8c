import assert from "node:assert/strict";
import { CommandRunner } from "../linux/exec.ts";
import { leftoverNamespaces } from "../sim/linux.ts";
import { claimPrefix, releasePrefix } from "./owner.ts";

const runner = new CommandRunner();

Deno.test("testbed prefixes: a dead run's namespaces and dir are swept; a live owner is refused", async () => {
  const prefix = `ow${crypto.randomUUID().slice(0, 4)}`;
  const dead = `ow${crypto.randomUUID().slice(0, 4)}`;
  const deadDir = await Deno.makeTempDir({ prefix: "hostnic-tb" });
  try {
    // What a killed run leaves: its namespaces, its dir and its owner file (pid 1 never has
    // this start time).
    await runner.run(["ip", "netns", "add", `${prefix}-p-left`]);
    await runner.run(["ip", "netns", "add", `${dead}-i-left`]);
    await Deno.mkdir("/run/hostnic-testbeds", { recursive: true });
    await Deno.writeTextFile(
      `/run/hostnic-testbeds/${dead}`,
      JSON.stringify({ pid: 1, start: "-1", dir: deadDir }),
    );

    const dir = await Deno.makeTempDir({ prefix: "hostnic-tb" });
    await claimPrefix(runner, prefix, dir);
    assert.deepEqual(await leftoverNamespaces(runner, prefix), [], "this prefix's leftovers");
    assert.deepEqual(await leftoverNamespaces(runner, dead), [], "a dead owner's namespaces");
    await assert.rejects(Deno.stat(deadDir), Deno.errors.NotFound, "the dead run's dir");
    await assert.rejects(Deno.stat(`/run/hostnic-testbeds/${dead}`), Deno.errors.NotFound);

    // A second testbed with the same prefix while this one lives is refused, and sweeps nothing.
    await runner.run(["ip", "netns", "add", `${prefix}-p-mine`]);
    await assert.rejects(claimPrefix(runner, prefix, dir), /in use by process \d+/);
    assert.deepEqual(await leftoverNamespaces(runner, prefix), [`${prefix}-p-mine`]);

    await releasePrefix(prefix);
    await assert.rejects(Deno.stat(`/run/hostnic-testbeds/${prefix}`), Deno.errors.NotFound);
    await Deno.remove(dir, { recursive: true });
  } finally {
    for (const n of [`${prefix}-p-left`, `${prefix}-p-mine`, `${dead}-i-left`]) {
      await runner.run(["ip", "netns", "del", n]).catch(() => {});
    }
    await Deno.remove(`/run/hostnic-testbeds/${prefix}`).catch(() => {});
    await Deno.remove(`/run/hostnic-testbeds/${dead}`).catch(() => {});
    await Deno.remove(deadDir, { recursive: true }).catch(() => {});
  }
});
