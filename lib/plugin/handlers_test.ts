import assert from "node:assert/strict";
import type { AddReply } from "../rpc/api.ts";
import { runCni } from "../cni/dispatch.ts";
import type { RpcClient } from "../rpc/client.ts";
import { daemonHandlers, netnsKindOf } from "./handlers.ts";

const REPLY: AddReply = {
  mode: "nic",
  address: "172.30.8.10/32",
  gateway: "169.254.1.1",
  interfaces: [{ name: "eth0", mac: "02:00:00:00:00:01", sandbox: "/proc/self/ns/net" }],
  interfaceIndex: 0,
  routes: [],
  vxnet: "vxnet-pods",
  vxnetCidr: "172.30.8.0/22",
  nicId: "52:54:00:00:00:01",
};

/** A daemon that records what it was asked and answers ADD with `REPLY`. */
function fakeDaemon(): {
  seen: { path: string; body: Record<string, unknown> }[];
  client: () => RpcClient;
} {
  const seen: { path: string; body: Record<string, unknown> }[] = [];
  const client = {
    call(path: string, body: Record<string, unknown>) {
      seen.push({ path, body });
      return Promise.resolve(path.endsWith("/add") ? REPLY : {});
    },
  };
  return { seen, client: () => client as unknown as RpcClient };
}

async function invoke(o: {
  command?: string;
  netns?: string;
  args?: string;
  conf?: Record<string, unknown>;
  daemon: ReturnType<typeof fakeDaemon>;
}): Promise<{ code: number; out: Record<string, unknown> }> {
  const env: Record<string, string> = {
    CNI_COMMAND: o.command ?? "ADD",
    CNI_CONTAINERID: "c0ffee",
    CNI_NETNS: o.netns ?? "/proc/self/ns/net",
    CNI_IFNAME: "eth0",
    CNI_ARGS: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=web${o.args ? `;${o.args}` : ""}`,
  };
  const conf = { cniVersion: "1.0.0", name: "hostnic", type: "hostnic", ...o.conf };
  let stdout = "";
  const code = await runCni({
    env: (name) => env[name],
    readStdin: () => Promise.resolve(new TextEncoder().encode(JSON.stringify(conf))),
    writeStdout: (t) => {
      stdout += t;
      return Promise.resolve();
    },
    writeStderr: () => Promise.resolve(),
    handlers: daemonHandlers({ client: o.daemon.client }),
  });
  return { code, out: stdout ? JSON.parse(stdout) : {} };
}

Deno.test("ADD refuses a malformed requested address or vxnet before the daemon acts", async (t) => {
  const cases: [string, { args?: string; conf?: Record<string, unknown> }, number, RegExp][] = [
    [
      "annotation ip with a prefix",
      { args: "hostnic.network.kubesphere.io/ip=1.2.3.4/x" },
      4,
      /\/ip/,
    ],
    ["annotation ip CIDR", { args: "hostnic.network.kubesphere.io/ip=1.2.3.4/24" }, 4, /\/ip/],
    ["annotation ip IPv6", { args: "hostnic.network.kubesphere.io/ip=fe80::1" }, 4, /IPv4/],
    ["annotation ip blank", { args: "hostnic.network.kubesphere.io/ip= " }, 4, /\/ip/],
    ["IP= bad prefix", { args: "IP=10.0.0.1/99" }, 4, /"IP"/],
    ["IP= not an address", { args: "IP=x" }, 4, /"IP"/],
    ["vxnet", { args: "hostnic.network.kubesphere.io/vxnet=nope" }, 4, /\/vxnet/],
    ["vxnet upper case", { args: "hostnic.network.kubesphere.io/vxnet=VXNET-1" }, 4, /vxnet/],
    ["type", { args: "hostnic.network.kubesphere.io/type=nic" }, 4, /passthrough/],
    ["runtimeConfig.ips IPv6", { conf: { runtimeConfig: { ips: ["fd00::5"] } } }, 7, /IPv4/],
    [
      "runtimeConfig.ips two",
      { conf: { runtimeConfig: { ips: ["10.0.0.5", "10.0.0.6"] } } },
      7,
      /"runtimeConfig\.ips": hostnic gives an interface one address, got 2/,
    ],
    ["args.cni.ips IPv6", { conf: { args: { cni: { ips: ["fd00::5/64"] } } } }, 7, /args\.cni/],
  ];
  for (const [name, o, code, re] of cases) {
    await t.step(name, async () => {
      const daemon = fakeDaemon();
      const { code: exit, out } = await invoke({ ...o, daemon });
      assert.equal(exit, 1);
      assert.equal(out.code, code);
      assert.match(String(out.msg), re);
      assert.deepEqual(daemon.seen, [], "the daemon is not asked");
    });
  }
});

Deno.test("ADD passes well-formed requests on; empty CNI_ARGS values mean unset", async (t) => {
  const cases: [
    string,
    { args?: string; conf?: Record<string, unknown> },
    Record<string, unknown>,
  ][] = [
    ["annotation ip and vxnet", {
      args:
        "hostnic.network.kubesphere.io/vxnet=vxnet-a1;hostnic.network.kubesphere.io/ip=10.0.0.7",
    }, { vxnet: "vxnet-a1", ip: "10.0.0.7" }],
    ["IP= with a prefix", { args: "IP=10.0.0.8/24" }, { ip: "10.0.0.8" }],
    ["capability ips first", {
      args: "hostnic.network.kubesphere.io/ip=10.0.0.7",
      conf: { runtimeConfig: { ips: ["10.0.0.9/22"] } },
    }, { ip: "10.0.0.9" }],
    ["empty values", {
      args: "hostnic.network.kubesphere.io/ip=;hostnic.network.kubesphere.io/vxnet=;IP=",
      conf: { runtimeConfig: { ips: [] } },
    }, {}],
  ];
  for (const [name, o, want] of cases) {
    await t.step(name, async () => {
      const daemon = fakeDaemon();
      const { code, out } = await invoke({ ...o, daemon });
      assert.equal(code, 0, JSON.stringify(out));
      assert.equal(daemon.seen.length, 1);
      const body = daemon.seen[0].body;
      assert.deepEqual({ vxnet: body.vxnet, ip: body.ip }, {
        vxnet: undefined,
        ip: undefined,
        ...want,
      });
    });
  }
});

Deno.test("ADD and CHECK need CNI_NETNS to be a network namespace", async (t) => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/file`;
  await Deno.writeTextFile(file, "not a namespace");
  try {
    await t.step("what a path is", async () => {
      assert.equal(await netnsKindOf("/proc/self/ns/net"), "netns");
      assert.equal(await netnsKindOf(`${dir}/nope`), "missing");
      assert.equal(await netnsKindOf(file), "other");
      assert.equal(await netnsKindOf(dir), "other");
    });
    for (const command of ["ADD", "CHECK"]) {
      await t.step(
        `${command}: missing is code 3, not a namespace is 4, daemon not asked`,
        async () => {
          const conf = command === "CHECK"
            ? { prevResult: { cniVersion: "1.0.0", ips: [{ address: "172.30.8.10/32" }] } }
            : {};
          for (const [netns, code] of [[`${dir}/nope`, 3], [file, 4], [dir, 4]] as const) {
            const daemon = fakeDaemon();
            const { out } = await invoke({ command, netns, conf, daemon });
            assert.equal(out.code, code, netns);
            assert.match(String(out.msg), /CNI_NETNS/);
            assert.deepEqual(daemon.seen, []);
          }
        },
      );
    }
    await t.step("DEL does not need it (the namespace may be gone)", async () => {
      const daemon = fakeDaemon();
      const { code } = await invoke({ command: "DEL", netns: `${dir}/nope`, daemon });
      assert.equal(code, 0);
      assert.equal(daemon.seen.length, 1);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
