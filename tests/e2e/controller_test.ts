/**
 * `hostnic controller` end to end: real controller processes against the real kube-apiserver
 * (lib/testbed/kube.ts) and the simulator, authenticated as the `hostnic-controller`
 * ServiceAccount of deploy/hostnic.yaml (so its RBAC is what allows each call), with hostnic
 * installed as docs/install.md says (Secret + `kubectl apply -f deploy/hostnic.yaml`, which also
 * brings the CRDs and the admission policy). The controllers run in this (host) namespace and
 * reach the API server through the control plane's loopback forward.
 *
 * Crash points are deterministic: `HOSTNIC_CONTROLLER_EXIT_AFTER=<step>` makes the process SIGKILL
 * itself right after the step (cmd/controller.ts), then a fresh process must converge; the
 * simulator's per-action counters prove every VIP was allocated exactly once.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { HttpIaasClient } from "../../lib/iaas/client.ts";
import { loadIaasConfig } from "../../lib/iaas/config.ts";
import { describeAllVips } from "../../lib/iaas/paginate.ts";
import { Ipam, parseIpamConfig, resolveNamespace } from "../../lib/ipam/mod.ts";
import { KubeIpamStores } from "../../lib/ipam/kube_store.ts";
import { Cluster } from "../../lib/testbed/cluster.ts";
import { ControlPlane } from "../../lib/testbed/kube.ts";
import { ControllerProc } from "../helpers/controller_proc.ts";
import { waitFor } from "../helpers/wait.ts";

const OTHER = "vxnet-tbother"; // 172.30.16.0/24, DHCP .10-.250 → usable .10-.238 (229)
const PODS = "vxnet-tbpods"; // 172.30.8.0/22, DHCP 8.10-11.250 → usable 8.10-11.238 (997)

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

async function simCounters(c: Cluster): Promise<Record<string, number>> {
  const res = await fetch(`${new URL(c.simUrl).origin}/_sim/counters`);
  return (await res.json()).counters;
}

async function simPost(c: Cluster, path: string, body: unknown): Promise<void> {
  const res = await fetch(`${new URL(c.simUrl).origin}/_sim/${path}`, {
    method: "POST",
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
}

Deno.test({
  name: "hostnic controller against the real API server and the simulator",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using c = await Cluster.start({ master: true, nodes: 1, startDaemons: false });
    await using cp = await ControlPlane.start(c);
    const procs: ControllerProc[] = [];
    let port = 31500 + Math.floor(Math.random() * 400);
    const start = (name: string, env?: Record<string, string>, args?: string[]) => {
      const p = new ControllerProc(name, {
        cluster: c,
        kubeconfig: saKubeconfig,
        port: port++,
        env,
        args,
      });
      procs.push(p);
      return p;
    };
    await using iaas = new HttpIaasClient({
      config: await loadIaasConfig(c.clientConfigFile),
      rateLimit: null,
    });
    await using stores = new KubeIpamStores({ kubeconfig: cp.hostKubeconfig });
    const vpool = () => cp.getJson<Obj>(["vxnetpool", "v-pool"]);
    const lease = () => cp.getJson<Obj>(["-n", "kube-system", "lease", "hostnic-controller"]);
    const ipamConfig = async () =>
      parseIpamConfig(
        (await cp.getJson<Obj>(["-n", "kube-system", "configmap", "hostnic-ipam-config"])).data,
      );
    const vips = (vxnet: string) =>
      describeAllVips(iaas, { vxnets: [vxnet], vipName: `hostnic_${vxnet}` });
    let saKubeconfig = "";
    let sgId = "";
    let held = { block: "", count: 0 };
    // Steps build on each other: after a failure the rest would only fail confusingly.
    let broken = false;
    const step = (name: string, fn: () => Promise<void>) =>
      t.step({
        name,
        ignore: broken,
        fn: async () => {
          try {
            await fn();
          } catch (err) {
            broken = true;
            throw err;
          }
        },
      });

    try {
      await step(
        "install: kubectl apply -f deploy/hostnic.yaml brings CRDs, policy, controller",
        async () => {
          await cp.installHostnic();
          await cp.waitCrds();
          const dep = await cp.getJson<Obj>([
            "-n",
            "kube-system",
            "deployment",
            "hostnic-controller",
          ]);
          assert.equal(dep.spec.replicas, 2);
          saKubeconfig = await cp.serviceAccountKubeconfig("kube-system", "hostnic-controller", {
            server: `https://127.0.0.1:${cp.hostPort}`,
          });
        },
      );

      await step(
        "a bad hostnic-ipam-config is refused by kubectl apply, naming the key",
        async () => {
          const cm = (data: Record<string, string>) =>
            JSON.stringify({
              apiVersion: "v1",
              kind: "ConfigMap",
              metadata: { name: "hostnic-ipam-config", namespace: "kube-system" },
              data,
            });
          // The policy takes effect a moment after it is created: wait for the first refusal.
          const bad = await waitFor("the admission policy to refuse", async () => {
            const r = await cp.kubectl(["apply", "-f", "-"], {
              stdin: cm({ "subnet-auto-assign": "maybe" }),
            });
            if (r.code === 0) {
              await cp.kubectl(["-n", "kube-system", "delete", "configmap", "hostnic-ipam-config"]);
              return undefined;
            }
            return r;
          }, { timeoutMs: 30_000, intervalMs: 500 });
          assert.match(
            bad.stderr,
            /hostnic-ipam-config key "subnet-auto-assign" must be "on" or "off"/,
          );
          const dup = await cp.kubectl(["apply", "-f", "-"], {
            stdin: cm({
              ipam: JSON.stringify({ a: ["4100-172-30-16-0-28"], b: ["4100-172-30-16-0-28"] }),
            }),
          });
          assert.notEqual(dup.code, 0);
          assert.match(dup.stderr, /block "4100-172-30-16-0-28" is listed more than once/);
          const notJson = await cp.kubectl(["apply", "-f", "-"], { stdin: cm({ ipam: "{a: b}" }) });
          assert.notEqual(notJson.code, 0);
          assert.match(notJson.stderr, /key "ipam" must be a JSON object/);
          const none = await cp.kubectl([
            "-n",
            "kube-system",
            "get",
            "configmap",
            "hostnic-ipam-config",
          ]);
          assert.notEqual(none.code, 0, "nothing was stored");
        },
      );

      await step(
        "QKE: clusterconfig names a cluster; its security group comes from DescribeClusters",
        async () => {
          const sg = await iaas.request(
            "CreateSecurityGroup",
            { security_group_name: "qke-cluster" },
            z.object({ security_group_id: z.string() }),
          );
          await simPost(c, "clusters", {
            cluster_id: "cl-tbqke01",
            security_group_id: sg.security_group_id,
          });
          await cp.apply(JSON.stringify({
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { name: "clusterconfig", namespace: "kube-system" },
            data: { "qingcloud.yaml": "zone: tb1\nclusterID: cl-tbqke01\nuserID: usr-x\n" },
          }));
          sgId = sg.security_group_id;
        },
      );

      await step("two replicas: only the leader acts; killed, the other takes over", async () => {
        const a = start("ctl-a");
        await waitFor("a Lease holder", async () => {
          const r = await cp.kubectl([
            "-n",
            "kube-system",
            "get",
            "lease",
            "hostnic-controller",
            "-o",
            "json",
          ]);
          return (r.json as Obj | undefined)?.spec?.holderIdentity?.startsWith("ctl-a_");
        }, { timeoutMs: 30_000, intervalMs: 200 });
        const b = start("ctl-b");
        await cp.apply(JSON.stringify({
          apiVersion: "network.qingcloud.com/v1alpha1",
          kind: "VxNetPool",
          metadata: { name: "v-pool" },
          spec: { vxnets: [{ name: OTHER }], blockSize: 28 },
        }));
        const ready = await waitFor("v-pool ready", async () => {
          const v = await vpool();
          return v.status?.ready === true ? v : undefined;
        }, { timeoutMs: 60_000, intervalMs: 300 });
        assert.equal(ready.status.pools[0].subnets.length, 15);
        assert.equal(await a.metric("hostnic_controller_leader"), 1);
        assert.equal(await b.metric("hostnic_controller_leader"), 0);
        assert.equal(await b.metric('hostnic_controller_reconciles_total{result="ready"}'), 0);
        assert.equal(
          await a.metric(`hostnic_controller_vips_allocated_total{vxnet="${OTHER}"}`),
          229,
        );
        const v = await vips(OTHER);
        assert.equal(v.length, 229);
        assert.equal(new Set(v.map((x) => x.vip_addr)).size, 229);
        // The rule for the vxnet CIDR, in the cluster's group, applied.
        const sg = sgId;
        const rules = (await iaas.describeSecurityGroupRules({ securityGroup: sg })).items;
        assert.deepEqual(rules.map((r) => [r.val3, r.action, r.protocol]), [[
          "172.30.16.0/24",
          "accept",
          "all",
        ]]);
        assert.equal(
          (await iaas.describeSecurityGroups({ securityGroups: [sg] })).items[0].is_applied,
          1,
        );

        const killedAt = Date.now();
        await a.kill("SIGKILL");
        await waitFor("b to take the Lease", async () => {
          const l = await lease();
          return l.spec.holderIdentity?.startsWith("ctl-b_") &&
            await b.metric("hostnic_controller_leader") === 1;
        }, { timeoutMs: 20_000, intervalMs: 100 });
        const takeoverMs = Date.now() - killedAt;
        console.log(`takeover after SIGKILL of the leader: ${takeoverMs} ms (lease 3 s)`);
        assert.ok((await lease()).spec.leaseTransitions >= 1);
        await waitFor(
          "b reconciles",
          async () => await b.metric('hostnic_controller_reconciles_total{result="ready"}') > 0,
        );
        const st = await b.kill("SIGTERM");
        assert.equal(st.code, 0, "clean stop on SIGTERM");
        assert.equal((await lease()).spec.holderIdentity ?? "", "", "released on SIGTERM");
        const counters = await simCounters(c);
        assert.equal(counters.AllocateVips, 1, "one AllocateVips for vxnet-tbother");
        assert.equal(counters.AddSecurityGroupRules, 1);
      });

      await step(
        "killed after every step of preparing a vxnet, it converges; VIPs once",
        async () => {
          const before = await simCounters(c);
          await cp.apply(JSON.stringify({
            apiVersion: "network.qingcloud.com/v1alpha1",
            kind: "VxNetPool",
            metadata: { name: "v-pool" },
            spec: { vxnets: [{ name: OTHER }, { name: PODS }], blockSize: 28 },
          }));
          const steps = [
            "describe-vxnets",
            "allocate-vips", // after the first of four AllocateVips calls (997 addresses)
            "vips-ready",
            "sg-rule-added",
            "sg-applied",
            "ippool-created",
            "block-created",
            "status-written",
          ];
          for (const step of steps) {
            const p = start(`crash-${step}`, { HOSTNIC_CONTROLLER_EXIT_AFTER: step });
            const st = await Promise.race([
              p.child.status,
              new Promise<undefined>((r) => setTimeout(() => r(undefined), 60_000)),
            ]);
            assert.ok(
              st,
              `the controller never reached step "${step}": ${c.logTail(`ctl-crash-${step}`)}`,
            );
            assert.equal(st.signal, "SIGKILL", `killed itself after "${step}"`);
            await p.kill();
          }
          // A long period: from here on, what happens promptly is driven by watch events
          // (namespaces, v-pool, blocks), as with upstream's informers.
          const final = start("final", undefined, ["--sync-period", "600"]);
          // The last crashed process may have written "ready" already: wait for a pass of this one.
          await waitFor(
            "a ready pass of the restarted controller",
            async () =>
              await final.metric('hostnic_controller_reconciles_total{result="ready"}') >= 1,
            { timeoutMs: 90_000, intervalMs: 300 },
          ).catch((err) => {
            throw new Error(`${err.message}: ${c.logTail("ctl-final")}`);
          });
          const ready = await waitFor("v-pool ready after the crashes", async () => {
            const v = await vpool();
            return v.status?.ready === true && v.status.pools.length === 2 ? v : undefined;
          }, { timeoutMs: 90_000, intervalMs: 300 });
          const after = await simCounters(c);
          const delta = (a: string) => (after[a] ?? 0) - (before[a] ?? 0);
          assert.equal(
            delta("AllocateVips"),
            4,
            "997 addresses in 4 calls of ≤ 253, none repeated",
          );
          assert.equal(delta("AddSecurityGroupRules"), 1);
          assert.equal(delta("ReleaseVips"), 0);
          const v = await vips(PODS);
          assert.equal(v.length, 997);
          assert.equal(new Set(v.map((x) => x.vip_addr)).size, 997);
          assert.equal((await vips(OTHER)).length, 229);
          const pods = ready.status.pools.find((p: Obj) => p.name === PODS);
          assert.equal(pods.subnets.length, 63);
          const blocks = (await stores.blocks.list()).filter((b) => b.spec.pool === PODS);
          assert.equal(blocks.length, 63, "every block once");
          const cond = ready.status.conditions.find((x: Obj) => x.type === "Ready");
          assert.equal(cond.status, "True");
          const pool = await cp.getJson<Obj>(["ippool", PODS]);
          assert.equal(pool.spec.rangeStart, "172.30.8.10");
          assert.equal(pool.spec.rangeEnd, "172.30.11.238");
          await waitFor(
            "IPPool status",
            async () => (await cp.getJson<Obj>(["ippool", PODS])).status?.unallocated === 997,
          );
          void final;
        },
      );

      await step(
        "auto-assign on: a new namespace gets a free block; a full one brings another",
        async () => {
          await cp.apply(JSON.stringify({
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { name: "hostnic-ipam-config", namespace: "kube-system" },
            data: { "subnet-auto-assign": "on", ipam: "{}" },
          }));
          await cp.kubectlOk(["create", "namespace", "team-a"]);
          const first = await waitFor("team-a mapped", async () => {
            const cfg = await ipamConfig();
            return cfg.namespaces.get("team-a");
          }, { timeoutMs: 30_000, intervalMs: 200 });
          assert.equal(first.length, 1);
          const cfg = await ipamConfig();
          const all = [...cfg.namespaces.values()].flat();
          assert.equal(new Set(all).size, all.length, "no block mapped twice");
          for (const ns of ["default", "kube-system"]) assert.ok(cfg.namespaces.has(ns), ns);
          // Fill team-a's block through the allocator over the real stores.
          const ipam = new Ipam({
            ...stores,
            now: () => Date.now(),
            random: Math.random,
            sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
          });
          const block = (await stores.blocks.get(first[0]))!;
          const free = block.spec.unallocated.length;
          for (let i = 0; i < free; i++) {
            await ipam.allocate({
              handle: `ctr${i}.eth0`,
              node: "node-1",
              namespace: "team-a",
              pod: `p${i}`,
              ...resolveNamespace(await ipamConfig(), "team-a"),
            });
          }
          const second = await waitFor("a second block for team-a", async () => {
            const b = (await ipamConfig()).namespaces.get("team-a") ?? [];
            return b.length === 2 ? b : undefined;
          }, { timeoutMs: 30_000, intervalMs: 200 });
          assert.equal(second[0], first[0]);
          held = { block: first[0], count: free };
        },
      );

      await step("auto-assign off: a new namespace stays unmapped and uses Default", async () => {
        await cp.apply(JSON.stringify({
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "hostnic-ipam-config", namespace: "kube-system" },
          data: {
            "subnet-auto-assign": "off",
            ipam: JSON.stringify({
              Default: [PODS],
              ...Object.fromEntries((await ipamConfig()).namespaces),
            }),
          },
        }));
        const final = procs.find((p) => p.name === "final")!;
        const calls = async () => Object.values(await simCounters(c)).reduce((a, n) => a + n, 0);
        const calls0 = await calls();
        const n0 = await final.metric('hostnic_controller_reconciles_total{result="ready"}');
        await cp.kubectlOk(["create", "namespace", "team-b"]);
        await waitFor(
          "a pass after the namespace appeared",
          async () =>
            await final.metric('hostnic_controller_reconciles_total{result="ready"}') >= n0 + 1,
          {
            timeoutMs: 30_000,
            intervalMs: 200,
          },
        );
        assert.equal(await calls(), calls0, "steady-state passes make no IaaS call");
        const cfg = await ipamConfig();
        assert.equal(cfg.namespaces.has("team-b"), false);
        assert.deepEqual(resolveNamespace(cfg, "team-b"), {
          pools: [PODS],
          excludeBlocks: [...cfg.namespaces.values()].flat(),
        });
      });

      await step(
        "a vxnet removed while in use keeps its pool and says why; freed, it goes",
        async () => {
          const final = procs.find((p) => p.name === "final")!;
          await cp.apply(JSON.stringify({
            apiVersion: "network.qingcloud.com/v1alpha1",
            kind: "VxNetPool",
            metadata: { name: "v-pool" },
            spec: { vxnets: [{ name: PODS }], blockSize: 28 },
          }));
          const blocked = await waitFor("RemovalBlocked", async () => {
            const v = await vpool();
            return v.status?.conditions?.find((x: Obj) =>
              x.type === "RemovalBlocked" && x.status === "True"
            );
          }, { timeoutMs: 30_000, intervalMs: 200 });
          assert.match(
            blocked.message,
            new RegExp(`${OTHER}.*${held.count} address.*${held.block} \\(${held.count}\\)`),
          );
          const pool = await cp.getJson<Obj>(["ippool", OTHER]);
          assert.equal(pool.spec.disabled, true, "no new claims from a removed vxnet");
          assert.equal((await vips(OTHER)).length, 229, "VIPs kept");
          assert.equal(
            await final.metric(
              `hostnic_controller_pool_addresses{pool="${OTHER}",state="allocated"}`,
            ),
            held.count,
          );
          const ipam = new Ipam({
            ...stores,
            now: () => Date.now(),
            random: Math.random,
            sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
          });
          // The rest of the removal runs under crashes too: stop the controller, free the
          // addresses, then kill a fresh one after each removal step.
          assert.equal((await final.kill("SIGTERM")).code, 0);
          const before = await simCounters(c);
          for (let i = 0; i < held.count; i++) await ipam.release(`ctr${i}.eth0`);
          for (const step of ["blocks-deleted", "vips-released"]) {
            const p = start(`crash-${step}`, { HOSTNIC_CONTROLLER_EXIT_AFTER: step });
            const st = await Promise.race([
              p.child.status,
              new Promise<undefined>((r) => setTimeout(() => r(undefined), 60_000)),
            ]);
            assert.ok(st, `never reached "${step}": ${c.logTail(`ctl-crash-${step}`)}`);
            assert.equal(st.signal, "SIGKILL");
            await p.kill();
          }
          const last = start("after-removal");
          await waitFor("vxnet-tbother's IPPool gone", async () => {
            const r = await cp.kubectl(["get", "ippool", OTHER]);
            return r.code !== 0;
          }, { timeoutMs: 60_000, intervalMs: 300 });
          assert.equal((await vips(OTHER)).length, 0, "VIPs released");
          assert.equal((await stores.blocks.list()).filter((b) => b.spec.pool === OTHER).length, 0);
          // The pass that deleted the IPPool writes the status right after.
          const v = await waitFor("RemovalBlocked False", async () => {
            const v = await vpool();
            const cond = v.status?.conditions?.find((x: Obj) => x.type === "RemovalBlocked");
            return cond?.status === "False" ? v : undefined;
          }, { timeoutMs: 30_000, intervalMs: 200 });
          assert.equal(v.status.ready, true);
          const after = await simCounters(c);
          // 229 VIPs in ReleaseVips calls of ≤ 100, by the process killed after "vips-released";
          // the next one found none left.
          assert.equal((after.ReleaseVips ?? 0) - (before.ReleaseVips ?? 0), 3);
          assert.equal(
            await last.metric(`hostnic_controller_vips_released_total{vxnet="${OTHER}"}`),
            0,
          );
        },
      );
    } finally {
      for (const p of procs) await p.kill().catch(() => {});
    }
  },
});
