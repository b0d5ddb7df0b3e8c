/**
 * The product end to end: the simulator (Linux backend) as a process, one `hostnic daemon start`
 * per simulated node inside the node's namespace, pods as namespaces plumbed by the real CNI
 * plugin (a process per call, env + stdin as a runtime sends them), real packets with ping.
 * One cluster is shared by the steps (each step leaves the cluster as it found it).
 */
import assert from "node:assert/strict";
import { CommandRunner } from "../../lib/linux/exec.ts";
import type { NicView, PodView, PoolView } from "../../lib/rpc/api.ts";
import { vpcLinkName } from "../../lib/sim/linux.ts";
import { Cluster, type Pod, POD_GATEWAY } from "../../lib/testbed/cluster.ts";

const runner = new CommandRunner();

function inVxnet(ip: string): boolean {
  // 172.30.8.0/22
  const [a, b, c] = ip.split(".").map(Number);
  return a === 172 && b === 30 && c >= 8 && c <= 11;
}

async function rxPackets(netns: string, link: string): Promise<number> {
  const out = await runner.run(["ip", "-j", "-s", "link", "show", "dev", link], { netns });
  return (JSON.parse(out.stdout) as { stats64: { rx: { packets: number } } }[])[0].stats64.rx
    .packets;
}

async function nicsOf(pod: Pod): Promise<NicView[]> {
  const res = await pod.node.admin(["nic", "ls", "-o", "json"]);
  assert.equal(res.code, 0, res.stderr);
  return JSON.parse(res.stdout) as NicView[];
}

async function mustDel(pod: Pod): Promise<void> {
  const res = await pod.node.delPod(pod);
  assert.equal(res.code, 0, `DEL of ${pod.name}: ${res.stdout} ${res.stderr}`);
}

Deno.test({
  name: "daemon, pool and plugin end to end on the simulated cloud",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    // A short IP cooldown: the steps below check that released NICs are trimmed back to
    // poolHigh, which waits until their IPs have cooled (gc_test covers the default cooldown).
    await using c = await Cluster.start({
      nodes: 2,
      poolSize: 3,
      jobLatencyMs: 200,
      pool: { ipCooldown: 2 },
    });
    const [n1, n2] = c.nodes;

    await t.step("the initial fill is one CreateNics and one AttachNics per node", async () => {
      for (const n of c.nodes) {
        const p = await n.waitReady({ free: 3 });
        assert.equal(p.free, 3);
        assert.equal(p.total, 3);
      }
      const k = await c.counters();
      assert.equal(k.CreateNics, 2, JSON.stringify(k));
      assert.equal(k.AttachNics, 2, JSON.stringify(k));
    });

    await t.step(
      "pods on two nodes ping each other and the gateway through their own NICs",
      async () => {
        const a = await n1.addPod("a");
        const b = await n2.addPod("b");
        try {
          assert.notEqual(a.ip, b.ip);
          assert.ok(inVxnet(a.ip) && inVxnet(b.ip), `${a.ip} ${b.ip}`);
          assert.ok(await c.ping(a.netns, b.ip), "a → b across nodes");
          assert.ok(await c.ping(b.netns, a.ip), "b → a across nodes");
          assert.ok(await c.ping(a.netns, POD_GATEWAY), "a → vxnet gateway");

          // The pod's NIC carries its traffic: the VPC side of that NIC receives the probes, and the
          // VPC router sees them with the pod's IP as source.
          const nic = (await nicsOf(a)).find((n) => n.ip === a.ip);
          assert.ok(nic, "admin nic ls shows the pod's NIC");
          assert.equal(nic.state, "inuse");
          assert.equal(nic.pod, "default/a");
          const vpc = `${c.prefix}-vpc`;
          const port = vpcLinkName(nic.id);
          const rule = ["INPUT", "-s", a.ip, "-p", "icmp", "-m", "comment", "--comment", "e2e"];
          await runner.run(["iptables", "-w", "-I", ...rule], { netns: vpc });
          try {
            const before = await rxPackets(vpc, port);
            assert.ok(await c.ping(a.netns, POD_GATEWAY, 5));
            const after = await rxPackets(vpc, port);
            assert.ok(after - before >= 5, `port ${port} received ${after - before} packets`);
            const save = (await runner.run(["iptables-save", "-c", "-t", "filter"], { netns: vpc }))
              .stdout;
            const line = save.split("\n").find((l) => l.includes(`-s ${a.ip}/32`));
            const packets = Number(/^\[(\d+):/.exec(line ?? "")?.[1] ?? 0);
            assert.ok(packets >= 5, `VPC router counted ${packets} packets from ${a.ip}: ${line}`);
          } finally {
            await runner.run(["iptables", "-w", "-D", ...rule], { netns: vpc });
          }
        } finally {
          await mustDel(a);
          await mustDel(b);
        }
      },
    );

    await t.step("CHECK passes on a healthy pod and names the rule deleted by hand", async () => {
      const a = await n1.addPod("chk");
      try {
        const conf = n1.netConf({ prevResult: a.result });
        const ok = await n1.cni("CHECK", { containerId: a.containerId, netns: a.path, conf });
        assert.equal(ok.code, 0, ok.stdout + ok.stderr);
        await runner.run(["ip", "rule", "del", "priority", "1536", "from", a.ip], {
          netns: n1.netns,
        });
        const bad = await n1.cni("CHECK", { containerId: a.containerId, netns: a.path, conf });
        assert.equal(bad.code, 1);
        assert.match(String(bad.json?.msg), /1536/);
        assert.match(String(bad.json?.msg), new RegExp(a.ip.replace(/\./g, "\\.")));
        assert.ok(!bad.stdout.includes("    at "), "no stack trace on stdout");
      } finally {
        await mustDel(a);
      }
    });

    await t.step("a passthrough pod owns the NIC itself", async () => {
      const p = await n1.addPod("pt", {
        args:
          "K8S_POD_NAMESPACE=default;K8S_POD_NAME=pt;hostnic.network.kubesphere.io/type=passthrough",
      });
      const b = await n2.addPod("ptpeer");
      try {
        const nic = (await nicsOf(p)).find((n) => n.ip === p.ip);
        assert.ok(nic);
        const links = JSON.parse(
          (await runner.run(["ip", "-j", "link", "show", "dev", "eth0"], { netns: p.netns }))
            .stdout,
        ) as { address: string }[];
        assert.equal(links[0].address, nic.id, "eth0 in the pod is the cloud NIC (same MAC)");
        assert.ok(await c.ping(p.netns, b.ip), "passthrough pod → pod on the other node");
        assert.ok(await c.ping(p.netns, POD_GATEWAY), "passthrough pod → gateway");
      } finally {
        await mustDel(p);
        await mustDel(b);
      }
      // The NIC came back to the node and serves the next pod.
      const again = await n1.addPod("ptafter");
      try {
        assert.ok(await c.ping(again.netns, POD_GATEWAY));
      } finally {
        await n1.delPod(again);
      }
    });

    await t.step("a second interface (net1, as Multus asks) gets a second NIC", async () => {
      const p = await n2.addPod("multi");
      const args = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=multi";
      try {
        const net1 = await n2.cni("ADD", {
          containerId: p.containerId,
          netns: p.path,
          ifName: "net1",
          args,
        });
        assert.equal(net1.code, 0, net1.stdout + net1.stderr);
        const ip2 = (net1.json?.ips as { address: string }[])[0].address.split("/")[0];
        assert.notEqual(ip2, p.ip);
        const mine = (await nicsOf(p)).filter((n) => n.pod === "default/multi");
        assert.deepEqual(mine.map((n) => n.ip).sort(), [p.ip, ip2].sort());
        const links = JSON.parse(
          (await runner.run(["ip", "-4", "-j", "addr", "show"], { netns: p.netns })).stdout,
        ) as { ifname: string; addr_info: { local: string }[] }[];
        const byName = new Map(links.map((l) => [l.ifname, l.addr_info.map((a) => a.local)]));
        assert.deepEqual(byName.get("eth0"), [p.ip]);
        assert.deepEqual(byName.get("net1"), [ip2]);
        assert.ok(await c.ping(p.netns, POD_GATEWAY), "eth0 works beside net1");
        const del1 = await n2.cni("DEL", {
          containerId: p.containerId,
          netns: p.path,
          ifName: "net1",
          args,
        });
        assert.equal(del1.code, 0, del1.stdout);
        assert.ok(await c.ping(p.netns, POD_GATEWAY), "eth0 survives the DEL of net1");
      } finally {
        await n2.cni("DEL", { containerId: p.containerId, netns: p.path, ifName: "net1", args });
        await mustDel(p);
      }
    });

    await t.step(
      "a vxnet annotation and a fixed IP get a dedicated NIC, deleted on DEL",
      async () => {
        const d = await n2.addPod("ded", {
          args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=ded;" +
            "hostnic.network.kubesphere.io/vxnet=vxnet-tbother;hostnic.network.kubesphere.io/ip=172.30.16.77",
        });
        let nicId = "";
        try {
          assert.equal(d.ip, "172.30.16.77");
          const nic = (await nicsOf(d)).find((n) => n.ip === d.ip);
          assert.ok(nic?.dedicated);
          nicId = nic.id;
          assert.ok(await c.ping(d.netns, "172.30.16.1"), "dedicated pod → its vxnet's gateway");
        } finally {
          await mustDel(d);
        }
        await n2.waitPool((p) => p.detaching === 0 && p.pending === 0);
        const gone = !(await c.simNics()).some((n) => n.id === nicId);
        assert.ok(gone, `dedicated NIC ${nicId} deleted in the cloud`);
      },
    );

    await t.step("20 pods at once on a PoolSize 3 node, then DEL of all trims back", async () => {
      await n1.waitPool((p) => p.pending === 0 && p.detaching === 0);
      await c.simControl("counters/reset", {});
      const names = Array.from({ length: 20 }, (_, i) => `burst${i}`);
      const settled = await Promise.allSettled(names.map((n) => n1.addPod(n)));
      const pods = settled.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
      const failures = settled.flatMap((s) => s.status === "rejected" ? [String(s.reason)] : []);
      try {
        assert.deepEqual(failures, []);
        assert.equal(new Set(pods.map((p) => p.ip)).size, 20, "20 distinct IPs");
        const k = await c.counters();
        // Refills are batched (growing batches while ADDs wait): far fewer calls than pods.
        console.log(`burst of 20: CreateNics=${k.CreateNics} AttachNics=${k.AttachNics}`);
        assert.ok(k.CreateNics <= 12, `CreateNics=${k.CreateNics} for 20 pods`);
        assert.ok(await c.ping(pods[0].netns, pods[19].ip), "two burst pods reach each other");
      } finally {
        const dels = await Promise.all(pods.map((p) => n1.delPod(p)));
        assert.deepEqual(dels.filter((d) => d.code !== 0), []);
      }
      const pool = await n1.waitPool((p) =>
        p.inuse === 0 && p.pending === 0 && p.detaching === 0 && p.free === p.poolHigh
      );
      assert.equal(pool.free, 3);
      // Every NIC the cloud holds for this node is in the pool; nothing else is left.
      const ours = (await c.simNics()).filter((n) => n.name === `hostnic_${n1.instanceId}`);
      const pooled = (JSON.parse((await n1.admin(["nic", "ls", "-o", "json"])).stdout) as NicView[])
        .map((n) => n.id).sort();
      assert.deepEqual(ours.map((n) => n.id).sort(), pooled);
    });

    await t.step("admin pool ls -o json matches the simulator's view of the node", async () => {
      for (const n of c.nodes) {
        await n.waitPool((p) => p.pending === 0 && p.detaching === 0);
        const res = await n.admin(["pool", "ls", "-o", "json"]);
        assert.equal(res.code, 0, res.stderr);
        const pool = JSON.parse(res.stdout) as PoolView;
        const nics = JSON.parse((await n.admin(["nic", "ls", "-o", "json"])).stdout) as NicView[];
        const sim = (await c.simNics()).filter((x) =>
          x.instanceId === n.instanceId && x.role === 0
        );
        assert.equal(pool.instanceId, n.instanceId);
        assert.equal(pool.total, sim.length);
        assert.equal(pool.free, nics.filter((x) => x.state === "free").length);
        assert.deepEqual(
          nics.map((x) => `${x.id} ${x.ip} ${x.vxnet}`).sort(),
          sim.map((x) => `${x.id} ${x.privateIp} ${x.vxnetId}`).sort(),
        );
        const table = await n.admin(["pool", "ls"]);
        assert.match(table.stdout, /^INSTANCE\s+VXNET\s+FREE/);
        const pods = await n.admin(["pod", "ls", "-o", "json"]);
        assert.deepEqual(JSON.parse(pods.stdout) as PodView[], []);
      }
    });

    await t.step("metrics and health on --manageAddr", async () => {
      const out = await runner.run([
        Deno.execPath(),
        "eval",
        "for (const p of ['/metrics', '/healthz', '/readyz']) {" +
        " const r = await fetch('http://127.0.0.1:31081' + p);" +
        " console.log('== ' + p + ' ' + r.status); console.log(await r.text()); }",
      ], { netns: n1.netns });
      const text = out.stdout;
      assert.match(text, /== \/healthz 200/);
      assert.match(text, /== \/readyz 200/);
      assert.match(text, /hostnic_pool_nics\{state="free",node_name="i-tbnode1"\} 3/);
      assert.match(text, /hostnic_iaas_calls_total\{action="CreateNics",outcome="ok"/);
      assert.match(
        text,
        /hostnic_cni_request_duration_seconds_count\{[^}]*command="ADD",result="ok"\} [1-9]/,
      );
    });

    await t.step("bad requests change nothing and say why", async () => {
      await n1.waitPool((p) => p.pending === 0 && p.detaching === 0);
      const before = await n1.admin(["nic", "ls", "-o", "json"]);
      const bad = await n1.cni("ADD", {
        containerId: "ctr-bad",
        netns: "/run/netns/does-not-exist",
        args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=bad;hostnic.network.kubesphere.io/vxnet=nope",
      });
      assert.equal(bad.code, 1);
      assert.match(String(bad.json?.msg), /vxnet/);
      const after = await n1.admin(["nic", "ls", "-o", "json"]);
      assert.deepEqual(JSON.parse(after.stdout), JSON.parse(before.stdout));
    });

    await t.step("the secret key is in no log and no state file", async () => {
      // Every cluster checks this again when it closes (Cluster.close).
      const { scanned, leaks } = await c.secretLeaks();
      assert.deepEqual(leaks, []);
      assert.ok(scanned.some((p) => p.endsWith(".log")), "daemon logs were scanned");
      assert.ok(scanned.some((p) => p.includes("/state/store/")), "state files were scanned");
    });
  },
});
