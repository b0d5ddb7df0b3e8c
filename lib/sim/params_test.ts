import assert from "node:assert/strict";
import { SimApiError } from "./errors.ts";
import { decodeParams, intList, list, listOrScalar, objectList, page } from "./params.ts";

Deno.test("form decoding turns + into a space, except in the signature", () => {
  const p = decodeParams("nic_name=a+b%20c&signature=ab%2Bcd+ef%3D&k=%7E");
  assert.deepEqual(p, { nic_name: "a b c", signature: "ab+cd+ef=", k: "~" });
});

Deno.test("duplicate keys and bad percent-encoding are 1100", () => {
  for (const raw of ["a=1&a=2", "a=%E0%A4%A"]) {
    assert.throws(() => decodeParams(raw), (e) => e instanceof SimApiError && e.retCode === 1100);
  }
});

Deno.test("lists are ordered by numeric index, tolerate gaps, skip empty values", () => {
  const p = decodeParams("nics.10=c&nics.2=b&nics.1=a&nics.7=&nicsx.1=z&nics.1.x=y");
  assert.deepEqual(list(p, "nics"), ["a", "b", "c"]);
});

Deno.test("vxnet_type is accepted as a list or a scalar", () => {
  assert.deepEqual(intList(decodeParams("vxnet_type.1=1"), "vxnet_type"), [1]);
  assert.deepEqual(intList(decodeParams("vxnet_type=2"), "vxnet_type"), [2]);
  assert.deepEqual(listOrScalar(decodeParams("status=in-use"), "status"), ["in-use"]);
  assert.throws(() => intList(decodeParams("vxnet_type=x"), "vxnet_type"), SimApiError);
});

Deno.test("object lists group name.N.field by N", () => {
  const p = decodeParams(
    "resource_tag_pairs.2.tag_id=t2&resource_tag_pairs.1.tag_id=t1&resource_tag_pairs.1.resource_id=r1&resource_tag_pairs.1.bogus=x",
  );
  assert.deepEqual(objectList(p, "resource_tag_pairs", ["tag_id", "resource_id"]), [
    { tag_id: "t1", resource_id: "r1" },
    { tag_id: "t2" },
  ]);
});

Deno.test("pagination: default 20, limit<=0 → 20, capped at 100, bad ints → 1100", () => {
  assert.deepEqual(page({}), { offset: 0, limit: 20 });
  assert.deepEqual(page({ limit: "0" }), { offset: 0, limit: 20 });
  assert.deepEqual(page({ limit: "252", offset: "5" }), { offset: 5, limit: 100 });
  assert.throws(() => page({ limit: "ten" }), SimApiError);
  assert.throws(() => page({ offset: "-1" }), SimApiError);
});
