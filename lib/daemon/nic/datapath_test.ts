import assert from "node:assert/strict";
import { FakeRunner } from "../../linux/fake_runner.ts";
import { nullLogger } from "../../log.ts";
import { LinuxPodDatapath } from "./datapath.ts";
import type { DatapathPod } from "./service.ts";

const settings = { vethPrefix: "vnic", mtu: 1500, hairpin: false, natMark: 0x10000 };

function pod(i: number): DatapathPod {
  return {
    mode: "nic",
    containerId: `c${i}`,
    ifName: "eth0",
    netns: `/run/netns/p${i}`,
    ip: `172.20.1.${10 + i}`,
    nicId: `52:54:00:00:00:0${i}`,
    cidr: "172.20.1.0/24",
    gateway: "172.20.1.1",
    table: 260 + i,
    settings,
  };
}

Deno.test("checkAll reads the node once for a whole GC pass, each pod once", async () => {
  const runner = new FakeRunner(() => ({ stdout: "[]\n".repeat(6), stderr: "" }));
  const dp = new LinuxPodDatapath({ runner, logger: nullLogger }, { nodeNetns: "node-ns" });
  const diffs = await dp.checkAll([pod(1), pod(2), pod(3)]);
  assert.equal(diffs.length, 3);
  for (const d of diffs) assert.ok(d.length > 0, "empty namespaces differ from what ADD makes");
  const reads = runner.calls.filter((c) => c.argv.includes("-json")).map((c) => c.netns);
  assert.deepEqual(reads, ["node-ns", "/run/netns/p1", "/run/netns/p2", "/run/netns/p3"]);
  assert.deepEqual(await dp.checkAll([]), []);
});
