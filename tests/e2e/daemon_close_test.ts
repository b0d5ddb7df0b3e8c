/**
 * A daemon's shutdown is not held by a sync pass stuck on a slow cloud (session 8's N = 200 run:
 * 17 daemons' close waited more than a minute for their pass). The simulator holds every
 * DescribeNics for an hour; once a full GC pass is waiting on one, SIGTERM must end the daemon
 * cleanly without the QingCloud client first giving up on the call (its 30 s timeout would make
 * it ask again: a second DescribeNics). The daemon restarted on the same state recovers its pool.
 */
import assert from "node:assert/strict";
import type { NicView } from "../../lib/rpc/api.ts";
import { Cluster } from "../../lib/testbed/cluster.ts";
import { waitFor } from "../helpers/wait.ts";

Deno.test({
  name: "daemon close: SIGTERM ends a daemon whose sync pass waits on a held cloud call",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using c = await Cluster.start({
      nodes: 1,
      prefix: "dc",
      jobLatencyMs: 0,
      pool: { poolLow: 2, poolHigh: 2, sync: 1, nodeSync: 5 },
    });
    const [n] = c.nodes;
    await n.waitReady({ free: 2 });
    const nicIds = async () =>
      (JSON.parse((await n.admin(["nic", "ls", "-o", "json"])).stdout) as NicView[])
        .map((x) => x.id).sort();
    const pooled = await nicIds();
    const describes = async () => (await c.counters()).DescribeNics ?? 0;
    const before = await describes();
    await c.simControl("knobs", { replyDelayMs: { DescribeNics: 3_600_000 } });
    // A full pass (every 5 s here) asks the cloud for the node's NICs: now it waits.
    await waitFor(
      "a DescribeNics held by the simulator",
      async () => (await describes()) > before,
      {
        timeoutMs: 30_000,
      },
    );
    const held = await describes();
    const st = await n.stopDaemon("SIGTERM");
    assert.equal(st?.code, 0, `clean exit: ${n.tail()}`);
    assert.equal(
      await describes(),
      held,
      "the daemon ended before its client timed out and asked again",
    );
    assert.match(n.tail(), /sync pass is still running at shutdown/);

    await c.simControl("knobs", { replyDelayMs: {} });
    await n.startDaemon();
    await n.waitReady({ free: 2 });
    assert.deepEqual(await nicIds(), pooled, "the same NICs pooled after the restart");
  },
});
