/**
 * `hostnic sim` as a real process (`deno run -A main.ts sim …`): readiness line, client config,
 * the unix socket, clean shutdown on SIGTERM, and `sim down` after a SIGKILL. Namespaces are
 * named `tsim<random>-…` and removed in finally blocks whatever happens.
 */
import assert from "node:assert/strict";
import { stringify as toYaml } from "yaml";
import { CommandRunner } from "../../lib/linux/exec.ts";
import { deleteNamespaces, leftoverNamespaces } from "../../lib/sim/mod.ts";
import { signedRequest, testScenarioObject } from "../../lib/sim/testing.ts";

const runner = new CommandRunner();
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

function hostnic(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { RUST_BACKTRACE: "0", NO_COLOR: "1" },
  }).spawn();
}

/** Collects a stream's text in the background (so the child never blocks on a full pipe). */
function collect(stream: ReadableStream<Uint8Array>): { text: () => string; done: Promise<void> } {
  let text = "";
  const done = (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  })();
  return { text: () => text, done };
}

async function waitForLine(
  out: { text: () => string },
  re: RegExp,
  ms = 30_000,
): Promise<RegExpMatchArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = out.text().match(re);
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${re}; got "${out.text()}"`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function fixture() {
  const dir = await Deno.makeTempDir({ prefix: "tsim" });
  const prefix = "tsim" + crypto.randomUUID().replace(/-/g, "").slice(0, 6).replace(/^\d/, "a");
  const scenarioFile = `${dir}/scenario.yaml`;
  await Deno.writeTextFile(
    scenarioFile,
    toYaml({ ...testScenarioObject(), linux: { prefix } }),
  );
  return {
    dir,
    prefix,
    scenarioFile,
    async [Symbol.asyncDispose]() {
      await deleteNamespaces(runner, await leftoverNamespaces(runner, prefix));
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("sim serve prints ready, serves TCP and the socket, and cleans up on SIGTERM", async () => {
  await using fx = await fixture();
  const socket = `${fx.dir}/sim.sock`;
  const cfgFile = `${fx.dir}/client.yaml`;
  const child = hostnic([
    "sim",
    "serve",
    "--scenario",
    fx.scenarioFile,
    "--linux",
    "--socket",
    socket,
    "--write-client-config",
    cfgFile,
  ]);
  const out = collect(child.stdout);
  const err = collect(child.stderr);
  let exited = false;
  try {
    const [, url] = await waitForLine(out, /^ready (\S+)$/m);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/iaas\/$/);
    assert.equal((await Deno.stat(cfgFile)).mode! & 0o777, 0o600);
    const cfg = await Deno.readTextFile(cfgFile);
    assert.match(cfg, /qy_access_key_id: SIMTESTKEY0001/);
    assert.match(cfg, new RegExp(`socket_path: ${socket}`));
    assert.ok((await leftoverNamespaces(runner, fx.prefix)).includes(`${fx.prefix}-i-one`));

    const tcp = await (await fetch(await signedRequest({ url, action: "DescribeNics" }))).json();
    assert.equal(tcp.total_count, 3);
    const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socket } });
    try {
      const req = await signedRequest({ url, action: "DescribeInstances" });
      const viaSocket = await (await fetch(req, { client })).json();
      assert.equal(viaSocket.total_count, 3);
    } finally {
      client.close();
    }
    assert.ok(!err.text().includes("sim-test-secret"), "the secret never reaches the log");

    child.kill("SIGTERM");
    const status = await child.status;
    exited = true;
    await Promise.all([out.done, err.done]);
    assert.equal(status.code, 0, err.text());
    assert.deepEqual(await leftoverNamespaces(runner, fx.prefix), []);
    await assert.rejects(Deno.lstat(socket), Deno.errors.NotFound);
  } finally {
    if (!exited) {
      child.kill("SIGKILL");
      await child.status;
      await Promise.all([out.done, err.done]);
    }
  }
});

Deno.test("sim down removes the namespaces a killed sim left behind", async () => {
  await using fx = await fixture();
  const child = hostnic(["sim", "serve", "--scenario", fx.scenarioFile, "--linux"]);
  const out = collect(child.stdout);
  const err = collect(child.stderr);
  try {
    await waitForLine(out, /^ready /m);
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await Promise.all([out.done, err.done]);
  }
  assert.ok(
    (await leftoverNamespaces(runner, fx.prefix)).length > 0,
    "a killed sim leaves namespaces",
  );
  const down = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "sim", "down", "--scenario", fx.scenarioFile],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(down.code, 0, new TextDecoder().decode(down.stderr));
  assert.match(new TextDecoder().decode(down.stdout), /removed \d+ namespace/);
  assert.deepEqual(await leftoverNamespaces(runner, fx.prefix), []);
});

Deno.test("sim: usage errors exit 2, a bad scenario exits 1 naming the key", async () => {
  await using fx = await fixture();
  const run = async (args: string[]) => {
    const o = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", MAIN, "sim", ...args],
      stdout: "piped",
      stderr: "piped",
      env: { RUST_BACKTRACE: "0" },
    }).output();
    return { code: o.code, stderr: new TextDecoder().decode(o.stderr) };
  };
  assert.equal((await run(["serve"])).code, 2);
  assert.equal((await run(["launch"])).code, 2);
  const bad = `${fx.dir}/bad.yaml`;
  await Deno.writeTextFile(bad, "zone: pek3a\ncredentials: []\n");
  const r = await run(["serve", "--scenario", bad]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /"credentials"/);
  assert.ok(!r.stderr.includes("    at "), "no stack trace");
});
