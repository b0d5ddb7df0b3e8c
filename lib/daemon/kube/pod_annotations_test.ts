/**
 * The pod annotations on ADD against an in-memory `Kube`: merge with CNI_ARGS, refusals by name
 * with an event, and the API-unreachable path checked later.
 */
import assert from "node:assert/strict";
import { HostnicError } from "../../errors.ts";
import { ANNOTATION_IP, ANNOTATION_TYPE, ANNOTATION_VXNET } from "../../k8s/annotations.ts";
import type { AddRequest } from "../../rpc/api.ts";
import type { KubeBinding } from "./binding.ts";
import { RpcError } from "../../rpc/protocol.ts";
import { AnnotationConflictError, mergePodRequest, unmetAnnotations } from "./pod_annotations.ts";
import {
  binding,
  forbidden,
  MemoryKube,
  reply,
  request,
  settle,
  source,
  unreachable,
  VX_A,
  VX_B,
} from "./testing.ts";

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

Deno.test("podRead: the ADD's one read of the pod, for the backend, only while that ADD runs", async () => {
  const kube = new MemoryKube();
  kube.addPod("default", "web", { "cni.projectcalico.org/ipAddrs": '["172.22.2.9"]' });
  const b = await binding(kube);
  try {
    const req = request();
    let during: ReturnType<KubeBinding["podRead"]>;
    let reads = 0;
    const getPod = kube.getPod.bind(kube);
    kube.getPod = (ns, name) => (reads++, getPod(ns, name));
    await b.add(req, () => {
      during = b.podRead(req.containerId, req.ifName);
      return Promise.resolve(reply());
    });
    assert.equal(reads, 1, "one read of the pod per ADD");
    assert.equal(during!.pod?.annotations["cni.projectcalico.org/ipAddrs"], '["172.22.2.9"]');
    assert.equal(b.podRead(req.containerId, req.ifName), undefined, "gone after the ADD");
    // A pod the API server does not have: the read said so (the backend needs no second one).
    const other = request({ containerId: "c-other", podName: "nope" });
    await b.add(other, () => {
      during = b.podRead(other.containerId, other.ifName);
      return Promise.resolve(reply());
    });
    assert.deepEqual(during, { pod: undefined });
    // API unreachable: no read was made, so the backend is told nothing.
    kube.failures.set("getPod", [unreachable()]);
    await b.add(req, () => {
      during = b.podRead(req.containerId, req.ifName);
      return Promise.resolve(reply());
    });
    assert.equal(during, undefined);
  } finally {
    await b.close();
  }
});
