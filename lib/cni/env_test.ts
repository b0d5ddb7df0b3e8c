import assert from "node:assert/strict";
import {
  CNI_COMMANDS,
  type CniCommand,
  containerIdProblem,
  ifnameProblem,
  isCniCall,
  netnsProblem,
  parseCniArgs,
  parseCommand,
  parseEnv,
} from "./env.ts";
import { CniError } from "./errors.ts";

const getter = (env: Record<string, string>) => (name: string) => env[name];

function envError(fn: () => unknown): CniError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CniError, String(err));
    return err;
  }
  throw new Error("expected a CniError");
}

const FULL = {
  CNI_CONTAINERID: "3f2a9c",
  CNI_NETNS: "/var/run/netns/cni-1",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin::/usr/lib/cni",
  CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
};

Deno.test("CNI_COMMAND must be a known verb", async (t) => {
  for (const c of CNI_COMMANDS) await t.step(c, () => assert.equal(parseCommand(c), c));
  for (const bad of [undefined, "", "add", "INIT", "FINALIZE"]) {
    await t.step(`bad ${String(bad)}`, () => {
      const err = envError(() => parseCommand(bad));
      assert.equal(err.cniCode, 4);
      assert.match(err.msg, /CNI_COMMAND/);
    });
  }
});

Deno.test("required variables per verb", async (t) => {
  const required: Record<CniCommand, string[]> = {
    ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
    CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
    DEL: ["CNI_CONTAINERID", "CNI_IFNAME"],
    GC: ["CNI_PATH"],
    STATUS: [],
    VERSION: [],
  };
  for (const command of CNI_COMMANDS) {
    await t.step(`${command} with everything`, () => {
      const env = parseEnv(getter({ ...FULL, CNI_COMMAND: command }));
      assert.equal(env.command, command);
      assert.deepEqual(env.path, ["/opt/cni/bin", "/usr/lib/cni"]);
    });
    await t.step(`${command} with nothing`, () => {
      const names = required[command];
      if (names.length === 0) {
        const env = parseEnv(getter({ CNI_COMMAND: command }));
        assert.equal(env.containerId, undefined);
        assert.equal(env.ifname, undefined);
        return;
      }
      const err = envError(() => parseEnv(getter({ CNI_COMMAND: command })));
      assert.equal(err.cniCode, 4);
      for (const n of names) assert.match(err.msg, new RegExp(`${n} is missing`));
    });
    for (const missing of required[command]) {
      await t.step(`${command} without ${missing}`, () => {
        const env: Record<string, string> = { ...FULL, CNI_COMMAND: command };
        delete env[missing];
        const err = envError(() => parseEnv(getter(env)));
        assert.equal(err.cniCode, 4);
        assert.match(err.msg, new RegExp(missing));
      });
    }
  }
});

Deno.test("DEL accepts an empty CNI_NETNS", () => {
  const env = parseEnv(getter({ ...FULL, CNI_COMMAND: "DEL", CNI_NETNS: "" }));
  assert.equal(env.netns, undefined);
  assert.equal(env.containerId, "3f2a9c");
});

Deno.test("attachment values are validated; unused ones are ignored", () => {
  const err = envError(() =>
    parseEnv(
      getter({
        CNI_COMMAND: "ADD",
        CNI_CONTAINERID: "-x",
        CNI_NETNS: "netns",
        CNI_IFNAME: "eth/0",
      }),
    )
  );
  assert.equal(err.cniCode, 4);
  assert.match(err.msg, /CNI_CONTAINERID "-x"/);
  assert.match(err.msg, /CNI_NETNS "netns"/);
  assert.match(err.msg, /CNI_IFNAME "eth\/0"/);
  // STATUS and GC take no container: garbage there is not looked at.
  const gc = parseEnv(
    getter({
      CNI_COMMAND: "GC",
      CNI_PATH: "/opt/cni/bin",
      CNI_CONTAINERID: "-x",
      CNI_ARGS: "junk",
    }),
  );
  assert.equal(gc.containerId, undefined);
  assert.deepEqual(gc.args.pairs, {});
});

Deno.test("container ID rules", async (t) => {
  const cases: [string, boolean][] = [
    ["a", true],
    ["0123456789abcdef".repeat(4), true],
    ["pod_1.sandbox-2", true],
    ["", false],
    ["_x", false],
    [".x", false],
    ["-x", false],
    ["a b", false],
    ["a/b", false],
    ["ä", false],
    ["a".repeat(1024), true],
    ["a".repeat(1025), false],
  ];
  for (const [id, ok] of cases) {
    await t.step(
      JSON.stringify(id.length > 20 ? `${id.slice(0, 8)}…(${id.length})` : id),
      () => assert.equal(containerIdProblem(id) === undefined, ok),
    );
  }
});

Deno.test("interface name rules", async (t) => {
  const cases: [string, boolean][] = [
    ["eth0", true],
    ["net1", true],
    ["a".repeat(15), true],
    ["a".repeat(16), false],
    ["", false],
    [".", false],
    ["..", false],
    ["...", true],
    ["eth/0", false],
    ["eth:0", false],
    ["eth 0", false],
    ["eth\t0", false],
    ["eth\u00a00", false],
    ["eth\u00010", false],
  ];
  for (const [name, ok] of cases) {
    await t.step(JSON.stringify(name), () => assert.equal(ifnameProblem(name) === undefined, ok));
  }
});

Deno.test("netns must be an absolute path", () => {
  assert.equal(netnsProblem("/proc/1/ns/net"), undefined);
  assert.notEqual(netnsProblem("cni-1234"), undefined);
  assert.notEqual(netnsProblem("/a\0b"), undefined);
});

Deno.test("CNI_ARGS parsing", async (t) => {
  await t.step("kubelet style", () => {
    const a = parseCniArgs(
      "IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-1;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1;EXTRA=x",
    );
    assert.equal(a.ignoreUnknown, true);
    assert.equal(a.k8sPodNamespace, "kube-system");
    assert.equal(a.k8sPodName, "coredns-1");
    assert.equal(a.k8sPodInfraContainerId, "abc");
    assert.equal(a.k8sPodUid, "u-1");
    assert.equal(a.pairs.EXTRA, "x");
  });
  await t.step("empty and trailing separators", () => {
    assert.deepEqual(parseCniArgs("").pairs, {});
    assert.deepEqual(parseCniArgs("K8S_POD_NAME=a;;").pairs, { K8S_POD_NAME: "a" });
  });
  await t.step("values may hold '=' and be empty", () => {
    assert.equal(parseCniArgs("IP=10.0.0.5/24").ip, "10.0.0.5/24");
    assert.equal(parseCniArgs("IgnoreUnknown=true;X=a=b").pairs.X, "a=b");
    assert.equal(parseCniArgs("K8S_POD_NAME=").k8sPodName, "");
  });
  await t.step("unknown keys need IgnoreUnknown", () => {
    for (const text of ["FOO=1", "IgnoreUnknown=0;FOO=1", "IgnoreUnknown=false;FOO=1"]) {
      const err = envError(() => parseCniArgs(text));
      assert.equal(err.cniCode, 4);
      assert.match(err.msg, /"FOO"/);
    }
    assert.equal(parseCniArgs("IgnoreUnknown=TRUE;FOO=1").ignoreUnknown, true);
  });
  await t.step("thousands of unknown keys: the first few are named, the rest counted", () => {
    const text = Array.from({ length: 5000 }, (_, i) => `k${i}=v`).join(";");
    const err = envError(() => parseCniArgs(text));
    assert.equal(err.cniCode, 4);
    assert.match(err.msg, /^Unknown CNI_ARGS keys "k0", "k1", "k2", "k3", "k4" and 4995 more$/);
  });
  await t.step("malformed pairs and flags", () => {
    for (const text of ["K8S_POD_NAME", "=x", "IgnoreUnknown=yes"]) {
      assert.equal(envError(() => parseCniArgs(text)).cniCode, 4, text);
    }
  });
  await t.step("bad CNI_ARGS fails ADD with code 4", () => {
    const err = envError(() =>
      parseEnv(getter({ ...FULL, CNI_COMMAND: "ADD", CNI_ARGS: "BOGUS" }))
    );
    assert.match(err.msg, /CNI_ARGS/);
  });
});

Deno.test("CNI mode: CNI_COMMAND, or a runtime's variables with no mode given", async (t) => {
  await t.step("CNI_COMMAND set, even empty, whatever argv says", () => {
    assert.equal(isCniCall([], getter({ CNI_COMMAND: "ADD" })), true);
    assert.equal(isCniCall([], getter({ CNI_COMMAND: "" })), true);
    assert.equal(isCniCall(["daemon"], getter({ CNI_COMMAND: "DEL" })), true);
  });
  await t.step("a runtime that lost CNI_COMMAND still gets a CNI error", () => {
    for (const name of ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS"]) {
      assert.equal(isCniCall([], getter({ [name]: "x" })), true, name);
    }
  });
  await t.step("a mode on the command line wins over stray CNI_* variables", () => {
    assert.equal(isCniCall(["version"], getter({ CNI_CONTAINERID: "x" })), false);
    assert.equal(isCniCall(["admin", "pool", "ls"], getter({ CNI_IFNAME: "eth0" })), false);
  });
  await t.step("CNI_PATH alone (a user's shell) is not a CNI call", () => {
    assert.equal(isCniCall([], getter({ CNI_PATH: "/opt/cni/bin" })), false);
    assert.equal(isCniCall([], getter({})), false);
  });
});
