/**
 * The daemon's Kubernetes binding against an in-memory `Kube`: annotation merge with CNI_ARGS, the
 * node vxnet choice, health annotation diffing, events on failed ADDs, the API-unreachable path,
 * ConfigMap change notices and live pods. (The real client against the real kube-apiserver, in real
 * daemon processes, is tests/e2e/kube_test.ts.)
 */
import assert from "node:assert/strict";
import { kubernetesMode } from "../../config.ts";
import { HostnicError } from "../../errors.ts";
import {
  ANNOTATION_IP,
  ANNOTATION_TYPE,
  ANNOTATION_VXNET,
  NODE_ANNOTATION_POOL,
  NODE_ANNOTATION_VXNET,
} from "../../k8s/annotations.ts";
import { KubeError } from "../../k8s/errors.ts";
import type {
  Kube,
  KubeEvent,
  KubeWatch,
  NodeCondition,
  NodeInfo,
  PodInfo,
  PodRef,
  WatchEventType,
  WatchPodsOptions,
} from "../../k8s/types.ts";
import { nullLogger } from "../../log.ts";
import { RpcError } from "../../rpc/protocol.ts";
import type { AddReply, AddRequest } from "../../rpc/api.ts";
import {
  AnnotationConflictError,
  chooseNodeVxnet,
  daemonPodEnv,
  describeAddFailure,
  healthAnnotation,
  type HealthSource,
  KubeStartError,
  mergePodRequest,
  poolHealth,
  readConfigMap,
  startKubeBinding,
  unmetAnnotations,
} from "./binding.ts";

const VX_A = "vxnet-aaa";
const VX_B = "vxnet-bbb";
const unreachable = (op = "get") =>
  new KubeError("KUBE_UNREACHABLE", op, `Cannot reach the Kubernetes API server to ${op}`);
const forbidden = (op = "get") =>
  new KubeError("KUBE_API_ERROR", op, `Kubernetes API refused to ${op}: 403 Forbidden`, {
    status: 403,
    reason: "Forbidden",
  });

/** An in-memory `Kube`: state in maps, failures queued per method, watches driven by the test. */
class MemoryKube implements Kube {
  pods = new Map<string, PodInfo>();
  nodes = new Map<string, NodeInfo>();
  configMaps = new Map<string, Record<string, string>>();
  events: { pod: PodRef; event: KubeEvent }[] = [];
  annotateCalls: { name: string; annotations: Record<string, string | null> }[] = [];
  /** Errors the next calls of a method throw, in order. */
  failures = new Map<string, Error[]>();
  podWatch?: {
    onEvent: (type: WatchEventType, pod: PodInfo) => void;
    opts: WatchPodsOptions;
  };
  cmWatch?: (data: Record<string, string> | undefined) => void;
  closed = false;

  #fail(method: string): void {
    const e = this.failures.get(method)?.shift();
    if (e) throw e;
  }
  addNode(name: string, annotations: Record<string, string> = {}): void {
    this.nodes.set(name, { name, annotations, labels: {}, conditions: [] });
  }
  addPod(namespace: string, name: string, annotations: Record<string, string> = {}): void {
    this.pods.set(`${namespace}/${name}`, {
      namespace,
      name,
      uid: `uid-${name}`,
      annotations,
      labels: {},
    });
  }

  getPod(namespace: string, name: string): Promise<PodInfo | undefined> {
    return Promise.resolve().then(() => {
      this.#fail("getPod");
      return this.pods.get(`${namespace}/${name}`);
    });
  }
  listPodsOnNode(nodeName: string): Promise<PodInfo[]> {
    return Promise.resolve([...this.pods.values()].filter((p) => p.nodeName === nodeName));
  }
  getNode(name: string): Promise<NodeInfo | undefined> {
    return Promise.resolve().then(() => {
      this.#fail("getNode");
      return this.nodes.get(name);
    });
  }
  listNodes(): Promise<NodeInfo[]> {
    return Promise.resolve().then(() => {
      this.#fail("listNodes");
      return [...this.nodes.values()];
    });
  }
  annotateNode(name: string, annotations: Record<string, string | null>): Promise<NodeInfo> {
    return Promise.resolve().then(() => {
      this.#fail("annotateNode");
      this.annotateCalls.push({ name, annotations });
      const n = this.nodes.get(name)!;
      for (const [k, v] of Object.entries(annotations)) {
        if (v === null) delete n.annotations[k];
        else n.annotations[k] = v;
      }
      return n;
    });
  }
  setNodeCondition(_name: string, _condition: NodeCondition): Promise<void> {
    return Promise.resolve();
  }
  createPodEvent(pod: PodRef, event: KubeEvent): Promise<void> {
    return Promise.resolve().then(() => {
      this.#fail("createPodEvent");
      this.events.push({ pod, event });
    });
  }
  getConfigMap(namespace: string, name: string): Promise<Record<string, string> | undefined> {
    return Promise.resolve().then(() => {
      this.#fail("getConfigMap");
      return this.configMaps.get(`${namespace}/${name}`);
    });
  }
  watchConfigMap(
    namespace: string,
    name: string,
    onChange: (data: Record<string, string> | undefined) => void,
  ): KubeWatch {
    this.cmWatch = onChange;
    onChange(this.configMaps.get(`${namespace}/${name}`));
    return this.#watch(() => (this.cmWatch = undefined));
  }
  watchPodsOnNode(
    _nodeName: string,
    onEvent: (type: WatchEventType, pod: PodInfo) => void,
    opts: WatchPodsOptions = {},
  ): KubeWatch {
    this.podWatch = { onEvent, opts };
    return this.#watch(() => (this.podWatch = undefined));
  }
  #watch(stop: () => void): KubeWatch {
    const w = {
      stop: () => Promise.resolve(stop()),
      [Symbol.asyncDispose]: () => w.stop(),
    };
    return w;
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

function request(extra: Partial<AddRequest> = {}): AddRequest {
  return {
    containerId: "ctr-1",
    ifName: "eth0",
    netns: "/run/netns/p1",
    podNamespace: "default",
    podName: "web",
    settings: { vethPrefix: "vnic", mtu: 1500, hairpin: false, natMark: 0x10000 },
    ...extra,
  };
}

function reply(o: { vxnet?: string; ip?: string; mode?: "nic" | "passthrough" } = {}): AddReply {
  return {
    mode: o.mode ?? "nic",
    address: `${o.ip ?? "172.22.1.10"}/32`,
    gateway: "169.254.1.1",
    interfaces: [],
    interfaceIndex: 0,
    routes: [],
    vxnet: o.vxnet ?? VX_A,
    vxnetCidr: "172.22.1.0/24",
    nicId: "52:54:00:00:00:01",
  };
}

const source = (o: { free?: number; ready?: boolean; lastError?: string } = {}): HealthSource => ({
  pool: {
    counts: () => ({ free: o.free ?? 2, inuse: 1, total: 3 }),
    lastError: o.lastError,
    options: { vxnet: VX_A },
  },
  svc: {
    status: () => ({ ready: o.ready ?? true, freeNics: o.free ?? 2 }),
  },
});

async function binding(kube: MemoryKube, o: { vxNets?: string[]; podName?: string } = {}) {
  if (!kube.nodes.has("node-1")) kube.addNode("node-1");
  return await startKubeBinding({
    config: {
      nodeName: "node-1",
      pool: { vxNets: o.vxNets ?? [], maxNic: 63 } as never,
    },
    instanceId: "i-abc",
    logger: nullLogger,
    kube,
    env: (k) => (k === "POD_NAME" ? o.podName : undefined),
    startTimeoutMs: 2_000,
  });
}

/** Lets fire-and-forget event writes settle. */
const settle = () => new Promise((r) => setTimeout(r, 0));

// ------------------------------------------------------------------------------ pure parts

Deno.test("mergePodRequest: annotations fill in, CNI_ARGS alone stay, disagreements are refused", () => {
  const pod = "default/web";
  assert.deepEqual(
    mergePodRequest(request(), { vxnet: VX_B, ip: "172.22.2.9", type: "passthrough" }, pod),
    request({ vxnet: VX_B, ip: "172.22.2.9", type: "passthrough" }),
  );
  assert.deepEqual(mergePodRequest(request({ vxnet: VX_A }), {}, pod), request({ vxnet: VX_A }));
  assert.deepEqual(
    mergePodRequest(request({ vxnet: VX_A }), { vxnet: VX_A }, pod),
    request({ vxnet: VX_A }),
  );
  for (
    const [given, ann, name] of [
      [{ vxnet: VX_A }, { vxnet: VX_B }, ANNOTATION_VXNET],
      [{ ip: "172.22.1.5" }, { vxnet: VX_A, ip: "172.22.1.6" }, ANNOTATION_IP],
    ] as const
  ) {
    assert.throws(
      () => mergePodRequest(request(given), ann, pod),
      (e) =>
        e instanceof AnnotationConflictError && e.annotation === name &&
        e.message.includes(`"${name}"`) && e.message.includes('"default/web"'),
    );
  }
});

Deno.test("unmetAnnotations compares what a pod asks with what it got", () => {
  const got = { vxnet: VX_A, ip: "172.22.1.10" };
  assert.deepEqual(unmetAnnotations({}, got), []);
  assert.deepEqual(unmetAnnotations({ vxnet: VX_A }, got), []);
  assert.deepEqual(unmetAnnotations({ vxnet: VX_B, type: "passthrough" }, got), [
    `${ANNOTATION_VXNET}=${VX_B} (got ${VX_A})`,
    `${ANNOTATION_TYPE}=passthrough (got none)`,
  ]);
});

Deno.test("chooseNodeVxnet: annotation first, else assignment over pool.vxNets, else none", () => {
  const node = (name: string, vx?: string): NodeInfo => ({
    name,
    annotations: vx ? { [NODE_ANNOTATION_VXNET]: vx } : {},
    labels: {},
    conditions: [],
  });
  assert.deepEqual(
    chooseNodeVxnet({ node: node("n1", VX_B), vxNets: [VX_A, VX_B], maxNic: 63 }),
    { vxnet: VX_B, source: "annotation" },
  );
  // Without pool.vxNets any well-formed vxnet is the operator's choice.
  assert.equal(chooseNodeVxnet({ node: node("n1", VX_B), vxNets: [], maxNic: 63 }).vxnet, VX_B);
  assert.throws(
    () => chooseNodeVxnet({ node: node("n1", "vxnet-zzz"), vxNets: [VX_A], maxNic: 63 }),
    (e) =>
      e instanceof KubeStartError && /"vxnet-zzz", which is not in pool\.vxNets/.test(e.message),
  );
  assert.throws(
    () => chooseNodeVxnet({ node: node("n1", "subnet-1"), vxNets: [], maxNic: 63 }),
    (e) =>
      e instanceof KubeStartError && e.message.includes(`Invalid annotation "${ANNOTATION_VXNET}"`),
  );
  assert.deepEqual(chooseNodeVxnet({ node: node("n1"), vxNets: [], maxNic: 63 }), {
    source: "none",
  });
  // 4 nodes per vxnet with maxNic 63; n0 holds a place in VX_A by hand. Every node computes the
  // same answer whatever the list order.
  const all = [node("n5"), node("n3"), node("n0", VX_A), node("n1"), node("n2"), node("n4")];
  const answers = ["n1", "n2", "n3", "n4", "n5"].map((n) =>
    chooseNodeVxnet({ node: node(n), nodes: all, vxNets: [VX_A, VX_B], maxNic: 63 })
  );
  assert.deepEqual(answers.map((a) => a.vxnet), [VX_A, VX_A, VX_A, VX_B, VX_B]);
  assert.deepEqual(answers.map((a) => a.annotate), [VX_A, VX_A, VX_A, VX_B, VX_B]);
  const full = chooseNodeVxnet({ node: node("n9"), nodes: all, vxNets: [VX_A], maxNic: 63 });
  assert.equal(full.source, "unassigned");
  assert.equal(full.vxnet, undefined);
  assert.match(full.note!, /full/);
});

Deno.test("health annotation: stable JSON, only set keys, long texts cut", () => {
  const h = poolHealth(source({ lastError: "x".repeat(1000) }), "restart please");
  const text = healthAnnotation(h);
  assert.deepEqual(Object.keys(JSON.parse(text)), [
    "vxnet",
    "free",
    "inuse",
    "total",
    "ready",
    "lastError",
    "restartNeeded",
  ]);
  assert.equal(JSON.parse(text).lastError.length, 300);
  assert.equal(healthAnnotation({ ...h }), text, "same health, same text");
  const down = poolHealth({
    ...source(),
    svc: { status: () => ({ ready: false, freeNics: 0, reason: "starting" }) },
  });
  assert.equal(down.reason, "starting");
});

Deno.test("describeAddFailure: a reason and what to do for each failure", () => {
  const cases: [string, string, RegExp][] = [
    ["POOL_TIMEOUT", "NicPoolTimeout", /hostnic admin pool ls/],
    ["MAX_NIC", "NicLimitReached", /Raise pool\.maxNic/],
    ["IAAS_FAILED", "CloudApiError", /fixed IP must be free/],
    ["NOT_READY", "HostnicNotReady", /starting or stopping/],
    ["DATAPATH_SETUP_FAILED", "DataplaneFailure", /hostnic-node log/],
    ["SOMETHING_ELSE", "FailedHostnicNetwork", /hostnic-node log/],
  ];
  for (const [code, reason, advice] of cases) {
    const ev = describeAddFailure(new HostnicError(code, "It broke"));
    assert.equal(ev.type, "Warning");
    assert.equal(ev.reason, reason, code);
    assert.match(ev.message, /^It broke\. /);
    assert.match(ev.message, advice);
  }
  assert.equal(describeAddFailure(new Error("plain")).reason, "FailedHostnicNetwork");
});

Deno.test("daemonPodEnv: namespace defaults to kube-system; bad values are named", () => {
  assert.deepEqual(daemonPodEnv(() => undefined), { namespace: "kube-system" });
  assert.deepEqual(
    daemonPodEnv((k) => ({ POD_NAMESPACE: "hostnic", POD_NAME: "hostnic-node-x1" })[k]),
    { namespace: "hostnic", podName: "hostnic-node-x1" },
  );
  assert.throws(
    () => daemonPodEnv((k) => (k === "POD_NAMESPACE" ? "Kube_System" : undefined)),
    (e) => e instanceof KubeStartError && /POD_NAMESPACE="Kube_System"/.test(e.message),
  );
});

Deno.test("kubernetesMode: --kubeconfig, in a pod, or not at all", () => {
  assert.equal(kubernetesMode("/k", () => undefined), "kubeconfig");
  assert.equal(kubernetesMode(undefined, () => "10.43.0.1"), "in-cluster");
  assert.equal(kubernetesMode(undefined, () => undefined), undefined);
  assert.equal(kubernetesMode(undefined, () => ""), undefined);
});

// ------------------------------------------------------------------------------ the binding

Deno.test("start: annotated node keeps its vxnet; unannotated one is assigned and annotated", async () => {
  const kube = new MemoryKube();
  kube.addNode("node-1", { [NODE_ANNOTATION_VXNET]: VX_B });
  const b1 = await binding(kube, { vxNets: [VX_A, VX_B] });
  assert.equal(b1.poolVxnet, VX_B);
  assert.equal(kube.annotateCalls.length, 0);
  await b1.close();

  const kube2 = new MemoryKube();
  kube2.addNode("node-1");
  kube2.failures.set("getNode", [unreachable(), unreachable()]); // retried
  const b2 = await binding(kube2, { vxNets: [VX_A, VX_B] });
  assert.equal(b2.poolVxnet, VX_A);
  assert.deepEqual(kube2.annotateCalls, [{
    name: "node-1",
    annotations: { [NODE_ANNOTATION_VXNET]: VX_A },
  }]);
  await b2.close();
  assert.ok(kube2.closed);
});

Deno.test("start: a missing node, a forbidden read or a lasting outage stop it, named", async () => {
  const kube = new MemoryKube();
  await assert.rejects(
    startKubeBinding({
      config: { nodeName: "ghost", pool: { vxNets: [], maxNic: 63 } as never },
      instanceId: "i-abc",
      logger: nullLogger,
      kube,
    }),
    (e) =>
      e instanceof KubeStartError && /Node "ghost" does not exist.*--node-name/.test(e.message),
  );
  assert.ok(kube.closed, "the client is closed when start fails");
  const k2 = new MemoryKube();
  k2.addNode("node-1");
  k2.failures.set("getNode", [forbidden("get node")]);
  await assert.rejects(binding(k2), (e) => e instanceof KubeStartError && /RBAC/.test(e.message));
  const k3 = new MemoryKube();
  k3.addNode("node-1");
  k3.failures.set("getNode", Array.from({ length: 50 }, () => unreachable("get node")));
  await assert.rejects(
    startKubeBinding({
      config: { nodeName: "node-1", pool: { vxNets: [], maxNic: 63 } as never },
      instanceId: "i-abc",
      logger: nullLogger,
      kube: k3,
      startTimeoutMs: 300,
    }),
    (e) => e instanceof KubeStartError && /API server is up and reachable/.test(e.message),
  );
});

Deno.test("add: the pod's annotations reach the service; no pod name, no lookup", async () => {
  const kube = new MemoryKube();
  kube.addPod("default", "web", { [ANNOTATION_VXNET]: VX_B, [ANNOTATION_IP]: "172.22.2.9" });
  const b = await binding(kube);
  try {
    const seen: AddRequest[] = [];
    const next = (r: AddRequest) => (seen.push(r), Promise.resolve(reply()));
    await b.add(request(), next);
    assert.equal(seen[0].vxnet, VX_B);
    assert.equal(seen[0].ip, "172.22.2.9");
    // A pod the API server does not have, and a request without a pod: CNI_ARGS only.
    await b.add(request({ podName: "other", vxnet: VX_A }), next);
    assert.equal(seen[1].vxnet, VX_A);
    kube.failures.set("getPod", [forbidden()]); // would fail if it were asked
    await b.add(request({ podName: undefined, podNamespace: undefined }), next);
    assert.equal(seen.length, 3);
    await settle();
    assert.equal(kube.events.length, 0);
  } finally {
    await b.close();
  }
});

Deno.test("add: an invalid annotation is refused by name (CNI 103), with an event", async () => {
  const kube = new MemoryKube();
  kube.addPod("default", "web", { [ANNOTATION_TYPE]: "macvlan" });
  const b = await binding(kube);
  try {
    let called = false;
    await assert.rejects(
      b.add(request(), () => (called = true, Promise.resolve(reply()))),
      (e) =>
        e instanceof RpcError && e.reason === "BAD_REQUEST" && e.cniCode === 103 &&
        e.message.includes(`"${ANNOTATION_TYPE}"`),
    );
    assert.equal(called, false, "nothing was allocated");
    await settle();
    assert.equal(kube.events.length, 1);
    assert.deepEqual(kube.events[0].pod, { namespace: "default", name: "web", uid: "uid-web" });
    assert.equal(kube.events[0].event.reason, "InvalidAnnotation");
    assert.match(kube.events[0].event.message, /Fix or remove the annotation/);
  } finally {
    await b.close();
  }
});

Deno.test("add: a conflict with CNI_ARGS is CONFLICT (103); service failures keep their error", async () => {
  const kube = new MemoryKube();
  kube.addPod("default", "web", { [ANNOTATION_VXNET]: VX_B });
  const b = await binding(kube);
  try {
    await assert.rejects(
      b.add(request({ vxnet: VX_A }), () => Promise.resolve(reply())),
      (e) => e instanceof RpcError && e.reason === "CONFLICT" && e.cniCode === 103,
    );
    const poolTimeout = new HostnicError("POOL_TIMEOUT", "No free NIC within 60 s");
    await assert.rejects(b.add(request(), () => Promise.reject(poolTimeout)), (e) => {
      assert.equal(e, poolTimeout, "daemon.ts maps the service's own errors");
      return true;
    });
    await settle();
    assert.deepEqual(kube.events.map((e) => e.event.reason), [
      "ConflictingNetworkRequest",
      "NicPoolTimeout",
    ]);
    // An event that cannot be written is logged, never fails anything.
    kube.failures.set("createPodEvent", [unreachable()]);
    await assert.rejects(b.add(request(), () => Promise.reject(poolTimeout)));
    await settle();
  } finally {
    await b.close();
  }
});

Deno.test("add: API unreachable → CNI_ARGS only, then an event once the pod can be read", async () => {
  const kube = new MemoryKube();
  kube.addPod("default", "web", { [ANNOTATION_VXNET]: VX_B });
  kube.addPod("default", "fine", { [ANNOTATION_VXNET]: VX_A });
  const b = await binding(kube);
  try {
    kube.failures.set("getPod", [unreachable(), unreachable()]);
    const seen: AddRequest[] = [];
    const next = (r: AddRequest) => (seen.push(r), Promise.resolve(reply({ vxnet: VX_A })));
    await b.add(request(), next);
    await b.add(request({ podName: "fine", containerId: "ctr-2" }), next);
    assert.equal(seen[0].vxnet, undefined, "networked with CNI_ARGS only");
    kube.failures.set("getPod", [unreachable()]);
    await b.sync(source()); // still down: nothing yet
    await settle();
    assert.equal(kube.events.length, 0);
    await b.sync(source());
    await settle();
    assert.equal(kube.events.length, 1, "only the pod that missed something");
    assert.equal(kube.events[0].pod.name, "web");
    assert.equal(kube.events[0].event.reason, "AnnotationsNotApplied");
    assert.match(kube.events[0].event.message, new RegExp(`${VX_B} \\(got ${VX_A}\\)`));
    await b.sync(source());
    await settle();
    assert.equal(kube.events.length, 1, "checked once");
  } finally {
    await b.close();
  }
});

Deno.test("add: an existing pod that cannot be read (403) fails the ADD with advice", async () => {
  const kube = new MemoryKube();
  const b = await binding(kube);
  try {
    kube.failures.set("getPod", [forbidden('get pod "default/web"')]);
    await assert.rejects(
      b.add(request(), () => Promise.resolve(reply())),
      (e) =>
        e instanceof RpcError && e.reason === "INTERNAL" && /needs "get" on pods/.test(e.message),
    );
    await settle();
    assert.equal(kube.events[0].event.reason, "PodLookupFailed");
  } finally {
    await b.close();
  }
});

Deno.test("sync publishes pool health only when it changed, and retries failures", async () => {
  const kube = new MemoryKube();
  const b = await binding(kube);
  const pools = () => kube.annotateCalls.filter((c) => NODE_ANNOTATION_POOL in c.annotations);
  try {
    const first = b.sync(source());
    assert.equal(b.sync(source({ free: 9 })), first, "a pass while one runs joins it");
    await first;
    await b.sync(source());
    assert.equal(pools().length, 1);
    assert.deepEqual(JSON.parse(pools()[0].annotations[NODE_ANNOTATION_POOL]!), {
      vxnet: VX_A,
      free: 2,
      inuse: 1,
      total: 3,
      ready: true,
    });
    kube.failures.set("annotateNode", [unreachable()]);
    await b.sync(source({ free: 1 }));
    assert.equal(pools().length, 1, "failed");
    await b.sync(source({ free: 1 }));
    assert.equal(pools().length, 2, "retried at the next pass");
    await b.sync(source({ free: 1 }));
    assert.equal(pools().length, 2);
  } finally {
    await b.close();
  }
  assert.equal(pools().length, 3, "close marks the pool not ready");
  const last = JSON.parse(pools()[2].annotations[NODE_ANNOTATION_POOL]!);
  assert.equal(last.ready, false);
  assert.equal(last.reason, "hostnic daemon stopped");

  // A restarted daemon whose health equals the node's annotation writes nothing.
  const kube2 = new MemoryKube();
  kube2.addNode("node-1", { [NODE_ANNOTATION_POOL]: healthAnnotation(poolHealth(source())) });
  const b2 = await binding(kube2);
  await b2.sync(source());
  assert.equal(kube2.annotateCalls.length, 0);
  await b2.close();
});

Deno.test("livePods: unknown until the watch is synced, then this node's pods", async () => {
  const kube = new MemoryKube();
  const b = await binding(kube);
  try {
    const w = kube.podWatch!;
    const pod = (name: string) => ({
      namespace: "default",
      name,
      uid: name,
      annotations: {},
      labels: {},
    });
    w.onEvent("ADDED", pod("a"));
    assert.equal(b.livePods(), undefined, "not listed yet");
    w.opts.onSynced!(true);
    w.onEvent("ADDED", pod("b"));
    assert.deepEqual([...b.livePods()!].sort(), ["default/a", "default/b"]);
    w.onEvent("DELETED", pod("a"));
    assert.deepEqual([...b.livePods()!], ["default/b"]);
    w.opts.onSynced!(false);
    assert.equal(b.livePods(), undefined, "the watch broke: unknown again");
  } finally {
    await b.close();
  }
  assert.equal(kube.podWatch, undefined, "close stops the watch");
});

Deno.test("ConfigMap changes: event on the daemon's pod, restartNeeded, cleared when undone", async () => {
  const kube = new MemoryKube();
  const ok = JSON.stringify({ pool: { poolLow: 1 } });
  kube.configMaps.set("kube-system/hostnic-cfg-cm", { hostnic: ok, "hostnic-cni": "{}" });
  const b = await binding(kube, { podName: "hostnic-node-x" });
  try {
    const health = async () => {
      kube.annotateCalls = [];
      await b.sync(source({ free: kube.events.length })); // a change, so it is written
      return JSON.parse(kube.annotateCalls[0].annotations[NODE_ANNOTATION_POOL]!);
    };
    kube.cmWatch!({ hostnic: ok, "hostnic-cni": "{}", unrelated: "x" });
    await settle();
    assert.equal(kube.events.length, 0, "other keys do not matter");

    kube.cmWatch!({ hostnic: JSON.stringify({ pool: { poolLow: 2 } }), "hostnic-cni": "{}" });
    await settle();
    assert.deepEqual(kube.events[0].pod, { namespace: "kube-system", name: "hostnic-node-x" });
    assert.equal(kube.events[0].event.reason, "ConfigChanged");
    assert.match(kube.events[0].event.message, /rollout restart ds\/hostnic-node/);
    assert.match((await health()).restartNeeded, /rollout restart/);

    kube.cmWatch!({ hostnic: JSON.stringify({ pool: { poolLow: "many" } }), "hostnic-cni": "{}" });
    await settle();
    assert.equal(kube.events[1].event.reason, "InvalidConfig");
    assert.equal(kube.events[1].event.type, "Warning");
    assert.match(kube.events[1].event.message, /pool\.poolLow/);

    kube.cmWatch!({ hostnic: ok, "hostnic-cni": "{}" });
    assert.equal((await health()).restartNeeded, undefined, "back to what the daemon runs");

    kube.cmWatch!(undefined);
    await settle();
    assert.equal(kube.events[2].event.reason, "ConfigDeleted");
  } finally {
    await b.close();
  }
});

Deno.test("readConfigMap: parsed with the file's schema; absent → defaults; bad → named", async () => {
  const kube = new MemoryKube();
  const read = () => readConfigMap({ kube, logger: nullLogger, env: () => undefined });
  assert.equal(await read(), undefined);
  kube.configMaps.set("kube-system/hostnic-cfg-cm", { "hostnic-cni": "{}" });
  assert.equal(await read(), undefined, "no hostnic key");
  kube.configMaps.set("kube-system/hostnic-cfg-cm", {
    hostnic: JSON.stringify({ pool: { poolLow: 1, poolHigh: 2 } }),
  });
  kube.failures.set("getConfigMap", [unreachable()]); // retried
  const got = await read();
  assert.equal(got?.config.pool.poolHigh, 2);
  assert.equal(got?.source, 'ConfigMap "kube-system/hostnic-cfg-cm" key "hostnic"');
  kube.configMaps.set("kube-system/hostnic-cfg-cm", {
    hostnic: JSON.stringify({ pool: { poolLow: 9, poolHigh: 2 } }),
  });
  await assert.rejects(
    read(),
    /ConfigMap "kube-system\/hostnic-cfg-cm" key "hostnic": Invalid configuration "pool\.poolLow"/,
  );
  kube.failures.set("getConfigMap", [forbidden("get ConfigMap")]);
  await assert.rejects(read(), (e) => e instanceof KubeStartError && /403/.test(e.message));
});
