/**
 * `hostnic demo` (`deno task demo`): hostnic on a simulated QingCloud, made of real processes.
 *
 * Starts the simulator with its Linux backend (a VPC router namespace, one namespace per
 * instance), runs `hostnic daemon start` inside each of the two node namespaces, creates 4 pods
 * (network namespaces) by invoking the real CNI plugin as a runtime would, proves pod-to-pod
 * traffic across nodes and to the vxnet gateway with ping, shows `hostnic admin pool ls` for each
 * node, deletes the pods and tears everything down. Prints a report; exits 0 only if every check
 * held. `hostnic demo --kubernetes` runs cmd/demo_k8s.ts instead (real kubelets, hostnic from its
 * DaemonSet).
 */
import { type ModeProgram, newProgram, runProgram } from "../lib/cli.ts";
import { errorMessage } from "../lib/errors.ts";
import { CommandRunner } from "../lib/linux/exec.ts";
import { Cluster, type Pod, POD_GATEWAY } from "../lib/testbed/cluster.ts";

/** `hostnic demo [--kubernetes]` as a commander program (built, not run). */
export function program(): ModeProgram {
  let code = 0;
  const program = newProgram("hostnic demo")
    .description(
      "hostnic end to end on a simulated QingCloud: the simulator with real namespaces, two " +
        "node daemons, four pods plumbed by the real CNI plugin, traffic across nodes; prints " +
        "PASS/FAIL per check and exits 0 only if all hold",
    )
    .option(
      "--kubernetes",
      "the same with a real control plane, two real nodes (containerd, kubelet, kube-proxy) " +
        "and hostnic from its DaemonSet (needs the Kubernetes build, docs/testing.md)",
    )
    .action(async (o: { kubernetes?: boolean }) => {
      code = o.kubernetes ? await (await import("./demo_k8s.ts")).main([]) : await demo();
    });
  return { program, code: () => code };
}

export async function main(args: string[]): Promise<number> {
  const m = program();
  // No arguments runs the demo (what `deno task demo` does).
  return await runProgram(m.program, args, m.code, { bareRuns: true });
}

async function demo(): Promise<number> {
  const checks: { name: string; ok: boolean; detail: string }[] = [];
  const check = (name: string, ok: boolean, detail = "") => {
    checks.push({ name, ok, detail });
    console.log(`${ok ? "PASS" : "FAIL"}  ${name}${detail ? `  (${detail})` : ""}`);
  };
  const prefix = `hnd${crypto.randomUUID().slice(0, 4)}`;
  console.log(`hostnic demo: simulated QingCloud, 2 nodes, 4 pods (namespaces ${prefix}-*)\n`);
  let cluster: Cluster | undefined;
  try {
    cluster = await Cluster.start({ nodes: 2, poolSize: 3, jobLatencyMs: 300, prefix });
    const c = cluster;
    for (const n of c.nodes) {
      const p = await n.waitReady({ free: 3 });
      check(
        `daemon on ${n.instanceId} is ready with a warm pool`,
        p.free === 3,
        `${p.free} free NICs`,
      );
    }
    const k = await c.counters();
    check(
      "warm pools filled in batches",
      k.CreateNics === 2 && k.AttachNics === 2,
      `CreateNics=${k.CreateNics} AttachNics=${k.AttachNics} for 6 NICs`,
    );
    const pods: Pod[] = [];
    for (const [i, n] of c.nodes.entries()) {
      for (const name of [`web-${i + 1}`, `db-${i + 1}`]) {
        const pod = await n.addPod(name);
        pods.push(pod);
        check(`pod ${name} on ${n.instanceId} got ${pod.ip}`, true);
      }
    }
    check("every pod has its own address", new Set(pods.map((p) => p.ip)).size === pods.length);
    for (const a of pods.filter((p) => p.node === c.nodes[0])) {
      for (const b of pods.filter((p) => p.node === c.nodes[1])) {
        check(
          `${a.name} → ${b.name} across nodes`,
          await c.ping(a.netns, b.ip),
          `${a.ip} → ${b.ip}`,
        );
      }
    }
    check(`db-2 → ${POD_GATEWAY} (vxnet gateway)`, await c.ping(pods[3].netns, POD_GATEWAY));
    for (const n of c.nodes) {
      const out = await n.admin(["pool", "ls"]);
      console.log(`\n$ hostnic admin pool ls   # on ${n.instanceId}\n${out.stdout}`);
      const nics = await n.admin(["nic", "ls"]);
      console.log(`$ hostnic admin nic ls    # on ${n.instanceId}\n${nics.stdout}`);
      check(`admin pool ls on ${n.instanceId}`, out.code === 0, out.code === 0 ? "" : out.stderr);
    }
    for (const p of pods) {
      const res = await p.node.delPod(p);
      check(`pod ${p.name} deleted`, res.code === 0, res.code === 0 ? "" : res.stdout);
    }
    for (const n of c.nodes) {
      const p = await n.waitPool((v) => v.inuse === 0 && v.pending === 0 && v.detaching === 0);
      check(`NICs of ${n.instanceId} back in its pool`, p.free >= 3, `${p.free} free`);
    }
  } catch (err) {
    check("demo ran to the end", false, errorMessage(err));
  } finally {
    await cluster?.close();
    const left = (await new CommandRunner().run(["ip", "netns", "list"])).stdout.split("\n")
      .filter((l) => l.startsWith(prefix));
    check("simulated world removed", left.length === 0, `${left.length} namespaces left`);
  }
  const failed = checks.filter((c) => !c.ok).length;
  console.log(`\n${checks.length - failed} checks passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}
