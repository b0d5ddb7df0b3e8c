import assert from "node:assert/strict";
import { type CniHandlers, type CniRequest, runCni } from "./dispatch.ts";
import { CNI_COMMANDS, type CniCommand } from "./env.ts";
import { CniCode, CniError } from "./errors.ts";
import { encodeResult, type Result } from "./result.ts";
import { unavailableHandlers } from "./unavailable.ts";
import { MIN_VERSION, SUPPORTED_VERSIONS, versionAtLeast } from "./version.ts";

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

interface Invocation {
  env?: Record<string, string>;
  stdin?: string | Uint8Array;
  stdinError?: Error;
  handlers?: CniHandlers;
}

async function invoke(inv: Invocation): Promise<Outcome> {
  let stdout = "";
  let stderr = "";
  const bytes = typeof inv.stdin === "string" ? new TextEncoder().encode(inv.stdin) : inv.stdin;
  const code = await runCni({
    env: (name) => inv.env?.[name],
    readStdin: (limit) => {
      if (inv.stdinError) return Promise.reject(inv.stdinError);
      return Promise.resolve((bytes ?? new Uint8Array()).slice(0, limit));
    },
    writeStdout: (text) => {
      stdout += text;
      return Promise.resolve();
    },
    writeStderr: (text) => {
      stderr += text;
      return Promise.resolve();
    },
    handlers: inv.handlers ?? unavailableHandlers,
  });
  return { code, stdout, stderr };
}

/** Asserts a failed invocation printed exactly one error object and one stderr line. */
function errorOf(out: Outcome): { cniVersion: string; code: number; msg: string; details: string } {
  assert.equal(out.code, 1);
  assert.ok(
    out.stdout.endsWith("\n") && out.stdout.indexOf("\n") === out.stdout.length - 1,
    out.stdout,
  );
  const obj = JSON.parse(out.stdout);
  assert.deepEqual(Object.keys(obj).sort(), ["cniVersion", "code", "details", "msg"]);
  assert.equal(out.stderr.split("\n").length, 2, out.stderr);
  assert.match(out.stderr, /^hostnic: CNI /);
  assert.doesNotMatch(out.stdout + out.stderr, /\n\s+at /);
  return obj;
}

const PREV: Result = {
  interfaces: [{ name: "eth0", mac: "52:54:9e:01:02:03", sandbox: "/var/run/netns/cni-1" }],
  ips: [{ address: "172.22.0.5/32", gateway: "169.254.1.1", interface: 0 }],
  routes: [{ dst: "0.0.0.0/0", gw: "169.254.1.1" }],
  dns: {},
};

function envFor(command: CniCommand): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: "c0ffee",
    CNI_NETNS: "/var/run/netns/cni-1",
    CNI_IFNAME: "eth0",
    CNI_PATH: "/opt/cni/bin",
    CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
  };
}

function configFor(command: CniCommand, version: string): string {
  const conf: Record<string, unknown> = {
    cniVersion: version,
    name: "hostnic",
    type: "hostnic",
    mtu: 1450,
  };
  if (command === "CHECK" || command === "DEL") {
    conf.prevResult = encodeResult(PREV, version as (typeof SUPPORTED_VERSIONS)[number]);
  }
  if (command === "GC") {
    conf["cni.dev/valid-attachments"] = [{ containerID: "c0ffee", ifname: "eth0" }];
  }
  return JSON.stringify(conf);
}

/** Handlers that record the request and succeed; ADD echoes a fixed result. */
function recording(): { handlers: CniHandlers; seen: CniRequest[] } {
  const seen: CniRequest[] = [];
  const handlers: CniHandlers = {
    add: (req) => {
      seen.push(req);
      return PREV;
    },
    del: (req) => void seen.push(req),
    check: (req) => void seen.push(req),
    status: (req) => void seen.push(req),
    gc: (req) => void seen.push(req),
  };
  return { handlers, seen };
}

Deno.test("every verb × every version with succeeding handlers", async (t) => {
  for (const command of CNI_COMMANDS) {
    for (const version of SUPPORTED_VERSIONS) {
      const allowed = versionAtLeast(version, MIN_VERSION[command]);
      await t.step(`${command} ${version}`, async () => {
        const { handlers, seen } = recording();
        const out = await invoke({
          env: envFor(command),
          stdin: configFor(command, version),
          handlers,
        });
        if (!allowed) {
          const err = errorOf(out);
          assert.equal(err.code, 1);
          assert.equal(err.cniVersion, version);
          assert.equal(seen.length, 0);
          return;
        }
        assert.equal(out.code, 0, out.stdout + out.stderr);
        assert.equal(out.stderr, "");
        if (command === "VERSION") {
          assert.deepEqual(JSON.parse(out.stdout), {
            cniVersion: version,
            supportedVersions: [...SUPPORTED_VERSIONS],
          });
          return;
        }
        assert.equal(seen.length, 1);
        const req = seen[0];
        assert.equal(req.command, command);
        assert.equal(req.version, version);
        assert.equal(req.config.hostnic.mtu, 1450);
        if (command === "ADD") {
          assert.deepEqual(JSON.parse(out.stdout), encodeResult(PREV, version));
          const ips = JSON.parse(out.stdout).ips;
          assert.equal(ips[0].version, versionAtLeast(version, "1.0.0") ? undefined : "4");
        } else {
          assert.equal(out.stdout, "");
        }
        if (req.command === "ADD" || req.command === "DEL" || req.command === "CHECK") {
          assert.equal(req.containerId, "c0ffee");
          assert.equal(req.ifname, "eth0");
          assert.equal(req.netns, "/var/run/netns/cni-1");
          assert.equal(req.args.k8sPodName, "web-0");
        }
        if (req.command === "CHECK") assert.deepEqual(req.prevResult, PREV);
        if (req.command === "DEL") assert.deepEqual(req.config.prevResult, PREV);
        if (req.command === "GC") {
          assert.deepEqual(req.validAttachments, [{ containerID: "c0ffee", ifname: "eth0" }]);
        }
      });
    }
  }
});

Deno.test("every verb × every version with the daemon unreachable", async (t) => {
  const expected: Record<CniCommand, number> = {
    ADD: 11,
    CHECK: 11,
    STATUS: 50,
    DEL: 0,
    GC: 0,
    VERSION: 0,
  };
  for (const command of CNI_COMMANDS) {
    for (const version of SUPPORTED_VERSIONS) {
      if (!versionAtLeast(version, MIN_VERSION[command])) continue;
      await t.step(`${command} ${version} → ${expected[command] || "success"}`, async () => {
        const out = await invoke({ env: envFor(command), stdin: configFor(command, version) });
        if (expected[command] === 0) {
          assert.equal(out.code, 0);
          assert.equal(out.stderr, "");
          if (command !== "VERSION") assert.equal(out.stdout, "");
          return;
        }
        const err = errorOf(out);
        assert.equal(err.code, expected[command]);
        assert.equal(err.cniVersion, version);
        assert.match(
          err.msg,
          /hostnic daemon socket "\/var\/run\/hostnic\/hostnic\.sock" is not reachable/,
        );
        assert.match(err.details, /hostnic-node/);
      });
    }
  }
});

Deno.test("DEL of an unknown container succeeds without prevResult or netns", async (t) => {
  for (const version of SUPPORTED_VERSIONS) {
    await t.step(version, async () => {
      const env = { ...envFor("DEL"), CNI_CONTAINERID: "never-added-123", CNI_NETNS: "" };
      const out = await invoke({
        env,
        stdin: JSON.stringify({ cniVersion: version, name: "hostnic", type: "hostnic" }),
      });
      assert.deepEqual(out, { code: 0, stdout: "", stderr: "" });
    });
  }
});

Deno.test("VERSION answers whatever stdin holds", async (t) => {
  const cases: [string, string][] = [
    ["", "1.1.0"],
    ["{bad", "1.1.0"],
    ['{"cniVersion":"0.2.0"}', "1.1.0"],
    ['{"cniVersion":"0.3.1"}', "0.3.1"],
  ];
  for (const [stdin, version] of cases) {
    await t.step(JSON.stringify(stdin), async () => {
      const out = await invoke({ env: { CNI_COMMAND: "VERSION" }, stdin });
      assert.equal(out.code, 0);
      assert.equal(
        out.stdout,
        `{"cniVersion":"${version}","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}\n`,
      );
    });
  }
  await t.step("even when stdin cannot be read", async () => {
    const out = await invoke({ env: { CNI_COMMAND: "VERSION" }, stdinError: new Error("EBADF") });
    assert.equal(out.code, 0);
  });
});

Deno.test("error paths", async (t) => {
  const add = envFor("ADD");
  const good = configFor("ADD", "0.4.0");
  const cases: [string, Invocation, number, RegExp, string?][] = [
    ["malformed stdin", { env: add, stdin: "{not json" }, 6, /not valid JSON/],
    ["empty stdin", { env: add, stdin: "" }, 6, /empty/],
    ["stdin read failure", { env: add, stdinError: new Error("EIO") }, 5, /Cannot read/],
    [
      "stdin too large",
      { env: add, stdin: new Uint8Array(1024 * 1024 + 10).fill(32) },
      7,
      /too large/,
    ],
    [
      "unsupported cniVersion",
      { env: add, stdin: '{"cniVersion":"0.2.0","name":"n","type":"t"}' },
      1,
      /cniVersion/,
      "0.2.0",
    ],
    ["missing cniVersion", { env: add, stdin: '{"name":"n","type":"t"}' }, 1, /cniVersion/],
    [
      "missing CNI_CONTAINERID",
      { env: { ...add, CNI_CONTAINERID: "" }, stdin: good },
      4,
      /CNI_CONTAINERID/,
      "0.4.0",
    ],
    [
      "bad CNI_IFNAME",
      { env: { ...add, CNI_IFNAME: "a-very-long-ifname" }, stdin: good },
      4,
      /CNI_IFNAME/,
    ],
    [
      "unknown CNI_COMMAND",
      { env: { ...add, CNI_COMMAND: "INIT" }, stdin: good },
      4,
      /CNI_COMMAND/,
    ],
    [
      "missing name",
      { env: add, stdin: '{"cniVersion":"1.0.0","type":"t"}' },
      7,
      /"name"/,
      "1.0.0",
    ],
    [
      "bad hostnic key",
      { env: add, stdin: '{"cniVersion":"1.0.0","name":"n","type":"t","mtu":"big"}' },
      7,
      /"mtu"/,
    ],
    [
      "CHECK on 0.3.1",
      { env: envFor("CHECK"), stdin: configFor("CHECK", "0.3.1") },
      1,
      /CHECK needs/,
    ],
    ["GC on 1.0.0", { env: envFor("GC"), stdin: configFor("GC", "1.0.0") }, 1, /GC needs/],
    [
      "STATUS on 0.4.0",
      { env: envFor("STATUS"), stdin: configFor("STATUS", "0.4.0") },
      1,
      /STATUS needs/,
    ],
    [
      "GC without CNI_PATH",
      { env: { CNI_COMMAND: "GC" }, stdin: configFor("GC", "1.1.0") },
      4,
      /CNI_PATH/,
    ],
  ];
  for (const [name, inv, code, re, version] of cases) {
    await t.step(name, async () => {
      const err = errorOf(await invoke(inv));
      assert.equal(err.code, code, JSON.stringify(err));
      assert.match(err.msg, re);
      if (version) assert.equal(err.cniVersion, version);
    });
  }
});

Deno.test("handler failures", async (t) => {
  const failing = (thrown: unknown): CniHandlers => ({
    ...unavailableHandlers,
    add: () => {
      throw thrown;
    },
    del: () => Promise.reject(thrown),
  });
  await t.step("a CniError keeps its code", async () => {
    const out = await invoke({
      env: envFor("ADD"),
      stdin: configFor("ADD", "1.0.0"),
      handlers: failing(new CniError(CniCode.PoolExhausted, 'No free NIC in vxnet "vxnet-a"')),
    });
    const err = errorOf(out);
    assert.equal(err.code, 101);
    assert.equal(err.msg, 'No free NIC in vxnet "vxnet-a"');
  });
  await t.step("any other error is code 100 without a stack", async () => {
    const boom = new Error("boom\nsecond line");
    const out = await invoke({
      env: envFor("DEL"),
      stdin: configFor("DEL", "1.1.0"),
      handlers: failing(boom),
    });
    const err = errorOf(out);
    assert.equal(err.code, 100);
    assert.equal(err.msg, "boom\nsecond line");
    assert.ok(!out.stdout.includes("dispatch"), out.stdout);
    assert.equal(out.stderr, "hostnic: CNI DEL failed with code 100: boom second line\n");
  });
  await t.step("a thrown string", async () => {
    const out = await invoke({
      env: envFor("ADD"),
      stdin: configFor("ADD", "1.0.0"),
      handlers: failing("nope"),
    });
    assert.equal(errorOf(out).code, 100);
  });
  await t.step("an invalid ADD result is hostnic's bug", async () => {
    const bad: CniHandlers = {
      ...unavailableHandlers,
      add: () => ({
        interfaces: [],
        ips: [{ address: "10.0.0.5", interface: 3 }],
        routes: [],
        dns: {},
      }),
    };
    const err = errorOf(
      await invoke({ env: envFor("ADD"), stdin: configFor("ADD", "1.0.0"), handlers: bad }),
    );
    assert.equal(err.code, 100);
    assert.match(err.details, /result\.ips\[0\]\.address/);
  });
  await t.step("a broken stdout still yields exit 1 and a stderr line", async () => {
    let stderr = "";
    const code = await runCni({
      env: (n) => envFor("ADD")[n],
      readStdin: () => Promise.resolve(new TextEncoder().encode(configFor("ADD", "1.0.0"))),
      writeStdout: () => Promise.reject(new Error("EPIPE")),
      writeStderr: (s) => {
        stderr += s;
        return Promise.resolve();
      },
      handlers: unavailableHandlers,
    });
    assert.equal(code, 1);
    assert.match(stderr, /code 11/);
  });
});

Deno.test("ADD passes prevResult through and prints in the request version", async () => {
  const chained = JSON.stringify({
    cniVersion: "0.4.0",
    name: "hostnic",
    type: "hostnic",
    prevResult: encodeResult(PREV, "0.4.0"),
  });
  const passThrough: CniHandlers = { ...unavailableHandlers, add: (req) => req.config.prevResult! };
  const out = await invoke({ env: envFor("ADD"), stdin: chained, handlers: passThrough });
  assert.equal(out.code, 0);
  assert.deepEqual(JSON.parse(out.stdout), encodeResult(PREV, "0.4.0"));
});

Deno.test("runCni marks the phases of the per-phase split in order", async () => {
  const seen: string[] = [];
  const handlers: CniHandlers = { ...unavailableHandlers, del: () => {} };
  const code = await runCni({
    env: (n) => envFor("DEL")[n],
    readStdin: () => Promise.resolve(new TextEncoder().encode(configFor("DEL", "1.0.0"))),
    writeStdout: () => Promise.resolve(),
    writeStderr: () => Promise.resolve(),
    mark: (p) => seen.push(p),
    handlers,
  });
  assert.equal(code, 0);
  assert.deepEqual(seen, ["read", "parsed", "written"]);
});
