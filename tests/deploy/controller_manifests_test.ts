/**
 * deploy/hostnic.yaml's shared-mode part agrees with the code and with deploy/crds/: the CRDs and
 * the admission policy are exact copies (so `kubectl apply -f deploy/hostnic.yaml` is enough and
 * cannot drift from what tests/deploy/crds_test.ts checks), the controller's RBAC grants exactly
 * lib/controller/rbac.ts (no wildcards, no Secrets), and the Deployment runs two replicas with
 * leader election, flags the command knows, and the credentials where --QyAccessFilePath points.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { CONTROLLER_DEFAULTS, main as controllerMain } from "../../cmd/controller.ts";
import { CONTROLLER_PERMISSIONS, CONTROLLER_SERVICE_ACCOUNT } from "../../lib/controller/rbac.ts";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;
const DEPLOY = new URL("../../deploy/", import.meta.url).pathname;

async function docs(path: string): Promise<Obj[]> {
  return parseAllDocuments(await Deno.readTextFile(path)).map((d) => d.toJS()).filter(Boolean);
}

const all = await docs(`${DEPLOY}hostnic.yaml`);
const find = (kind: string, name: string) => {
  const o = all.find((d) => d.kind === kind && d.metadata?.name === name);
  assert.ok(o, `${kind} "${name}" is missing from deploy/hostnic.yaml`);
  return o;
};

Deno.test("hostnic.yaml carries deploy/crds/ unchanged (CRDs and the ipam-config policy)", async () => {
  for (const file of ["network.qingcloud.com_crds.yaml", "hostnic-ipam-config-policy.yaml"]) {
    for (const d of await docs(`${DEPLOY}crds/${file}`)) {
      assert.deepEqual(find(d.kind, d.metadata.name), d, `${d.kind} ${d.metadata.name}`);
    }
  }
});

Deno.test("controller RBAC grants exactly what lib/controller calls, to its ServiceAccount", () => {
  const sa = find("ServiceAccount", CONTROLLER_SERVICE_ACCOUNT);
  assert.equal(sa.metadata.namespace, "kube-system");
  const key = (scope: string, g: string, r: string, v: string, names?: readonly string[]) =>
    `${scope} ${g}/${r} ${v}${names ? ` [${[...names].sort().join(",")}]` : ""}`;
  const granted = new Set<string>();
  for (const b of all.filter((d) => /^(Cluster)?RoleBinding$/.test(d.kind))) {
    const bound = b.subjects.some((s: Obj) =>
      s.kind === "ServiceAccount" && s.name === CONTROLLER_SERVICE_ACCOUNT &&
      s.namespace === "kube-system"
    );
    if (!bound) continue;
    const role = find(b.roleRef.kind, b.roleRef.name);
    const scope = b.kind === "RoleBinding" ? b.metadata.namespace : "*";
    for (const rule of role.rules) {
      for (const g of rule.apiGroups) {
        for (const r of rule.resources) {
          for (const v of rule.verbs) {
            assert.ok(![g, r, v].includes("*"), "no wildcards");
            granted.add(key(scope, g, r, v, rule.resourceNames));
          }
        }
      }
    }
  }
  const required = new Set<string>();
  for (const p of CONTROLLER_PERMISSIONS) {
    for (const v of p.verbs) {
      required.add(key(p.namespace ?? "*", p.apiGroup, p.resource, v, p.resourceNames));
    }
  }
  assert.deepEqual([...granted].sort(), [...required].sort());
  assert.ok(![...granted].some((g) => g.includes("secrets")), "no Secret access");
});

Deno.test("controller Deployment: 2 replicas, leader election, known flags, credentials mounted", async () => {
  const dep = find("Deployment", "hostnic-controller");
  assert.equal(dep.metadata.namespace, "kube-system");
  assert.equal(dep.spec.replicas, 2);
  const pod = dep.spec.template.spec;
  assert.equal(pod.serviceAccountName, CONTROLLER_SERVICE_ACCOUNT);
  const c = pod.containers[0];
  const args: string[] = c.args;
  assert.equal(args[0], "controller");
  assert.ok(args.includes("--leader-elect=true"));
  const flag = (f: string) => args[args.indexOf(f) + 1];
  const qy = flag("--QyAccessFilePath");
  const mount = c.volumeMounts.find((m: Obj) => qy.startsWith(`${m.mountPath}/`));
  assert.ok(mount, `nothing mounted where --QyAccessFilePath "${qy}" points`);
  const vol = pod.volumes.find((v: Obj) => v.name === mount.name);
  assert.equal(vol.secret.secretName, "qcsecret");
  const port = Number(flag("--manageAddr").replace(/^.*:/, ""));
  assert.equal(port, Number(CONTROLLER_DEFAULTS.manageAddr.slice(1)));
  assert.equal(c.livenessProbe.httpGet.port, port);
  assert.equal(c.readinessProbe.httpGet.port, port);
  assert.equal(
    c.env.find((e: Obj) => e.name === "POD_NAME").valueFrom.fieldRef.fieldPath,
    "metadata.name",
  );
  // The command accepts every flag (a bad one would exit 2 before doing anything).
  assert.equal(await controllerMain([...args.slice(1), "--help"]), 0);
});
