import assert from "node:assert/strict";
import { fixedIpOf } from "./service.ts";
import { planSharedGc, type SharedGcFacts } from "./gc.ts";
import { decideMode, IpamConfigSource } from "./kube.ts";
import { NamespaceUnmappedError, resolveNamespace } from "../../ipam/mod.ts";
import type { SharedRecord } from "./service.ts";
import { ReleasePendingError } from "./record.ts";
import { SharedRequestError, sharedRpcError } from "./request.ts";
import { KubeError } from "../../k8s/errors.ts";
import {
  ConflictError,
  IpamExhaustedError,
  IpamRetryError,
  IpInUseError,
} from "../../ipam/errors.ts";

const rec = (o: Partial<SharedRecord> & { containerId: string }): SharedRecord => ({
  ifName: "eth0",
  netns: `/run/netns/${o.containerId}`,
  podNamespace: "ns-a",
  podName: o.containerId,
  handle: `${o.containerId}.eth0`,
  state: "ready",
  ip: "172.30.8.5",
  sequence: 3,
  createdAt: 0,
  ...o,
});

const facts = (o: Partial<SharedGcFacts>): SharedGcFacts => ({
  now: 100_000,
  nodeName: "node-1",
  records: [],
  diffs: new Map(),
  firstSeen: new Map(),
  ...o,
});

const GRACE = { graceMs: 10_000 };

Deno.test("shared GC: netns gone releases at once; pod gone only after the grace period", () => {
  const gone = rec({ containerId: "c1" });
  const fresh = rec({ containerId: "c2", createdAt: 95_000 });
  const old = rec({ containerId: "c3" });
  const live = rec({ containerId: "c4" });
  const acts = planSharedGc(
    facts({
      records: [gone, fresh, old, live],
      diffs: new Map([["c1.eth0", ["pod: network namespace /run/netns/c1 is missing"]]]),
      livePods: new Set(["ns-a/c4", "ns-a/c1"]),
    }),
    GRACE,
  );
  assert.deepEqual(acts.map((a) => [a.kind, "containerId" in a ? a.containerId : ""]), [
    ["release-record", "c1"],
    ["release-record", "c3"],
  ]);
  const c3 = acts[1];
  assert.ok(c3.kind === "release-record" && c3.recheckPod && c3.sequence === 3);
});

Deno.test("shared GC: nothing is released by the pod rule while live pods are unknown", () => {
  const acts = planSharedGc(facts({ records: [rec({ containerId: "c1" })] }), GRACE);
  assert.deepEqual(acts, []);
});

Deno.test("shared GC: kernel differences repair a ready record", () => {
  const acts = planSharedGc(
    facts({
      records: [rec({ containerId: "c1" })],
      diffs: new Map([["c1.eth0", ["node: rule 1535 to 172.30.8.5 is missing"]]]),
      livePods: new Set(["ns-a/c1"]),
    }),
    GRACE,
  );
  assert.deepEqual(acts.map((a) => a.kind), ["repair-record"]);
});

Deno.test("shared GC: orphaned addresses after grace; a deleted Node's at once by anyone", () => {
  const addr = (handle: string, node: string) => ({
    handle,
    sequence: 7,
    ip: "172.30.8.9",
    block: "4100-172-30-8-0-26",
    node,
    namespace: "ns-a",
    pod: "p",
  });
  const acts = planSharedGc(
    facts({
      records: [rec({ containerId: "mine" })],
      addresses: [
        addr("mine.eth0", "node-1"), // has a record
        addr("orphan-new.eth0", "node-1"),
        addr("orphan-old.eth0", "node-1"),
        addr("other.eth0", "node-2"), // another live node's business
        addr("dead.eth0", "node-9"),
      ],
      nodes: new Set(["node-1", "node-2"]),
      firstSeen: new Map([["orphan-new.eth0", 99_000], ["orphan-old.eth0", 80_000]]),
      livePods: new Set(["ns-a/mine"]),
    }),
    GRACE,
  );
  assert.deepEqual(
    acts.map((a) => a.kind === "release-address" ? [a.handle, a.sequence, a.recheckNode] : a.kind),
    [["orphan-old.eth0", 7, false], ["dead.eth0", 7, true]],
  );
});

Deno.test("fixed IP: hostnic's annotation first, else Calico's ipAddrs; bad lists refused", () => {
  assert.equal(
    fixedIpOf("10.0.0.1", { "cni.projectcalico.org/ipAddrs": '["10.0.0.2"]' }),
    "10.0.0.1",
  );
  assert.equal(
    fixedIpOf(undefined, { "cni.projectcalico.org/ipAddrs": '["10.0.0.2"]' }),
    "10.0.0.2",
  );
  assert.equal(fixedIpOf(undefined, {}), undefined);
  for (const bad of ["10.0.0.2", '["10.0.0.2","10.0.0.3"]', '["fd00::1"]', "[1]"]) {
    assert.throws(
      () => fixedIpOf(undefined, { "cni.projectcalico.org/ipAddrs": bad }),
      { code: "SHARED_BAD_REQUEST" },
      bad,
    );
  }
});

Deno.test("mode: shared only when v-pool is ready and hostnic-ipam-config exists", () => {
  assert.equal(decideMode({ vpool: undefined, ipamConfig: {} }).shared, false);
  assert.match(
    decideMode({ vpool: { ready: false, message: "VIPs" }, ipamConfig: {} }).reason,
    /not ready \(VIPs\)/,
  );
  assert.equal(decideMode({ vpool: { ready: true }, ipamConfig: undefined }).shared, false);
  assert.equal(decideMode({ vpool: { ready: true }, ipamConfig: {} }).shared, true);
});

Deno.test("ipam config: the watch's copy once delivered; a read before, on request, and as fallback", async () => {
  let reads = 0;
  let server: Record<string, string> | undefined = { ipam: '{"ns-a":["4100-10-0-0-0-26"]}' };
  const src = new IpamConfigSource(async () => {
    reads++;
    await Promise.resolve();
    if (server === undefined) throw new Error("API server away");
    return server;
  }, { ipam: "{}" });
  // Before the watch delivered: read.
  assert.deepEqual((await src.get()).namespaces.get("ns-a"), ["4100-10-0-0-0-26"]);
  assert.equal(reads, 1);
  // Once delivered: the copy, however often asked, parsed once.
  src.watched({ ipam: '{"ns-b":["4100-10-0-0-64-26"]}' });
  const a = await src.get();
  assert.equal(await src.get(), a);
  assert.equal(reads, 1);
  assert.deepEqual(resolveNamespace(a, "ns-b"), { blocks: ["4100-10-0-0-64-26"] });
  // A namespace the copy does not map is asked about afresh (the watch may lag a new mapping).
  assert.throws(() => resolveNamespace(a, "ns-a"), NamespaceUnmappedError);
  assert.deepEqual(resolveNamespace(await src.get({ fresh: true }), "ns-a"), {
    blocks: ["4100-10-0-0-0-26"],
  });
  assert.equal(reads, 2);
  // That read failing falls back to the copy; a deleted ConfigMap is an error naming it.
  server = undefined;
  assert.deepEqual((await src.get({ fresh: true })).namespaces.get("ns-b"), [
    "4100-10-0-0-64-26",
  ]);
  src.watched(undefined);
  await assert.rejects(() => src.get(), /hostnic-ipam-config is gone/);
});

Deno.test("shared GC: a pending release is retried every pass, not repaired or re-planned", () => {
  const pending = rec({
    containerId: "c1",
    state: "releasing",
    releasePendingSince: 50_000,
    releaseError: "Cannot reach the Kubernetes API server",
  });
  const acts = planSharedGc(
    facts({
      records: [pending],
      diffs: new Map([["c1.eth0", ["pod: network namespace /run/netns/c1 is missing"]]]),
      livePods: new Set(),
      addresses: [{
        handle: "c1.eth0",
        sequence: 3,
        ip: "172.30.8.5",
        block: "b",
        node: "node-1",
        namespace: "ns-a",
        pod: "c1",
      }],
      firstSeen: new Map([["c1.eth0", 0]]),
    }),
    GRACE,
  );
  assert.equal(acts.length, 1, JSON.stringify(acts));
  const a = acts[0];
  assert.ok(a.kind === "release-record" && !a.recheckPod && a.sequence === 3);
  assert.match(a.reason, /pending since 1970-01-01T00:00:50\.000Z: Cannot reach/);
});

Deno.test("shared ADD errors: transient Kubernetes failures are CNI 11, refusals keep theirs", () => {
  const unreachable = new KubeError("KUBE_UNREACHABLE", "get pod", "Cannot reach the API server");
  const cases: [unknown, number | undefined][] = [
    [unreachable, 11],
    [new KubeError("KUBE_THROTTLED", "get pod", "throttled"), 11],
    [new KubeError("KUBE_API_ERROR", "update ipamblock", "HTTP 503", { status: 503 }), 11],
    [new KubeError("KUBE_API_ERROR", "get pod", "HTTP 429", { status: 429 }), 11],
    [new Error("wrapped", { cause: unreachable }), 11],
    [new IpamRetryError("allocate", 8), 11],
    [new ConflictError("IPAMBlock", "b"), 11],
    [new ReleasePendingError(rec({ containerId: "c1" }), "down"), 11],
    [new IpamExhaustedError(["p"], []), 11],
    [new IpInUseError("172.30.8.5", { handle: "h" }), 101],
    [new SharedRequestError("bad annotation"), 103],
    [new KubeError("KUBE_API_ERROR", "get pod", "HTTP 403", { status: 403 }), undefined],
  ];
  for (const [err, code] of cases) {
    assert.equal(sharedRpcError(err)?.cniCode, code, String(err));
  }
  assert.match(sharedRpcError(unreachable)!.message, /not answering.*try again later/);
});
