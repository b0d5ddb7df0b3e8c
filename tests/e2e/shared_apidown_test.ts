/**
 * Shared mode with kube-apiserver unreachable (issue 20 a, d), on the real control plane with the
 * daemon talking to it through a fault-injecting proxy (lib/testbed/fault_proxy.ts), which is
 * stopped: every API request is refused (the daemon sees KUBE_UNREACHABLE).
 * Checked: DEL succeeds, the pod's datapath is gone and the release is pending (metric, `admin pod
 * ls`); an ADD answers CNI 11 and leaves nothing behind, also an ADD of the container whose
 * release is pending; the daemon is restarted while the API server is away; once it is back the
 * pending releases finish — the handles are deleted, the address is free in its block — except
 * that an address given to someone else in between (edited into the block by hand) is kept.
 */
import assert from "node:assert/strict";
import type { GcView, PodView } from "../../lib/rpc/api.ts";
import { CommandRunner } from "../../lib/linux/exec.ts";
import { Cluster, type ClusterNode } from "../../lib/testbed/cluster.ts";
import { ControlPlane } from "../../lib/testbed/kube.ts";
import { blockHolders, createPods, startDaemonOn, startSharedBed } from "../helpers/shared_bed.ts";
import { metric } from "../helpers/metrics.ts";
import { waitFor } from "../helpers/wait.ts";

const runner = new CommandRunner();
const args = (ns: string, name: string) => `K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}`;

async function podsOf(node: ClusterNode): Promise<PodView[]> {
  const res = await node.admin(["pod", "ls", "-o", "json"]);
  assert.equal(res.code, 0, res.stderr);
  return (JSON.parse(res.stdout) as PodView[]).filter((p) => p.mode === "shared");
}

/** Lines of the node's rules and routes (all tables) that name `ip`. */
async function nodeStateOf(node: ClusterNode, ip: string): Promise<string[]> {
  const re = new RegExp(`(^|[^.\\d])${ip.replaceAll(".", "\\.")}($|[^.\\d])`);
  const out: string[] = [];
  for (const cmd of [["ip", "rule"], ["ip", "route", "show", "table", "all"]]) {
    const r = await runner.run(cmd, { netns: node.netns });
    out.push(...r.stdout.split("\n").filter((l) => re.test(l)));
  }
  return out;
}

async function handleExists(cp: ControlPlane, name: string): Promise<boolean> {
  const r = await cp.kubectl(["get", "ipamhandle", name, "-o", "name"]);
  return r.code === 0;
}

Deno.test({
  name: "shared mode with the API server unreachable: DEL pending, ADD CNI 11, release after",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using c = await Cluster.start({
      nodes: 1,
      prefix: "sd",
      master: true,
      startDaemons: false,
      configFile: false,
      vxnets: [],
      jobLatencyMs: 100,
    });
    await using cp = await ControlPlane.start(c);
    await startSharedBed(c, cp, ["node-1"], { namespaces: { "ns-a": 1 } });
    const [n1] = c.nodes;
    // The bed's daemon talks to the API server directly: this one goes through the proxy.
    await n1.stopDaemon();
    const proxied = async (port: number) => {
      const proxy = await cp.faultProxy(port);
      const kubeconfig = await cp.serviceAccountKubeconfig("kube-system", "hostnic-node", {
        server: proxy.server,
        path: `${c.dir}/proxied-${port}.kubeconfig`,
      });
      return { proxy, kubeconfig };
    };
    const first = await proxied(7443);
    await startDaemonOn(n1, "node-1", first.kubeconfig);
    await n1.waitReady({ timeoutMs: 60_000 });
    // A Node without a daemon, for the address given away by hand below.
    await cp.addNode("node-x");

    await createPods(
      cp,
      ["p1", "p2", "p3"].map((name) => ({
        name,
        namespace: "ns-a",
        node: "node-1",
      })),
    );
    const p1 = await n1.addPod("p1", { args: args("ns-a", "p1") });
    const p2 = await n1.addPod("p2", { args: args("ns-a", "p2") });
    const held0 = await blockHolders(cp);
    assert.equal(held0.get(p1.ip)?.handle, "ctr-p1.eth0");
    assert.equal(held0.get(p2.ip)?.handle, "ctr-p2.eth0");

    await t.step("API server away: DEL succeeds, datapath gone, release pending", async () => {
      await first.proxy.close();
      for (const p of [p1, p2]) {
        const r = await n1.delPod(p, { keepNetns: true });
        assert.equal(r.code, 0, `DEL of ${p.name}: ${r.stdout} ${r.stderr}`);
        const link = await runner.run(["ip", "-n", p.netns, "-o", "link", "show"]);
        assert.ok(!link.stdout.includes(` ${p.ifName}@`), `${p.name}'s ${p.ifName} is gone`);
        assert.deepEqual(await nodeStateOf(n1, p.ip), [], `no rule or route of ${p.ip} left`);
      }
      const pods = await podsOf(n1);
      assert.deepEqual(
        pods.map((p) => [p.containerId, p.state]).sort(),
        [["ctr-p1", "releasing"], ["ctr-p2", "releasing"]],
      );
      assert.equal(await metric(n1, "hostnic_shared_release_pending"), 2);
      // A repeated DEL (the kubelet's) is idempotent and still succeeds.
      const again = await n1.delPod(p1, { keepNetns: true });
      assert.equal(again.code, 0, again.stdout);
    });

    await t.step("API server away: ADD answers CNI 11 and leaves nothing behind", async () => {
      const r = await n1.cni("ADD", {
        containerId: "ctr-p3",
        netns: p1.path, // any namespace of ours: the ADD must not get as far as the datapath
        args: args("ns-a", "p3"),
      });
      assert.notEqual(r.code, 0);
      assert.equal(r.json?.code, 11, r.stdout);
      assert.match(String(r.json?.msg), /Kubernetes API server is not answering/, r.stdout);
      // The ADD of the container whose release is pending: 11 too, the record stays pending.
      const re = await n1.cni("ADD", {
        containerId: "ctr-p1",
        netns: p1.path,
        args: args("ns-a", "p1"),
      });
      assert.equal(re.json?.code, 11, re.stdout);
      const pods = await podsOf(n1);
      assert.deepEqual(pods.map((p) => p.containerId).sort(), ["ctr-p1", "ctr-p2"]);
      assert.ok(pods.every((p) => p.state === "releasing"), JSON.stringify(pods));
      assert.deepEqual(await nodeStateOf(n1, p1.ip), []);
    });

    await t.step(
      "daemon restarted while away; the address of p2 given to another pod",
      async () => {
        await n1.stopDaemon();
        // While the daemon is down, p2's address goes to someone else (what another node's
        // allocation after a free would leave): the pending release must not free it.
        const b = await cp.getJson<{
          spec: {
            cidr: string;
            allocations: (number | null)[];
            attributes: { handle_id: string; sequence: number; secondary: unknown }[];
            sequenceNumber: number;
          };
        }>(["ipamblock", held0.get(p2.ip)!.block]);
        const idx = b.spec.attributes.findIndex((a) => a.handle_id === "ctr-p2.eth0");
        assert.ok(idx >= 0);
        b.spec.attributes[idx] = {
          handle_id: "ctr-other.eth0",
          secondary: { namespace: "ns-a", pod: "other", node: "node-x" },
          sequence: b.spec.sequenceNumber,
        };
        b.spec.sequenceNumber++;
        await cp.kubectlOk(["replace", "--validate=false", "-f", "-"], {
          stdin: JSON.stringify(b),
        });
        // The API server is reachable again (through a new proxy): the daemon starts with it.
        const second = await proxied(7444);
        await startDaemonOn(n1, "node-1", second.kubeconfig);
        await n1.waitReady({ timeoutMs: 60_000 });
      },
    );

    await t.step("API server back: pending releases finish, ipam check clean", async () => {
      await waitFor("pending releases finished", async () => {
        return (await podsOf(n1)).length === 0 && !(await handleExists(cp, "ctr-p1.eth0")) &&
          !(await handleExists(cp, "ctr-p2.eth0"));
      }, { timeoutMs: 60_000, intervalMs: 500 }).catch((err) => {
        throw new Error(`${err.message}\n--- node-1 ---\n${n1.tail()}`);
      });
      const held = await blockHolders(cp);
      assert.equal(held.get(p1.ip), undefined, `${p1.ip} is free`);
      assert.equal(held.get(p2.ip)?.handle, "ctr-other.eth0", `${p2.ip} kept by its new holder`);
      assert.ok(![...held.values()].some((h) => h.handle === "ctr-p3.eth0"));
      assert.equal(await handleExists(cp, "ctr-p3.eth0"), false);
      assert.equal(await metric(n1, "hostnic_shared_release_pending"), 0);
      const check = await n1.admin(["ipam", "check", "-o", "json"]);
      assert.equal(check.code, 0, check.stderr);
      assert.deepEqual((JSON.parse(check.stdout) as GcView).actions, []);
      // The container whose release was pending ADDs again, with a fresh allocation.
      const again = await n1.cni("ADD", {
        containerId: p1.containerId,
        netns: p1.path,
        args: args("ns-a", "p1"),
      });
      assert.equal(again.code, 0, again.stdout);
      const ip = (again.json?.ips as { address: string }[])[0].address.split("/")[0];
      assert.equal((await blockHolders(cp)).get(ip)?.handle, "ctr-p1.eth0");
      for (const p of [p1, p2]) assert.equal((await n1.delPod(p)).code, 0);
      assert.equal((await blockHolders(cp)).get(ip), undefined);
    });
  },
});
