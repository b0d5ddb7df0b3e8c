import assert from "node:assert/strict";
import { NicNotFoundError } from "../../linux/errors.ts";
import { nullLogger } from "../../log.ts";
import { NicPool, type PoolCloud } from "../../nicpool/pool.ts";
import { CniService, type DatapathPod, type PodDatapath } from "./service.ts";

/** A cloud where NICs exist once created and attach/detach take effect at once. */
class InstantCloud implements PoolCloud {
  nics = new Map<string, { ip: string; attached: boolean }>();
  #seq = 0;
  createNics(o: { count: number }) {
    return Promise.resolve(Array.from({ length: o.count }, () => {
      const n = ++this.#seq;
      const id = `52:54:00:00:01:${n.toString(16).padStart(2, "0")}`;
      this.nics.set(id, { ip: `172.20.2.${n + 10}`, attached: false });
      return { id, ip: this.nics.get(id)!.ip };
    }));
  }
  tagNics() {
    return Promise.resolve();
  }
  attachNics(ids: string[]) {
    for (const id of ids) this.nics.get(id)!.attached = true;
    return Promise.resolve("j-attach");
  }
  detachNics(ids: string[]) {
    for (const id of ids) this.nics.get(id)!.attached = false;
    return Promise.resolve("j-detach");
  }
  deleteNics(ids: string[]) {
    for (const id of ids) this.nics.delete(id);
    return Promise.resolve();
  }
  nicStatus(ids: string[]) {
    const out = new Map<string, { status: "in-use" | "available"; instance: string }>();
    for (const id of ids) {
      const n = this.nics.get(id);
      if (n) out.set(id, { status: n.attached ? "in-use" : "available", instance: "i-test" });
    }
    return Promise.resolve(out);
  }
  waitJob() {
    return Promise.resolve();
  }
  describeVxnet(id: string) {
    return Promise.resolve({ id, cidr: "172.20.2.0/24", gateway: "172.20.2.1" });
  }
}

/** A node datapath where the NICs in `lost` have no link. */
class LinklessDatapath implements PodDatapath {
  lost = new Set<string>();
  setup(p: DatapathPod) {
    if (this.lost.has(p.nicId)) {
      return Promise.reject(new NicNotFoundError(p.nicId, "the node's network namespace"));
    }
    return Promise.resolve({
      interfaces: [{ name: p.ifName, mac: p.nicId, sandbox: p.netns }],
      address: `${p.ip}/32`,
      gateway: "169.254.1.1",
      interfaceIndex: 0,
    });
  }
  teardown(_p: DatapathPod): Promise<void> {
    return Promise.resolve();
  }
  check(_p: DatapathPod): Promise<string[]> {
    return Promise.resolve([]);
  }
  setupGatewayNic() {
    return Promise.resolve();
  }
}

const settings = { vethPrefix: "vnic", mtu: 1500, hairpin: false, natMark: 0x10000 };

/** A ready service over a pool (poolHigh 2) on an instant cloud and the given datapath. */
function serviceOn(datapath: PodDatapath, poolLow: number) {
  const cloud = new InstantCloud();
  const store = { batch: () => Promise.resolve() };
  const pool = new NicPool({
    cloud,
    links: { waitForMacs: () => Promise.resolve() },
    store,
    logger: nullLogger,
  }, {
    instanceId: "i-test",
    vxnet: "vxnet-pool",
    poolLow,
    poolHigh: 2,
    maxNic: 10,
    routeTableBase: 260,
    jobTimeoutMs: 1000,
    allocTimeoutMs: 2000,
  });
  const svc = new CniService({
    pool,
    store: { get: () => Promise.resolve(undefined), list: () => Promise.resolve([]), ...store },
    datapath,
    logger: nullLogger,
    settings,
  });
  svc.setReady(true);
  return { cloud, pool, svc };
}

Deno.test("a pool NIC without a link leaves the pool; the ADD gets another NIC", async () => {
  const datapath = new LinklessDatapath();
  const { cloud, pool, svc } = serviceOn(datapath, 2);
  pool.kick();
  await pool.settle();
  const [first] = pool.list();
  datapath.lost.add(first.id);

  const reply = await svc.add({ containerId: "c1", ifName: "eth0", netns: "/x", settings });
  assert.notEqual(reply.nicId, first.id);
  await pool.settle();
  assert.ok(!cloud.nics.has(first.id), "the linkless NIC was detached and deleted");
  assert.equal(pool.get(first.id), undefined);
  // No later pod is handed it either.
  for (let i = 2; i <= 4; i++) {
    const r = await svc.add({ containerId: `c${i}`, ifName: "eth0", netns: "/x", settings });
    assert.notEqual(r.nicId, first.id);
  }
  await pool.close();
});

/** A datapath whose setups can be held, counting what it is asked to do. */
class HeldDatapath extends LinklessDatapath {
  setups = 0;
  teardowns = 0;
  plumbed = new Set<string>();
  hold?: Promise<void>;
  override async setup(p: DatapathPod) {
    this.setups++;
    await this.hold;
    this.plumbed.add(p.containerId);
    return await super.setup(p);
  }
  override teardown(p: DatapathPod) {
    this.teardowns++;
    this.plumbed.delete(p.containerId);
    return Promise.resolve();
  }
  override check(p: DatapathPod) {
    return Promise.resolve(this.plumbed.has(p.containerId) ? [] : ["veth missing"]);
  }
}

Deno.test("a GC repair waits for the pod's ADD or DEL and re-checks first", async () => {
  const datapath = new HeldDatapath();
  const { pool, svc } = serviceOn(datapath, 1);
  let release = () => {};
  datapath.hold = new Promise((r) => release = r);
  const add = svc.add({ containerId: "c1", ifName: "eth0", netns: "/x", settings });
  // The allocation is visible while ADD plumbs: a GC pass sees it half made.
  while (svc.allocations().length === 0) await new Promise((r) => setTimeout(r, 1));
  const repair = svc.repair("c1", "eth0");
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(datapath.setups, 1, "no second setup while the ADD runs");
  release();
  await add;
  assert.equal(await repair, false, "nothing to repair once the ADD is done");
  assert.equal(datapath.setups, 1);

  // After the DEL, a repair planned before it changes nothing.
  await svc.del({ containerId: "c1", ifName: "eth0", netns: "/x" });
  assert.equal(await svc.repair("c1", "eth0"), false);
  assert.equal(datapath.setups, 1);
  // A pod that really lost its plumbing is set up again.
  await svc.add({ containerId: "c2", ifName: "eth0", netns: "/x", settings });
  datapath.plumbed.delete("c2");
  assert.equal(await svc.repair("c2", "eth0"), true);
  assert.equal(datapath.setups, 3);
  await pool.close();
});
