/**
 * Round trip: HttpIaasClient against the real simulator (lib/sim) over loopback HTTP and
 * over a unix socket. Every action the client offers is exercised end to end, plus the
 * simulator's invariants as the client sees them (typed ret codes), injected faults and
 * throttling (the simulator's counters prove how many calls the client made), and
 * authentication failures (wrong secret, stale time_stamp, tampered parameter).
 */
import assert from "node:assert/strict";
import {
  canonicalQuery,
  computeSignature,
  describeAllNics,
  formatTimeStamp,
  HttpIaasClient,
  type HttpIaasClientOptions,
  type IaasCallEvent,
  iaasConfigFromObject,
  IaasError,
  IaasTransportError,
  isNotFound,
  isPermissionDenied,
  isQuota,
  percentEncode,
  RetCode,
  waitJob,
  waitJobs,
} from "../../lib/iaas/mod.ts";
import { parseScenario, type SimServer, startSim } from "../../lib/sim/mod.ts";
import { z } from "zod";

/** A minimal schema for calls made through `request` (no typed method). */
const EnvelopeLike = z.object({ ret_code: z.number() });

const AK = "AKIDHOSTNICTEST";
const SK = "sim-secret-for-tests-0001";

const SCENARIO = `
zone: pek3a
seed: 7
credentials:
  - qy_access_key_id: ${AK}
    qy_secret_access_key: ${SK}
    owner: usr-Test0001
vpc_routers:
  - id: rtr-test0001
    cidr: 172.30.0.0/16
vxnets:
  - id: vxnet-pool001
    vpc_router_id: rtr-test0001
    cidr: 172.30.1.0/24
  - id: vxnet-page001
    vpc_router_id: rtr-test0001
    cidr: 172.30.2.0/24
instances:
  - id: i-node0001
    vxnet: vxnet-pool001
    private_ip: 172.30.1.10
  - id: i-stop0001
    vxnet: vxnet-pool001
    private_ip: 172.30.1.11
    status: stopped
security_groups:
  - id: sg-test0001
    name: default
    is_default: true
    rules:
      - name: ssh
        protocol: tcp
        val1: "22"
`;

/** Client options plus `sdk`: SDK config keys laid over the simulator's `clientConfig()`. */
type ExtraClientOptions = Omit<Partial<HttpIaasClientOptions>, "config"> & {
  sdk?: Record<string, unknown>;
};

interface Fixture extends AsyncDisposable {
  sim: SimServer;
  client: HttpIaasClient;
  /** A client with other options against the same simulator (closed with the fixture). */
  extraClient(o: ExtraClientOptions): HttpIaasClient;
}

async function fixture(
  o: { socket?: boolean; client?: Partial<HttpIaasClientOptions> } = {},
): Promise<Fixture> {
  const dir = o.socket ? await Deno.makeTempDir({ prefix: "hostnic-iaas-sim-" }) : undefined;
  const sim = await startSim({
    scenario: parseScenario(SCENARIO),
    ...(dir ? { socketPath: `${dir}/sim.sock` } : {}),
  });
  await sim.control.setKnobs({ jobLatencyMs: 0 });
  const clients: HttpIaasClient[] = [];
  const make = (
    over: ExtraClientOptions = {},
  ) => {
    const { sdk, ...rest } = over;
    const c = new HttpIaasClient({
      config: iaasConfigFromObject({ ...sim.clientConfig(), ...sdk }),
      rateLimit: null,
      retry: { baseMs: 5, capMs: 50, quotaBaseMs: 20 },
      ...o.client,
      ...rest,
    });
    clients.push(c);
    return c;
  };
  const client = make();
  return {
    sim,
    client,
    extraClient: make,
    async [Symbol.asyncDispose]() {
      for (const c of clients) await c.close();
      await sim.close();
      if (dir) await Deno.remove(dir, { recursive: true });
    },
  };
}

/** How many requests for `action` reached the simulator (per its counters). */
function calls(sim: SimServer, action: string): number {
  return sim.control.counters()[action] ?? 0;
}

async function apiError(p: Promise<unknown>): Promise<IaasError> {
  const err = await p.then(() => assert.fail("expected an API error"), (e) => e);
  assert.ok(err instanceof IaasError, `expected IaasError, got ${err}`);
  return err;
}

const WAIT = { timeoutMs: 10_000, initialIntervalMs: 10, maxIntervalMs: 100 };

Deno.test("identity and topology: access keys, vxnets, instances, security groups", async () => {
  await using f = await fixture();
  const keys = await f.client.describeAccessKeys({ accessKeys: [AK] });
  assert.equal(keys.items[0].owner, "usr-Test0001");
  assert.ok(!JSON.stringify(keys).includes(SK));

  const vx = await f.client.describeVxnets({ vxnets: ["vxnet-pool001", "vxnet-nope999"] });
  assert.equal(vx.totalCount, 1);
  const router = vx.items[0].router;
  assert.ok(router);
  assert.equal(router.ip_network, "172.30.1.0/24");
  assert.ok(router.manager_ip && router.dyn_ip_start && router.dyn_ip_end);

  const inst = await f.client.describeInstances({ instances: ["i-node0001"] });
  assert.equal(inst.items[0].status, "running");
  const primary = inst.items[0].vxnets;
  assert.equal(primary.length, 1);
  assert.equal(primary[0].private_ip, "172.30.1.10");

  const sgs = await f.client.describeSecurityGroups({ securityGroups: ["sg-test0001"] });
  assert.equal(sgs.items[0].security_group_id, "sg-test0001");
  const rules = await f.client.describeSecurityGroupRules({ securityGroup: "sg-test0001" });
  assert.equal(rules.items.length, 1);
  assert.equal(rules.items[0].val1, "22");
});

Deno.test("NIC lifecycle: create, attach (job), describe, detach (job), delete", async () => {
  await using f = await fixture();
  await f.sim.control.setKnobs({ jobLatencyMs: [20, 60] });
  const c = f.client;
  const created = await c.createNics({
    vxnet: "vxnet-pool001",
    count: 2,
    nicName: "hostnic_i-node0001",
  });
  assert.equal(created.length, 2);
  const ids = created.map((n) => n.nicId);
  for (const id of ids) assert.match(id, /^52:54(:[0-9a-f]{2}){4}$/);

  const byName = await c.describeNics({ nicName: "hostnic_i-node0001" });
  assert.deepEqual(byName.items.map((n) => n.nic_id).sort(), [...ids].sort());
  assert.ok(byName.items.every((n) => n.status === "available" && n.role === 0));

  const attachJob = await c.attachNics({ nics: ids, instance: "i-node0001" });
  // While the job runs, the NICs cannot be deleted or attached elsewhere.
  const busy = await apiError(c.deleteNics({ nics: ids }));
  assert.equal(busy.retCode, RetCode.PERMISSION_DENIED);
  const job = await waitJob(c, attachJob, WAIT);
  assert.equal(job.job_action, "AttachNics");
  assert.deepEqual(JSON.parse(job.directive).nics.sort(), [...ids].sort());

  const attached = await c.describeNics({ instances: ["i-node0001"], status: "in-use" });
  assert.deepEqual(
    attached.items.filter((n) => n.role === 0).map((n) => n.nic_id).sort(),
    [...ids].sort(),
  );
  assert.ok(attached.items.some((n) => n.role === 1), "primary NIC is listed too");
  const inst = await c.describeInstances({ instances: ["i-node0001"] });
  assert.equal(inst.items[0].vxnets.length, 3, "instance view agrees with the NIC table");

  const inUse = await apiError(c.deleteNics({ nics: [ids[0]] }));
  assert.ok(isPermissionDenied(inUse), "deleting an in-use NIC is refused");

  await waitJob(c, await c.detachNics({ nics: ids }), WAIT);
  await c.deleteNics({ nics: ids });
  assert.equal((await c.describeNics({ nics: ids })).totalCount, 0);
  const gone = await apiError(c.deleteNics({ nics: ids }));
  assert.ok(isNotFound(gone));
  assert.match(gone.apiMessage, /ResourceNotFound/);
});

Deno.test("invariants surface as typed API errors", async (t) => {
  await using f = await fixture();
  const c = f.client;
  await t.step("count out of 1-252 is 1100", async () => {
    for (const count of [0, 253]) {
      const err = await apiError(c.createNics({ vxnet: "vxnet-pool001", count }));
      assert.equal(err.retCode, RetCode.MALFORMED);
    }
  });
  await t.step("unknown vxnet is 2100", async () => {
    assert.ok(isNotFound(await apiError(c.createNics({ vxnet: "vxnet-none999" }))));
  });
  await t.step("duplicate private IP is refused", async () => {
    const [a] = await c.createNics({ vxnet: "vxnet-pool001", privateIps: ["172.30.1.50"] });
    assert.equal(a.privateIp, "172.30.1.50");
    const dup = await apiError(
      c.createNics({ vxnet: "vxnet-pool001", privateIps: ["172.30.1.50"] }),
    );
    assert.equal(dup.retCode, RetCode.PERMISSION_DENIED);
    const primary = await apiError(
      c.createNics({ vxnet: "vxnet-pool001", privateIps: ["172.30.1.10"] }),
    );
    assert.equal(primary.retCode, RetCode.PERMISSION_DENIED, "an instance's primary IP is taken");
    await c.deleteNics({ nics: [a.nicId] });
  });
  await t.step("attach to a stopped instance is 1400", async () => {
    const [n] = await c.createNics({ vxnet: "vxnet-pool001" });
    const err = await apiError(c.attachNics({ nics: [n.nicId], instance: "i-stop0001" }));
    assert.ok(isPermissionDenied(err));
    await c.deleteNics({ nics: [n.nicId] });
  });
  await t.step("more than 64 NICs per instance is 1400, nothing changes", async () => {
    const nics = (await c.createNics({ vxnet: "vxnet-page001", count: 64, disableIp: 1 }))
      .map((n) => n.nicId);
    const err = await apiError(c.attachNics({ nics, instance: "i-node0001" }));
    assert.ok(isPermissionDenied(err));
    const still = await c.describeNics({ nics, limit: 100 });
    assert.ok(still.items.every((n) => n.status === "available"), "batch is atomic");
    // 63 secondaries + the primary is exactly the limit.
    await waitJob(c, await c.attachNics({ nics: nics.slice(0, 63), instance: "i-node0001" }), WAIT);
    const attached = await c.describeNics({ instances: ["i-node0001"], limit: 100 });
    assert.equal(attached.totalCount, 64);
    await waitJob(c, await c.detachNics({ nics: nics.slice(0, 63) }), WAIT);
    await c.deleteNics({ nics });
  });
  await t.step("primary NIC cannot be detached", async () => {
    const inst = await c.describeInstances({ instances: ["i-node0001"] });
    const primary = inst.items[0].vxnets.find((v) => v.role === 1) ?? inst.items[0].vxnets[0];
    assert.ok(isPermissionDenied(await apiError(c.detachNics({ nics: [primary.nic_id] }))));
  });
  await t.step("unknown action is 1400", async () => {
    const err = await apiError(c.request("LaunchRockets", {}, EnvelopeLike));
    assert.equal(err.retCode, RetCode.PERMISSION_DENIED);
  });
});

Deno.test("pagination follows total_count in pages of 100", async () => {
  await using f = await fixture();
  const c = f.client;
  const created = await c.createNics({ vxnet: "vxnet-page001", count: 130, disableIp: 1 });
  assert.equal(created.length, 130);
  const firstPage = await c.describeNics({ vxnets: ["vxnet-page001"], limit: 500 });
  assert.equal(firstPage.totalCount, 130);
  assert.equal(firstPage.items.length, 100, "server caps limit at 100");
  f.sim.control.resetCounters();
  const all = await describeAllNics(c, { vxnets: ["vxnet-page001"] });
  assert.equal(all.length, 130);
  assert.deepEqual(new Set(all.map((n) => n.nic_id)), new Set(created.map((n) => n.nicId)));
  assert.equal(calls(f.sim, "DescribeNics"), 2);
});

Deno.test("tags: create, attach to NICs, describe with pairs, detach", async () => {
  await using f = await fixture();
  const c = f.client;
  const tagId = await c.createTag({ tagName: "hostnic" });
  const dup = await apiError(c.createTag({ tagName: "hostnic" }));
  assert.equal(dup.retCode, RetCode.ALREADY_EXISTS);
  const nics = (await c.createNics({ vxnet: "vxnet-pool001", count: 2 })).map((n) => n.nicId);
  await c.attachTags(nics.map((id) => ({ tagId, resourceType: "nic", resourceId: id })));
  const tags = await c.describeTags({ tags: [tagId], verbose: 1 });
  assert.equal(tags.items[0].resource_count, 2);
  assert.deepEqual(tags.items[0].resource_tag_pairs.map((p) => p.resource_id).sort(), nics.sort());
  const tagged = await c.describeNics({ nics });
  assert.ok(tagged.items.every((n) => n.tags.some((t) => t.tag_id === tagId)));
  await c.detachTags([{ tagId, resourceType: "nic", resourceId: nics[0] }]);
  assert.equal((await c.describeTags({ tags: [tagId] })).items[0].resource_count, 1);
});

Deno.test("VIPs and security-group changes are jobs the client waits for", async () => {
  await using f = await fixture();
  await f.sim.control.setKnobs({ jobLatencyMs: [10, 40] });
  const c = f.client;
  const alloc = await c.allocateVips({
    vxnetId: "vxnet-pool001",
    vipName: "hostnic_vxnet-pool001",
    vipRange: "172.30.1.200-172.30.1.203",
    count: 4,
  });
  const ruleIds = await c.addSecurityGroupRules({
    securityGroup: "sg-test0001",
    rules: [{
      protocol: "tcp",
      priority: 1,
      action: "accept",
      direction: 0,
      name: "pods",
      val3: "172.30.0.0/16",
    }],
  });
  assert.equal(ruleIds.length, 1);
  const apply = await c.applySecurityGroup({ securityGroup: "sg-test0001" });
  f.sim.control.resetCounters();
  const polls: number[] = [];
  const watched = {
    describeJobs: (r: Parameters<typeof c.describeJobs>[0]) => {
      polls.push(r?.jobs?.length ?? 0);
      return c.describeJobs(r);
    },
  };
  const done = await waitJobs(watched, [alloc.jobId, apply], WAIT);
  assert.equal(done.size, 2);
  // Each poll is one DescribeJobs covering every job still pending.
  assert.equal(calls(f.sim, "DescribeJobs"), polls.length);
  assert.equal(polls[0], 2);
  const vips = await c.describeVips({
    vxnets: ["vxnet-pool001"],
    vipName: "hostnic_vxnet-pool001",
  });
  assert.deepEqual(vips.items.map((v) => v.vip_addr).sort(), [
    "172.30.1.200",
    "172.30.1.201",
    "172.30.1.202",
    "172.30.1.203",
  ]);
  const rules = await c.describeSecurityGroupRules({ securityGroup: "sg-test0001" });
  assert.ok(
    rules.items.some((r) => r.security_group_rule_id === ruleIds[0] && r.val3 === "172.30.0.0/16"),
  );
  await waitJob(c, await c.releaseVips({ vips: vips.items.map((v) => v.vip_id) }), WAIT);
  assert.equal((await c.describeVips({ vxnets: ["vxnet-pool001"] })).totalCount, 0);
});

Deno.test("injected 5100 faults: the client retries and recovers; counters show each try", async () => {
  await using f = await fixture();
  await f.sim.control.setKnobs({ errors: { DescribeVxnets: { rate: 1, code: 5100 } } });
  f.sim.control.resetCounters();
  const err = await apiError(f.client.describeVxnets());
  assert.equal(err.retCode, RetCode.SERVER_BUSY);
  // connection_retries (3 by default from clientConfig, unless the sim sets it) + 1 attempts.
  assert.equal(calls(f.sim, "DescribeVxnets"), f.client.config.connectionRetries + 1);

  await f.sim.control.setKnobs({ seed: 42, errors: { DescribeVxnets: { rate: 0.5, code: 5000 } } });
  const c = f.extraClient({ sdk: { connection_retries: 10 } });
  f.sim.control.resetCounters();
  for (let i = 0; i < 10; i++) assert.equal((await c.describeVxnets()).totalCount, 2);
  const made = calls(f.sim, "DescribeVxnets");
  assert.ok(made > 10, `expected some retried calls, saw ${made} for 10 successes`);
});

Deno.test("dropped connections: reads recover, a create is not resent and is reconciled", async () => {
  await using f = await fixture();
  const c = f.extraClient({ sdk: { connection_retries: 12 } });
  await f.sim.control.setKnobs({
    seed: 3,
    transportFailureRate: 0.4,
    transportFailureMode: "after",
  });
  const seen: IaasCallEvent[] = [];
  const watched = f.extraClient({
    sdk: { connection_retries: 12 },
    onCall: (e) => seen.push(e),
  });
  for (let i = 0; i < 8; i++) {
    assert.equal((await watched.describeInstances({ instances: ["i-node0001"] })).totalCount, 1);
  }
  assert.ok(seen.some((e) => e.outcome === "transport"), "some attempts were dropped");
  assert.equal(seen.filter((e) => e.outcome === "ok").length, 8);

  // Every reply lost, but the action still happens: the client must not resend CreateNics.
  await f.sim.control.setKnobs({ transportFailureRate: 1, transportFailureMode: "after" });
  f.sim.control.resetCounters();
  const lost = await c.createNics({ vxnet: "vxnet-pool001", nicName: "hostnic_reconcile" }).then(
    () => assert.fail("expected a transport error"),
    (e) => e,
  );
  assert.ok(lost instanceof IaasTransportError);
  assert.equal(lost.maybeSent, true);
  assert.equal(calls(f.sim, "CreateNics"), 1);
  await f.sim.control.setKnobs({ transportFailureRate: 0 });
  const found = await c.describeNics({ nicName: "hostnic_reconcile" });
  assert.equal(found.totalCount, 1, "the NIC exists and is found by name");
});

Deno.test("server throttling (2500): the client backs off and gets through", async () => {
  await using f = await fixture();
  await f.sim.control.setKnobs({ rateLimit: { perSecond: 20, burst: 3 } });
  const seen: IaasCallEvent[] = [];
  const c = f.extraClient({
    retry: { baseMs: 5, capMs: 500, quotaBaseMs: 100, quotaRetries: 6 },
    onCall: (e) => seen.push(e),
  });
  f.sim.control.resetCounters();
  for (let i = 0; i < 10; i++) await c.describeJobs();
  const throttled = seen.filter((e) => e.retCode === RetCode.QUOTA_EXCEEDED).length;
  assert.ok(throttled > 0, "the simulator throttled some calls");
  assert.equal(seen.filter((e) => e.outcome === "ok").length, 10);
  assert.equal(calls(f.sim, "DescribeJobs"), 10 + throttled);

  // Without quota retries the throttling surfaces as a typed quota error.
  const impatient = f.extraClient({ retry: { quotaRetries: 0 } });
  let quota: unknown;
  for (let i = 0; i < 20 && !quota; i++) {
    quota = await impatient.describeJobs().then(() => undefined, (e) => e);
  }
  assert.ok(isQuota(quota));
});

Deno.test("a client-side token bucket keeps the client under the simulator's limit", async () => {
  await using f = await fixture();
  await f.sim.control.setKnobs({ rateLimit: { perSecond: 20, burst: 3 } });
  const seen: IaasCallEvent[] = [];
  // Half the server's rate and a smaller burst: a loaded machine delays and bunches requests
  // between the two buckets, and the margin must absorb that (15/s vs 20/s did not, at load 10).
  const c = f.extraClient({ rateLimit: { perSecond: 10, burst: 2 }, onCall: (e) => seen.push(e) });
  for (let i = 0; i < 8; i++) await c.describeJobs();
  assert.equal(seen.filter((e) => e.retCode === RetCode.QUOTA_EXCEEDED).length, 0);
  assert.equal(seen.length, 8);
});

Deno.test("authentication: wrong secret 1200, stale time_stamp 1300, tampered parameter 1200", async () => {
  await using f = await fixture();
  const wrong = f.extraClient({ sdk: { qy_secret_access_key: "not-the-right-secret" } });
  const e1 = await apiError(wrong.describeNics());
  assert.equal(e1.retCode, RetCode.AUTH_FAILED);
  assert.ok(!e1.message.includes("not-the-right-secret"));

  const stale = f.extraClient({ deps: { wallClock: () => new Date(Date.now() - 5 * 60_000) } });
  assert.equal((await apiError(stale.describeNics())).retCode, RetCode.EXPIRED);

  // Sign a DescribeNics for one NIC, then change the filter after signing.
  const cfg = f.client.config;
  const path = cfg.uri;
  const params: Record<string, string> = {
    action: "DescribeNics",
    zone: cfg.zone,
    access_key_id: cfg.accessKeyId,
    signature_method: "HmacSHA256",
    signature_version: "1",
    time_stamp: formatTimeStamp(new Date()),
    "nics.1": "52:54:00:00:00:01",
  };
  const sig = await computeSignature({
    method: "GET",
    path,
    params,
    secret: cfg.secretAccessKey,
    signatureMethod: "HmacSHA256",
  });
  const send = async (p: Record<string, string>) => {
    const url = `${f.sim.url.replace(/\/iaas\/?$/, "")}${path}?${canonicalQuery(p)}&signature=${
      percentEncode(sig)
    }`;
    const res = await fetch(url);
    return await res.json() as { ret_code: number; message?: string };
  };
  assert.equal((await send(params)).ret_code, 0, "the untampered request is accepted");
  const tampered = await send({ ...params, "nics.1": "52:54:00:00:00:02" });
  assert.equal(tampered.ret_code, RetCode.AUTH_FAILED);
});

Deno.test("the client works over the simulator's unix socket", async () => {
  await using f = await fixture({ socket: true });
  assert.ok(f.sim.socketPath);
  assert.equal(f.client.config.socketPath, f.sim.socketPath);
  f.sim.control.resetCounters();
  const keys = await f.client.describeAccessKeys();
  assert.equal(keys.items[0].owner, "usr-Test0001");
  const [nic] = await f.client.createNics({ vxnet: "vxnet-pool001" });
  await waitJob(
    f.client,
    await f.client.attachNics({ nics: [nic.nicId], instance: "i-node0001" }),
    WAIT,
  );
  assert.equal(calls(f.sim, "DescribeAccessKeys"), 1);
});
