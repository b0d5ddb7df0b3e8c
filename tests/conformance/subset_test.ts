/**
 * A fast subset of the upstream conformance run (`deno task conformance`, lib/conformance/), in nic
 * mode, so CI keeps it green: the Networking Granular Checks for pods (pod to pod within and across
 * nodes, node to pod; http and udp), one Service test and one NetworkPolicy test with
 * kube-router installed (lib/testbed/policy.ts). The real e2e.test against
 * two real nodes with hostnic from deploy/hostnic.yaml; every selected spec must pass.
 */
import assert from "node:assert/strict";
import { runConformance } from "../../lib/conformance/run.ts";

const GRANULAR = String.raw`\[sig-network\] Networking Granular Checks: Pods should function for`;
const SERVICE = String.raw`\[sig-network\] Services should serve a basic endpoint from pods`;
const NETPOL = String
  .raw`\[sig-network\] Netpol NetworkPolicy between server and client should support a 'default-deny-ingress' policy`;

Deno.test({
  name: "conformance subset (nic mode): Granular Checks for pods, a Service, a NetworkPolicy",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const focus = [GRANULAR, SERVICE, NETPOL];
    const outDir = await Deno.makeTempDir({ prefix: "hostnic-conformance-subset-" });
    try {
      const r = await runConformance({
        mode: "nic",
        policy: true,
        focus,
        outDir,
        timeout: "30m",
        print: (l) => console.log(`    ${l}`),
      });
      const ran = r.results.filter((s) => s.state !== "skipped");
      assert.deepEqual(
        r.results.filter((s) => s.state === "failed").map((s) => `${s.name}: ${s.message}`),
        [],
      );
      // 4 Granular pod checks (http/udp × intra-pod/node-pod; sctp ones excluded), the Service,
      // and the NetworkPolicy test.
      assert.equal(ran.length, 6, ran.map((s) => s.name).join("\n"));
      assert.equal(r.passed, ran.length);
      assert.ok(ran.some((s) => s.name.includes("Services should serve a basic endpoint")));
      assert.ok(ran.some((s) => s.name.includes("default-deny-ingress")));
    } finally {
      await Deno.remove(outDir, { recursive: true }).catch(() => {});
    }
  },
});
