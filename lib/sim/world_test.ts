import assert from "node:assert/strict";
import { SimApiError } from "./errors.ts";
import { formatIp } from "./ip.ts";
import { testScenario } from "./testing.ts";
import { type JobPlan, NICS_PER_INSTANCE, NICS_PER_VXNET, World } from "./world.ts";

const ME = "usr-Test0001";
const OTHER = "usr-Other001";

function fixture(o: { plan?: (action: string) => JobPlan } = {}) {
  let t = 1_700_000_000_000;
  const world = new World({
    scenario: testScenario(),
    now: () => t,
    ...(o.plan ? { planJob: o.plan } : {}),
  });
  return {
    world,
    advance(ms: number) {
      t += ms;
    },
  };
}

/** Runs `fn` and returns the ret_code it fails with. */
function codeOf(fn: () => unknown): number {
  return apiError(fn).retCode;
}

function apiError(fn: () => unknown): SimApiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SimApiError) return err;
    throw err;
  }
  throw new Error("expected a SimApiError");
}

const create = (w: World, o: Partial<Parameters<World["createNics"]>[1]> = {}) =>
  w.createNics(ME, {
    vxnetId: "vxnet-a",
    count: 1,
    name: "",
    privateIps: [],
    disableIp: false,
    ...o,
  });

function attached(w: World, nicIds: string[], instanceId = "i-one") {
  const job = w.attachNics(ME, { nicIds, instanceId });
  w.settle();
  return job;
}

Deno.test("NIC ids are unique lowercase 52:54 MACs and new NICs are available role 0", () => {
  const { world } = fixture();
  const nics = create(world, { count: 30, disableIp: true });
  const ids = new Set(nics.map((n) => n.id));
  assert.deepEqual(ids.size, 30);
  for (const n of nics) {
    assert(/^52:54(:[0-9a-f]{2}){4}$/.test(n.id), n.id);
    assert.deepEqual([n.status, n.role, n.instanceId, n.privateIp], ["available", 0, "", null]);
  }
});

Deno.test("the same seed and calls give the same ids", () => {
  const a = create(fixture().world, { count: 3 }).map((n) => n.id);
  const b = create(fixture().world, { count: 3 }).map((n) => n.id);
  assert.deepEqual(a, b);
});

Deno.test("count must be 1-252 (1100) and the vxnet must exist (2100) and be yours (1400)", () => {
  const { world } = fixture();
  assert.deepEqual(codeOf(() => create(world, { count: 0 })), 1100);
  assert.deepEqual(codeOf(() => create(world, { count: 253 })), 1100);
  assert.deepEqual(codeOf(() => create(world, { vxnetId: "vxnet-nope" })), 2100);
  assert.deepEqual(
    codeOf(() =>
      world.createNics(OTHER, {
        vxnetId: "vxnet-a",
        count: 1,
        name: "",
        privateIps: [],
        disableIp: false,
      })
    ),
    1400,
  );
});

Deno.test("automatic IPs come from the DHCP range, skipping used ones; DHCP off → 1400", () => {
  const { world } = fixture();
  const [a, b] = create(world, { count: 2 });
  assert.deepEqual([formatIp(a.privateIp!), formatIp(b.privateIp!)], [
    "172.25.1.100",
    "172.25.1.101",
  ]);
  create(world, { privateIps: ["172.25.1.102"] });
  assert.deepEqual(formatIp(create(world)[0].privateIp!), "172.25.1.103");
  assert.deepEqual(codeOf(() => create(world, { vxnetId: "vxnet-nodhcp" })), 1400);
  // Explicit addresses still work without DHCP.
  const [n] = create(world, { vxnetId: "vxnet-nodhcp", privateIps: ["172.25.3.9"] });
  assert.deepEqual(formatIp(n.privateIp!), "172.25.3.9");
});

Deno.test("explicit private_ips are honoured, and rejected when taken or outside", async (t) => {
  const { world } = fixture();
  await t.step("honoured", () => {
    const nics = create(world, { count: 2, privateIps: ["172.25.1.50", "172.25.1.51"] });
    assert.deepEqual(nics.map((n) => formatIp(n.privateIp!)), ["172.25.1.50", "172.25.1.51"]);
  });
  const cases: [string, string[], number][] = [
    ["taken by a NIC", ["172.25.1.50"], 1400],
    ["an instance's primary IP", ["172.25.1.10"], 1400],
    ["the gateway", ["172.25.1.1"], 1400],
    ["outside the vxnet", ["172.25.2.5"], 1100],
    ["the network address", ["172.25.1.0"], 1100],
    ["the broadcast address", ["172.25.1.255"], 1100],
    ["not an address", ["172.25.1.x"], 1100],
    ["twice in one request", ["172.25.1.60", "172.25.1.60"], 1400],
  ];
  for (const [name, ips, code] of cases) {
    await t.step(name, () => {
      assert.deepEqual(codeOf(() => create(world, { count: ips.length, privateIps: ips })), code);
    });
  }
  await t.step("count must match the number of IPs", () => {
    assert.deepEqual(codeOf(() => create(world, { count: 3, privateIps: ["172.25.1.70"] })), 1100);
  });
  await t.step("a rejected batch creates nothing", () => {
    const before = world.nics.size;
    codeOf(() => create(world, { count: 2, privateIps: ["172.25.1.80", "172.25.1.50"] }));
    assert.deepEqual(world.nics.size, before);
  });
});

Deno.test("IPs are unique per vxnet and freed by DeleteNics", () => {
  const { world } = fixture();
  const all = create(world, { count: 100 }); // the whole 100-address DHCP range
  assert.deepEqual(new Set(all.map((n) => n.privateIp)).size, 100);
  assert.deepEqual(codeOf(() => create(world)), 1400);
  world.deleteNics(ME, { nicIds: [all[5].id] });
  assert.deepEqual(create(world)[0].privateIp, all[5].privateIp);
});

Deno.test(`a vxnet holds at most ${NICS_PER_VXNET} NICs (1400)`, () => {
  const { world } = fixture();
  create(world, { vxnetId: "vxnet-b", count: 250, disableIp: true });
  create(world, { vxnetId: "vxnet-b", count: 2, disableIp: true });
  assert.deepEqual(codeOf(() => create(world, { vxnetId: "vxnet-b", disableIp: true })), 1400);
  // Primary NICs count too: vxnet-a already has three.
  create(world, { count: NICS_PER_VXNET - 3, disableIp: true });
  assert.deepEqual(codeOf(() => create(world, { disableIp: true })), 1400);
});

Deno.test("attach is a job: the NIC becomes in-use when it succeeds, not before", () => {
  const { world, advance } = fixture({
    plan: () => ({ pendingMs: 100, totalMs: 1000, fail: false }),
  });
  const [nic] = create(world);
  const job = world.attachNics(ME, { nicIds: [nic.id], instanceId: "i-one" });
  assert.deepEqual(world.jobStatus(job), "pending");
  assert.deepEqual(nic.status, "available");
  advance(500);
  assert.deepEqual(world.jobStatus(job), "working");
  assert.deepEqual(world.settle(), []);
  advance(500);
  assert.deepEqual(world.settle().map((j) => j.id), [job.id]);
  assert.deepEqual(world.jobStatus(job), "successful");
  assert.deepEqual([nic.status, nic.instanceId, nic.sequence], ["in-use", "i-one", 1]);
  assert.deepEqual(job.directive, { nics: [nic.id], instance: "i-one" });
  assert.deepEqual(job.resourceIds, [nic.id, "i-one"]);
});

Deno.test("a NIC with a job in flight refuses attach, detach and delete (1400)", () => {
  const { world } = fixture({ plan: () => ({ pendingMs: 0, totalMs: 1000, fail: false }) });
  const [nic] = create(world);
  world.attachNics(ME, { nicIds: [nic.id], instanceId: "i-one" });
  assert.deepEqual(
    codeOf(() => world.attachNics(ME, { nicIds: [nic.id], instanceId: "i-two" })),
    1400,
  );
  assert.deepEqual(codeOf(() => world.detachNics(ME, { nicIds: [nic.id] })), 1400);
  assert.deepEqual(codeOf(() => world.deleteNics(ME, { nicIds: [nic.id] })), 1400);
});

Deno.test("an in-use NIC cannot be attached elsewhere or deleted; detach frees it", () => {
  const { world } = fixture();
  const [nic] = create(world);
  attached(world, [nic.id]);
  assert.deepEqual(
    codeOf(() => world.attachNics(ME, { nicIds: [nic.id], instanceId: "i-two" })),
    1400,
  );
  assert.deepEqual(codeOf(() => world.deleteNics(ME, { nicIds: [nic.id] })), 1400);
  world.detachNics(ME, { nicIds: [nic.id] });
  world.settle();
  assert.deepEqual([nic.status, nic.instanceId, nic.sequence], ["available", "", 0]);
  assert.deepEqual(codeOf(() => world.detachNics(ME, { nicIds: [nic.id] })), 1400);
  world.deleteNics(ME, { nicIds: [nic.id] });
  assert(!world.nics.has(nic.id));
});

Deno.test("attach needs a running instance (1400), known ids (2100), and is all-or-nothing", () => {
  const { world } = fixture();
  const [a, b] = create(world, { count: 2 });
  assert.deepEqual(
    codeOf(() => world.attachNics(ME, { nicIds: [a.id], instanceId: "i-stopped" })),
    1400,
  );
  assert.deepEqual(
    codeOf(() => world.attachNics(ME, { nicIds: [a.id], instanceId: "i-nope" })),
    2100,
  );
  assert.deepEqual(
    codeOf(() =>
      world.attachNics(ME, { nicIds: [a.id, "52:54:00:00:00:01"], instanceId: "i-one" })
    ),
    2100,
  );
  attached(world, [b.id]);
  assert.deepEqual(
    codeOf(() => world.attachNics(ME, { nicIds: [a.id, b.id], instanceId: "i-one" })),
    1400,
  );
  assert.deepEqual([a.status, a.jobId, world.jobs.size], ["available", null, 1]);
});

Deno.test(`an instance holds at most ${NICS_PER_INSTANCE} NICs, attaches in flight included`, () => {
  const { world } = fixture({ plan: () => ({ pendingMs: 0, totalMs: 1000, fail: false }) });
  const nics = create(world, { vxnetId: "vxnet-b", count: NICS_PER_INSTANCE, disableIp: true });
  // The primary NIC is one of the 64.
  world.attachNics(ME, { nicIds: nics.slice(0, 62).map((n) => n.id), instanceId: "i-one" });
  world.attachNics(ME, { nicIds: [nics[62].id], instanceId: "i-one" });
  assert.deepEqual(
    codeOf(() => world.attachNics(ME, { nicIds: [nics[63].id], instanceId: "i-one" })),
    1400,
  );
});

Deno.test("sequence is unique per instance: lowest free from 1", () => {
  const { world } = fixture();
  const [a, b, c] = create(world, { count: 3 });
  attached(world, [a.id, b.id]);
  assert.deepEqual([a.sequence, b.sequence], [1, 2]);
  world.detachNics(ME, { nicIds: [a.id] });
  world.settle();
  attached(world, [c.id]);
  assert.deepEqual(c.sequence, 1);
});

Deno.test("the primary NIC (role 1) can be neither detached nor deleted (1400)", () => {
  const { world } = fixture();
  const primary = world.instances.get("i-one")!.primaryNicId;
  assert.deepEqual(world.nics.get(primary)!.role, 1);
  assert.deepEqual(codeOf(() => world.detachNics(ME, { nicIds: [primary] })), 1400);
  assert.deepEqual(codeOf(() => world.deleteNics(ME, { nicIds: [primary] })), 1400);
});

Deno.test("unknown ids in DetachNics/DeleteNics give 2100 with ResourceNotFound", () => {
  const { world } = fixture();
  const err = apiError(() => world.deleteNics(ME, { nicIds: ["52:54:de:ad:be:ef"] }));
  assert.deepEqual(err.retCode, 2100);
  assert(err.message.includes("ResourceNotFound"));
  assert.deepEqual(codeOf(() => world.detachNics(ME, { nicIds: ["52:54:de:ad:be:ef"] })), 2100);
});

Deno.test("a failed job leaves the NIC as it was and clears the busy mark", () => {
  const { world } = fixture({ plan: () => ({ pendingMs: 0, totalMs: 0, fail: true }) });
  const [nic] = create(world);
  const job = world.attachNics(ME, { nicIds: [nic.id], instanceId: "i-one" });
  world.settle();
  assert.deepEqual(world.jobStatus(job), "failed");
  assert.deepEqual([nic.status, nic.instanceId, nic.jobId], ["available", "", null]);
});

Deno.test("Describe* hide unknown ids and other owners' resources; mutating them is 1400", () => {
  const { world } = fixture();
  const [nic] = create(world);
  const f = {
    ids: [nic.id, "52:54:00:00:00:99"],
    vxnetIds: [],
    vxnetTypes: [],
    instanceIds: [],
    tagIds: [],
  };
  assert.deepEqual(world.describeNics(ME, f).map((n) => n.id), [nic.id]);
  assert.deepEqual(world.describeNics(OTHER, f), []);
  assert.deepEqual(world.describeInstances(OTHER, { ids: [], statuses: [], tagIds: [] }), []);
  assert.deepEqual(codeOf(() => world.deleteNics(OTHER, { nicIds: [nic.id] })), 1400);
});

Deno.test("DescribeNics filters combine with AND; list filters are OR", () => {
  const { world } = fixture();
  const [a, b] = create(world, { count: 2, name: "hostnic_i-one" });
  create(world, { vxnetId: "vxnet-b", name: "hostnic_i-one" });
  attached(world, [a.id]);
  const base = {
    ids: [] as string[],
    vxnetIds: [] as string[],
    vxnetTypes: [] as number[],
    instanceIds: [] as string[],
    tagIds: [] as string[],
  };
  const ids = (f: Partial<typeof base> & { name?: string; status?: string }) =>
    world.describeNics(ME, { ...base, ...f }).map((n) => n.id).sort();
  assert.deepEqual(ids({ name: "hostnic_i-one", vxnetIds: ["vxnet-a"] }), [a.id, b.id].sort());
  assert.deepEqual(ids({ name: "hostnic_i-one", status: "in-use" }), [a.id]);
  assert.deepEqual(ids({ instanceIds: ["i-one"] }).length, 2); // primary + a
  assert.deepEqual(ids({ ids: [a.id, b.id], status: "available" }), [b.id]);
});

Deno.test("tags: unique names (2110), bindings counted, dropped with the NIC or the tag", () => {
  const { world } = fixture();
  const tag = world.createTag(ME, { name: "hostnic", color: "", description: "" });
  assert.deepEqual(
    codeOf(() => world.createTag(ME, { name: "hostnic", color: "", description: "" })),
    2110,
  );
  assert.deepEqual(
    codeOf(() => world.createTag(ME, { name: "abcdefghijklmno", color: "", description: "" })),
    1100,
  );
  const [a, b] = create(world, { count: 2 });
  const pair = (id: string) => ({ tagId: tag.id, resourceType: "nic", resourceId: id });
  world.attachTags(ME, [pair(a.id), pair(b.id), pair(a.id)]);
  assert.deepEqual(world.bindingsOf(tag.id).length, 2);
  assert.deepEqual(codeOf(() => world.attachTags(ME, [pair("52:54:00:00:00:99")])), 2100);
  assert.deepEqual(
    codeOf(() => world.attachTags(ME, [{ tagId: tag.id, resourceType: "disk", resourceId: "x" }])),
    1100,
  );
  world.deleteNics(ME, { nicIds: [a.id] });
  assert.deepEqual(world.bindingsOf(tag.id).map((x) => x.resourceId), [b.id]);
  const base = { ids: [], vxnetIds: [], vxnetTypes: [], instanceIds: [] };
  assert.deepEqual(world.describeNics(ME, { ...base, tagIds: [tag.id] }).map((n) => n.id), [b.id]);
  world.deleteTags(ME, [tag.id]);
  assert.deepEqual(world.bindings.size, 0);
});

Deno.test("VIPs take addresses NICs then skip, and ReleaseVips frees them when its job ends", () => {
  const { world } = fixture();
  const { vips } = world.allocateVips(ME, {
    vxnetId: "vxnet-a",
    name: "pool",
    range: "172.25.1.100-172.25.1.102",
    addrs: [],
  });
  assert.deepEqual(vips.map((v) => formatIp(v.addr)), [
    "172.25.1.100",
    "172.25.1.101",
    "172.25.1.102",
  ]);
  assert.deepEqual(formatIp(create(world)[0].privateIp!), "172.25.1.103");
  assert.deepEqual(codeOf(() => create(world, { privateIps: ["172.25.1.101"] })), 1400);
  world.releaseVips(ME, vips.map((v) => v.id));
  world.settle();
  assert.deepEqual(world.vips.size, 0);
  assert.deepEqual(formatIp(create(world)[0].privateIp!), "172.25.1.100");
});

Deno.test("DescribeVxnets omits basic (type 2) vxnets unless asked", () => {
  const { world } = fixture();
  const ids = (vxnetType?: number) =>
    world.describeVxnets(ME, {
      ids: [],
      tagIds: [],
      ...(vxnetType === undefined ? {} : { vxnetType }),
    })
      .map((v) => v.id);
  assert(!ids().includes("vxnet-basic"));
  assert.deepEqual(ids(2), ["vxnet-basic"]);
});

Deno.test("reboot keeps NICs attached", () => {
  const { world } = fixture();
  const [nic] = create(world);
  attached(world, [nic.id]);
  assert.deepEqual(world.recordReboot("i-one").bootCount, 1);
  assert.deepEqual([nic.status, nic.instanceId], ["in-use", "i-one"]);
});
