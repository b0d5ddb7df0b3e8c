/**
 * `hostnic daemon start` refuses to run on bad input and says which value is wrong and why:
 * config keys and flags (before touching anything), then the cloud-side start-up checks (the
 * instance exists; every vxnet exists, is in the instance's VPC, has DHCP on).
 */
import assert from "node:assert/strict";
import { Cluster } from "../../lib/testbed/cluster.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

async function daemon(args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "daemon", "start", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("bad config keys and flags are refused by name, before anything starts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostnic-cfg" });
  try {
    const cases: [Record<string, unknown> | string, string[], RegExp][] = [
      [{ pool: { poolLow: -1 } }, [], /"pool\.poolLow"/],
      [{ pool: { poolLow: 6, poolHigh: 5 } }, [], /poolLow must not exceed poolHigh/],
      [{ pool: { maxnic: 3 } }, [], /maxnic/],
      [{ pool: { vxNets: ["subnet-1"] } }, [], /"pool\.vxNets\.0"/],
      [{ cni: { natMark: "0x4000" } }, [], /"cni\.natMark"/],
      ["{not json", [], /not valid JSON/],
      [{}, ["--PoolSize", "64"], /"--PoolSize"/],
      [{}, ["--PoolSize", "three"], /--PoolSize/],
      [{}, ["--vxnets", "vxnet-ok,bad"], /"--vxnets".*"bad"/],
      [{}, ["--instance-id", "node1"], /"--instance-id"/],
      [{}, ["--manageAddr", "nowhere"], /"--manageAddr"/],
    ];
    for (const [i, [file, flags, want]] of cases.entries()) {
      const path = `${dir}/c${i}.json`;
      await Deno.writeTextFile(path, typeof file === "string" ? file : JSON.stringify(file));
      const res = await daemon(["--config", path, "--state-dir", `${dir}/state${i}`, ...flags]);
      assert.equal(res.code, 1, `${JSON.stringify(file)} ${flags}: ${res.stderr}`);
      assert.match(res.stderr, want);
      assert.ok(!res.stderr.includes("    at "), "no stack trace");
      await assert.rejects(Deno.stat(`${dir}/state${i}`), Deno.errors.NotFound, "nothing made");
    }
    const missing = await daemon(["--config", `${dir}/absent.json`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Cannot read config file/);
    const usage = await daemon(["--no-such-flag"]);
    assert.equal(usage.code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "start-up checks name the instance or vxnet that cannot host pods",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using c = await Cluster.start({ nodes: 1 });
    const [n] = c.nodes;
    await n.stopDaemon();
    const cases: [string[], RegExp][] = [
      [["--vxnets", "vxnet-missing"], /Vxnet "vxnet-missing" does not exist/],
      [["--instance-id", "i-missing"], /Instance "i-missing" does not exist/],
    ];
    for (const [flags, want] of cases) {
      await n.startDaemon(flags);
      const st = await n.daemon!.status;
      assert.equal(st.code, 1);
      await n.stopDaemon();
      assert.match(n.tail(), want);
    }
  },
});
