/**
 * DEL never fails for lack of the daemon: with the daemon killed, STATUS says 50, ADD says 11,
 * DEL of a live pod succeeds and removes its links; the restarted daemon replays the journaled
 * release and the NIC is back in the pool within one sync period.
 */
import assert from "node:assert/strict";
import type { NicView } from "../../lib/rpc/api.ts";
import { CommandRunner } from "../../lib/linux/exec.ts";
import { Cluster } from "../../lib/testbed/cluster.ts";

const runner = new CommandRunner();

async function linkNames(netns: string): Promise<string[]> {
  const out = await runner.run(["ip", "-j", "link", "show"], { netns });
  return (JSON.parse(out.stdout) as { ifname: string }[]).map((l) => l.ifname);
}

Deno.test({
  name: "daemon down: STATUS 50, ADD 11, DEL succeeds and is replayed after restart",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using c = await Cluster.start({
      nodes: 1,
      pool: { poolLow: 2, poolHigh: 4, sync: 1 },
    });
    const [n] = c.nodes;
    await n.waitReady({ free: 2 });
    const pod = await n.addPod("survivor");
    const nic = (JSON.parse((await n.admin(["nic", "ls", "-o", "json"])).stdout) as NicView[])
      .find((x) => x.ip === pod.ip)!;
    assert.equal(nic.state, "inuse");
    const hostVeth = (pod.result.interfaces as { name: string; sandbox?: string }[])
      .find((i) => !i.sandbox)!.name;
    assert.ok((await linkNames(n.netns)).includes(hostVeth));

    const st = await n.stopDaemon("SIGKILL");
    assert.equal(st?.signal, "SIGKILL");

    const status = await n.cni("STATUS", {
      containerId: "",
      conf: n.netConf({ cniVersion: "1.1.0" }),
    });
    assert.equal(status.code, 1);
    assert.equal(status.json?.code, 50, status.stdout);
    const add = await n.cni("ADD", {
      containerId: "ctr-late",
      netns: pod.path,
      ifName: "eth1",
      args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=late",
    });
    assert.equal(add.json?.code, 11, add.stdout);
    assert.match(String(add.json?.msg), /not reachable/);

    const del = await n.cni("DEL", {
      containerId: pod.containerId,
      netns: pod.path,
      args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=survivor",
      conf: n.netConf({ prevResult: pod.result }),
    });
    assert.equal(del.code, 0, del.stdout + del.stderr);
    const journal = (await Array.fromAsync(Deno.readDir(`${n.dir}/state/journal`)))
      .filter((e) => e.name.endsWith(".json"));
    assert.equal(journal.length, 1);
    const record = await Deno.readTextFile(`${n.dir}/state/journal/${journal[0].name}`);
    assert.ok(!(await linkNames(n.netns)).includes(hostVeth), `host veth removed: ${record}`);
    assert.ok(!(await linkNames(pod.netns)).includes("eth0"), "pod interface removed");

    await n.startDaemon();
    await n.waitReady();
    const pool = await n.waitPool((p) => p.inuse === 0, 10_000);
    assert.equal(pool.inuse, 0);
    const after = JSON.parse((await n.admin(["nic", "ls", "-o", "json"])).stdout) as NicView[];
    assert.equal(after.find((x) => x.id === nic.id)?.state, "free", "the NIC is back in the pool");
    const left = await Array.fromAsync(Deno.readDir(`${n.dir}/state/journal`));
    assert.deepEqual(left.filter((e) => e.name.endsWith(".json")), []);
    // The freed NIC networks the next pod.
    const next = await n.addPod("next");
    assert.ok(await c.ping(next.netns, "172.30.8.1"));
    await n.delPod(next);
  },
});
