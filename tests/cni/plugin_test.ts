/**
 * The CNI plugin as a real process: `deno run -A main.ts` with CNI env and stdin, as a runtime
 * execs it. Kept to the acceptance cases (each spawn costs ~50 ms); the protocol matrices are unit
 * tests in lib/cni/.
 */
import assert from "node:assert/strict";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Passes only what Deno needs to find its cache, so no CNI_* leaks in from the test runner. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = { RUST_BACKTRACE: "0", NO_COLOR: "1" };
  for (const k of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  return env;
}

async function plugin(env: Record<string, string>, stdin: string | null): Promise<Run> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-prompt", MAIN],
    env: { ...baseEnv(), ...env },
    clearEnv: true,
    stdin: stdin === null ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== null) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** One JSON object on stdout and one human line on stderr, exit 1. */
function cniError(run: Run): { cniVersion: string; code: number; msg: string; details: string } {
  assert.equal(run.code, 1, run.stderr);
  const lines = run.stdout.trimEnd().split("\n");
  assert.equal(lines.length, 1, run.stdout);
  const obj = JSON.parse(lines[0]);
  assert.deepEqual(Object.keys(obj).sort(), ["cniVersion", "code", "details", "msg"]);
  const err = run.stderr.trimEnd();
  assert.ok(err.length > 0 && !err.includes("\n"), run.stderr);
  assert.match(err, /^hostnic: CNI /);
  assert.doesNotMatch(run.stdout + run.stderr, /\bat .*\.ts:\d+/);
  return obj;
}

const ATTACH = {
  CNI_CONTAINERID: "9f3c1b2a",
  CNI_NETNS: "/var/run/netns/cni-test",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin",
  CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
};
const CONF =
  '{"cniVersion":"1.0.0","name":"hostnic","type":"hostnic","serviceCIDR":"10.96.0.0/12"}';

Deno.test("VERSION with stdin from /dev/null", async () => {
  const run = await plugin({ CNI_COMMAND: "VERSION" }, null);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(
    run.stdout,
    '{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}\n',
  );
  assert.equal(run.stderr, "");
});

Deno.test("ADD with malformed stdin is code 6", async () => {
  const err = cniError(await plugin({ CNI_COMMAND: "ADD", ...ATTACH }, '{"cniVersion":'));
  assert.equal(err.code, 6);
});

Deno.test("ADD with an unsupported cniVersion is code 1", async () => {
  const err = cniError(
    await plugin(
      { CNI_COMMAND: "ADD", ...ATTACH },
      '{"cniVersion":"0.2.0","name":"n","type":"hostnic"}',
    ),
  );
  assert.equal(err.code, 1);
  assert.equal(err.cniVersion, "0.2.0");
});

Deno.test("ADD without CNI_CONTAINERID is code 4", async () => {
  const { CNI_CONTAINERID: _, ...env } = ATTACH;
  const err = cniError(await plugin({ CNI_COMMAND: "ADD", ...env }, CONF));
  assert.equal(err.code, 4);
  assert.match(err.msg, /CNI_CONTAINERID/);
});

Deno.test("ADD without the daemon is code 11 pointing at hostnic-node", async () => {
  // The namespace must exist (the plugin checks it before asking the daemon): its own will do.
  const env = { CNI_COMMAND: "ADD", ...ATTACH, CNI_NETNS: "/proc/self/ns/net" };
  const err = cniError(await plugin(env, CONF));
  assert.equal(err.code, 11);
  assert.equal(err.cniVersion, "1.0.0");
  assert.match(err.msg, /daemon socket .* is not reachable/);
  assert.match(err.details, /hostnic-node/);
});

Deno.test("DEL of an unknown container succeeds silently", async () => {
  const run = await plugin({ CNI_COMMAND: "DEL", ...ATTACH, CNI_NETNS: "" }, CONF);
  assert.deepEqual(run, { code: 0, stdout: "", stderr: "" });
});

Deno.test("STATUS without the daemon is code 50", async () => {
  const err = cniError(
    await plugin(
      { CNI_COMMAND: "STATUS" },
      '{"cniVersion":"1.1.0","name":"hostnic","type":"hostnic"}',
    ),
  );
  assert.equal(err.code, 50);
});

Deno.test("the plugin's module graph holds no npm package (start-up cost)", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("../../cmd/cni.ts", import.meta.url).pathname],
    env: { RUST_BACKTRACE: "0", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  const specifiers: string[] = info.modules.map((m: { specifier: string }) => m.specifier);
  assert.ok(specifiers.length > 3, specifiers.join(" "));
  // npm modules show up as `npm:/…` specifiers (`npmPackages` lists the whole lockfile).
  const outside = specifiers.filter((s) => !s.startsWith("file://") || s.includes("node_modules"));
  assert.deepEqual(outside, []);
});
