import assert from "node:assert/strict";
import type { AllocationRecord, NicRecord } from "../../nicpool/model.ts";
import { type CloudNic, describeAction, type GcFacts, planGc, trackUnknown } from "./gc.ts";

const opts = {
  instanceId: "i-node1",
  pooledVxnet: "vxnet-pool",
  freePeriodMs: 60_000,
  podGraceMs: 120_000,
};
const NOW = 10_000_000;

function nic(id: string, over: Partial<NicRecord> = {}): NicRecord {
  return {
    id,
    vxnet: "vxnet-pool",
    ip: `10.0.0.${id.slice(-1)}`,
    cidr: "10.0.0.0/24",
    gateway: "10.0.0.1",
    table: 260,
    state: "free",
    dedicated: false,
    createdAt: 0,
    updatedAt: 0,
    ...over,
  };
}

function alloc(cid: string, nicId: string, over: Partial<AllocationRecord> = {}): AllocationRecord {
  return {
    containerId: cid,
    ifName: "eth0",
    netns: `/run/netns/${cid}`,
    podNamespace: "default",
    podName: cid,
    nicId,
    ip: "10.0.0.9",
    cidr: "10.0.0.0/24",
    gateway: "10.0.0.1",
    table: 261,
    mode: "nic",
    vxnet: "vxnet-pool",
    createdAt: NOW - 1_000_000,
    ...over,
  };
}

const cloudNic = (id: string, over: Partial<CloudNic> = {}): CloudNic => ({
  id,
  vxnet: "vxnet-pool",
  ip: "10.0.0.50",
  status: "in-use",
  instance: "i-node1",
  ...over,
});

function facts(over: Partial<GcFacts> = {}): GcFacts {
  return {
    now: NOW,
    allocations: [],
    nics: [],
    podDiffs: new Map(),
    firstSeen: new Map(),
    journal: [],
    ...over,
  };
}

Deno.test("planGc: a healthy node needs nothing", () => {
  const a = alloc("c1", "m1");
  const f = facts({
    allocations: [a],
    nics: [nic("m1", { state: "inuse", owner: "c1/eth0" }), nic("m2")],
    podDiffs: new Map([["c1/eth0", []]]),
    cloudNics: [cloudNic("m1"), cloudNic("m2")],
  });
  assert.deepEqual(planGc(f, opts), []);
});

Deno.test("planGc: pods whose netns is gone are released, lost kernel state repaired", () => {
  const f = facts({
    allocations: [alloc("gone", "m1"), alloc("broken", "m2"), alloc("ok", "m3")],
    podDiffs: new Map([
      ["gone/eth0", ["pod: network namespace /run/netns/gone is missing"]],
      ["broken/eth0", ["node: rule 1536 from 10.0.0.9 lookup 261 is missing"]],
      ["ok/eth0", []],
    ]),
  });
  const acts = planGc(f, opts);
  assert.deepEqual(acts.map((a) => a.kind), ["release-pod", "repair-pod"]);
  assert.match(describeAction(acts[0]), /default\/gone\/eth0: network namespace .* is gone/);
  assert.match(acts[1].reason, /rule 1536/);
});

Deno.test("planGc: pods Kubernetes no longer has are released only after the grace period", () => {
  const f = facts({
    allocations: [
      alloc("old", "m1"),
      alloc("young", "m2", { createdAt: NOW - 1000 }),
      alloc("live", "m3"),
      alloc("nok8s", "m4", { podName: undefined }),
    ],
    livePods: new Set(["default/live"]),
  });
  const acts = planGc(f, opts);
  assert.deepEqual(acts.map((a) => [a.kind, "containerId" in a && a.containerId]), [
    ["release-pod", "old"],
  ]);
  assert.match(acts[0].reason, /no longer exists in Kubernetes/);
  // Without the pod list (no Kubernetes, or the watch is not synced) nothing is released.
  assert.deepEqual(planGc({ ...f, livePods: undefined }, opts), []);
});

Deno.test("planGc: journaled DELs are replayed and not also planned as releases", () => {
  const f = facts({
    allocations: [alloc("c1", "m1")],
    podDiffs: new Map([["c1/eth0", ["pod: network namespace /run/netns/c1 is missing"]]]),
    journal: [{ id: "r1", containerId: "c1", ifName: "eth0", reason: "daemon unreachable" }],
  });
  assert.deepEqual(planGc(f, opts).map((a) => a.kind), ["replay-release"]);
});

Deno.test("planGc: unknown owned NICs wait freePeriod, then are adopted or deleted", () => {
  const cloudNics = [
    cloudNic("a1"), // attached here, pool vxnet → adopt
    cloudNic("a2", { vxnet: "vxnet-other" }), // attached here, other vxnet → delete
    cloudNic("a3", { status: "available", instance: "" }), // not attached → delete
    cloudNic("a4", { instance: "i-other" }), // someone else's now → left alone
    cloudNic("a5", { status: "available", instance: "" }), // seen just now → wait
  ];
  const firstSeen = new Map<string, number>();
  trackUnknown(firstSeen, cloudNics, new Set(), NOW - 61_000);
  firstSeen.set("a5", NOW - 1000);
  const acts = planGc(facts({ cloudNics, firstSeen }), opts);
  assert.deepEqual(acts.map((a) => [a.kind, "nicId" in a && a.nicId]), [
    ["adopt-nic", "a1"],
    ["delete-nic", "a2"],
    ["delete-nic", "a3"],
  ]);
  // freePeriod 0 still needs a sighting on an earlier pass.
  const fresh = new Map<string, number>();
  trackUnknown(fresh, cloudNics, new Set(), NOW);
  assert.deepEqual(
    planGc(facts({ cloudNics, firstSeen: fresh }), { ...opts, freePeriodMs: 0 }),
    [],
  );
  // A NIC that became known is no longer tracked.
  trackUnknown(firstSeen, cloudNics, new Set(["a1", "a2", "a3", "a4", "a5"]), NOW);
  assert.equal(firstSeen.size, 0);
});

Deno.test("planGc: never deletes or forgets a NIC an allocation names", () => {
  const f = facts({
    allocations: [alloc("c1", "m1")],
    nics: [nic("m1", { state: "free" }), nic("m2"), nic("m3"), nic("m4", { state: "detaching" })],
    cloudNics: [
      cloudNic("m3", { status: "available", instance: "" }),
      cloudNic("m9", { status: "available", instance: "" }),
    ],
    firstSeen: new Map([["m1", 0], ["m9", 0]]),
  });
  const acts = planGc(f, opts);
  assert.deepEqual(acts.map((a) => [a.kind, "nicId" in a && a.nicId]), [
    ["retry-detach", "m4"],
    ["forget-nic", "m2"],
    ["delete-nic", "m3"],
    ["delete-nic", "m9"],
  ]);
  assert.ok(!acts.some((a) => "nicId" in a && a.nicId === "m1"));
});
