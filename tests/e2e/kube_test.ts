/**
 * The daemon with Kubernetes, end to end: real daemon processes in five simulated nodes talking to
 * the real kube-apiserver (lib/testbed/kube.ts) in the simulated master instance, through the
 * simulated SDN, authenticated as the `hostnic-node` ServiceAccount of deploy/hostnic.yaml (a
 * TokenRequest token; never cluster admin), so the manifest's RBAC is what allows or refuses each
 * call. hostnic is installed as docs/install.md says (Secret, `kubectl apply`). The daemons reach
 * the API server through a fault-injecting proxy (lib/testbed/fault_proxy.ts) that passes
 * everything through except the faults a step asks for. The daemons get no config file: their
 * config is ConfigMap `hostnic-cfg-cm` read through the API. Checked: node vxnets assigned deterministically
 * (and annotated), ConfigMap values in effect, the pool health annotation, pod annotations driving
 * vxnet / fixed IP / passthrough, refusals with events (invalid annotation, CNI_ARGS conflict, an IP
 * outside the vxnet), an ADD while the API blinks (networked, then an event), watches that survive
 * an API server restart (GC of a pod deleted without a DEL, the ConfigMap), and the notice that
 * a ConfigMap change needs a restart.
 */
import assert from "node:assert/strict";
import type { NicView, PoolView } from "../../lib/rpc/api.ts";
import {
  ANNOTATION_IP,
  ANNOTATION_TYPE,
  ANNOTATION_VXNET,
  NODE_ANNOTATION_POOL,
  NODE_ANNOTATION_VXNET,
} from "../../lib/k8s/annotations.ts";
import { DEFAULT_RETRY } from "../../lib/k8s/transport.ts";
import { CommandRunner } from "../../lib/linux/exec.ts";
import {
  Cluster,
  type ClusterNode,
  type CniOutcome,
  type Pod,
  POD_VXNET,
} from "../../lib/testbed/cluster.ts";
import { ControlPlane } from "../../lib/testbed/kube.ts";
import { waitFor } from "../helpers/wait.ts";

const runner = new CommandRunner();
const OTHER_VXNET = "vxnet-tbother"; // 172.30.16.0/24 in the testbed's scenario
const NODES = ["node-1", "node-2", "node-3", "node-4", "node-5"];
const DEFAULT_CONFIG_PATH = "/etc/hostnic/hostnic.json";

const inPodVxnet = (ip: string) => /^172\.30\.(8|9|10|11)\.\d+$/.test(ip);
const inOtherVxnet = (ip: string) => /^172\.30\.16\.\d+$/.test(ip);

function daemonConfig(poolHigh: number): string {
  return JSON.stringify({
    // nodeSync 5: full GC passes (and their 2·nodeSync grace for pods gone from the API) are quick.
    pool: {
      poolLow: 1,
      poolHigh,
      maxNic: 63,
      vxNets: [POD_VXNET, OTHER_VXNET],
      sync: 1,
      nodeSync: 5,
    },
  });
}

async function poolOf(node: ClusterNode): Promise<PoolView> {
  const res = await node.admin(["pool", "ls", "-o", "json"]);
  assert.equal(res.code, 0, res.stderr);
  const parsed = JSON.parse(res.stdout);
  return (Array.isArray(parsed) ? parsed[0] : parsed) as PoolView;
}

async function nicsOf(node: ClusterNode): Promise<NicView[]> {
  const res = await node.admin(["nic", "ls", "-o", "json"]);
  assert.equal(res.code, 0, res.stderr);
  return JSON.parse(res.stdout) as NicView[];
}

/** Waits for an event with `reason` on the pod, as `kubectl get events` shows it. */
async function eventOn(cp: ControlPlane, namespace: string, pod: string, reason: string) {
  return await waitFor(
    `event ${reason} on ${namespace}/${pod}`,
    async () => (await cp.eventsOn(namespace, pod)).find((e) => e.reason === reason),
    { timeoutMs: 15_000, intervalMs: 250 },
  );
}

async function nodeAnnotation(cp: ControlPlane, node: string, key: string) {
  const n = await cp.getJson<{ metadata: { annotations?: Record<string, string> } }>([
    "node",
    node,
  ]);
  return n.metadata.annotations?.[key];
}

function cniConfig(): string {
  return '{"cniVersion":"1.0.0","name":"hostnic","plugins":[{"type":"hostnic"}]}';
}

/** An ADD as the kubelet makes it, returning the outcome (a failed sandbox is DELeted again). */
async function tryAdd(
  c: Cluster,
  node: ClusterNode,
  name: string,
  args = `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${name}`,
): Promise<CniOutcome> {
  const netns = `${c.prefix}-p-${name}`;
  await runner.run(["ip", "netns", "add", netns]);
  c.podNamespaces.add(netns);
  const path = `/run/netns/${netns}`;
  const res = await node.cni("ADD", { containerId: `ctr-${name}`, netns: path, args });
  if (res.code !== 0) {
    const del = await node.cni("DEL", { containerId: `ctr-${name}`, netns: path, args });
    assert.equal(del.code, 0, `DEL after a failed ADD: ${del.stdout}`);
    await runner.run(["ip", "netns", "del", netns]).catch(() => {});
    c.podNamespaces.delete(netns);
  }
  return res;
}

async function mustDel(pod: Pod): Promise<void> {
  const res = await pod.node.delPod(pod);
  assert.equal(res.code, 0, `DEL of ${pod.name}: ${res.stdout} ${res.stderr}`);
}

Deno.test({
  name: "the daemon with Kubernetes: node vxnets, ConfigMap, pod annotations, events",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    // Precondition: without --config the daemons look here first; it must not exist.
    await assert.rejects(Deno.stat(DEFAULT_CONFIG_PATH), Deno.errors.NotFound);

    await using c = await Cluster.start({
      nodes: NODES.length,
      prefix: "kb",
      master: true,
      startDaemons: false,
      configFile: false,
      vxnets: [],
      jobLatencyMs: 100,
    });
    await using cp = await ControlPlane.start(c);
    await cp.installHostnic();
    await cp.setHostnicConfig({ hostnic: daemonConfig(2), "hostnic-cni": cniConfig() });
    // node-0 runs no daemon; its hand-set annotation is kept and takes a place in that vxnet.
    await cp.addNode("node-0", { [NODE_ANNOTATION_VXNET]: POD_VXNET });
    for (const n of NODES) await cp.addNode(n);
    const proxy = await cp.faultProxy();
    const kubeconfig = await cp.serviceAccountKubeconfig("kube-system", "hostnic-node", {
      server: proxy.server,
    });
    await Promise.all(
      c.nodes.map((node, i) =>
        node.startDaemon(["--kubeconfig", kubeconfig, "--node-name", NODES[i]], {
          env: { POD_NAMESPACE: "kube-system", POD_NAME: `hostnic-${NODES[i]}` },
        })
      ),
    );
    await Promise.all(c.nodes.map((node) => node.waitReady({ free: 1 })));
    const n1 = c.nodes[0];

    await t.step("nodes get vxnets in name order, 4 per vxnet with maxNic 63", async () => {
      // floor(252 / 63) = 4 nodes per vxnet: node-0 (by hand) + node-1..3 fill the first.
      const want = [POD_VXNET, POD_VXNET, POD_VXNET, OTHER_VXNET, OTHER_VXNET];
      const annotated = await Promise.all(
        NODES.map((n) => nodeAnnotation(cp, n, NODE_ANNOTATION_VXNET)),
      );
      assert.deepEqual(annotated, want);
      assert.equal(await nodeAnnotation(cp, "node-0", NODE_ANNOTATION_VXNET), POD_VXNET);
      const pooled = await Promise.all(c.nodes.map(async (n) => (await poolOf(n)).vxnet));
      assert.deepEqual(pooled, want, "each daemon pools the vxnet its node is annotated with");
    });

    await t.step("the ConfigMap's values are in effect (no config file)", async () => {
      const p = await poolOf(n1);
      assert.equal(p.poolLow, 1);
      assert.equal(p.poolHigh, 2);
      assert.equal(p.maxNic, 63);
    });

    await t.step("the node carries its pool health", async () => {
      const health = await waitFor("pool annotation on node-1", async () => {
        const text = await nodeAnnotation(cp, "node-1", NODE_ANNOTATION_POOL);
        const h = text ? JSON.parse(text) : undefined;
        return h?.ready && h.total >= 1 ? h : undefined;
      }, { timeoutMs: 15_000, intervalMs: 250 });
      assert.equal(health.vxnet, POD_VXNET);
      assert.equal(typeof health.free, "number");
      assert.equal(typeof health.inuse, "number");
    });

    await t.step("a pod the API server does not know gets a pool NIC (CNI_ARGS only)", async () => {
      const p = await n1.addPod("kb-plain");
      try {
        assert.ok(inPodVxnet(p.ip), p.ip);
      } finally {
        await mustDel(p);
      }
    });

    await t.step("annotations drive vxnet, fixed IP and passthrough", async () => {
      await cp.addPod({
        name: "kb-vx",
        node: "node-1",
        annotations: { [ANNOTATION_VXNET]: OTHER_VXNET },
      });
      await cp.addPod({
        name: "kb-fixed",
        node: "node-1",
        annotations: { [ANNOTATION_VXNET]: POD_VXNET, [ANNOTATION_IP]: "172.30.9.77" },
      });
      await cp.addPod({
        name: "kb-pt",
        node: "node-1",
        annotations: { [ANNOTATION_TYPE]: "passthrough" },
      });
      const vx = await n1.addPod("kb-vx");
      const fixed = await n1.addPod("kb-fixed");
      const pt = await n1.addPod("kb-pt");
      try {
        assert.ok(inOtherVxnet(vx.ip), `kb-vx got ${vx.ip}`);
        assert.equal(fixed.ip, "172.30.9.77");
        const nics = await nicsOf(n1);
        assert.equal(nics.find((n) => n.ip === vx.ip)?.dedicated, true);
        assert.equal(nics.find((n) => n.ip === fixed.ip)?.dedicated, true);
        const ptNic = nics.find((n) => n.ip === pt.ip);
        assert.ok(ptNic, "the passthrough pod's NIC is listed");
        const links = JSON.parse(
          (await runner.run(["ip", "-j", "link", "show", "dev", "eth0"], { netns: pt.netns }))
            .stdout,
        ) as { address: string }[];
        assert.equal(links[0].address, ptNic.id, "eth0 in the pod is the cloud NIC itself");
      } finally {
        await mustDel(vx);
        await mustDel(fixed);
        await mustDel(pt);
      }
    });

    await t.step("an invalid annotation fails the ADD by name, with an event", async () => {
      await cp.addPod({
        name: "kb-bad",
        node: "node-1",
        annotations: { [ANNOTATION_VXNET]: "vxnet-Bad!" },
      });
      const res = await tryAdd(c, n1, "kb-bad");
      assert.notEqual(res.code, 0);
      assert.equal(res.json?.code, 103, res.stdout);
      assert.match(String(res.json?.msg), /hostnic\.network\.kubesphere\.io\/vxnet/);
      assert.ok(!res.stdout.includes("    at "), "no stack trace");
      const ev = await eventOn(cp, "default", "kb-bad", "InvalidAnnotation");
      assert.equal(ev.type, "Warning");
      assert.match(ev.message, /hostnic\.network\.kubesphere\.io\/vxnet/);
      assert.match(ev.message, /Fix or remove the annotation/);
    });

    await t.step("CNI_ARGS that contradict an annotation are refused, with an event", async () => {
      await cp.addPod({
        name: "kb-conflict",
        node: "node-1",
        annotations: { [ANNOTATION_VXNET]: POD_VXNET },
      });
      const res = await tryAdd(
        c,
        n1,
        "kb-conflict",
        `K8S_POD_NAMESPACE=default;K8S_POD_NAME=kb-conflict;${ANNOTATION_VXNET}=${OTHER_VXNET}`,
      );
      assert.equal(res.json?.code, 103, res.stdout);
      assert.match(String(res.json?.msg), /annotation "hostnic\.network\.kubesphere\.io\/vxnet"/);
      await eventOn(cp, "default", "kb-conflict", "ConflictingNetworkRequest");
    });

    await t.step("a fixed IP outside the vxnet fails in the cloud, with an event", async () => {
      await cp.addPod({
        name: "kb-outside",
        node: "node-1",
        annotations: { [ANNOTATION_VXNET]: POD_VXNET, [ANNOTATION_IP]: "172.30.16.50" },
      });
      const res = await tryAdd(c, n1, "kb-outside");
      assert.notEqual(res.code, 0, res.stdout);
      const ev = await eventOn(cp, "default", "kb-outside", "CloudApiError");
      assert.match(ev.message, /172\.30\.16\.50/);
      assert.match(ev.message, /fixed IP must be free and inside/);
    });

    await t.step("while the API blinks a pod is networked, then told what it missed", async () => {
      await cp.addPod({
        name: "kb-blink",
        node: "node-1",
        annotations: { [ANNOTATION_VXNET]: OTHER_VXNET },
      });
      await proxy.inject({
        method: "GET",
        path: "/api/v1/namespaces/default/pods/kb-blink($|\\?)",
        status: 503,
        reason: "ServiceUnavailable",
        message: "the API server is restarting",
        // Every attempt of the client's retries (lib/k8s/transport.ts) meets it.
        times: DEFAULT_RETRY.maxAttempts,
      });
      const p = await n1.addPod("kb-blink");
      assert.equal(
        (await proxy.stats()).fired,
        DEFAULT_RETRY.maxAttempts,
        "the injected 503 was served to every attempt",
      );
      try {
        assert.ok(inPodVxnet(p.ip), `networked from the node's pool: ${p.ip}`);
        const ev = await eventOn(cp, "default", "kb-blink", "AnnotationsNotApplied");
        assert.match(ev.message, /vxnet=vxnet-tbother/);
        assert.match(ev.message, /Delete the pod/);
      } finally {
        await mustDel(p);
      }
    });

    await t.step("the API server restarts; the daemons' watches carry on", async () => {
      const before = (await proxy.stats()).byPath["/api/v1/pods"] ?? 0;
      await cp.restartApiserver();
      // The pod watch (GC's live pods) and the ConfigMap watch reconnect: the two steps below
      // only pass if both deliver changes made after the restart.
      await waitFor("the pod watch is re-established", async () => {
        return ((await proxy.stats()).byPath["/api/v1/pods"] ?? 0) > before;
      }, { timeoutMs: 60_000, intervalMs: 250 });
    });

    await t.step("a pod deleted in Kubernetes without a DEL is released by GC", async () => {
      await cp.addPod({ name: "kb-gone", node: "node-1" });
      const p = await n1.addPod("kb-gone");
      const nic = (await nicsOf(n1)).find((x) => x.ip === p.ip);
      assert.equal(nic?.state, "inuse");
      // No kubelet runs it, so only a forced delete removes the object at once, as a lost DEL does.
      await cp.kubectlOk([
        "-n",
        "default",
        "delete",
        "pod",
        "kb-gone",
        "--force",
        "--grace-period=0",
      ]);
      await waitFor("the GC loop released it", async () => {
        const r = await n1.admin(["pod", "ls", "-o", "json"]);
        return !(JSON.parse(r.stdout) as { pod?: string }[]).some((x) =>
          x.pod === "default/kb-gone"
        );
      }, { timeoutMs: 30_000, intervalMs: 500 });
      assert.match(
        n1.tail(),
        /release-pod default\/kb-gone\/eth0: pod default\/kb-gone no longer exists in Kubernetes/,
      );
      const back = (await nicsOf(n1)).find((x) => x.id === nic!.id);
      assert.ok(!back || back.state === "free", `NIC ${nic!.id} is ${back?.state}`);
      await runner.run(["ip", "netns", "del", p.netns]).catch(() => {});
      c.podNamespaces.delete(p.netns);
    });

    await t.step("a ConfigMap change is announced; it applies after a restart", async () => {
      await cp.setHostnicConfig({ hostnic: daemonConfig(3), "hostnic-cni": cniConfig() });
      const ev = await eventOn(cp, "kube-system", "hostnic-node-1", "ConfigChanged");
      assert.match(ev.message, /kubectl -n kube-system rollout restart ds\/hostnic-node/);
      assert.match(ev.message, /"hostnic"/);
      await waitFor("restartNeeded in the pool annotation", async () => {
        const text = await nodeAnnotation(cp, "node-1", NODE_ANNOTATION_POOL);
        return text && JSON.parse(text).restartNeeded;
      }, { timeoutMs: 15_000, intervalMs: 250 });
      assert.equal((await poolOf(n1)).poolHigh, 2, "no live reload");
    });
  },
});
