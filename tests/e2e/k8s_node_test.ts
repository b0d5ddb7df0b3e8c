/**
 * hostnic on a real Kubernetes node, installed as users install it: containerd + kubelet +
 * kube-proxy (lib/testbed/node.ts) in a simulated instance, registered to the real control plane
 * (lib/testbed/kube.ts) in the master instance; images built here (lib/testbed/images.ts, hostnic's
 * from the repository's Dockerfile); hostnic from `kubectl apply -f deploy/hostnic.yaml` + the
 * Secret step of docs/install.md; pods from kubectl. Checked: the DaemonSet's init container
 * installs plugin and conflist into the node's CNI directories, its probes go green, the node
 * turns Ready; a Deployment's pods get pod-vxnet addresses, reach the gateway and a pod on another
 * node, and are reached from the master (outside the cluster); annotations on kubectl-made pods;
 * Services through kube-proxy. Afterwards nothing is left: no process, mount, namespace or file.
 */
import assert from "node:assert/strict";
import { ANNOTATION_IP, ANNOTATION_TYPE, ANNOTATION_VXNET } from "../../lib/k8s/annotations.ts";
import { Cluster, POD_GATEWAY, POD_VXNET } from "../../lib/testbed/cluster.ts";
import { busyboxImage, hostnicImage, pauseImage } from "../../lib/testbed/images.ts";
import { ControlPlane } from "../../lib/testbed/kube.ts";
import { RealNode } from "../../lib/testbed/node.ts";
import { waitFor } from "../helpers/wait.ts";

import {
  busyboxDeployment,
  httpGet,
  inPodVxnet,
  linkStats,
  mountPoints,
  OTHER_VXNET,
  podNic,
  podsOf,
  reachAll,
  REPO,
  runner,
  startPing,
  waitAvailable,
} from "./k8s_node_helpers.ts";

Deno.test({
  name: "a real node: kubelet + containerd + kube-proxy, hostnic from its DaemonSet, kubectl pods",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const mountsBefore = mountPoints();
    const machinePaths = [
      "/var/lib/kubelet",
      "/var/lib/hostnic",
      "/etc/qingcloud",
      "/opt/cni/bin",
      "/var/lib/cni",
      "/run/hostnic",
      "/var/lib/containerd",
      "/run/containerd",
    ];
    const absentBefore: string[] = [];
    for (const p of machinePaths) if (!(await Deno.stat(p).catch(() => null))) absentBefore.push(p);
    const cgroupsBefore = await Deno.stat("/sys/fs/cgroup/memory/k8s.io").catch(() => null);
    const log = (line: string) => console.log(`    ${line}`);
    const t0 = performance.now();
    const pause = await pauseImage();
    const busybox = await busyboxImage();
    const hostnic = await hostnicImage({ log });
    for (const img of [pause, busybox, hostnic]) {
      log(`image ${img.ref}: ${img.built ? `built in ${img.seconds.toFixed(1)} s` : "cached"}`);
    }
    let leftDir = "";
    let leftNetns: string[] = [];
    let nodeMntns = "";
    let nodeMntIno = 0;
    {
      await using c = await Cluster.start({
        nodes: 2,
        prefix: "rn",
        master: true,
        startDaemons: false,
        configFile: false,
        vxnets: [],
        jobLatencyMs: 100,
      });
      leftDir = c.dir;
      await using cp = await ControlPlane.start(c);
      const t1 = performance.now();
      await using n1 = await RealNode.start(cp, c.nodes[0], {
        name: "node-1",
        images: [{ archive: pause.archive }, { archive: busybox.archive }, {
          archive: hostnic.archive,
        }],
      });
      nodeMntns = n1.mntns;
      nodeMntIno = (await Deno.stat(n1.mntns)).ino ?? 0;
      log(`real node node-1 registered in ${((performance.now() - t1) / 1000).toFixed(1)} s`);
      leftNetns = [c.nodes[0].netns];

      await t.step(
        "the kubelet registers the node; NotReady until a network is installed",
        async () => {
          const node = await cp.getJson<{
            status: {
              addresses: { type: string; address: string }[];
              nodeInfo: Record<string, string>;
            };
          }>(["node", "node-1"]);
          assert.ok(
            node.status.addresses.some((a) => a.address === n1.ip),
            JSON.stringify(node.status.addresses),
          );
          assert.match(node.status.nodeInfo.containerRuntimeVersion, /^containerd:\/\/1\.6/);
          assert.equal(node.status.nodeInfo.kubeletVersion, "v1.34.4");
          // Its own UTS namespace: the hostname is the node name (hostNetwork pods see it).
          assert.equal((await n1.exec(["hostname"])).stdout.trim(), "node-1");
        },
      );

      await t.step(
        "hostnic installed as docs/install.md says; probes green; node Ready",
        async () => {
          // docs/install.md: "set pool.vxNets or plan to annotate the nodes" — we annotate.
          await cp.kubectlOk([
            "annotate",
            "node",
            "node-1",
            `${ANNOTATION_VXNET}=${POD_VXNET}`,
          ]);
          const diffs = await cp.installHostnic({ credentials: n1.credentials });
          diffs.push(
            `image hostnic:0.1.0 = ${hostnic.archive} (Dockerfile target source), imported with ctr`,
          );
          for (const d of diffs) log(`differs from docs/install.md: ${d}`);
          const t2 = performance.now();
          await cp.kubectlOk([
            "-n",
            "kube-system",
            "rollout",
            "status",
            "daemonset/hostnic-node",
            "--timeout=240s",
          ]).catch(async (err) => {
            const pods = await cp.kubectl([
              "-n",
              "kube-system",
              "describe",
              "pods",
              "-l",
              "app=hostnic-node",
            ]);
            throw new Error(`${err.message}\n${pods.stdout}\nkubelet: ${n1.logTail("kubelet")}`);
          });
          log(`DaemonSet rolled out in ${((performance.now() - t2) / 1000).toFixed(1)} s`);
          const conflist = await Deno.readTextFile(
            `${n1.hostDir("/etc/cni/net.d")}/10-hostnic.conflist`,
          );
          assert.match(conflist, /"type": ?"hostnic"/);
          await Deno.stat(`${n1.hostDir("/opt/cni/bin")}/hostnic`);
          await waitFor("node-1 Ready", async () => {
            const n = await cp.getJson<
              { status: { conditions: { type: string; status: string }[] } }
            >([
              "node",
              "node-1",
            ]);
            return n.status.conditions.some((c) => c.type === "Ready" && c.status === "True");
          }, { timeoutMs: 60_000, intervalMs: 500 });
        },
      );

      await t.step(
        "a Deployment's pods get pod-vxnet IPs, reach the gateway, are reached from outside",
        async () => {
          await cp.apply(busyboxDeployment({ name: "web", replicas: 3, node: "node-1" }));
          await waitAvailable(cp, "web", { node: n1 });
          log((await cp.kubectlOk(["get", "pods", "-o", "wide"])).trimEnd());
          const pods = await podsOf(cp, "web");
          assert.equal(pods.length, 3);
          for (const p of pods) {
            assert.ok(inPodVxnet(p.status.podIP ?? ""), `${p.metadata.name}: ${p.status.podIP}`);
            const ping = await cp.kubectl([
              "exec",
              p.metadata.name,
              "--",
              "ping",
              "-c",
              "2",
              "-W",
              "2",
              POD_GATEWAY,
            ]);
            assert.equal(
              ping.code,
              0,
              `${p.metadata.name} → gateway: ${ping.stdout}${ping.stderr}`,
            );
            assert.ok(await c.ping(c.master!.netns, p.status.podIP!), `master → ${p.status.podIP}`);
          }
        },
      );

      // A second real kubelet on the second instance: the DaemonSet follows it there.
      const t3 = performance.now();
      await using n2 = await RealNode.start(cp, c.nodes[1], {
        name: "node-2",
        images: [{ archive: pause.archive }, { archive: busybox.archive }, {
          archive: hostnic.archive,
        }],
      });
      leftNetns.push(c.nodes[1].netns);
      await cp.kubectlOk(["annotate", "node", "node-2", `${ANNOTATION_VXNET}=${POD_VXNET}`]);

      await t.step("a second real node: hostnic's DaemonSet runs there too", async () => {
        await waitFor("node-2 Ready", async () => {
          const n = await cp.getJson<
            { status: { conditions: { type: string; status: string }[] } }
          >(
            ["node", "node-2"],
          );
          return n.status.conditions.some((c) => c.type === "Ready" && c.status === "True");
        }, { timeoutMs: 120_000, intervalMs: 500 });
        await cp.kubectlOk([
          "-n",
          "kube-system",
          "rollout",
          "status",
          "daemonset/hostnic-node",
          "--timeout=180s",
        ]);
        log(
          `second real node Ready with hostnic in ${
            ((performance.now() - t3) / 1000).toFixed(1)
          } s`,
        );
      });

      await t.step("a pod on node-1 reaches a pod on node-2 (pod IPs are VPC IPs)", async () => {
        await cp.apply(busyboxDeployment({ name: "far", replicas: 1, node: "node-2" }));
        await waitAvailable(cp, "far", { node: n2 });
        const [far] = await podsOf(cp, "far");
        assert.ok(inPodVxnet(far.status.podIP ?? ""), `far: ${far.status.podIP}`);
        const [near] = await podsOf(cp, "web");
        const ping = await cp.kubectl([
          "exec",
          near.metadata.name,
          "--",
          "ping",
          "-c",
          "2",
          "-W",
          "2",
          far.status.podIP!,
        ]);
        assert.equal(
          ping.code,
          0,
          `${near.status.podIP} → ${far.status.podIP}: ${ping.stdout}${ping.stderr}`,
        );
      });

      await t.step(
        "Services through kube-proxy: ClusterIP from a pod, NodePort from the master",
        async () => {
          await cp.apply(
            busyboxDeployment({
              name: "svc-a",
              replicas: 1,
              node: "node-1",
              labels: { tier: "svc" },
            }),
          );
          await cp.apply(
            busyboxDeployment({
              name: "svc-b",
              replicas: 1,
              node: "node-2",
              labels: { tier: "svc" },
            }),
          );
          await waitAvailable(cp, "svc-a", { node: n1 });
          await waitAvailable(cp, "svc-b", { node: n2 });
          const backends = new Set([
            ...(await podsOf(cp, "svc-a")).map((p) => p.metadata.name),
            ...(await podsOf(cp, "svc-b")).map((p) => p.metadata.name),
          ]);
          await cp.apply(JSON.stringify({
            apiVersion: "v1",
            kind: "Service",
            metadata: { name: "svc", namespace: "default" },
            spec: {
              type: "NodePort",
              selector: { tier: "svc" },
              ports: [{ port: 80, targetPort: 8080 }],
            },
          }));
          const svc = await cp.getJson<
            { spec: { clusterIP: string; ports: { nodePort: number }[] } }
          >(
            ["service", "svc"],
          );
          const [client] = await podsOf(cp, "web");
          const seen = new Set<string>();
          let last = "";
          await waitFor("both backends through the ClusterIP", async () => {
            const r = await cp.kubectl([
              "exec",
              client.metadata.name,
              "--",
              "sh",
              "-c",
              `for i in 1 2 3 4 5 6 7 8; do ${httpGet(svc.spec.clusterIP, 80)}; echo; done`,
            ]);
            for (const line of r.stdout.split("\n")) {
              if (backends.has(line.trim())) seen.add(line.trim());
            }
            last = `${r.stdout}${r.stderr}`;
            return seen.size === 2;
          }, { timeoutMs: 60_000, intervalMs: 500 }).catch((err) => {
            throw new Error(
              `${err.message}: answered by [${[...seen]}] of [${[...backends]}], client ` +
                `${client.status.podIP}; last attempt: ${last}`,
            );
          });
          const port = svc.spec.ports[0].nodePort;
          const fromMaster = new Set<string>();
          await waitFor(`NodePort ${n1.ip}:${port} from the master`, async () => {
            const r = await new Deno.Command("nsenter", {
              args: [`--net=/run/netns/${c.master!.netns}`, "sh", "-c", httpGet(n1.ip, port)],
              stdout: "piped",
              stderr: "null",
            }).output();
            const name = new TextDecoder().decode(r.stdout).trim();
            if (backends.has(name)) fromMaster.add(name);
            return fromMaster.size === 2;
          }, { timeoutMs: 60_000, intervalMs: 200 });
          log(
            `ClusterIP ${svc.spec.clusterIP} answered by ${
              [...seen].join(", ")
            }; NodePort ${port} by ${[...fromMaster].join(", ")}`,
          );
        },
      );

      await t.step("without hairpin, same-node pod traffic stays on the node", async () => {
        const [client] = await podsOf(cp, "web");
        const [backend] = await podsOf(cp, "svc-a");
        const nic = await podNic(n1, client.status.podIP!);
        const before = await linkStats(n1, nic);
        const ping = await cp.kubectl([
          "exec",
          client.metadata.name,
          "--",
          "ping",
          "-c",
          "20",
          "-i",
          "0.2",
          "-W",
          "2",
          backend.status.podIP!,
        ]);
        assert.equal(ping.code, 0, `${ping.stdout}${ping.stderr}`);
        const after = await linkStats(n1, nic);
        log(`no hairpin: 20 pings to a same-node pod: ${nic} tx +${after.tx - before.tx}`);
        assert.ok(after.tx - before.tx < 20, "the requests did not leave through the NIC");
      });

      await t.step(
        "day 2: hairpin on in hostnic-cfg-cm + rollout restart; a pod keeps answering",
        async () => {
          const [watched] = await podsOf(cp, "web");
          const cm = await cp.getJson<{ data: Record<string, string> }>([
            "-n",
            "kube-system",
            "configmap",
            "hostnic-cfg-cm",
          ]);
          const cni = JSON.parse(cm.data["hostnic-cni"]);
          cni.plugins[0].hairpin = true;
          const ping = startPing(c.master!.netns, watched.status.podIP!);
          await cp.kubectlOk([
            "-n",
            "kube-system",
            "patch",
            "configmap",
            "hostnic-cfg-cm",
            "--type=merge",
            "-p",
            JSON.stringify({ data: { "hostnic-cni": JSON.stringify(cni, null, 2) } }),
          ]);
          const t4 = performance.now();
          await cp.kubectlOk(["-n", "kube-system", "rollout", "restart", "daemonset/hostnic-node"]);
          await cp.kubectlOk([
            "-n",
            "kube-system",
            "rollout",
            "status",
            "daemonset/hostnic-node",
            "--timeout=240s",
          ]);
          const { sent, got } = await ping.stop();
          log(
            `rollout restart took ${((performance.now() - t4) / 1000).toFixed(1)} s; pings to ` +
              `${watched.status.podIP} from the master meanwhile: ${sent} sent, ${sent - got} lost`,
          );
          assert.ok(sent >= 10, `only ${sent} pings sent`);
          assert.ok(got >= sent * 0.9, `${sent - got} of ${sent} pings lost during the restart`);
          for (const n of [n1, n2]) {
            const conf = JSON.parse(
              await Deno.readTextFile(`${n.hostDir("/etc/cni/net.d")}/10-hostnic.conflist`),
            );
            assert.equal(conf.plugins[0].hairpin, true, `${n.name}: the new value is installed`);
          }
        },
      );

      await t.step(
        "hairpin: same-node pod traffic leaves through the pod's NIC and comes back",
        async () => {
          // Pods made after the change get the hairpin datapath.
          await cp.kubectlOk(["rollout", "restart", "deployment/web", "deployment/svc-a"]);
          await waitAvailable(cp, "web", { node: n1 });
          await waitAvailable(cp, "svc-a", { node: n1 });
          const web = (await podsOf(cp, "web")).filter((p) => !p.metadata.deletionTimestamp);
          const [backend] = (await podsOf(cp, "svc-a")).filter((p) =>
            !p.metadata.deletionTimestamp
          );
          const client = web[0];
          const nic = await podNic(n1, client.status.podIP!);
          const before = await linkStats(n1, nic);
          const ping = await cp.kubectl([
            "exec",
            client.metadata.name,
            "--",
            "ping",
            "-c",
            "20",
            "-i",
            "0.2",
            "-W",
            "2",
            backend.status.podIP!,
          ]);
          assert.equal(ping.code, 0, `${ping.stdout}${ping.stderr}`);
          const after = await linkStats(n1, nic);
          log(
            `hairpin: ${client.status.podIP} → ${backend.status.podIP} (same node), 20 pings: ` +
              `${nic} tx +${after.tx - before.tx}, rx +${after.rx - before.rx} packets`,
          );
          assert.ok(after.tx - before.tx >= 20, "the requests left through the client's NIC");
          assert.ok(after.rx - before.rx >= 20, "the replies came back through the client's NIC");
          const svc = await cp.getJson<{ spec: { clusterIP: string } }>(["service", "svc"]);
          const backends = new Set([
            backend.metadata.name,
            ...(await podsOf(cp, "svc-b")).map((p) => p.metadata.name),
          ]);
          await reachAll(cp, client.metadata.name, svc.spec.clusterIP, backends);
        },
      );

      await t.step("kubectl delete pod returns its NIC to the pool", async () => {
        const [victim] = (await podsOf(cp, "web")).filter((p) => !p.metadata.deletionTimestamp);
        const ip = victim.status.podIP!;
        const nic = await podNic(n1, ip);
        const { mac } = await linkStats(n1, nic);
        await cp.kubectlOk(["delete", "pod", victim.metadata.name, "--wait=true"]);
        await waitFor(`the NIC ${mac} of ${ip} back in the pool`, async () => {
          const links = JSON.parse(
            (await runner.run(["ip", "-n", n1.instance.netns, "-j", "link"])).stdout,
          ) as { ifname: string; address: string }[];
          const rules = (await runner.run(["ip", "-n", n1.instance.netns, "rule"])).stdout;
          const link = links.find((l) => l.address === mac);
          return link !== undefined && !link.ifname.startsWith("hostnic_") &&
            !rules.includes(`${ip} `);
        }, { timeoutMs: 30_000, intervalMs: 250 });
      });

      await t.step("annotations on kubectl-made pods: vxnet + fixed IP, passthrough", async () => {
        const fixed = "172.30.16.77";
        await cp.apply(busyboxDeployment({
          name: "pinned",
          replicas: 1,
          node: "node-1",
          annotations: { [ANNOTATION_VXNET]: OTHER_VXNET, [ANNOTATION_IP]: fixed },
        }));
        await cp.apply(busyboxDeployment({
          name: "passthru",
          replicas: 1,
          node: "node-1",
          annotations: { [ANNOTATION_TYPE]: "passthrough" },
        }));
        await waitAvailable(cp, "pinned", { node: n1 });
        await waitAvailable(cp, "passthru", { node: n1 });
        const [p] = await podsOf(cp, "pinned");
        assert.equal(p.status.podIP, fixed);
        assert.ok(await c.ping(c.master!.netns, fixed), `master → ${fixed}`);
        // passthrough: the NIC itself is the pod's eth0 (its MAC is a cloud NIC's, 52:54:…).
        const [pt] = await podsOf(cp, "passthru");
        assert.ok(inPodVxnet(pt.status.podIP ?? ""), `passthrough: ${pt.status.podIP}`);
        const link = await cp.kubectlOk([
          "exec",
          pt.metadata.name,
          "--",
          "cat",
          "/sys/class/net/eth0/address",
        ]);
        assert.match(link.trim(), /^52:54:/);
        assert.ok(await c.ping(c.master!.netns, pt.status.podIP!), `master → ${pt.status.podIP}`);
      });

      await t.step("clean-up: Deployments deleted through the API", async () => {
        await cp.kubectlOk(["delete", "service", "svc", "--ignore-not-found"]);
        await cp.kubectlOk([
          "delete",
          "deployment",
          "web",
          "pinned",
          "passthru",
          "far",
          "svc-a",
          "svc-b",
          "--ignore-not-found",
          "--wait=true",
        ]);
        await waitFor("pods gone", async () => (await podsOf(cp, "web")).length === 0, {
          timeoutMs: 60_000,
          intervalMs: 500,
        });
      });
      await t.step(
        "uninstall as docs/install.md says: kubectl delete -f, then hostnic uninstall",
        async () => {
          await cp.kubectlOk(["delete", "-f", `${REPO}deploy/hostnic.yaml`, "--wait=true"]);
          await waitFor("the DaemonSet's pods gone", async () => {
            const r = await cp.getJson<{ items: unknown[] }>([
              "pods",
              "-n",
              "kube-system",
              "-l",
              "app=hostnic-node",
            ]);
            return r.items.length === 0;
          }, { timeoutMs: 60_000, intervalMs: 500 });
          for (const n of [n1, n2]) {
            // kubectl delete leaves no pod rules or HOSTNIC chains; the files stay (Uninstall step 3).
            const rules = (await runner.run(["ip", "-n", n.instance.netns, "rule"])).stdout;
            assert.doesNotMatch(rules, /^15(35|36):/m, `${n.name}: pod rules left`);
            const ipt = await n.exec(["iptables-save"]);
            assert.doesNotMatch(ipt.stdout, /HOSTNIC/, `${n.name}: HOSTNIC chains left`);
            const conf = `${n.hostDir("/etc/cni/net.d")}/10-hostnic.conflist`;
            await Deno.stat(conf);
            const r = await n.exec(["/opt/cni/bin/hostnic", "uninstall"]);
            assert.equal(r.code, 0, `${n.name}: hostnic uninstall: ${r.stdout}${r.stderr}`);
            await assert.rejects(Deno.stat(conf), Deno.errors.NotFound);
            await assert.rejects(
              Deno.stat(`${n.hostDir("/opt/cni/bin")}/hostnic`),
              Deno.errors.NotFound,
            );
          }
        },
      );
      log(`total ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
    // Everything is gone: mounts, node processes, namespaces, files.
    // (Other tests may run at the same time: only what this test could have made counts.)
    const mountsAfter = [...mountPoints()].filter((m) =>
      !mountsBefore.has(m) && (m.startsWith(leftDir) || m.startsWith("/run/netns/rn-"))
    );
    assert.deepEqual(mountsAfter, [], "mounts left behind");
    const netns = new Set<string>();
    for await (const e of Deno.readDir("/run/netns")) netns.add(e.name);
    for (const n of leftNetns) assert.ok(!netns.has(n), `namespace ${n} left`);
    await assert.rejects(Deno.stat(leftDir), Deno.errors.NotFound);
    const inNodeNs: number[] = [];
    for await (const e of Deno.readDir("/proc")) {
      if (!/^\d+$/.test(e.name)) continue;
      const link = await Deno.readLink(`/proc/${e.name}/ns/mnt`).catch(() => "");
      if (link === `mnt:[${nodeMntIno}]`) inNodeNs.push(Number(e.name));
    }
    assert.deepEqual(inNodeNs, [], "processes left in the node's mount namespace");
    await assert.rejects(Deno.stat(nodeMntns), Deno.errors.NotFound);
    for (const p of absentBefore) {
      await assert.rejects(Deno.stat(p), Deno.errors.NotFound, `${p} was made on the machine`);
    }
    if (!cgroupsBefore) {
      await assert.rejects(Deno.stat("/sys/fs/cgroup/memory/k8s.io"), Deno.errors.NotFound);
    }
  },
});
