/**
 * `hostnic install` / `hostnic uninstall` as real processes (`deno run -A main.ts …`) against a
 * temporary root: files, modes, contents, idempotency, no leftovers, and failures that write
 * nothing.
 */
import assert from "node:assert/strict";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const EXAMPLE = new URL("../../deploy/examples/hostnic-portmap-bandwidth.conflist", import.meta.url)
  .pathname;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function hostnic(args: string[]): Promise<Run> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { RUST_BACKTRACE: "0", NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function fixture() {
  const dir = await Deno.makeTempDir({ prefix: "hostnic-install-" });
  const root = `${dir}/root`;
  await Deno.mkdir(root);
  const source = `${dir}/hostnic-build`;
  // A stand-in binary: distinctive bytes, larger than one copy chunk.
  const bytes = new Uint8Array(200_000).map((_, i) => (i * 31) & 0xff);
  await Deno.writeFile(source, bytes, { mode: 0o700 });
  return {
    dir,
    root,
    source,
    bytes,
    binary: `${root}/opt/cni/bin/hostnic`,
    config: `${root}/etc/cni/net.d/10-hostnic.conflist`,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Every path under `dir`, relative, sorted (directories end with "/"). */
async function tree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const rel = `${prefix}${e.name}`;
    if (e.isDirectory) out.push(`${rel}/`, ...await tree(`${dir}/${e.name}`, `${rel}/`));
    else out.push(rel);
  }
  return out.sort();
}

async function mode(path: string): Promise<number> {
  return (await Deno.stat(path)).mode! & 0o7777;
}

function assertNoStack(r: Run) {
  assert.doesNotMatch(r.stderr + r.stdout, /\n\s+at /, "no stack trace");
}

Deno.test("install writes the binary (0755) and a default conflist (0644)", async () => {
  await using fx = await fixture();
  const r = await hostnic(["install", "--root", fx.root, "--source", fx.source]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`installed ${fx.binary}\n`));
  assert.match(r.stdout, /installed .*10-hostnic\.conflist \(plugins: hostnic\)/);
  assert.deepEqual(await Deno.readFile(fx.binary), fx.bytes);
  assert.equal(await mode(fx.binary), 0o755);
  assert.equal(await mode(fx.config), 0o644);
  const conf = JSON.parse(await Deno.readTextFile(fx.config));
  assert.equal(conf.cniVersion, "1.0.0");
  assert.equal(conf.name, "hostnic");
  assert.equal(conf.plugins.length, 1);
  assert.equal(conf.plugins[0].type, "hostnic");
  assert.equal(conf.plugins[0].socketPath, "/var/run/hostnic/hostnic.sock");
  assert.deepEqual(await tree(fx.root), [
    "etc/",
    "etc/cni/",
    "etc/cni/net.d/",
    "etc/cni/net.d/10-hostnic.conflist",
    "opt/",
    "opt/cni/",
    "opt/cni/bin/",
    "opt/cni/bin/hostnic",
  ]);
});

Deno.test("install is idempotent: same files, nothing rewritten, no temp files", async () => {
  await using fx = await fixture();
  const first = await hostnic(["install", "--root", fx.root, "--source", fx.source]);
  assert.equal(first.code, 0, first.stderr);
  const before = await tree(fx.root);
  const inoBin = (await Deno.stat(fx.binary)).ino;
  const inoConf = (await Deno.stat(fx.config)).ino;
  const again = await hostnic(["install", "--root", fx.root, "--source", fx.source]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /unchanged .*\/opt\/cni\/bin\/hostnic\n/);
  assert.match(again.stdout, /unchanged .*10-hostnic\.conflist/);
  assert.deepEqual(await tree(fx.root), before);
  assert.equal((await Deno.stat(fx.binary)).ino, inoBin, "binary not replaced");
  assert.equal((await Deno.stat(fx.config)).ino, inoConf, "config not replaced");

  // A changed source replaces the binary, atomically (new inode), and leaves no temp file.
  const newer = new Uint8Array(1000).fill(7);
  await Deno.writeFile(fx.source, newer);
  const third = await hostnic(["install", "--root", fx.root, "--source", fx.source]);
  assert.equal(third.code, 0, third.stderr);
  assert.match(third.stdout, /installed .*\/opt\/cni\/bin\/hostnic\n/);
  assert.deepEqual(await Deno.readFile(fx.binary), newer);
  assert.notEqual((await Deno.stat(fx.binary)).ino, inoBin);
  assert.deepEqual(await tree(fx.root), before);
});

Deno.test("install removes temp files a killed run left behind", async () => {
  await using fx = await fixture();
  await Deno.mkdir(`${fx.root}/opt/cni/bin`, { recursive: true });
  await Deno.mkdir(`${fx.root}/etc/cni/net.d`, { recursive: true });
  await Deno.writeTextFile(`${fx.root}/opt/cni/bin/.hostnic.tmp-99-abc`, "half");
  await Deno.writeTextFile(`${fx.root}/etc/cni/net.d/.10-hostnic.conflist.tmp-99-abc`, "{");
  await Deno.writeTextFile(`${fx.root}/opt/cni/bin/portmap`, "other plugin");
  const r = await hostnic(["install", "--root", fx.root, "--source", fx.source]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /removed leftover temp file \.hostnic\.tmp-99-abc/);
  assert.deepEqual(
    (await tree(fx.root)).filter((p) => !p.endsWith("/")),
    ["etc/cni/net.d/10-hostnic.conflist", "opt/cni/bin/hostnic", "opt/cni/bin/portmap"],
  );
});

Deno.test("install --cni-config takes a chained conflist and checks hostnic's entry", async () => {
  await using fx = await fixture();
  const r = await hostnic([
    "install",
    "--root",
    fx.root,
    "--source",
    fx.source,
    "--cni-config",
    EXAMPLE,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /plugins: hostnic, portmap, bandwidth/);
  assert.deepEqual(
    JSON.parse(await Deno.readTextFile(fx.config)),
    JSON.parse(await Deno.readTextFile(EXAMPLE)),
  );
});

Deno.test("install wraps upstream's single-plugin .conf into a conflist", async () => {
  await using fx = await fixture();
  const legacy = `${fx.dir}/10-hostnic.conf`;
  await Deno.writeTextFile(
    legacy,
    JSON.stringify({
      cniVersion: "0.3.0",
      name: "hostnic",
      type: "hostnic",
      serviceCIDR: "10.233.0.0/18",
      hairpin: false,
      natMark: "0x10000",
    }),
  );
  const r = await hostnic([
    "install",
    "--root",
    fx.root,
    "--source",
    fx.source,
    "--cni-config",
    legacy,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(await Deno.readTextFile(fx.config)), {
    cniVersion: "0.3.0",
    name: "hostnic",
    plugins: [{
      type: "hostnic",
      serviceCIDR: "10.233.0.0/18",
      hairpin: false,
      natMark: "0x10000",
    }],
  });
  // And with a .conf name it stays one plugin.
  const r2 = await hostnic([
    "install",
    "--root",
    fx.root,
    "--source",
    fx.source,
    "--cni-config",
    legacy,
    "--conf-name",
    "10-hostnic.conf",
  ]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.doesNotMatch(r2.stdout, /note:/, "10-hostnic.conf sorts before 10-hostnic.conflist");
  const single = JSON.parse(await Deno.readTextFile(`${fx.root}/etc/cni/net.d/10-hostnic.conf`));
  assert.equal(single.type, "hostnic");
  assert.equal(single.plugins, undefined);
  // The upgrade trap: an old 10-hostnic.conf shadows the new 10-hostnic.conflist. Say so.
  const r3 = await hostnic(["install", "--root", fx.root, "--source", fx.source]);
  assert.equal(r3.code, 0, r3.stderr);
  assert.match(r3.stdout, /note: "10-hostnic\.conf" sort before "10-hostnic\.conflist"/);
});

Deno.test("a bad config file: exit 1, a message naming file and field, nothing written", async (t) => {
  const cases: [string, string, RegExp][] = [
    ["not JSON", "{ nope", /is not valid JSON/],
    ["an array", "[]", /must be a JSON object/],
    [
      "bad version",
      JSON.stringify({ cniVersion: "9.9.9", name: "n", plugins: [{ type: "hostnic" }] }),
      /"cniVersion" must be one of 0\.3\.0/,
    ],
    [
      "no hostnic",
      JSON.stringify({ cniVersion: "1.0.0", name: "n", plugins: [{ type: "bridge" }] }),
      /has no "hostnic" plugin/,
    ],
    [
      "hostnic not first",
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "n",
        plugins: [{ type: "portmap" }, { type: "hostnic" }],
      }),
      /"hostnic" must be the first plugin .* plugins\[1\]/,
    ],
    [
      "bad mtu",
      JSON.stringify({ cniVersion: "1.0.0", name: "n", plugins: [{ type: "hostnic", mtu: 10 }] }),
      /plugins\[0\]: Invalid "mtu"/,
    ],
    [
      "bad natMark",
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "n",
        plugins: [{ type: "hostnic", natMark: "0x4000" }],
      }),
      /plugins\[0\]: Invalid "natMark"/,
    ],
    [
      "empty plugins",
      JSON.stringify({ cniVersion: "1.0.0", name: "n", plugins: [] }),
      /"plugins" must be a non-empty list/,
    ],
  ];
  for (const [what, text, re] of cases) {
    await t.step(what, async () => {
      await using fx = await fixture();
      const file = `${fx.dir}/bad.conflist`;
      await Deno.writeTextFile(file, text);
      const r = await hostnic([
        "install",
        "--root",
        fx.root,
        "--source",
        fx.source,
        "--cni-config",
        file,
      ]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, new RegExp(`^hostnic install: CNI config "${file}"`));
      assert.match(r.stderr, re);
      assertNoStack(r);
      assert.deepEqual(await tree(fx.root), [], "nothing written, not even directories");
    });
  }
});

Deno.test("install refuses a missing source or config, and bad flags, writing nothing", async () => {
  await using fx = await fixture();
  const missing = await hostnic(["install", "--root", fx.root, "--source", `${fx.dir}/nope`]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /Cannot read --source ".*\/nope"/);
  assertNoStack(missing);
  const noConf = await hostnic([
    "install",
    "--root",
    fx.root,
    "--source",
    fx.source,
    "--cni-config",
    `${fx.dir}/absent.conflist`,
  ]);
  assert.equal(noConf.code, 1);
  assert.match(noConf.stderr, /Cannot read --cni-config ".*\/absent\.conflist"/);
  const badName = await hostnic([
    "install",
    "--root",
    fx.root,
    "--source",
    fx.source,
    "--conf-name",
    "hostnic.txt",
  ]);
  assert.equal(badName.code, 1);
  assert.match(badName.stderr, /--conf-name "hostnic\.txt" must be a file name ending in/);
  const relative = await hostnic([
    "install",
    "--root",
    fx.root,
    "--source",
    fx.source,
    "--bin-dir",
    "opt",
  ]);
  assert.equal(relative.code, 1);
  assert.match(relative.stderr, /--bin-dir "opt" must be an absolute path/);
  const unknownFlag = await hostnic(["install", "--bogus"]);
  assert.equal(unknownFlag.code, 2);
  assert.match(unknownFlag.stderr, /unknown option '--bogus'/);
  // Without --source (a shim for deno run), bad flags are refused before anything is built.
  const shimBadName = await hostnic(["install", "--root", fx.root, "--conf-name", "x.txt"]);
  assert.equal(shimBadName.code, 1);
  assert.match(shimBadName.stderr, /--conf-name "x\.txt" must be a file name ending in/);
  assert.deepEqual(await tree(fx.root), []);
});

Deno.test("the config is written only after the binary is in place", async () => {
  await using fx = await fixture();
  // The bin dir cannot be created: a file sits where it should be.
  await Deno.mkdir(`${fx.root}/opt/cni`, { recursive: true });
  await Deno.writeTextFile(`${fx.root}/opt/cni/bin`, "not a directory");
  const r = await hostnic(["install", "--root", fx.root, "--source", fx.source]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^hostnic install: Cannot create directory ".*\/opt\/cni\/bin"/);
  assertNoStack(r);
  await assert.rejects(Deno.stat(fx.config), Deno.errors.NotFound);
});

Deno.test("uninstall removes the config, then the binary, and says how to clean state", async () => {
  await using fx = await fixture();
  await Deno.mkdir(`${fx.root}/opt/cni/bin`, { recursive: true });
  await Deno.writeTextFile(`${fx.root}/opt/cni/bin/portmap`, "other plugin");
  assert.equal((await hostnic(["install", "--root", fx.root, "--source", fx.source])).code, 0);
  const r = await hostnic(["uninstall", "--root", fx.root]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split("\n");
  assert.equal(lines[0], `removed ${fx.config}`);
  assert.equal(lines[1], `removed ${fx.binary}`);
  assert.match(r.stdout, /rm -rf \/var\/lib\/hostnic \/var\/run\/hostnic/);
  assert.deepEqual(
    (await tree(fx.root)).filter((p) => !p.endsWith("/")),
    ["opt/cni/bin/portmap"],
    "other plugins stay",
  );
  const again = await hostnic(["uninstall", "--root", fx.root]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /^nothing to remove\n/);
});

Deno.test("install under deno run writes a shim: CNI calls run the plugin bundle, other modes main.ts", async () => {
  await using fx = await fixture();
  const r = await hostnic(["install", "--root", fx.root]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /a shim for "deno run"/);
  assert.equal(await mode(fx.binary), 0o755);
  const script = await Deno.readTextFile(fx.binary);
  assert.match(script, /^#!\/bin\/sh\n/);
  assert.match(
    script,
    / run -A --quiet --no-config --cached-only --v8-flags=--no-lazy '[^']+\/dist\/hostnic-cni-[0-9a-f]{12}\/cni_entry\.js' "\$@"/,
  );
  assert.match(script, /export DENO_DIR='[^']+' DENO_NO_UPDATE_CHECK=1/);
  const run = async (env: Record<string, string>, args: string[] = []) => {
    const out = await new Deno.Command(fx.binary, {
      args,
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
  };
  // A runtime may pass no PATH or HOME: the shim names everything it needs.
  const version = await run({ CNI_COMMAND: "VERSION" });
  assert.equal(version.code, 0);
  assert.deepEqual(JSON.parse(version.stdout).supportedVersions.at(-1), "1.1.0");
  const del = await run({ CNI_COMMAND: "DEL" });
  assert.equal(del.code, 1);
  assert.equal(JSON.parse(del.stdout).code, 4, "a CNI error, from the plugin");
  // DEL without the daemon loads the bundle's other chunk (lib/linux, the journal): it still
  // succeeds and leaves its release record (the pod's netns is already gone).
  const journalDir = `${fx.dir}/journal`;
  const offline = await new Deno.Command(fx.binary, {
    env: {
      CNI_COMMAND: "DEL",
      CNI_CONTAINERID: "bundlechunk1",
      CNI_IFNAME: "eth0",
      CNI_PATH: "/opt/cni/bin",
    },
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = offline.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify({
    cniVersion: "1.0.0",
    name: "hostnic",
    type: "hostnic",
    socketPath: `${fx.dir}/no-daemon.sock`,
    journalDir,
  })));
  await w.close();
  const offOut = await offline.output();
  assert.equal(offOut.code, 0, new TextDecoder().decode(offOut.stdout));
  assert.deepEqual([...Deno.readDirSync(journalDir)].map((e) => e.name), [
    "bundlechunk1.eth0.json",
  ]);
  const cli = await run({}, ["version"]);
  assert.equal(cli.code, 0);
  assert.match(cli.stdout, /^hostnic \d+\.\d+\.\d+/);
  // Installing again changes nothing.
  const again = await hostnic(["install", "--root", fx.root]);
  assert.match(again.stdout, /^unchanged .*\/opt\/cni\/bin\/hostnic$/m);
});
