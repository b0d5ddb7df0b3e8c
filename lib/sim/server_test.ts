import assert from "node:assert/strict";
import { startSim, type StartSimOptions } from "./server.ts";
import {
  callApi,
  OTHER_KEY_ID,
  OTHER_SECRET,
  signedRequest,
  type SignedRequestOptions,
  TEST_SECRET,
  testScenario,
} from "./testing.ts";

type Call = Omit<SignedRequestOptions, "url">;

async function withSim(
  fn: (
    sim: Awaited<ReturnType<typeof startSim>>,
    call: (o: Call) => Promise<Record<string, unknown>>,
  ) => Promise<void>,
  o: Partial<StartSimOptions> = {},
) {
  await using sim = await startSim({ scenario: testScenario(), ...o });
  const now = o.now;
  await fn(sim, (c) => callApi({ url: sim.url, ...(now ? { time: new Date(now()) } : {}), ...c }));
}

Deno.test("signed GET and POST requests are accepted on /iaas/ and /iaas", async () => {
  await withSim(async (sim, call) => {
    const r = await call({ action: "DescribeNics", params: { "instances.1": "i-one" } });
    assert.equal(r.ret_code, 0);
    assert.equal(r.action, "DescribeNicsResponse");
    assert.equal(r.total_count, 1);
    const created = await call({
      action: "CreateNics",
      method: "POST",
      // Space, "+", "~" and "*" exercise form decoding vs. canonical encoding.
      params: { vxnet: "vxnet-a", count: 2, nic_name: "hostnic pool+a~b*c" },
    });
    assert.equal(created.ret_code, 0, JSON.stringify(created));
    assert.equal((created.nics as unknown[]).length, 2);
    // Python SDK style: the body is form-encoded (space → "+"), though "%20" was signed.
    const signed = await signedRequest({
      url: sim.url,
      action: "DescribeNics",
      method: "POST",
      params: { nic_name: "hostnic pool+a~b*c" },
    });
    const form = new URLSearchParams(await signed.text());
    assert.match(form.toString(), /nic_name=hostnic\+pool%2Ba/);
    const py = await (await fetch(sim.url, { method: "POST", body: form })).json();
    assert.equal(py.ret_code, 0, JSON.stringify(py));
    assert.equal(py.total_count, 2);
    const goStyle = await call({
      action: "DescribeNics",
      params: { nic_name: "hostnic pool+a~b*c" },
      // The Go SDK signs and requests /iaas without the trailing slash.
      ...{ url: sim.url.replace(/\/$/, "") },
    });
    assert.equal(goStyle.ret_code, 0);
    assert.equal(goStyle.total_count, 2);
  });
});

Deno.test("auth failures: wrong secret 1200, tampered 1200, stale 1300, unknown action 1400", async () => {
  await withSim(async (_sim, call) => {
    const wrong = await call({ action: "DescribeNics", secret: "not-the-secret" });
    assert.deepEqual(wrong, { ret_code: 1200, message: "AuthFailure, signature not matched" });
    const tampered = await call({
      action: "DescribeNics",
      params: { "nics.1": "52:54:00:00:00:01" },
      tamper: { "nics.1": "52:54:00:00:00:02" },
    });
    assert.equal(tampered.ret_code, 1200);
    const stale = await call({ action: "DescribeNics", time: new Date(Date.now() - 120_000) });
    assert.equal(stale.ret_code, 1300);
    const future = await call({ action: "DescribeNics", time: new Date(Date.now() + 120_000) });
    assert.equal(future.ret_code, 1300);
    const unknown = await call({ action: "LaunchRockets" });
    assert.deepEqual(unknown, {
      ret_code: 1400,
      message: "PermissionDenied, can't handle this request",
    });
    const zone = await call({ action: "DescribeNics", zone: "gd2" });
    assert.equal(zone.ret_code, 1100);
  });
});

Deno.test("the full NIC lifecycle over HTTP", async () => {
  await withSim(async (_sim, call) => {
    const c = await call({
      action: "CreateNics",
      params: { vxnet: "vxnet-a", nic_name: "hostnic_i-one", "private_ips.1": "172.25.1.77" },
    });
    const nicId = (c.nics as { nic_id: string; private_ip: string }[])[0].nic_id;
    assert.deepEqual(c.nics, [{ nic_id: nicId, private_ip: "172.25.1.77" }]);
    const a = await call({ action: "AttachNics", params: { "nics.1": nicId, instance: "i-one" } });
    assert.match(String(a.job_id), /^j-[a-z0-9]{8}$/);
    const jobs = await call({ action: "DescribeJobs", params: { "jobs.1": String(a.job_id) } });
    const job = (jobs.job_set as Record<string, unknown>[])[0];
    assert.equal(job.status, "successful");
    assert.equal(job.job_action, "AttachNics");
    assert.deepEqual(JSON.parse(String(job.directive)).nics, [nicId]);
    const d = await call({ action: "DescribeNics", params: { "nics.1": nicId } });
    const nic = (d.nic_set as Record<string, unknown>[])[0];
    assert.equal(nic.status, "in-use");
    assert.equal(nic.instance_id, "i-one");
    assert.equal(nic.role, 0);
    assert.equal(nic.sequence, 1);
    const inst = await call({ action: "DescribeInstances", params: { "instances.1": "i-one" } });
    const vx = (inst.instance_set as { vxnets: { nic_id: string }[] }[])[0].vxnets;
    assert.deepEqual(vx.map((v) => v.nic_id).includes(nicId), true);
    const del = await call({ action: "DeleteNics", params: { "nics.1": nicId } });
    assert.equal(del.ret_code, 1400);
    const det = await call({ action: "DetachNics", params: { "nics.1": nicId } });
    assert.equal(det.ret_code, 0);
    assert.equal((await call({ action: "DeleteNics", params: { "nics.1": nicId } })).ret_code, 0);
    const gone = await call({ action: "DeleteNics", params: { "nics.1": nicId } });
    assert.equal(gone.ret_code, 2100);
    assert.match(String(gone.message), /ResourceNotFound/);
  });
});

Deno.test("jobs report pending → working → successful on the simulator clock", async () => {
  let t = Date.UTC(2025, 5, 1, 12, 0, 0);
  await withSim(async (sim, call) => {
    sim.control.setKnobs({ jobLatencyMs: 3000, jobPendingShare: 0.5 });
    const c = await call({ action: "CreateNics", params: { vxnet: "vxnet-a" } });
    const nicId = (c.nics as { nic_id: string }[])[0].nic_id;
    const a = await call({ action: "AttachNics", params: { "nics.1": nicId, instance: "i-one" } });
    const status = async () => {
      const r = await call({ action: "DescribeJobs", params: { "jobs.1": String(a.job_id) } });
      return (r.job_set as { status: string }[])[0].status;
    };
    assert.equal(await status(), "pending");
    t += 1000;
    assert.equal(await status(), "working");
    assert.equal(sim.world.nics.get(nicId)!.status, "available");
    t += 2000;
    assert.equal(await status(), "successful");
    assert.equal(sim.world.nics.get(nicId)!.status, "in-use");
  }, { now: () => t });
});

Deno.test("pagination: total_count before paging, limit capped at 100", async () => {
  await withSim(async (_sim, call) => {
    await call({ action: "CreateNics", params: { vxnet: "vxnet-b", count: 120, disable_ip: 1 } });
    const p = await call({
      action: "DescribeNics",
      params: { "vxnets.1": "vxnet-b", offset: 110, limit: 20 },
    });
    assert.equal(p.total_count, 120);
    assert.equal((p.nic_set as unknown[]).length, 10);
    const capped = await call({ action: "DescribeNics", params: { limit: 252 } });
    assert.equal((capped.nic_set as unknown[]).length, 100);
    const dflt = await call({ action: "DescribeNics", params: { limit: 0 } });
    assert.equal((dflt.nic_set as unknown[]).length, 20);
    const past = await call({ action: "DescribeNics", params: { offset: 500 } });
    assert.deepEqual([past.ret_code, past.total_count, past.nic_set], [0, 123, []]);
    const bad = await call({ action: "DescribeNics", params: { limit: "many" } });
    assert.equal(bad.ret_code, 1100);
  });
});

Deno.test("unknown job ids: 2100 by default, an empty set with unknownJob=empty", async () => {
  await withSim(async (sim, call) => {
    const r = await call({ action: "DescribeJobs", params: { "jobs.1": "j-nothere1" } });
    assert.equal(r.ret_code, 2100);
    sim.control.setKnobs({ unknownJob: "empty" });
    const e = await call({ action: "DescribeJobs", params: { "jobs.1": "j-nothere1" } });
    assert.deepEqual([e.ret_code, e.total_count], [0, 0]);
  });
});

Deno.test("owners are isolated and DescribeAccessKeys never returns secrets", async () => {
  await withSim(async (_sim, call) => {
    const other = { keyId: OTHER_KEY_ID, secret: OTHER_SECRET };
    const r = await call({ action: "DescribeInstances", ...other });
    assert.equal(r.total_count, 0);
    const keys = await call({ action: "DescribeAccessKeys", ...other });
    const set = keys.access_key_set as Record<string, unknown>[];
    assert.deepEqual(set.map((k) => k.owner), ["usr-Other001"]);
    assert.ok(!JSON.stringify(keys).includes(OTHER_SECRET));
  });
});

Deno.test("fault knobs: injected errors, counters include rejected calls", async () => {
  await withSim(async (sim, call) => {
    sim.control.setKnobs({ errors: { CreateNics: { rate: 1, code: 5100 } } });
    const r = await call({ action: "CreateNics", params: { vxnet: "vxnet-a" } });
    assert.equal(r.ret_code, 5100);
    assert.match(String(r.message), /^ServerBusy, /);
    assert.equal(sim.world.nics.size, 3); // only the primaries: nothing was created
    await call({ action: "DescribeNics", secret: "wrong-secret" });
    await call({ action: "Bogus" });
    assert.deepEqual(sim.control.counters(), { CreateNics: 1, DescribeNics: 1, Bogus: 1 });
    assert.deepEqual(sim.control.retCodes(), { "5100": 1, "1200": 1, "1400": 1 });
    sim.control.resetCounters();
    assert.deepEqual(sim.control.counters(), {});
  });
});

Deno.test("injected errors at a partial rate are reproducible from the seed", async () => {
  const run = async () => {
    const codes: number[] = [];
    await withSim(async (sim, call) => {
      sim.control.setKnobs({ seed: 99, errors: { "*": { rate: 0.5, code: 5000 } } });
      for (let i = 0; i < 12; i++) {
        codes.push(Number((await call({ action: "DescribeNics" })).ret_code));
      }
    });
    return codes;
  };
  const a = await run();
  assert.ok(a.includes(0) && a.includes(5000), a.join(","));
  assert.deepEqual(await run(), a);
});

Deno.test("rate limit: an empty bucket answers 2500", async () => {
  await withSim(async (sim, call) => {
    sim.control.setKnobs({ rateLimit: { perSecond: 0.001, burst: 3 } });
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await call({ action: "DescribeNics" })).ret_code);
    assert.deepEqual(codes, [0, 0, 0, 2500, 2500]);
    // Buckets are per access key.
    const other = await call({ action: "DescribeNics", keyId: OTHER_KEY_ID, secret: OTHER_SECRET });
    assert.equal(other.ret_code, 0);
    assert.equal(sim.control.counters().DescribeNics, 6);
  });
});

Deno.test("replyDelayMs holds an action's calls; close() ends the hold", async () => {
  const sim = await startSim({ scenario: testScenario() });
  try {
    sim.control.setKnobs({ replyDelayMs: { DescribeNics: 3_600_000, DescribeVxnets: 1 } });
    const calls = () => sim.control.counters().DescribeNics ?? 0;
    const arrived = async (n: number) => {
      while (calls() < n) await new Promise((r) => setTimeout(r, 5));
    };
    // Other actions are not held; a short hold answers normally.
    assert.equal((await callApi({ url: sim.url, action: "DescribeInstances" })).ret_code, 0);
    assert.equal((await callApi({ url: sim.url, action: "DescribeVxnets" })).ret_code, 0);
    // close() ends a held call without an answer, and does not wait out the hour.
    const held = callApi({ url: sim.url, action: "DescribeNics" });
    await arrived(1);
    await sim.close();
    await assert.rejects(held);
  } finally {
    await sim.close();
  }
});

Deno.test("transport failures cut the reply; mode decides whether the call took effect", async () => {
  await withSim(async (sim, call) => {
    for (const [mode, created] of [["before", 0], ["after", 1]] as const) {
      sim.control.setKnobs({ transportFailureRate: 1, transportFailureMode: mode });
      const before = sim.world.nics.size;
      await assert.rejects(call({ action: "CreateNics", params: { vxnet: "vxnet-a" } }));
      assert.equal(sim.world.nics.size - before, created, mode);
    }
    sim.control.setKnobs({ transportFailureRate: 0 });
    assert.equal((await call({ action: "DescribeNics" })).ret_code, 0);
    assert.equal(sim.control.retCodes().dropped, 2);
  });
});

Deno.test("control API over HTTP: counters, knobs (validated), state, reboot", async () => {
  await withSim(async (sim, call) => {
    await call({ action: "DescribeNics" });
    const base = sim.url.replace(/\/iaas\/$/, "/_sim");
    const get = async (path: string) => await (await fetch(base + path)).json();
    const post = async (path: string, body?: unknown) => {
      const res = await fetch(base + path, {
        method: "POST",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    };
    assert.deepEqual((await get("/counters")).counters, { DescribeNics: 1 });
    const bad = await post("/knobs", { rateLimit: { perSecond: -1, burst: 1 } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /knobs\.rateLimit\.perSecond/);
    const ok = await post("/knobs", { jobLatencyMs: [5, 10] });
    assert.deepEqual(ok.body.jobLatencyMs, [5, 10]);
    assert.deepEqual(sim.control.knobs().jobLatencyMs, [5, 10]);
    const state = await get("/state");
    assert.equal(state.instances.length, 3);
    assert.ok(!JSON.stringify(state).includes(TEST_SECRET));
    assert.equal((await post("/instances/i-one/reboot")).body.boot_count, 1);
    assert.equal((await post("/instances/i-nope/reboot")).status, 404);
    assert.equal((await post("/instances/i-one/status", { status: "stopped" })).status, 200);
    assert.equal(sim.world.instances.get("i-one")!.status, "stopped");
    assert.equal((await post("/counters/reset")).status, 200);
    assert.deepEqual(sim.control.counters(), {});
  });
});

Deno.test("serves the same API on a unix socket; clientConfig has the SDK keys", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsim" });
  try {
    const socketPath = `${dir}/sim.sock`;
    await withSim(async (sim) => {
      const cfg = sim.clientConfig();
      assert.equal(cfg.socket_path, socketPath);
      assert.equal(cfg.zone, "pek3a");
      assert.equal(cfg.protocol, "http");
      assert.equal(cfg.uri, "/iaas/");
      const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socketPath } });
      try {
        const req = await signedRequest({ url: sim.url, action: "DescribeVxnets" });
        const res = await fetch(req, { client });
        const body = await res.json();
        assert.equal(body.ret_code, 0);
        assert.equal(body.total_count, 3); // the basic (type 2) vxnet is left out
      } finally {
        client.close();
      }
    }, { socketPath });
    await assert.rejects(Deno.lstat(socketPath), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CreateSecurityGroup, and DescribeClusters for clusters added through /_sim/clusters", async () => {
  await withSim(async (sim, call) => {
    const sg = await call({
      action: "CreateSecurityGroup",
      params: { security_group_name: "k8s" },
    });
    assert.equal(sg.ret_code, 0, JSON.stringify(sg));
    const sgId = sg.security_group_id as string;
    assert.match(sgId, /^sg-/);
    const base = new URL(sim.url).origin;
    const bad = await fetch(`${base}/_sim/clusters`, {
      method: "POST",
      body: JSON.stringify({ cluster_id: "cl-abc", security_group_id: "sg-nope" }),
    });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    const ok = await fetch(`${base}/_sim/clusters`, {
      method: "POST",
      body: JSON.stringify({ cluster_id: "cl-abc", security_group_id: sgId }),
    });
    assert.equal(ok.status, 200, await ok.text());
    const r = await call({ action: "DescribeClusters", params: { "clusters.1": "cl-abc" } });
    assert.equal(r.ret_code, 0);
    assert.deepEqual(
      (r.cluster_set as { cluster_id: string; security_group_id: string }[]).map((c) => [
        c.cluster_id,
        c.security_group_id,
      ]),
      [["cl-abc", sgId]],
    );
    // Another account sees none of it.
    const other = await call({
      action: "DescribeClusters",
      params: { "clusters.1": "cl-abc" },
      keyId: OTHER_KEY_ID,
      secret: OTHER_SECRET,
    });
    assert.equal(other.total_count, 0);
  });
});
