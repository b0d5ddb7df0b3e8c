import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import {
  ANNOTATION_IP,
  ANNOTATION_TYPE,
  ANNOTATION_VXNET,
  assignVxnets,
  isUnicastIpv4,
  nodesPerVxnet,
  parseNodeVxnet,
  parsePodAnnotations,
} from "./annotations.ts";
import { AnnotationError } from "./errors.ts";

Deno.test("annotation names are upstream's", () => {
  assert.equal(ANNOTATION_VXNET, "hostnic.network.kubesphere.io/vxnet");
  assert.equal(ANNOTATION_IP, "hostnic.network.kubesphere.io/ip");
  assert.equal(ANNOTATION_TYPE, "hostnic.network.kubesphere.io/type");
});

Deno.test("parsePodAnnotations reads the three keys and ignores the rest", () => {
  assert.deepEqual(parsePodAnnotations(undefined), {});
  assert.deepEqual(parsePodAnnotations({ "other/key": "x" }), {});
  assert.deepEqual(
    parsePodAnnotations({
      [ANNOTATION_VXNET]: "vxnet-cfn58ev",
      [ANNOTATION_IP]: "172.22.0.88",
      [ANNOTATION_TYPE]: "passthrough",
      "hostnic.network.kubesphere.io/nic": "ignored",
    }),
    { vxnet: "vxnet-cfn58ev", ip: "172.22.0.88", type: "passthrough" },
  );
  assert.deepEqual(parsePodAnnotations({ [ANNOTATION_TYPE]: "passthrough" }), {
    type: "passthrough",
  });
});

Deno.test("parsePodAnnotations rejects bad values, naming the annotation", async (t) => {
  const cases: [Record<string, string>, string, RegExp][] = [
    [{ [ANNOTATION_VXNET]: "vxnet_abc" }, ANNOTATION_VXNET, /vxnet ID like/],
    [{ [ANNOTATION_VXNET]: "VXNET-ABC" }, ANNOTATION_VXNET, /vxnet ID/],
    [{ [ANNOTATION_VXNET]: " vxnet-abc" }, ANNOTATION_VXNET, /vxnet ID/],
    [{ [ANNOTATION_VXNET]: "" }, ANNOTATION_VXNET, /vxnet ID/],
    [{ [ANNOTATION_VXNET]: "vxnet-a", [ANNOTATION_IP]: "10.0.0" }, ANNOTATION_IP, /IPv4/],
    [{ [ANNOTATION_VXNET]: "vxnet-a", [ANNOTATION_IP]: "10.0.0.01" }, ANNOTATION_IP, /IPv4/],
    [{ [ANNOTATION_VXNET]: "vxnet-a", [ANNOTATION_IP]: "10.0.0.0/24" }, ANNOTATION_IP, /IPv4/],
    [{ [ANNOTATION_VXNET]: "vxnet-a", [ANNOTATION_IP]: "fd00::1" }, ANNOTATION_IP, /IPv4/],
    [{ [ANNOTATION_VXNET]: "vxnet-a", [ANNOTATION_IP]: "127.0.0.1" }, ANNOTATION_IP, /own/],
    [{ [ANNOTATION_VXNET]: "vxnet-a", [ANNOTATION_IP]: "169.254.1.1" }, ANNOTATION_IP, /own/],
    [{ [ANNOTATION_VXNET]: "vxnet-a", [ANNOTATION_IP]: "224.0.0.1" }, ANNOTATION_IP, /own/],
    [{ [ANNOTATION_IP]: "172.22.0.88" }, ANNOTATION_IP, /needs ".*\/vxnet"/],
    [{ [ANNOTATION_TYPE]: "veth" }, ANNOTATION_TYPE, /must be "passthrough"/],
    [{ [ANNOTATION_TYPE]: "Passthrough" }, ANNOTATION_TYPE, /must be "passthrough"/],
  ];
  for (const [annotations, name, re] of cases) {
    await t.step(JSON.stringify(annotations), () => {
      assert.throws(() => parsePodAnnotations(annotations), (err: unknown) => {
        assert.ok(err instanceof AnnotationError);
        assert.equal(err.code, "INVALID_ANNOTATION");
        assert.equal(err.annotation, name);
        assert.equal(err.value, annotations[name]);
        assert.match(err.message, new RegExp(`^Invalid annotation "${name}"`));
        assert.match(err.message, re);
        return true;
      });
    });
  }
});

Deno.test("isUnicastIpv4", () => {
  for (const ok of ["10.0.0.1", "172.22.0.88", "192.168.255.254", "1.2.3.4"]) {
    assert.ok(isUnicastIpv4(ok), ok);
  }
  for (const bad of ["0.1.2.3", "127.0.0.1", "169.254.1.1", "224.0.0.1", "255.255.255.255", "x"]) {
    assert.ok(!isUnicastIpv4(bad), bad);
  }
});

Deno.test("parseNodeVxnet", () => {
  assert.equal(parseNodeVxnet(undefined), undefined);
  assert.equal(parseNodeVxnet({}), undefined);
  assert.equal(parseNodeVxnet({ [ANNOTATION_VXNET]: "vxnet-abc" }), "vxnet-abc");
  assert.throws(() => parseNodeVxnet({ [ANNOTATION_VXNET]: "abc" }), AnnotationError);
});

Deno.test("nodesPerVxnet is floor(252 / maxNic) and checks maxNic", () => {
  assert.equal(nodesPerVxnet(63), 4);
  assert.equal(nodesPerVxnet(60), 4);
  assert.equal(nodesPerVxnet(50), 5);
  assert.equal(nodesPerVxnet(1), 252);
  for (const bad of [0, 64, 2.5, NaN]) {
    assert.throws(() => nodesPerVxnet(bad), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.key, "pool.maxNic");
      return true;
    });
  }
});

const VX = ["vxnet-a", "vxnet-b"];

Deno.test("assignVxnets fills the first vxnet with room, in node-name order", () => {
  const plan = assignVxnets({ nodes: ["n5", "n3", "n1", "n4", "n2"], vxNets: VX, maxNic: 63 });
  assert.equal(plan.perVxnet, 4);
  assert.deepEqual([...plan.assignments], [
    ["n1", "vxnet-a"],
    ["n2", "vxnet-a"],
    ["n3", "vxnet-a"],
    ["n4", "vxnet-a"],
    ["n5", "vxnet-b"],
  ]);
  assert.deepEqual(plan.changes, plan.assignments);
  assert.equal(plan.unassigned.size, 0);
});

Deno.test("assignVxnets is deterministic whatever the input order", () => {
  const a = assignVxnets({ nodes: ["b", "a", "c"], vxNets: VX, maxNic: 63 });
  const b = assignVxnets({ nodes: ["c", "b", "a", "a"], vxNets: VX, maxNic: 63 });
  assert.deepEqual([...a.assignments], [...b.assignments]);
});

Deno.test("assignVxnets keeps existing annotations, so a new node moves nobody", () => {
  const first = assignVxnets({ nodes: ["n1", "n2", "n3", "n4", "n5"], vxNets: VX, maxNic: 63 });
  const annotated = [...first.assignments].map(([name, vx]) => ({
    name,
    annotations: { [ANNOTATION_VXNET]: vx },
  }));
  // "n0" sorts first: by name alone it would take n4's place on vxnet-a.
  const second = assignVxnets({
    nodes: [...annotated, { name: "n0" }],
    vxNets: VX,
    maxNic: 63,
  });
  for (const [name, vx] of first.assignments) assert.equal(second.assignments.get(name), vx);
  assert.deepEqual([...second.changes], [["n0", "vxnet-b"]]);
  const again = assignVxnets({ nodes: annotated, vxNets: VX, maxNic: 63 });
  assert.equal(again.changes.size, 0);
});

Deno.test("assignVxnets: nodes beyond capacity get nothing, and the plan says why", () => {
  const nodes = Array.from({ length: 10 }, (_, i) => `node-${String(i).padStart(2, "0")}`);
  const plan = assignVxnets({ nodes, vxNets: VX, maxNic: 63 });
  assert.equal(plan.assignments.size, 8);
  assert.deepEqual([...plan.unassigned.keys()], ["node-08", "node-09"]);
  assert.match(plan.unassigned.get("node-08")!, /every vxnet in pool\.vxNets is full/);
  assert.match(plan.unassigned.get("node-08")!, /add vxnets to pool\.vxNets or lower pool\.maxNic/);
  const none = assignVxnets({ nodes: ["x"], vxNets: [], maxNic: 63 });
  assert.match(none.unassigned.get("x")!, /pool\.vxNets is empty/);
});

Deno.test("assignVxnets reassigns invalid annotations and keeps hand-set foreign vxnets", () => {
  const plan = assignVxnets({
    nodes: [
      { name: "bad", annotations: { [ANNOTATION_VXNET]: "not-a-vxnet" } },
      { name: "manual", annotations: { [ANNOTATION_VXNET]: "vxnet-elsewhere" } },
    ],
    vxNets: VX,
    maxNic: 63,
  });
  assert.equal(plan.changes.get("bad"), "vxnet-a");
  assert.equal(plan.assignments.get("manual"), "vxnet-elsewhere");
  assert.equal(plan.changes.has("manual"), false);
  assert.match(plan.notes.get("manual")!, /not in pool\.vxNets/);
});

Deno.test("assignVxnets moves the later names off an over-full vxnet when there is room", () => {
  // maxNic grew from 50 (5 per vxnet) to 63 (4 per vxnet): one of five must move.
  const nodes = ["a", "b", "c", "d", "e"].map((name) => ({
    name,
    annotations: { [ANNOTATION_VXNET]: "vxnet-a" },
  }));
  const plan = assignVxnets({ nodes, vxNets: VX, maxNic: 63 });
  assert.deepEqual([...plan.changes], [["e", "vxnet-b"]]);
  const stuck = assignVxnets({ nodes, vxNets: ["vxnet-a"], maxNic: 63 });
  assert.equal(stuck.changes.size, 0);
  assert.equal(stuck.assignments.get("e"), "vxnet-a");
  assert.match(stuck.notes.get("e")!, /already serves 4 nodes/);
});

Deno.test("assignVxnets validates vxNets, naming the entry", () => {
  assert.throws(
    () => assignVxnets({ nodes: ["a"], vxNets: ["vxnet-a", "oops"], maxNic: 63 }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.key, "pool.vxNets[1]");
      return true;
    },
  );
});
