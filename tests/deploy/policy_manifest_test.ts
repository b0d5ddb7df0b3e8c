/**
 * deploy/policy/kube-router.yaml says what docs/install.md and docs/policy.md say: kube-router's
 * policy controller only, on the host network, privileged, named by its node, with the RBAC its
 * informers need; and the testbed's installer changes only the two values the manifest tells users
 * to adapt.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { kubeRouterManifest } from "../../lib/testbed/policy.ts";
import { SERVICE_CIDR } from "../../lib/testbed/kube.ts";

type Obj = { kind: string; metadata: { name: string }; [k: string]: unknown };
const FILE = new URL("../../deploy/policy/kube-router.yaml", import.meta.url).pathname;

Deno.test("kube-router.yaml: policy-only DaemonSet, host network, node name, RBAC", async () => {
  const docs = parseAllDocuments(await Deno.readTextFile(FILE)).map((d) => d.toJS()) as Obj[];
  const ds = docs.find((d) => d.kind === "DaemonSet") as unknown as {
    spec: {
      template: {
        spec: {
          hostNetwork: boolean;
          serviceAccountName: string;
          containers: {
            args: string[];
            env: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
            securityContext: { privileged: boolean };
            volumeMounts: { mountPath: string }[];
          }[];
        };
      };
    };
  };
  const pod = ds.spec.template.spec;
  assert.equal(pod.hostNetwork, true);
  const [c] = pod.containers;
  for (const a of ["--run-firewall=true", "--run-router=false", "--run-service-proxy=false"]) {
    assert.ok(c.args.includes(a), a);
  }
  assert.ok(c.args.includes("--hostname-override=$(NODE_NAME)"));
  assert.equal(
    c.env.find((e) => e.name === "NODE_NAME")?.valueFrom?.fieldRef?.fieldPath,
    "spec.nodeName",
  );
  assert.equal(c.securityContext.privileged, true);
  assert.deepEqual(c.volumeMounts.map((m) => m.mountPath).sort(), [
    "/lib/modules",
    "/run/xtables.lock",
  ]);
  const sa = docs.find((d) => d.kind === "ServiceAccount")!;
  assert.equal(pod.serviceAccountName, sa.metadata.name);
  const role = docs.find((d) => d.kind === "ClusterRole") as unknown as {
    rules: { resources: string[]; verbs: string[] }[];
  };
  const can = (res: string, verb: string) =>
    role.rules.some((r) => r.resources.includes(res) && r.verbs.includes(verb));
  for (const res of ["pods", "namespaces", "nodes", "networkpolicies"]) {
    for (const verb of ["get", "list", "watch"]) assert.ok(can(res, verb), `${verb} ${res}`);
  }
  assert.ok(can("events", "create"));
});

Deno.test("the testbed's installer changes only the Service CIDR and the lock's host path", async () => {
  const orig = (await Deno.readTextFile(FILE)).split("\n");
  const ours = (await kubeRouterManifest()).split("\n");
  assert.equal(ours.length, orig.length);
  const changed = ours.filter((l, i) => l !== orig[i]).map((l) => l.trim());
  assert.deepEqual(changed, [
    `- --service-cluster-ip-range=${SERVICE_CIDR}`,
    "path: /run/hostnic/xtables.lock",
  ]);
});
