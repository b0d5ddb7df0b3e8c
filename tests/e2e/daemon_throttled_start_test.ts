/**
 * A nic-mode daemon that starts while the account's QingCloud API rate limit is exhausted (issue
 * 20: a cluster-wide restart) does not die: it answers `/healthz`, says on `/readyz` what it waits
 * for, logs its retries, and once the limit frees it comes up and networks a pod. (That a permanent
 * error, an unknown vxnet, still ends the start at once: daemon_startup_test.ts.)
 */
import assert from "node:assert/strict";
import { HttpIaasClient } from "../../lib/iaas/client.ts";
import { loadIaasConfig } from "../../lib/iaas/config.ts";
import { CommandRunner } from "../../lib/linux/exec.ts";
import { Cluster } from "../../lib/testbed/cluster.ts";

const runner = new CommandRunner();

/** GET on the daemon's management server, inside the node's namespace. */
async function manage(netns: string, path: string): Promise<{ status: number; body: string }> {
  const out = await runner.run(
    ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", `http://127.0.0.1:31081${path}`],
    { netns },
  );
  const lines = out.stdout.trimEnd().split("\n");
  return { status: Number(lines.pop()), body: lines.join("\n") };
}

/** Polls `fn` until it returns a value (every 100 ms, at most `ms`). */
async function until<T>(what: string, ms: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test({
  name: "a nic daemon started under an exhausted QingCloud rate limit waits, then serves",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using c = await Cluster.start({ nodes: 1, startDaemons: false });
    const [n] = c.nodes;
    // One token, which this test takes: every call of the daemon's access key answers 2500.
    await c.simControl("knobs", { rateLimit: { perSecond: 0.001, burst: 1 } });
    await using iaas = new HttpIaasClient({
      config: await loadIaasConfig(c.clientConfigFile),
      rateLimit: null,
    });
    await iaas.describeInstances({ instances: [n.instanceId] });

    await n.startDaemon();
    await until("a start-up retry in the log", 60_000, async () => {
      assert.equal(await n.daemonExited(), undefined, `daemon exited: ${n.tail()}`);
      return n.tail().includes("QingCloud busy at start-up; retrying") ? true : undefined;
    });
    assert.match(n.tail(), /ret_code 2500/);
    assert.ok(!n.tail().includes("signature="), "no request signature in the log");
    assert.equal((await manage(n.netns, "/healthz")).status, 200, "alive while it waits");
    const ready = await manage(n.netns, "/readyz");
    assert.equal(ready.status, 503);
    assert.match(ready.body, /QingCloud busy/);

    await c.simControl("knobs", { rateLimit: null });
    await n.waitReady({ free: 1, timeoutMs: 120_000 });
    assert.equal((await manage(n.netns, "/readyz")).status, 200);
    const pod = await n.addPod("after-throttle");
    assert.ok(await c.ping(pod.netns, "172.30.8.1"), "the pod is networked");
    await n.delPod(pod);
    await n.stopDaemon();
  },
});
