/**
 * `hostnic demo` (`deno task demo`): the simulated cloud made real on this machine, driven through
 * the real QingCloud client.
 *
 * Today's stage (until the node daemon lands): start the simulator with its Linux backend (a VPC
 * router namespace, one namespace per instance), create NICs in the pod vxnet with one batched
 * CreateNics per node, attach them with one AttachNics per node, address them inside the two
 * "node" namespaces, prove traffic across nodes and to the vxnet gateway with ping, then detach,
 * delete and tear the world down. Prints a report; exits 0 only if every check held.
 */
import { HttpIaasClient } from "../lib/iaas/client.ts";
import { iaasConfigFromObject } from "../lib/iaas/config.ts";
import { waitJob } from "../lib/iaas/jobs.ts";
import { scenarioFromObject, startSim } from "../lib/iaas/sim/mod.ts";
import { instanceNamespace } from "../lib/iaas/sim/linux.ts";
import { CommandRunner } from "../lib/linux/exec.ts";
import { errorMessage } from "../lib/errors.ts";

const NODES = ["i-demonode1", "i-demonode2"] as const;
const POD_VXNET = "vxnet-demopods";

export async function main(_args: string[]): Promise<number> {
  const prefix = `hnd${crypto.randomUUID().slice(0, 4)}`;
  const scenario = scenarioFromObject({
    zone: "demo1",
    credentials: [{ qy_access_key_id: "DEMOACCESSKEY", qy_secret_access_key: "demo-secret-key" }],
    vpc_routers: [{ id: "rtr-demo", cidr: "172.31.0.0/16" }],
    vxnets: [
      {
        id: "vxnet-demonodes",
        vpc_router_id: "rtr-demo",
        cidr: "172.31.1.0/24",
        manager_ip: "172.31.1.1",
        dyn_ip_start: "172.31.1.100",
        dyn_ip_end: "172.31.1.250",
      },
      {
        id: POD_VXNET,
        vpc_router_id: "rtr-demo",
        cidr: "172.31.8.0/24",
        manager_ip: "172.31.8.1",
        dyn_ip_start: "172.31.8.10",
        dyn_ip_end: "172.31.8.250",
      },
    ],
    instances: NODES.map((id, i) => ({
      id,
      vxnet: "vxnet-demonodes",
      private_ip: `172.31.1.${10 + i}`,
    })),
    knobs: { jobLatencyMs: 200 },
    linux: { prefix },
  });
  const checks: { name: string; ok: boolean; detail: string }[] = [];
  const check = (name: string, ok: boolean, detail = "") => {
    checks.push({ name, ok, detail });
    console.log(`${ok ? "PASS" : "FAIL"}  ${name}${detail ? `  (${detail})` : ""}`);
  };
  const runner = new CommandRunner();
  console.log(`hostnic demo: simulated QingCloud with 2 nodes (namespaces ${prefix}-*)`);
  const sim = await startSim({ scenario, linux: true });
  const iaas = new HttpIaasClient({ config: iaasConfigFromObject(sim.clientConfig()) });
  const created: string[] = [];
  try {
    const nicsByNode = new Map<string, { id: string; ip: string }[]>();
    for (const node of NODES) {
      const nics = await iaas.createNics({
        vxnet: POD_VXNET,
        count: 2,
        nicName: `hostnic_${node}`,
      });
      created.push(...nics.map((n) => n.nicId));
      const job = await iaas.attachNics({ nics: nics.map((n) => n.nicId), instance: node });
      await waitJob(iaas, job, { timeoutMs: 30_000 });
      nicsByNode.set(node, nics.map((n) => ({ id: n.nicId, ip: n.privateIp ?? "" })));
    }
    const counters = sim.control.counters();
    check(
      "NICs created and attached in batches",
      counters.CreateNics === 2 && counters.AttachNics === 2,
      `CreateNics=${counters.CreateNics} AttachNics=${counters.AttachNics} for 4 NICs`,
    );
    for (const node of NODES) {
      const ns = instanceNamespace(prefix, node);
      const links = JSON.parse((await runner.run(["ip", "-j", "link"], { netns: ns })).stdout) as {
        ifname: string;
        address?: string;
      }[];
      for (const nic of nicsByNode.get(node)!) {
        const link = links.find((l) => l.address === nic.id);
        check(
          `NIC ${nic.id} appears in node ${node}`,
          link !== undefined,
          link?.ifname ?? "missing",
        );
        if (!link) continue;
        await runner.run(["ip", "-batch", "-"], {
          netns: ns,
          stdin: `addr add ${nic.ip}/32 dev ${link.ifname}\nlink set ${link.ifname} up\n`,
        });
      }
    }
    const [a, b] = NODES.map((n) => nicsByNode.get(n)![0]);
    const nsA = instanceNamespace(prefix, NODES[0]);
    // Each NIC owns its address; route the peer and the gateway through the NIC itself.
    const devA = await linkByMac(runner, nsA, a.id);
    const nsB = instanceNamespace(prefix, NODES[1]);
    const devB = await linkByMac(runner, nsB, b.id);
    await runner.run(["ip", "route", "replace", `${b.ip}/32`, "dev", devA, "src", a.ip], {
      netns: nsA,
    });
    await runner.run(["ip", "route", "replace", `${a.ip}/32`, "dev", devB, "src", b.ip], {
      netns: nsB,
    });
    await runner.run(["ip", "route", "replace", "172.31.8.1/32", "dev", devA, "src", a.ip], {
      netns: nsA,
    });
    check(
      "NIC on node 1 pings NIC on node 2 across the SDN",
      await ping(runner, nsA, b.ip),
      `${a.ip} → ${b.ip}`,
    );
    check(
      "NIC on node 1 reaches the vxnet gateway",
      await ping(runner, nsA, "172.31.8.1"),
      "172.31.8.1",
    );
    const detach = await iaas.detachNics({ nics: created });
    await waitJob(iaas, detach, { timeoutMs: 30_000 });
    await iaas.deleteNics({ nics: created });
    created.length = 0;
    const left = (await iaas.describeNics({ nicName: `hostnic_${NODES[0]}` })).items.length;
    check("every NIC detached and deleted", left === 0, `${left} left`);
  } catch (err) {
    check("demo ran to the end", false, errorMessage(err));
  } finally {
    await iaas.close();
    await sim.close();
    const leftover = (await runner.run(["ip", "netns", "list"])).stdout.split("\n")
      .filter((l) => l.startsWith(prefix));
    check("simulated world removed", leftover.length === 0, `${leftover.length} namespaces left`);
  }
  const failed = checks.filter((c) => !c.ok).length;
  console.log(`\n${checks.length - failed} checks passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

async function linkByMac(runner: CommandRunner, ns: string, mac: string): Promise<string> {
  const links = JSON.parse((await runner.run(["ip", "-j", "link"], { netns: ns })).stdout) as {
    ifname: string;
    address?: string;
  }[];
  const l = links.find((x) => x.address === mac);
  if (!l) throw new Error(`No link with MAC "${mac}" in namespace "${ns}"`);
  return l.ifname;
}

async function ping(runner: CommandRunner, ns: string, ip: string): Promise<boolean> {
  try {
    await runner.run(["ping", "-c", "2", "-i", "0.2", "-W", "2", ip], { netns: ns });
    return true;
  } catch {
    return false;
  }
}
