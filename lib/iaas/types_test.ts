import assert from "node:assert/strict";
import { IaasReplyError } from "./errors.ts";
import {
  AccessKeySchema,
  describeReply,
  JobSchema,
  NicSchema,
  parseReply,
  VxnetSchema,
} from "./types.ts";

Deno.test("a DescribeNics reply parses with defaults and extra fields dropped", () => {
  const page = parseReply("DescribeNics", describeReply("nic_set", NicSchema), {
    action: "DescribeNicsResponse",
    ret_code: 0,
    total_count: 1,
    nic_set: [{
      nic_id: "52:54:3a:7c:01:9e",
      status: "available",
      vxnet_id: "vxnet-abc1234",
      role: 0,
      instance_id: null,
      private_ip: "",
      future_field: { x: 1 },
    }],
  });
  assert.equal(page.totalCount, 1);
  assert.equal(page.items[0].instance_id, "");
  assert.equal(page.items[0].nic_name, "");
  assert.deepEqual(page.items[0].tags, []);
  assert.ok(!("future_field" in page.items[0]));
});

Deno.test("an empty result may omit the set", () => {
  const page = parseReply("DescribeJobs", describeReply("job_set", JobSchema), {
    ret_code: 0,
    total_count: 0,
  });
  assert.deepEqual(page, { items: [], totalCount: 0 });
});

Deno.test("malformed replies become IaasReplyError naming action and field", async (t) => {
  const cases: [string, unknown, string][] = [
    ["role as string", {
      total_count: 1,
      nic_set: [{ nic_id: "m", status: "available", vxnet_id: "v", role: "0" }],
    }, "nic_set.0.role"],
    ["missing nic_id", {
      total_count: 1,
      nic_set: [{ status: "available", vxnet_id: "v", role: 0 }],
    }, "nic_set.0.nic_id"],
    ["missing total_count", { nic_set: [] }, "total_count"],
    ["set not an array", { total_count: 0, nic_set: {} }, "nic_set"],
  ];
  for (const [name, data, field] of cases) {
    await t.step(name, () => {
      assert.throws(
        () => parseReply("DescribeNics", describeReply("nic_set", NicSchema), data),
        (e: unknown) => e instanceof IaasReplyError && e.field === field,
      );
    });
  }
  assert.throws(
    () => parseReply("DescribeNics", describeReply("nic_set", NicSchema), "nope"),
    /"DescribeNics" returned a malformed reply/,
  );
});

Deno.test("vxnet router may be null; access keys never keep the secret", () => {
  const vx = parseReply("DescribeVxnets", VxnetSchema, { vxnet_id: "vxnet-a", vxnet_type: 1 });
  assert.equal(vx.router, null);
  const vx2 = parseReply("DescribeVxnets", VxnetSchema, {
    vxnet_id: "vxnet-a",
    vxnet_type: 1,
    router: { manager_ip: "192.168.0.1", ip_network: "192.168.0.0/24" },
  });
  assert.equal(vx2.router?.dyn_ip_start, "");
  const ak = parseReply("DescribeAccessKeys", AccessKeySchema, {
    access_key_id: "AK",
    owner: "usr-1",
    secret_access_key: "leak",
  });
  assert.ok(!JSON.stringify(ak).includes("leak"));
  assert.throws(
    () => parseReply("DescribeAccessKeys", AccessKeySchema, { access_key_id: "AK" }),
    (e: unknown) => e instanceof IaasReplyError && e.field === "owner",
  );
});
