import assert from "node:assert/strict";
import { addressesOf, holdsAddress, type PodJson, slope } from "./soak.ts";

function pod(name: string, o: {
  ip?: string;
  phase?: string;
  deleting?: boolean;
  running?: boolean;
  hostNetwork?: boolean;
} = {}): PodJson {
  return {
    metadata: {
      name,
      namespace: "default",
      uid: `uid-${name}`,
      ...(o.deleting ? { deletionTimestamp: "2026-12-07T16:00:00Z" } : {}),
    },
    spec: { nodeName: "node-1", hostNetwork: o.hostNetwork },
    status: {
      phase: o.phase ?? "Running",
      podIP: o.ip,
      containerStatuses: [{ state: o.running === false ? { terminated: {} } : { running: {} } }],
    } as PodJson["status"],
  };
}

Deno.test("a pod holds its address until it is terminated or stopped for deletion", () => {
  assert.equal(holdsAddress(pod("a", { ip: "10.0.0.1" })), true);
  assert.equal(holdsAddress(pod("a")), false, "no address yet");
  assert.equal(holdsAddress(pod("a", { ip: "10.0.0.1", hostNetwork: true })), false);
  assert.equal(holdsAddress(pod("a", { ip: "10.0.0.1", phase: "Succeeded" })), false);
  assert.equal(holdsAddress(pod("a", { ip: "10.0.0.1", phase: "Failed" })), false);
  // Being deleted: still holds it while a container runs (its sandbox is up).
  assert.equal(holdsAddress(pod("a", { ip: "10.0.0.1", deleting: true })), true);
  assert.equal(
    holdsAddress(pod("a", { ip: "10.0.0.1", deleting: true, running: false })),
    false,
  );
});

Deno.test("addressesOf finds an address on two live pods, and only then", () => {
  const m = addressesOf([
    pod("a", { ip: "10.0.0.1" }),
    pod("b", { ip: "10.0.0.1" }),
    pod("c", { ip: "10.0.0.2" }),
    pod("d", { ip: "10.0.0.2", deleting: true, running: false }),
    pod("n1", { ip: "172.30.1.2", hostNetwork: true }),
    pod("n2", { ip: "172.30.1.2", hostNetwork: true }),
  ]);
  assert.deepEqual(m.get("10.0.0.1"), ["default/a", "default/b"]);
  assert.deepEqual(m.get("10.0.0.2"), ["default/c"]);
  assert.equal(m.has("172.30.1.2"), false);
});

Deno.test("slope is the least-squares slope", () => {
  assert.equal(slope([0, 1, 2, 3], [1, 3, 5, 7]), 2);
  assert.ok(Number.isNaN(slope([1], [1])));
  assert.ok(Number.isNaN(slope([2, 2], [1, 5])));
});
