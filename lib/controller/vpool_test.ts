/**
 * v-pool reconcile against the simulator's real QingCloud API (in-process server, real client)
 * and the memory IPAM stores: preparation, idempotence, convergence after a pass broken at every
 * step, removal while in use and after, and refusals that land in status.
 */
import assert from "node:assert/strict";
import { HttpIaasClient } from "../iaas/client.ts";
import { iaasConfigFromObject } from "../iaas/config.ts";
import { startSim } from "../sim/server.ts";
import { testScenario } from "../sim/testing.ts";
import {
  Ipam,
  MemoryBlockStore,
  MemoryHandleStore,
  MemoryPoolStore,
  VXNET_POOL_NAME,
} from "../ipam/mod.ts";
import { nullLogger } from "../log.ts";
import { CloudCache } from "./cache.ts";
import { controllerCloud, planVipRuns, vipName } from "./cloud.ts";
import { MemoryControllerKube } from "./memory.ts";
import { type Step, STEPS } from "./types.ts";
import { reconcileVxNetPool } from "./vpool.ts";

Deno.test("planVipRuns: contiguous runs of missing addresses, at most 253 each", () => {
  assert.deepEqual(planVipRuns({ start: "10.0.0.2", end: "10.0.0.9", existing: [] }), [
    { range: "10.0.0.2-10.0.0.9", count: 8 },
  ]);
  assert.deepEqual(
    planVipRuns({ start: "10.0.0.2", end: "10.0.0.9", existing: ["10.0.0.4", "10.0.0.5"] }),
    [{ range: "10.0.0.2-10.0.0.3", count: 2 }, { range: "10.0.0.6-10.0.0.9", count: 4 }],
  );
  assert.deepEqual(
    planVipRuns({ start: "10.0.0.2", end: "10.0.0.9", existing: ["10.0.0.9", "10.0.0.2"] }),
    [{ range: "10.0.0.3-10.0.0.8", count: 6 }],
  );
  const big = planVipRuns({ start: "10.0.0.10", end: "10.0.3.250", existing: [] });
  assert.equal(big.reduce((a, r) => a + r.count, 0), 1009);
  assert.ok(big.every((r) => r.count <= 253));
  assert.deepEqual(big.map((r) => r.count), [253, 253, 253, 250]);
  const all = ["10.0.0.2", "10.0.0.3"];
  assert.deepEqual(planVipRuns({ start: "10.0.0.2", end: "10.0.0.3", existing: all }), []);
});

async function setup() {
  const sim = await startSim({ scenario: testScenario() });
  const iaas = new HttpIaasClient({
    config: iaasConfigFromObject(sim.clientConfig()),
    rateLimit: null,
  });
  const kube = new MemoryControllerKube();
  kube.namespaces = [{ name: "default", terminating: false }];
  const stores = {
    pools: new MemoryPoolStore(),
    blocks: new MemoryBlockStore(),
    handles: new MemoryHandleStore(),
  };
  const steps: Step[] = [];
  const clock = { now: Date.now() };
  const deps = {
    cloud: controllerCloud(iaas),
    kube,
    pools: stores.pools,
    blocks: stores.blocks,
    now: () => clock.now,
    cache: undefined as CloudCache | undefined,
    crashAt: undefined as Step | undefined,
    afterStep(step: Step) {
      steps.push(step);
      if (step === deps.crashAt) {
        deps.crashAt = undefined;
        throw new Error(`crash after ${step}`);
      }
    },
  };
  const pass = () => reconcileVxNetPool(deps, { logger: nullLogger });
  const vips = async (vxnet: string) =>
    (await iaas.describeVips({ vxnets: [vxnet], vipName: vipName(vxnet), limit: 100 })).items;
  return {
    sim,
    clock,
    iaas,
    kube,
    stores,
    deps,
    steps,
    pass,
    vips,
    async [Symbol.asyncDispose]() {
      await iaas.close();
      await sim.close();
    },
  };
}

function vpool(vxnets: string[], blockSize = 27) {
  return {
    name: VXNET_POOL_NAME,
    generation: 1,
    spec: { vxnets: vxnets.map((name) => ({ name })), blockSize },
  };
}

const CLUSTER_CM = { "qingcloud.yaml": "zone: pek3a\nsecurityGroup: sg-test0001\n" };

Deno.test("v-pool: VIPs over the usable range, the SG rule, the IPPool and its blocks; then ready", async () => {
  await using t = await setup();
  t.kube.vxnetPool = vpool(["vxnet-a"]);
  t.kube.setConfigMap("kube-system", "clusterconfig", CLUSTER_CM);
  const r = await t.pass();
  assert.deepEqual(r.problems, []);
  assert.equal(r.ready, true);
  // vxnet-a: 172.25.1.0/24, DHCP .100-.199; vxlan keeps 12 for the IaaS → .100-.187.
  const vips = await t.vips("vxnet-a");
  assert.equal(vips.length, 88);
  assert.equal(new Set(vips.map((v) => v.vip_addr)).size, 88);
  const pool = await t.stores.pools.get("vxnet-a");
  assert.equal(pool?.spec.rangeStart, "172.25.1.100");
  assert.equal(pool?.spec.rangeEnd, "172.25.1.187");
  const blocks = (await t.stores.blocks.list()).map((b) => b.name);
  assert.deepEqual(blocks, ["4100-172-25-1-128-27", "4100-172-25-1-160-27", "4100-172-25-1-96-27"]);
  const st = t.kube.vxnetPool.status!;
  assert.equal(st.ready, true);
  assert.deepEqual(st.pools, [{
    name: "vxnet-a",
    ippool: "vxnet-a",
    subnets: ["4100-172-25-1-96-27", "4100-172-25-1-128-27", "4100-172-25-1-160-27"],
  }]);
  assert.equal(st.conditions?.find((c) => c.type === "Ready")?.status, "True");
  const rules = (await t.iaas.describeSecurityGroupRules({ securityGroup: "sg-test0001" })).items;
  assert.equal(rules.filter((x) => x.val3 === "172.25.1.0/24").length, 1);
  const sg = (await t.iaas.describeSecurityGroups({ securityGroups: ["sg-test0001"] })).items[0];
  assert.equal(sg.is_applied, 1);
  assert.deepEqual(t.kube.poolStatus.get("vxnet-a"), {
    capacity: 96,
    allocations: 0,
    unallocated: 88,
    reserved: 8,
    synced: true,
  });

  // A second pass changes nothing and calls nothing that creates.
  const before = t.sim.control.counters();
  const writes = t.kube.statusWrites;
  const again = await t.pass();
  assert.equal(again.ready, true);
  const after = t.sim.control.counters();
  for (const a of ["AllocateVips", "AddSecurityGroupRules", "ApplySecurityGroup", "ReleaseVips"]) {
    assert.equal(after[a] ?? 0, before[a] ?? 0, a);
  }
  assert.equal(t.kube.statusWrites, writes, "unchanged status is not rewritten");
});

Deno.test("v-pool: a pass broken after each step converges; VIPs and the rule exist once", async () => {
  await using t = await setup();
  t.kube.vxnetPool = vpool(["vxnet-a"]);
  t.kube.setConfigMap("kube-system", "clusterconfig", CLUSTER_CM);
  const prep = STEPS.slice(0, STEPS.indexOf("status-written") + 1);
  for (const step of prep) {
    t.deps.crashAt = step;
    await t.pass().catch((e) => assert.match(String(e), /crash after/));
    assert.equal(t.deps.crashAt, undefined, `step "${step}" was reached`);
  }
  const r = await t.pass();
  assert.equal(r.ready, true, r.problems.join("; "));
  const c = t.sim.control.counters();
  assert.equal(c.AllocateVips, 1, "one AllocateVips for the whole range");
  assert.equal(c.AddSecurityGroupRules, 1);
  assert.equal((await t.vips("vxnet-a")).length, 88);
  assert.equal((await t.stores.blocks.list()).length, 3);
});

Deno.test("v-pool: a vxnet removed while in use keeps its pool and says why; freed, it goes", async () => {
  await using t = await setup();
  t.kube.vxnetPool = vpool(["vxnet-a"]);
  assert.equal((await t.pass()).ready, true);
  const ipam = new Ipam({
    blocks: t.stores.blocks,
    handles: t.stores.handles,
    pools: t.stores.pools,
    now: () => Date.now(),
    random: Math.random,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  });
  const a = await ipam.allocate({
    handle: "c1.eth0",
    node: "n1",
    namespace: "default",
    pod: "p1",
    pools: ["vxnet-a"],
  });
  t.kube.vxnetPool = { ...vpool(["vxnet-a"]), spec: { vxnets: [], blockSize: 27 } };
  // An empty vxnet list is not a valid spec: nothing is removed on a spec that does not parse.
  await t.pass();
  assert.ok(await t.stores.pools.get("vxnet-a"));
  // vxnet-b stays (it has no DHCP range in the scenario, so it is not ready, which is fine here).
  t.kube.vxnetPool = vpool(["vxnet-b"]);
  const r = await t.pass();
  assert.deepEqual(r.blockedRemovals, [{ pool: "vxnet-a", inUse: { [a.block]: 1 } }]);
  const cond = t.kube.vxnetPool.status!.conditions!.find((c) => c.type === "RemovalBlocked")!;
  assert.equal(cond.status, "True");
  assert.match(cond.message, new RegExp(`vxnet-a.*1 address.*${a.block}`));
  assert.equal((await t.stores.pools.get("vxnet-a"))?.spec.disabled, true);
  assert.equal((await t.vips("vxnet-a")).length, 88, "VIPs kept while in use");

  await ipam.release("c1.eth0");
  const r2 = await t.pass();
  assert.deepEqual(r2.removed, ["vxnet-a"]);
  assert.equal(await t.stores.pools.get("vxnet-a"), undefined);
  assert.equal((await t.stores.blocks.list()).filter((b) => b.spec.pool === "vxnet-a").length, 0);
  assert.equal((await t.vips("vxnet-a")).length, 0, "VIPs released");
  assert.equal(
    t.kube.vxnetPool.status!.conditions!.find((c) => c.type === "RemovalBlocked")!.status,
    "False",
  );
});

Deno.test("v-pool: a vxnet that cannot be prepared makes status say why, others go on", async () => {
  await using t = await setup();
  t.kube.vxnetPool = vpool(["vxnet-nodhcp", "vxnet-a", "vxnet-nope"]);
  const r = await t.pass();
  assert.equal(r.ready, false);
  const msg = t.kube.vxnetPool.status!.message ?? "";
  assert.match(msg, /vxnet-nodhcp.*DHCP/);
  assert.match(msg, /vxnet-nope.*does not exist/);
  assert.deepEqual(t.kube.vxnetPool.status!.pools!.map((p) => p.name), ["vxnet-a"]);
  assert.equal(t.sim.control.counters().AllocateVips, 1);
});

Deno.test("v-pool: a bad clusterconfig stops preparation with the key named", async () => {
  await using t = await setup();
  t.kube.vxnetPool = vpool(["vxnet-a"]);
  t.kube.setConfigMap("kube-system", "clusterconfig", {
    "qingcloud.yaml": "securityGroup: nope\n",
  });
  const r = await t.pass();
  assert.equal(r.ready, false);
  assert.match(r.problems.join(), /clusterconfig\/qingcloud\.yaml\.securityGroup/);
  assert.equal(t.sim.control.counters().AllocateVips ?? 0, 0);
});

Deno.test("v-pool: with the process cache a steady-state pass makes no IaaS call until it ages out", async () => {
  await using t = await setup();
  t.deps.cache = new CloudCache(60_000);
  t.kube.vxnetPool = vpool(["vxnet-a"]);
  t.kube.setConfigMap("kube-system", "clusterconfig", CLUSTER_CM);
  assert.equal((await t.pass()).ready, true);
  const total = () => Object.values(t.sim.control.counters()).reduce((a, n) => a + n, 0);
  const before = total();
  for (let i = 0; i < 3; i++) assert.equal((await t.pass()).ready, true);
  assert.equal(total(), before, "no IaaS call in steady state");
  // A VIP released behind the controller's back is noticed once the cache ages out.
  const [one] = await t.vips("vxnet-a");
  await t.iaas.releaseVips({ vips: [one.vip_id] });
  await t.sim.control.settle?.();
  t.clock.now += 61_000;
  await t.pass();
  const after = t.sim.control.counters();
  assert.ok((after.DescribeVips ?? 0) > 0);
  await waitForVips(t, 88);
});

async function waitForVips(t: Awaited<ReturnType<typeof setup>>, n: number) {
  const deadline = Date.now() + 5000;
  while ((await t.vips("vxnet-a")).length !== n) {
    if (Date.now() > deadline) throw new Error(`expected ${n} VIPs`);
    await t.pass();
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("v-pool: auto-assign runs in the pass and its outcome is the AutoAssign condition", async () => {
  await using t = await setup();
  t.kube.vxnetPool = vpool(["vxnet-a"]);
  const cond = () => t.kube.vxnetPool!.status!.conditions!.find((c) => c.type === "AutoAssign")!;
  await t.pass();
  assert.equal(cond().reason, "Off");
  t.kube.setConfigMap("kube-system", "hostnic-ipam-config", { "subnet-auto-assign": "on" });
  const r = await t.pass();
  assert.equal(r.autoAssign?.written, true);
  assert.equal(cond().status, "True");
  const cm = await t.kube.getConfigMap("kube-system", "hostnic-ipam-config");
  assert.deepEqual(JSON.parse(cm!.data.ipam), { default: ["4100-172-25-1-96-27"] });
  // Three blocks, five namespaces: two are left without one, and the condition names them.
  t.kube.namespaces = ["default", "a", "b", "c", "d"].map((name) => ({ name, terminating: false }));
  await t.pass();
  assert.equal(cond().reason, "NoFreeBlock");
  assert.match(cond().message, /"c", "d"/);
});
