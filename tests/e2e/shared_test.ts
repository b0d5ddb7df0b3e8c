/**
 * Shared mode end to end on the real control plane: real daemons in two simulated nodes, the
 * IPAM objects a controller would make created with kubectl (tests/helpers/shared_bed.ts), pods
 * ADDed through the real CNI plugin. Checked: addresses come from the namespace's blocks and the
 * IPAMBlocks read back with kubectl agree with the daemons; one NIC per vxnet per node, later pods
 * only a veth; pods reach the gateway and a pod on the other node; fixed IPs by hostnic's and
 * Calico's annotations, a taken one refused with an event naming the holder; Calico's podIP
 * annotation; DEL releases; an idle NIC is given back after freePeriod; GC releases the address of
 * a pod gone from Kubernetes and of a deleted Node; `admin ipam ls` and `ipam check`.
 */
import assert from "node:assert/strict";
import type { NicView } from "../../lib/rpc/api.ts";
import { ANNOTATION_IP } from "../../lib/k8s/annotations.ts";
import { CommandRunner } from "../../lib/linux/exec.ts";
import { Cluster, type ClusterNode, type Pod, POD_GATEWAY } from "../../lib/testbed/cluster.ts";
import { ControlPlane } from "../../lib/testbed/kube.ts";
import { blockHolders, createPods, startSharedBed } from "../helpers/shared_bed.ts";
import { waitFor } from "../helpers/wait.ts";

const runner = new CommandRunner();
const NODES = ["node-1", "node-2"];
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

async function nicsOf(node: ClusterNode): Promise<NicView[]> {
  const res = await node.admin(["nic", "ls", "-o", "json"]);
  assert.equal(res.code, 0, res.stderr);
  return JSON.parse(res.stdout) as NicView[];
}

const args = (ns: string, name: string) => `K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}`;

/** Resources a shared-mode ADD or DEL may touch. */
const ADD_RESOURCES = new Set(["pods", "configmaps", "ippools", "ipamblocks", "ipamhandles"]);

/**
 * kube-apiserver's own count of requests (`apiserver_request_total`) to `ADD_RESOURCES`, by
 * "VERB resource". LIST and WATCH are left out: the daemons' GC passes list (every nodeSync, 5 s
 * here) and their watches reconnect on their own; an ADD that listed would show in the unit
 * tests (lib/ipam/ipam_batch_test.ts) and in the bench (bench/hostnic_shared.ts counts all).
 */
async function apiRequests(cp: ControlPlane): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const text = await cp.kubectlOk(["get", "--raw", "/metrics"]);
  for (const line of text.split("\n")) {
    if (!line.startsWith("apiserver_request_total{")) continue;
    const verb = /[{,]verb="([A-Z]+)"/.exec(line)?.[1];
    const resource = /[{,]resource="([a-z]+)"/.exec(line)?.[1];
    if (!verb || !resource || !ADD_RESOURCES.has(resource)) continue;
    if (verb === "LIST" || verb === "WATCH") continue;
    const key = `${verb} ${resource}`;
    out.set(key, (out.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1)));
  }
  return out;
}

/** What happened between two `apiRequests`, without zeros. */
function requestsBetween(a: Map<string, number>, b: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of b) if (v - (a.get(k) ?? 0) > 0) out[k] = v - (a.get(k) ?? 0);
  return out;
}

Deno.test({
  name: "shared mode: block IPAM, one NIC per vxnet per node, fixed IPs, GC",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using c = await Cluster.start({
      nodes: NODES.length,
      prefix: "sh",
      master: true,
      startDaemons: false,
      configFile: false,
      vxnets: [],
      jobLatencyMs: 100,
    });
    await using cp = await ControlPlane.start(c);
    const bed = await startSharedBed(c, cp, NODES, {
      namespaces: { "ns-a": 1, "ns-b": 1 },
      networkPolicy: "calico",
    });
    const [n1, n2] = c.nodes;
    const pods: Pod[] = [];
    const add = async (node: ClusterNode, ns: string, name: string) => {
      const p = await node.addPod(name, { args: args(ns, name) });
      pods.push(p);
      return p;
    };

    await t.step("pods get addresses of their namespace's blocks; kubectl agrees", async () => {
      await createPods(cp, [
        { name: "a1", namespace: "ns-a", node: "node-1" },
        { name: "a2", namespace: "ns-a", node: "node-1" },
        { name: "a3", namespace: "ns-a", node: "node-2" },
        { name: "b1", namespace: "ns-b", node: "node-1" },
      ]);
      const a1 = await add(n1, "ns-a", "a1");
      const a2 = await add(n1, "ns-a", "a2");
      const a3 = await add(n2, "ns-a", "a3");
      const b1 = await add(n1, "ns-b", "b1");
      const held = await blockHolders(cp);
      for (const [p, ns] of [[a1, "ns-a"], [a2, "ns-a"], [a3, "ns-a"], [b1, "ns-b"]] as const) {
        const h = held.get(p.ip);
        assert.ok(h, `${p.name} ${p.ip} is allocated in an IPAMBlock`);
        assert.ok(bed.blocksOf[ns].includes(h.block), `${p.name} in ${h.block}`);
        assert.equal(h.handle, `${p.containerId}.eth0`);
        assert.equal(h.pod, p.name);
        assert.equal(h.namespace, ns);
      }
      assert.equal(held.get(a3.ip)?.node, "node-2");
      assert.equal(new Set([a1.ip, a2.ip, a3.ip, b1.ip]).size, 4);
    });

    await t.step(
      "a warm ADD makes at most 3 kube-apiserver requests (+ Calico's), its DEL 2",
      async () => {
        // node-1 has its NIC and its block from the step before; w1 warms the pool read.
        await createPods(cp, [
          { name: "w1", namespace: "ns-a", node: "node-1" },
          { name: "w2", namespace: "ns-a", node: "node-1" },
        ]);
        const w1 = await n1.addPod("w1", { args: args("ns-a", "w1") });
        const r0 = await apiRequests(cp);
        const w2 = await n1.addPod("w2", { args: args("ns-a", "w2") });
        const r1 = await apiRequests(cp);
        await n1.delPod(w2);
        const r2 = await apiRequests(cp);
        await n1.delPod(w1);
        const add = requestsBetween(r0, r1);
        const del = requestsBetween(r1, r2);
        const total = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
        // The pod's annotations (one read), the handle (created, no read first), the block (one
        // compare-and-swap from the daemon's copy); no ConfigMap read (its watch has it).
        assert.equal(add["POST ipamhandles"], 1, JSON.stringify(add));
        assert.equal(add["PUT ipamblocks"], 1, JSON.stringify(add));
        assert.equal(add["GET ipamhandles"] ?? 0, 0, JSON.stringify(add));
        assert.equal(add["GET configmaps"] ?? 0, 0, JSON.stringify(add));
        // This bed runs with server.networkPolicy: calico, which adds the podIP annotation PATCH.
        assert.equal(add["PATCH pods"], 1, JSON.stringify(add));
        const own = total(add) - add["PATCH pods"];
        assert.ok(own <= 3, `ADD made ${own} requests besides Calico's: ${JSON.stringify(add)}`);
        // The block (one compare-and-swap) and the handle (deleted on its known version).
        assert.equal(del["DELETE ipamhandles"], 1, JSON.stringify(del));
        assert.ok(total(del) <= 2, `DEL made ${total(del)} requests: ${JSON.stringify(del)}`);
      },
    );

    await t.step("one NIC per vxnet per node, without an IaaS address", async () => {
      const nics1 = (await nicsOf(n1)).filter((n) => n.owner?.startsWith("shared/"));
      const nics2 = (await nicsOf(n2)).filter((n) => n.owner?.startsWith("shared/"));
      assert.equal(nics1.length, 1, JSON.stringify(nics1));
      assert.equal(nics2.length, 1);
      assert.equal(nics1[0].ip, "");
    });

    await t.step("pods reach the gateway and a pod on the other node", async () => {
      const [a1, , a3, b1] = pods;
      assert.ok(await c.ping(a1.netns, POD_GATEWAY), "a1 → gateway");
      assert.ok(await c.ping(a1.netns, a3.ip), "a1 (node-1) → a3 (node-2)");
      assert.ok(await c.ping(a3.netns, b1.ip), "a3 (node-2) → b1 (node-1)");
    });

    await t.step("Calico's podIP annotations are written", async () => {
      const pod = await cp.getJson<{ metadata: { annotations: Record<string, string> } }>(
        ["-n", "ns-a", "pod", "a1"],
      );
      assert.equal(pod.metadata.annotations["cni.projectcalico.org/podIP"], `${pods[0].ip}/32`);
      assert.equal(pod.metadata.annotations["cni.projectcalico.org/podIPs"], `${pods[0].ip}/32`);
    });

    await t.step("fixed IP by either annotation; a taken one names its holder", async () => {
      const blockA = bed.blocksOf["ns-a"][0]; // 4100-172-30-8-0-26
      assert.equal(blockA, "4100-172-30-8-0-26");
      await createPods(cp, [
        {
          name: "fx1",
          namespace: "ns-a",
          node: "node-1",
          annotations: { [ANNOTATION_IP]: "172.30.8.40" },
        },
        {
          name: "fx2",
          namespace: "ns-a",
          node: "node-2",
          annotations: { "cni.projectcalico.org/ipAddrs": '["172.30.8.41"]' },
        },
        {
          name: "fx3",
          namespace: "ns-a",
          node: "node-2",
          annotations: { [ANNOTATION_IP]: "172.30.8.40" },
        },
      ]);
      const fx1 = await add(n1, "ns-a", "fx1");
      const fx2 = await add(n2, "ns-a", "fx2");
      assert.equal(fx1.ip, "172.30.8.40");
      assert.equal(fx2.ip, "172.30.8.41");
      assert.ok(await c.ping(fx2.netns, fx1.ip), "fixed-IP pods reach each other");
      const netns = `${c.prefix}-p-fx3`;
      await runner.run(["ip", "netns", "add", netns]);
      c.podNamespaces.add(netns);
      const res = await n2.cni("ADD", {
        containerId: "ctr-fx3",
        netns: `/run/netns/${netns}`,
        args: args("ns-a", "fx3"),
      });
      assert.notEqual(res.code, 0);
      assert.match(res.stdout, /172\.30\.8\.40.*ns-a\/fx1/);
      const ev = await waitFor(
        "IPInUse event on fx3",
        async () => (await cp.eventsOn("ns-a", "fx3")).find((e) => e.reason === "IPInUse"),
        {
          timeoutMs: 15_000,
          intervalMs: 250,
        },
      );
      assert.match(ev.message, /ns-a\/fx1/);
      assert.equal(
        (await n2.cni("DEL", { containerId: "ctr-fx3", netns: `/run/netns/${netns}` })).code,
        0,
      );
    });

    await t.step("admin ipam ls shows blocks, owners and utilization", async () => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--quiet",
          MAIN,
          "admin",
          "ipam",
          "ls",
          "--kubeconfig",
          cp.hostKubeconfig,
          "-o",
          "json",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const view = JSON.parse(text) as {
        blocks: { name: string; node?: string; allocated: number }[];
      };
      const b = view.blocks.find((x) => x.name === bed.blocksOf["ns-a"][0]);
      assert.ok(b && b.allocated >= 3 && b.node === "node-1", JSON.stringify(b));
    });

    await t.step("DEL releases; the last pod's NIC goes after freePeriod", async () => {
      for (const p of pods.splice(0)) {
        const r = await p.node.delPod(p);
        assert.equal(r.code, 0, r.stdout);
      }
      const held = await blockHolders(cp);
      assert.equal(held.size, 0, JSON.stringify([...held]));
      await waitFor("shared NICs given back", async () => {
        const all = [...(await nicsOf(n1)), ...(await nicsOf(n2))];
        return all.filter((n) => n.owner?.startsWith("shared/")).length === 0;
      }, { timeoutMs: 30_000, intervalMs: 500 });
    });

    await t.step("GC: a pod gone from Kubernetes and a deleted Node's address", async () => {
      await createPods(cp, [{ name: "gone", namespace: "ns-b", node: "node-1" }]);
      const gone = await add(n1, "ns-b", "gone");
      // No kubelet confirms a graceful deletion here: force it, as a force-deleted pod is.
      await cp.kubectlOk(["-n", "ns-b", "delete", "pod", "gone", "--force", "--grace-period=0"]);
      // A Node deleted while its daemon is away leaves an address behind for others to free.
      await cp.addNode("node-9");
      await cp.kubectlOk(["delete", "node", "node-9"]);
      const blockB = bed.blocksOf["ns-b"][0];
      await cp.kubectlOk(["create", "-f", "-"], {
        stdin: JSON.stringify({
          apiVersion: "network.qingcloud.com/v1alpha1",
          kind: "IPAMHandle",
          metadata: { name: "ctr-ghost.eth0" },
          spec: { handleID: "ctr-ghost.eth0", block: { [blockB]: 1 }, deleted: false },
        }),
      });
      const b = await cp.getJson<
        {
          spec: Record<string, unknown> & {
            allocations: (number | null)[];
            unallocated: number[];
            attributes: unknown[];
            sequenceNumber: number;
          };
        }
      >([
        "ipamblock",
        blockB,
      ]);
      const ord = b.spec.unallocated.shift()!;
      b.spec.allocations[ord] = b.spec.attributes.length;
      b.spec.attributes.push({
        handle_id: "ctr-ghost.eth0",
        secondary: { namespace: "ns-b", pod: "ghost", node: "node-9" },
        sequence: b.spec.sequenceNumber,
      });
      b.spec.sequenceNumber++;
      await cp.kubectlOk(["replace", "--validate=false", "-f", "-"], { stdin: JSON.stringify(b) });
      await waitFor("GC released the gone pod's and node-9's addresses", async () => {
        const held = await blockHolders(cp);
        return !held.has(gone.ip) && [...held.values()].every((h) => h.node !== "node-9");
      }, { timeoutMs: 60_000, intervalMs: 1000 }).catch((err) => {
        throw new Error(
          `${err.message}\n--- node-1 ---\n${n1.tail()}\n--- node-2 ---\n${n2.tail()}`,
        );
      });
      pods.splice(pods.indexOf(gone), 1);
      await n1.delPod(gone);
    });
  },
});
