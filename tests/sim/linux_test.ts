/**
 * The simulator's Linux backend against the real kernel (root). Every namespace is named
 * `tsim<random>-…`; the simulator's close() and the finally blocks remove them even on failure.
 * Nothing is created in the root namespace.
 */
import assert from "node:assert/strict";
import { CommandRunner, ExecError } from "../../lib/linux/exec.ts";
import { startSim } from "../../lib/sim/mod.ts";
import { vpcLinkName } from "../../lib/sim/linux.ts";
import { callApi, testScenario } from "../../lib/sim/testing.ts";

const runner = new CommandRunner();

function uniquePrefix(): string {
  return "tsim" + crypto.randomUUID().replace(/-/g, "").slice(0, 6).replace(/^\d/, "a");
}

async function namespacesWith(prefix: string): Promise<string[]> {
  const { stdout } = await runner.run(["ip", "-j", "netns", "list"]);
  const list = stdout.trim() === "" ? [] : JSON.parse(stdout) as { name: string }[];
  return list.map((n) => n.name).filter((n) => n.startsWith(prefix + "-"));
}

interface Link {
  ifname: string;
  address: string;
  operstate: string;
}

async function links(ns: string): Promise<Link[]> {
  const { stdout } = await runner.run(["ip", "-n", ns, "-j", "link", "show"]);
  return JSON.parse(stdout);
}

async function ping(ns: string, ip: string, o: { from?: string } = {}): Promise<boolean> {
  try {
    const argv = ["ping", "-c", "1", "-W", "2", ...(o.from ? ["-I", o.from] : []), ip];
    await runner.run(argv, { netns: ns });
    return true;
  } catch (err) {
    if (err instanceof ExecError) return false;
    throw err;
  }
}

/** Polls `fn` until it returns a value other than undefined, or fails at the deadline. */
async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test({
  name: "linux backend: attach, SDN ARP, ping, detach (also from a pod netns), reboot, close",
  sanitizeResources: true,
  async fn(t) {
    const prefix = uniquePrefix();
    const podNs = `${prefix}-pod1`;
    const scenario = { ...testScenario(), linuxPrefix: prefix };
    const sim = await startSim({ scenario, linux: true });
    try {
      const call = (action: string, params: Record<string, string | number> = {}) =>
        callApi({ url: sim.url, action, params });
      const nsOne = sim.control.instanceNamespace("i-one")!;
      const nsTwo = sim.control.instanceNamespace("i-two")!;
      const finished = (jobId: string) =>
        waitFor(`job ${jobId}`, async () => {
          const r = await call("DescribeJobs", { "jobs.1": jobId });
          const s = (r.job_set as { status: string }[])[0].status;
          return s === "successful" || s === "failed" ? s : undefined;
        });
      const attach = async (ip: string, instance: string) => {
        const c = await call("CreateNics", { vxnet: "vxnet-b", "private_ips.1": ip });
        const nicId = (c.nics as { nic_id: string }[])[0].nic_id;
        const a = await call("AttachNics", { "nics.1": nicId, instance });
        assert.equal(await finished(String(a.job_id)), "successful");
        return nicId;
      };

      await t.step("namespaces exist and eth0 reaches the gateway", async () => {
        const names = await namespacesWith(prefix);
        for (const n of [`${prefix}-vpc`, `${prefix}-base`, nsOne, nsTwo]) {
          assert.ok(names.includes(n), `${n} in ${names}`);
        }
        assert.ok(await ping(nsOne, "172.25.1.1"));
        assert.ok(await ping(nsOne, "172.25.1.11")); // i-two's eth0
      });

      let nicA = "";
      let nicB = "";
      await t.step(
        "after the AttachNics job the instance has a link whose MAC is the NIC id",
        async () => {
          nicA = await attach("172.25.2.10", "i-one");
          nicB = await attach("172.25.2.11", "i-two");
          const la = (await links(nsOne)).find((l) => l.address === nicA);
          assert.ok(la, `no link with MAC ${nicA}`);
          assert.equal(la.ifname, "eth1");
          assert.equal(la.operstate, "DOWN"); // hot-plugged NICs come up down, like on a real node
          assert.ok((await links(nsTwo)).some((l) => l.address === nicB));
        },
      );

      await t.step(
        "two NICs in one vxnet ping each other and the gateway through the SDN",
        async () => {
          for (
            const [ns, mac, ip] of [[nsOne, nicA, "172.25.2.10"], [nsTwo, nicB, "172.25.2.11"]]
          ) {
            const ifname = (await links(ns)).find((l) => l.address === mac)!.ifname;
            await runner.run(["ip", "-n", ns, "-batch", "-"], {
              stdin: `addr add ${ip}/24 dev ${ifname}\nlink set ${ifname} up\n`,
            });
          }
          assert.ok(await ping(nsOne, "172.25.2.11", { from: "172.25.2.10" }));
          assert.ok(await ping(nsTwo, "172.25.2.10", { from: "172.25.2.11" }));
          assert.ok(await ping(nsOne, "172.25.2.1", { from: "172.25.2.10" }));
          assert.ok(await ping(nsTwo, "172.25.2.1", { from: "172.25.2.11" }));
          // Routed across vxnets by the VPC namespace: i-two's NIC to i-one's eth0.
          assert.ok(await ping(nsTwo, "172.25.1.10", { from: "172.25.2.11" }));
        },
      );

      await t.step("the SDN answers ARP for a NIC whose node stays silent", async () => {
        // The nodes stop answering ARP themselves; only the simulated SDN can resolve now.
        for (const ns of [nsOne, nsTwo]) {
          await runner.run(
            ["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=8", "net.ipv4.conf.eth1.arp_ignore=8"],
            { netns: ns },
          );
          await runner.run(["ip", "-n", ns, "neigh", "flush", "all"]);
        }
        assert.ok(await ping(nsOne, "172.25.2.11", { from: "172.25.2.10" }));
        const { stdout } = await runner.run([
          "ip",
          "-n",
          nsOne,
          "-j",
          "neigh",
          "show",
          "172.25.2.11",
        ]);
        assert.equal((JSON.parse(stdout) as { lladdr: string }[])[0].lladdr, nicB);
      });

      await t.step(
        "detach removes the link via the VPC end, even from a pod namespace",
        async () => {
          const nicC = await attach("172.25.2.12", "i-one");
          await runner.run(["ip", "netns", "add", podNs]);
          const name = (await links(nsOne)).find((l) => l.address === nicC)!.ifname;
          await runner.run(["ip", "-n", nsOne, "link", "set", name, "netns", podNs]);
          await runner.run(["ip", "-n", podNs, "link", "set", name, "name", "renamed0"]);
          for (const nic of [nicA, nicC]) {
            const d = await call("DetachNics", { "nics.1": nic });
            assert.equal(await finished(String(d.job_id)), "successful");
          }
          assert.ok(!(await links(nsOne)).some((l) => l.address === nicA));
          assert.ok(!(await links(podNs)).some((l) => l.address === nicC));
          const vpcLinks = (await links(`${prefix}-vpc`)).map((l) => l.ifname);
          assert.ok(!vpcLinks.includes(vpcLinkName(nicA)));
          assert.ok(vpcLinks.includes(vpcLinkName(nicB)));
        },
      );

      await t.step("reboot rebuilds the node and keeps its NICs attached", async () => {
        await sim.control.reboot("i-two");
        const after = await links(nsTwo);
        const b = after.find((l) => l.address === nicB);
        assert.ok(b, "NIC B is plugged again");
        assert.equal(b.operstate, "DOWN"); // its kernel config (address, up) is gone
        assert.equal(sim.world.nics.get(nicB)!.status, "in-use");
        assert.ok(await ping(nsTwo, "172.25.1.1"));
        const vpcLinks = (await links(`${prefix}-vpc`)).map((l) => l.ifname);
        assert.equal(vpcLinks.filter((n) => n === vpcLinkName(nicB)).length, 1);
      });
    } finally {
      await sim.close();
      await runner.run(["ip", "netns", "del", podNs]).catch(() => {});
    }
    assert.deepEqual(await namespacesWith(prefix), []);
  },
});

Deno.test("linux backend: a namespace left over from a killed run is reported, not reused", async () => {
  const prefix = uniquePrefix();
  await runner.run(["ip", "netns", "add", `${prefix}-vpc`]);
  try {
    await assert.rejects(
      startSim({ scenario: { ...testScenario(), linuxPrefix: prefix }, linux: true }),
      /already exists.*hostnic sim down/,
    );
    assert.deepEqual(await namespacesWith(prefix), [`${prefix}-vpc`]);
  } finally {
    await runner.run(["ip", "netns", "del", `${prefix}-vpc`]).catch(() => {});
  }
});
