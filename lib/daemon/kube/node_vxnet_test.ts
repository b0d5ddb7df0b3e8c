/**
 * The node's pool vxnet: the annotation, the assignment over pool.vxNets, the node annotated.
 */
import assert from "node:assert/strict";
import { ANNOTATION_VXNET, NODE_ANNOTATION_VXNET } from "../../k8s/annotations.ts";
import type { NodeInfo } from "../../k8s/types.ts";
import { KubeStartError } from "./client.ts";
import { chooseNodeVxnet } from "./node_vxnet.ts";
import { binding, MemoryKube, unreachable, VX_A, VX_B } from "./testing.ts";

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
