/**
 * Shared mode under chaos on the real API server: 8 workers on 2 nodes churn pods (ADD, then DEL
 * retried until it succeeds, as the kubelet does) while the daemons are SIGKILLed 20 times and
 * restarted. Checked during the churn: no address is on two live pods at once. Then one GC pass
 * (`hostnic admin ipam check --fix`) on each node, and: no address is left allocated in the
 * IPAMBlocks, no daemon keeps a record, and `ipam check` finds nothing more.
 */
import assert from "node:assert/strict";
import type { GcView, PodView } from "../../lib/rpc/api.ts";
import { CommandRunner } from "../../lib/linux/exec.ts";
import { Cluster, type ClusterNode } from "../../lib/testbed/cluster.ts";
import { ControlPlane } from "../../lib/testbed/kube.ts";
import { blockHolders, createPods, startDaemonOn, startSharedBed } from "../helpers/shared_bed.ts";
import { waitFor } from "../helpers/wait.ts";

const runner = new CommandRunner();
const NODES = ["node-1", "node-2"];
const WORKERS = 4;
const KILLS = 20;
const ROUNDS = 40;

Deno.test({
  name: "shared mode: 20 daemon SIGKILLs during ADD/DEL churn, then one GC pass: no leak",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using c = await Cluster.start({
      nodes: NODES.length,
      prefix: "sk",
      master: true,
      startDaemons: false,
      configFile: false,
      vxnets: [],
      jobLatencyMs: 100,
    });
    await using cp = await ControlPlane.start(c);
    const bed = await startSharedBed(c, cp, NODES, { namespaces: { "ns-a": 2 } });
    const names = c.nodes.flatMap((_, n) =>
      Array.from(
        { length: WORKERS },
        (_, w) => Array.from({ length: ROUNDS }, (_, r) => ({ name: `w${n}-${w}-${r}`, n })),
      ).flat()
    );
    await createPods(
      cp,
      names.map((p) => ({ name: p.name, namespace: "ns-a", node: NODES[p.n] })),
    );
    const live = new Map<string, string>();
    const dupes: string[] = [];
    let added = 0;
    let failedAdds = 0;
    let stop = false;

    const cni = (node: ClusterNode, cmd: string, name: string, netns: string) =>
      node.cni(cmd, {
        containerId: `ctr-${name}`,
        netns: `/run/netns/${netns}`,
        args: `K8S_POD_NAMESPACE=ns-a;K8S_POD_NAME=${name}`,
      });

    const worker = async (n: number, w: number) => {
      const node = c.nodes[n];
      for (let r = 0; r < ROUNDS && !stop; r++) {
        const name = `w${n}-${w}-${r}`;
        const netns = `${c.prefix}-p-${name}`;
        await runner.run(["ip", "netns", "add", netns]);
        c.podNamespaces.add(netns);
        const res = await cni(node, "ADD", name, netns);
        const ip = res.code === 0
          ? (res.json?.ips as { address: string }[])[0].address.split("/")[0]
          : undefined;
        if (ip) {
          added++;
          const other = live.get(ip);
          if (other) dupes.push(`${ip} on ${other} and ${name}`);
          live.set(ip, name);
          // The pod lives while its address is checked in its namespace (other ADDs interleave).
          const addr = await runner.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"], {
            netns,
          });
          assert.match(addr.stdout, new RegExp(`inet ${ip.replaceAll(".", "\\.")}/32`));
          live.delete(ip); // the pod is being deleted from here on
        } else {
          failedAdds++;
        }
        // The kubelet retries DEL until it succeeds (the plugin journals it if the daemon is down).
        await waitFor(
          `DEL of ${name}`,
          async () => (await cni(node, "DEL", name, netns)).code === 0,
          {
            timeoutMs: 120_000,
            intervalMs: 500,
          },
        );
        await runner.run(["ip", "netns", "del", netns]).catch(() => {});
        c.podNamespaces.delete(netns);
      }
    };

    await t.step(`churn with ${KILLS} SIGKILLs: never one address on two pods`, async () => {
      const killer = (async () => {
        for (let k = 0; k < KILLS; k++) {
          await new Promise((r) => setTimeout(r, 700 + Math.random() * 800)); // pacing, not a wait
          const i = k % NODES.length;
          const node = c.nodes[i];
          await node.stopDaemon("SIGKILL");
          await startDaemonOn(node, NODES[i], bed.kubeconfig);
          await node.waitReady({ timeoutMs: 60_000 });
        }
      })();
      const workers = c.nodes.flatMap((_, n) =>
        Array.from({ length: WORKERS }, (_, w) => worker(n, w))
      );
      await killer;
      stop = true;
      await Promise.all(workers);
      console.log(`churn: ${added} ADDs succeeded, ${failedAdds} failed, ${KILLS} SIGKILLs`);
      assert.deepEqual(dupes, []);
      assert.ok(added > 0);
    });

    await t.step("one GC pass; then no address leaked and nothing left to collect", async () => {
      for (const node of c.nodes) {
        const res = await node.admin(["ipam", "check", "--fix", "-o", "json"]);
        const r = JSON.parse(res.stdout) as GcView;
        console.log(
          `${node.instanceId} GC: ${r.actions.map((a) => a.text).join("; ") || "nothing"}`,
        );
        assert.deepEqual(r.failed, []);
      }
      const held = await blockHolders(cp);
      assert.deepEqual([...held.entries()], [], "addresses still allocated after GC");
      for (const node of c.nodes) {
        const res = await node.admin(["pod", "ls", "-o", "json"]);
        const pods = (JSON.parse(res.stdout) as PodView[]).filter((p) => p.mode === "shared");
        assert.deepEqual(pods, []);
        const check = await node.admin(["ipam", "check", "-o", "json"]);
        assert.deepEqual((JSON.parse(check.stdout) as GcView).actions, []);
      }
    });
  },
});
