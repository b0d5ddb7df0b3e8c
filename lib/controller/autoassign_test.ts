import assert from "node:assert/strict";
import { parseIpamConfig } from "../ipam/mod.ts";
import { MemoryBlockStore, MemoryHandleStore, MemoryPoolStore } from "../ipam/mod.ts";
import { nullLogger } from "../log.ts";
import { autoAssign, planAutoAssign } from "./autoassign.ts";
import { MemoryControllerKube } from "./memory.ts";

const B = (n: number) => `4100-10-0-0-${n * 16}-28`;
const pools = [{ name: "vxnet-a", ippool: "vxnet-a", subnets: [B(0), B(1), B(2), B(3)] }, {
  name: "vxnet-b",
  ippool: "vxnet-b",
  subnets: ["4100-10-1-0-0-28"],
}];
const ns = (...names: string[]) => names.map((name) => ({ name, terminating: false }));
const allFree = new Map([...pools.flatMap((p) => p.subnets)].map((b) => [b, 10]));
const poolOf = new Map(pools.flatMap((p) => p.subnets.map((b) => [b, p.name] as [string, string])));

Deno.test("planAutoAssign: each namespace gets the first free block, in name order", () => {
  const plan = planAutoAssign({
    config: parseIpamConfig({ "subnet-auto-assign": "on" }),
    namespaces: ns("zeta", "alpha"),
    pools,
    free: allFree,
    poolOf,
  });
  assert.deepEqual(plan.mapping, [["alpha", [B(0)]], ["zeta", [B(1)]]]);
  assert.deepEqual(plan.starved, []);
});

Deno.test("planAutoAssign: a full block brings another; room left brings none", () => {
  const config = parseIpamConfig({
    "subnet-auto-assign": "on",
    ipam: JSON.stringify({ alpha: [B(0)], beta: [B(1)] }),
  });
  const free = new Map(allFree).set(B(0), 0);
  const plan = planAutoAssign({ config, namespaces: ns("alpha", "beta"), pools, free, poolOf });
  assert.deepEqual(plan.mapping, [["alpha", [B(0), B(2)]], ["beta", [B(1)]]]);
  assert.match(plan.changes[0], /its blocks are full/);
});

Deno.test("planAutoAssign: gone and terminating namespaces lose their key; Default pools are skipped", () => {
  const config = parseIpamConfig({
    "subnet-auto-assign": "on",
    ipam: JSON.stringify({ Default: ["vxnet-a"], gone: ["4100-10-1-0-0-28"] }),
  });
  const plan = planAutoAssign({
    config,
    namespaces: [...ns("new"), { name: "dying", terminating: true }],
    pools,
    free: allFree,
    poolOf,
  });
  // vxnet-a is Default's, so "new" gets the vxnet-b block "gone" gave back.
  assert.deepEqual(plan.mapping, [["Default", ["vxnet-a"]], ["new", ["4100-10-1-0-0-28"]]]);
  assert.ok(plan.changes.some((c) => /dropped namespace "gone"/.test(c)));
});

Deno.test("planAutoAssign: no free block left → the namespace is reported starved", () => {
  const plan = planAutoAssign({
    config: parseIpamConfig({ "subnet-auto-assign": "on" }),
    namespaces: ns("a", "b", "c", "d", "e", "f"),
    pools,
    free: allFree,
    poolOf,
  });
  assert.deepEqual(plan.starved, ["f"]);
  assert.equal(plan.mapping.length, 5);
});

function deps(kube: MemoryControllerKube) {
  return {
    kube,
    cloud: {} as never,
    pools: new MemoryPoolStore(),
    blocks: new MemoryBlockStore(),
    now: () => Date.now(),
  };
}

Deno.test("autoAssign: off writes nothing; on writes a mapping the config parser accepts", async () => {
  const kube = new MemoryControllerKube();
  kube.namespaces = ns("default");
  const d = deps(kube);
  const { newBlock } = await import("../ipam/mod.ts");
  const spec = { type: "local" as const, cidr: "10.0.0.0/26", blockSize: 28 };
  await d.pools.create("vxnet-a", spec);
  for (const b of pools[0].subnets) {
    const cidr = b.replace(/^4100-/, "").replace(/-(\d+)-(\d+)$/, ".$1/$2").replace(/-/g, ".");
    await d.blocks.create(b, newBlock({ pool: "vxnet-a", spec, cidr }));
  }
  const status = { ready: true, pools: [pools[0]], conditions: [] };
  kube.setConfigMap("kube-system", "hostnic-ipam-config", { "subnet-auto-assign": "off" });
  let r = await autoAssign(d, { logger: nullLogger, status, ready: true });
  assert.equal(r.written, false);
  kube.setConfigMap("kube-system", "hostnic-ipam-config", { "subnet-auto-assign": "on" });
  r = await autoAssign(d, { logger: nullLogger, status, ready: true });
  assert.equal(r.written, true);
  const cm = await kube.getConfigMap("kube-system", "hostnic-ipam-config");
  const cfg = parseIpamConfig(cm!.data);
  assert.deepEqual(cfg.namespaces.get("default"), [B(0)]);
  // Not ready: nothing happens.
  kube.namespaces = ns("default", "other");
  r = await autoAssign(d, { logger: nullLogger, status, ready: false });
  assert.equal(r.written, false);
  void new MemoryHandleStore();
});

Deno.test("planAutoAssign: blocks of a vxnet that left v-pool are unmapped; the namespace gets another", () => {
  const config = parseIpamConfig({
    "subnet-auto-assign": "on",
    ipam: JSON.stringify({ alpha: ["4100-10-9-0-0-28"] }),
  });
  const plan = planAutoAssign({ config, namespaces: ns("alpha"), pools, free: allFree, poolOf });
  assert.deepEqual(plan.mapping, [["alpha", [B(0)]]]);
  assert.ok(plan.changes.some((c) => /removed block "4100-10-9-0-0-28"/.test(c)));
});
