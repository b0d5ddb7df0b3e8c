/**
 * Garbage collection and repair on a real daemon: `admin gc --dry-run` shows what a pass would do
 * and why and changes nothing; `admin gc` releases a pod whose namespace vanished, puts back a
 * policy rule someone deleted, deletes an owned NIC nobody knows; the released IP stays in
 * cooldown, also across a daemon restart.
 */
import assert from "node:assert/strict";
import type { GcView, NicView, PodView, PoolView } from "../../lib/rpc/api.ts";
import { HttpIaasClient } from "../../lib/iaas/client.ts";
import { loadIaasConfig } from "../../lib/iaas/config.ts";
import { CommandRunner } from "../../lib/linux/exec.ts";
import { nullLogger } from "../../lib/log.ts";
import { Cluster, POD_GATEWAY, POD_VXNET } from "../../lib/testbed/cluster.ts";

const runner = new CommandRunner();

async function json<T>(p: Promise<{ code: number; stdout: string; stderr: string }>): Promise<T> {
  const r = await p;
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** Policy rules of the node that send traffic from `ip` to a table. */
async function rulesFrom(
  netns: string,
  ip: string,
): Promise<{ priority: number; table: string }[]> {
  const out = await runner.run(["ip", "-j", "rule", "show"], { netns });
  return (JSON.parse(out.stdout) as { priority: number; src?: string; table: string }[])
    .filter((r) => r.src === ip);
}

Deno.test({
  name: "admin gc: dry run explains, a pass releases, repairs and collects; IPs cool down",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using c = await Cluster.start({
      nodes: 1,
      prefix: `gc${Math.random().toString(36).slice(2, 5)}`,
      // nodeSync is long so that only `admin gc` runs full passes; freePeriod 0 = collect an
      // unknown NIC at the second pass that sees it.
      pool: { poolLow: 2, poolHigh: 2, sync: 1, nodeSync: 3600, freePeriod: 0, ipCooldown: 30 },
    });
    const [n] = c.nodes;
    await n.waitReady({ free: 2 });
    const a = await n.addPod("keep");
    const b = await n.addPod("vanish");

    // 1. Break things the way the world does.
    await runner.run(["ip", "netns", "del", b.netns]);
    c.podNamespaces.delete(b.netns);
    const [rule] = await rulesFrom(n.netns, a.ip);
    assert.ok(rule, "pod keep has a policy rule");
    await runner.run(["ip", "rule", "del", "priority", String(rule.priority), "from", a.ip], {
      netns: n.netns,
    });
    const iaas = new HttpIaasClient({
      config: await loadIaasConfig(c.clientConfigFile),
      logger: nullLogger,
    });
    let orphan: string;
    try {
      [{ nicId: orphan }] = await iaas.createNics({
        vxnet: POD_VXNET,
        count: 1,
        nicName: `hostnic_${n.instanceId}`,
      });
    } finally {
      await iaas.close();
    }

    // 2. Dry runs: explained, nothing changed. The unknown NIC is only listed once seen twice.
    const dry1 = await json<GcView>(n.admin(["gc", "--dry-run", "-o", "json"]));
    assert.equal(dry1.applied, false);
    const kinds = (v: GcView) => v.actions.map((x) => x.text);
    assert.ok(
      kinds(dry1).some((k) =>
        /^release-pod default\/vanish\/eth0: network namespace .* gone/.test(k)
      ),
      kinds(dry1).join("\n"),
    );
    assert.ok(kinds(dry1).some((k) => /^repair-pod default\/keep\/eth0: .*rule/.test(k)));
    assert.ok(!kinds(dry1).some((k) => k.includes(orphan)), "not collected at first sight");
    const dry2 = await json<GcView>(n.admin(["gc", "--dry-run", "-o", "json"]));
    assert.ok(
      kinds(dry2).some((k) => k.startsWith(`delete-nic ${orphan}`)),
      kinds(dry2).join("\n"),
    );
    const text = await n.admin(["gc", "--dry-run"]);
    assert.match(text.stdout, /would do \(dry run\): release-pod default\/vanish/);
    const pods = await json<PodView[]>(n.admin(["pod", "ls", "-o", "json"]));
    assert.equal(pods.length, 2, "a dry run changes nothing");
    assert.ok((await c.simNics()).some((x) => x.id === orphan));
    assert.equal((await rulesFrom(n.netns, a.ip)).length, 0);

    // 3. A real pass.
    const done = await json<GcView>(n.admin(["gc", "-o", "json"]));
    assert.equal(done.applied, true);
    assert.deepEqual(done.failed, []);
    const left = await json<PodView[]>(n.admin(["pod", "ls", "-o", "json"]));
    assert.deepEqual(left.map((p) => p.pod), ["default/keep"]);
    assert.ok(!(await c.simNics()).some((x) => x.id === orphan), "orphan NIC deleted");
    assert.deepEqual(await rulesFrom(n.netns, a.ip), [rule]);
    assert.ok(await c.ping(a.netns, POD_GATEWAY), "repaired pod reaches its gateway");
    const again = await json<GcView>(n.admin(["gc", "-o", "json"]));
    assert.deepEqual(again.actions, [], "a second pass has nothing to do");

    // 4. The released IP cools down: the next pods get other IPs, also after a restart.
    const nics = await json<NicView[]>(n.admin(["nic", "ls", "-o", "json"]));
    assert.equal(nics.find((x) => x.ip === b.ip)?.state, "free");
    const pool = await json<PoolView>(n.admin(["pool", "ls", "-o", "json"]));
    assert.equal(pool.cooling, 1);
    const c1 = await n.addPod("next1");
    assert.notEqual(c1.ip, b.ip);
    await n.stopDaemon("SIGTERM");
    await n.startDaemon();
    await n.waitReady();
    const after = await json<PoolView>(n.admin(["pool", "ls", "-o", "json"]));
    assert.equal(after.cooling, 1, "cooldown survives the restart");
    const c2 = await n.addPod("next2");
    assert.notEqual(c2.ip, b.ip);
    for (const p of [a, c1, c2]) assert.equal((await n.delPod(p)).code, 0);
  },
});
