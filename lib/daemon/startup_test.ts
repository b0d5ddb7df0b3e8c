import assert from "node:assert/strict";
import { HttpIaasClient } from "../iaas/client.ts";
import { iaasConfigFromObject } from "../iaas/config.ts";
import { startSim } from "../sim/server.ts";
import { testScenario } from "../sim/testing.ts";
import { nullLogger } from "../log.ts";
import { nicKey, type NicRecord } from "../nicpool/model.ts";
import { MemoryStore } from "../store/mod.ts";
import { recoverState } from "./startup.ts";

const NIC_NAME = "hostnic_i-one";

Deno.test("recovery waits for an attach a crash interrupted: its NICs are pooled, not deleted", async () => {
  await using sim = await startSim({ scenario: testScenario() });
  // Jobs that outlast the daemon's restart; one attach of two will fail.
  sim.control.setKnobs({ jobLatencyMs: 400 });
  await using iaas = new HttpIaasClient({
    config: iaasConfigFromObject(sim.clientConfig()),
    rateLimit: null,
  });
  const store = await MemoryStore.open();
  const now = Date.now();
  const record = (id: string, ip: string, jobId: string, table: number): NicRecord => ({
    id,
    vxnet: "vxnet-a",
    ip,
    cidr: "172.25.1.0/24",
    gateway: "172.25.1.1",
    table,
    state: "attaching",
    dedicated: false,
    jobId,
    createdAt: now,
    updatedAt: now,
  });
  const ok = await iaas.createNics({ vxnet: "vxnet-a", count: 2, nicName: NIC_NAME });
  const okJob = await iaas.attachNics({ nics: ok.map((n) => n.nicId), instance: "i-one" });
  sim.control.setKnobs({ jobFailureRate: { AttachNics: 1 } });
  const bad = await iaas.createNics({ vxnet: "vxnet-a", count: 1, nicName: NIC_NAME });
  const badJob = await iaas.attachNics({ nics: bad.map((n) => n.nicId), instance: "i-one" });
  // The daemon had recorded them as attaching with the job ids, then died.
  await store.batch(
    [...ok.map((n, i) => record(n.nicId, n.privateIp ?? "", okJob, 260 + i)), {
      ...record(bad[0].nicId, bad[0].privateIp ?? "", badJob, 262),
    }].map((r) => ({ type: "put" as const, key: nicKey(r.id), value: r })),
  );

  const out = await recoverState({ iaas, store, logger: nullLogger, now: Date.now }, {
    instanceId: "i-one",
    nicName: NIC_NAME,
    routeTableBase: 260,
    pooledVxnet: "vxnet-a",
  });
  const state = new Map(out.nics.map((n) => [n.id, n.state]));
  for (const n of ok) assert.equal(state.get(n.nicId), "free", `${n.nicId} attached: pooled`);
  assert.equal(state.get(bad[0].nicId), "detaching", "a failed attach is collected");
  await store.close();
});
