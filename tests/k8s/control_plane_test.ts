/**
 * The real control plane of the testbed (lib/testbed/kube.ts): etcd, kube-apiserver,
 * kube-controller-manager and kube-scheduler built from Go modules run inside the simulated master
 * instance, and a simulated node reaches them through the simulated SDN at the master's VPC
 * address — not through loopback. Also: the harness removes every process and file it made.
 */
import assert from "node:assert/strict";
import { Cluster, MASTER_IP } from "../../lib/testbed/cluster.ts";
import { ControlPlane } from "../../lib/testbed/kube.ts";

Deno.test({
  name: "real control plane in the master instance, reached from a node through the SDN",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using c = await Cluster.start({ nodes: 1, master: true, startDaemons: false });
    let dir = "";
    let pids: number[] = [];
    {
      await using cp = await ControlPlane.start(c);
      dir = cp.dir;
      const node = c.nodes[0];

      await t.step("kubectl version from inside a node reports server v1.34", async () => {
        const r = await cp.kubectl(["version", "-o", "json"], { netns: node.netns });
        assert.equal(r.code, 0, r.stderr);
        const v = JSON.parse(r.stdout) as {
          clientVersion: { gitVersion: string };
          serverVersion: { gitVersion: string; major: string; minor: string };
        };
        assert.match(v.serverVersion.gitVersion, /^v1\.34\.\d+$/);
        assert.equal(v.serverVersion.minor, "34");
        assert.match(v.clientVersion.gitVersion, /^v1\.34\.\d+$/);
      });

      await t.step("/readyz is ok from the node, at the master's VPC address", async () => {
        const r = await cp.kubectl(["get", "--raw", "/readyz"], { netns: node.netns });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), "ok");
        // The node has no route to the host's loopback forward: only the VPC path exists.
        const cfg = await Deno.readTextFile(cp.kubeconfig);
        assert.match(cfg, new RegExp(`server: https://${MASTER_IP.replaceAll(".", "\\.")}:6443`));
        const routes = new TextDecoder().decode(
          (await new Deno.Command("ip", {
            args: ["-n", node.netns, "route", "get", MASTER_IP],
            stdout: "piped",
          }).output()).stdout,
        );
        assert.doesNotMatch(routes, /dev lo/, routes);
      });

      await t.step("the kubernetes Service advertises the master's VPC address", async () => {
        const ep = await cp.getJson<{ subsets: { addresses: { ip: string }[] }[] }>([
          "-n",
          "default",
          "endpoints",
          "kubernetes",
        ]);
        assert.deepEqual(ep.subsets[0].addresses.map((a) => a.ip), [MASTER_IP]);
      });

      await t.step("a ServiceAccount token kubeconfig authenticates as that account", async () => {
        await cp.kubectlOk(["-n", "default", "create", "serviceaccount", "probe"]);
        const kc = await cp.serviceAccountKubeconfig("default", "probe");
        const r = await cp.kubectl(["auth", "whoami", "-o", "json"], {
          netns: node.netns,
          kubeconfig: kc,
        });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(
          (JSON.parse(r.stdout) as { status: { userInfo: { username: string } } }).status.userInfo
            .username,
          "system:serviceaccount:default:probe",
        );
        const denied = await cp.kubectl(["get", "nodes"], { netns: node.netns, kubeconfig: kc });
        assert.notEqual(denied.code, 0);
        assert.match(denied.stderr, /forbidden/);
      });

      pids = await componentPids(dir);
      assert.ok(pids.length >= 4, `expected 4 component processes, found ${pids.length}`);
    }

    await t.step("close() stops every component and removes its files", async () => {
      assert.deepEqual(await componentPids(dir), []);
      await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
    });
  },
});

/** PIDs of processes whose command line mentions `dir` (the control plane's files). */
async function componentPids(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
    if (cmd.includes(dir)) pids.push(Number(e.name));
  }
  return pids;
}
