import assert from "node:assert/strict";
import { InvalidSpecError } from "./errors.ts";
import { hostVethName, nicLinkName, podHashKey, tableOfNicName, vethMacs } from "./names.ts";

Deno.test("hostVethName: prefix + 11 hex of SHA-1(<ns>.<pod>), container id as fallback", () => {
  // sha1("default.nginx") = c440f455693b...
  assert.equal(
    hostVethName({ containerId: "x", k8sNamespace: "default", podName: "nginx" }),
    "vnicc440f455693",
  );
  assert.equal(podHashKey({ containerId: "abc123" }), "abc123");
  assert.equal(hostVethName({ containerId: "abc123" }).length, 15);
  assert.notEqual(
    hostVethName({ containerId: "a", k8sNamespace: "ns1", podName: "p" }),
    hostVethName({ containerId: "a", k8sNamespace: "ns2", podName: "p" }),
  );
  assert.equal(
    hostVethName({ containerId: "c" }, "cali"),
    "cali" + hostVethName({ containerId: "c" }).slice(4),
  );
});

Deno.test("hostVethName rejects prefixes that make names too long or unusable", () => {
  assert.throws(() => hostVethName({ containerId: "c" }, "toolong"), InvalidSpecError);
  assert.throws(() => hostVethName({ containerId: "c" }, "a/b"), InvalidSpecError);
  assert.throws(() => hostVethName({ containerId: "" }), InvalidSpecError);
});

Deno.test("vethMacs are stable, locally administered unicast and distinct per pod", () => {
  const a = vethMacs({ containerId: "c1" });
  assert.deepEqual(a, vethMacs({ containerId: "c1" }));
  assert.match(a.host, /^ee(:[0-9a-f]{2}){5}$/);
  assert.match(a.pod, /^02(:[0-9a-f]{2}){5}$/);
  assert.notEqual(a.host, vethMacs({ containerId: "c2" }).host);
});

Deno.test("nicLinkName / tableOfNicName round-trip and refuse kernel tables", () => {
  assert.equal(nicLinkName(260), "hostnic_260");
  assert.equal(tableOfNicName("hostnic_260"), 260);
  assert.equal(tableOfNicName("eth1"), undefined);
  for (const t of [0, 253, 254, 255, 1.5, 12345678]) {
    assert.throws(() => nicLinkName(t), InvalidSpecError, `table ${t}`);
  }
});

Deno.test("a second interface of a pod gets its own host veth; eth0 keeps the plain name", () => {
  const pod = { containerId: "c", k8sNamespace: "default", podName: "multi" };
  assert.equal(hostVethName({ ...pod, ifName: "eth0" }), hostVethName(pod));
  assert.notEqual(hostVethName({ ...pod, ifName: "net1" }), hostVethName(pod));
  assert.notDeepEqual(vethMacs({ ...pod, ifName: "net1" }), vethMacs(pod));
});
