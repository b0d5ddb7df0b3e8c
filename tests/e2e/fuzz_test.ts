/**
 * CNI fuzz (issue #6): 1000 generated malformed invocations of the real plugin process against a
 * running daemon on the simulated cloud. Each must answer with exactly one CNI error object with
 * the spec code its mutation calls for, print no stack trace, and leave the daemon's state — pool,
 * NICs, allocations, the cloud's NICs and its mutating calls, the release journal and the node's
 * kernel state — as it was. See tests/helpers/cni_fuzz.ts for how cases are made.
 *
 * The seed is random and printed; `HOSTNIC_FUZZ_SEED=<n>` replays a run, `HOSTNIC_FUZZ_CASES=<n>`
 * changes the count, `HOSTNIC_FUZZ_REPORT=<file>` writes every failing case there (the assertion
 * shows the first 25).
 */
import assert from "node:assert/strict";
import { CNI_CODES } from "../../lib/cni/errors.ts";
import { SUPPORTED_VERSIONS } from "../../lib/cni/version.ts";
import type { NicView, PodView, PoolView } from "../../lib/rpc/api.ts";
import { CommandRunner } from "../../lib/linux/exec.ts";
import { Cluster, type ClusterNode, type Pod } from "../../lib/testbed/cluster.ts";
import {
  type FuzzCase,
  type FuzzContext,
  generateCases,
  MUTATIONS,
  versionCases,
} from "../helpers/cni_fuzz.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const runner = new CommandRunner();
const dec = new TextDecoder();

const SEED = Number(Deno.env.get("HOSTNIC_FUZZ_SEED") ?? Math.floor(Math.random() * 2 ** 31));
const COUNT = Number(Deno.env.get("HOSTNIC_FUZZ_CASES") ?? 1000);
const VERSION_CASES = 16;
/** Plugin processes at once: 2 cores, ~60 ms of CPU per start. */
const CONCURRENCY = 4;
/** A plugin that has not answered by then is hung (the daemon answers in milliseconds). */
const CASE_TIMEOUT_MS = 30_000;
/** An error object is a few hundred bytes; one that echoes input back is a finding. */
const MAX_OUTPUT = 16 * 1024;

/** Codes the spec defines (1–7, 11, 50, 51) and hostnic's own table (100+). */
const SPEC_CODES = new Set([1, 2, 3, 4, 5, 6, 7, 11, 50, 51]);
const KNOWN_CODES = new Set([...SPEC_CODES, ...CNI_CODES.map((c) => c.code)]);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs the plugin inside the node's namespace the way a runtime does (argv as
 * `ClusterNode.cni`, env + stdin), but with full control of both: the case's environment is all
 * the plugin gets, besides what Deno needs to find its cache. `--node-modules-dir=manual` skips
 * Deno's npm resolution at start-up (the plugin imports no npm package), halving each start.
 */
async function runPlugin(node: ClusterNode, cs: FuzzCase): Promise<Run> {
  const env: Record<string, string> = { RUST_BACKTRACE: "0", NO_COLOR: "1" };
  for (const k of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  const started = performance.now();
  const child = new Deno.Command("/usr/bin/nsenter", {
    args: [
      `--net=/run/netns/${node.netns}`,
      Deno.execPath(),
      "run",
      "-A",
      "--quiet",
      "--node-modules-dir=manual",
      MAIN,
    ],
    env: { ...env, ...cs.env },
    clearEnv: true,
    stdin: cs.stdin === null ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CASE_TIMEOUT_MS),
  }).spawn();
  const output = child.output();
  if (cs.stdin !== null) {
    const w = child.stdin.getWriter();
    try {
      await w.write(cs.stdin);
      await w.close();
    } catch {
      // The plugin stops reading at its size cap and exits: the rest of a huge stdin has no reader.
    }
  }
  const out = await output;
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
    ms: performance.now() - started,
  };
}

/** What is wrong with the answer to `cs`, or [] when it is right. */
function judge(cs: FuzzCase, run: Run): string[] {
  const problems: string[] = [];
  for (const [name, text] of [["stdout", run.stdout], ["stderr", run.stderr]]) {
    if (/^\s+at /m.test(text) || /\bat .*:\d+:\d+/.test(text) || /Uncaught/.test(text)) {
      problems.push(`stack trace on ${name}`);
    }
    if (/\b[A-Za-z]*Error: /.test(text)) problems.push(`an "Error:" dump on ${name}`);
    if (text.length > MAX_OUTPUT) problems.push(`${text.length} bytes on ${name}`);
  }
  let obj: Record<string, unknown> | undefined;
  const lines = run.stdout.split("\n");
  if (!run.stdout.endsWith("\n") || lines.length !== 2) {
    problems.push(`stdout is not exactly one line`);
  } else {
    try {
      const v = JSON.parse(lines[0]);
      if (typeof v === "object" && v !== null && !Array.isArray(v)) obj = v;
      else problems.push("stdout is not a JSON object");
    } catch {
      problems.push("stdout is not JSON");
    }
  }

  if (cs.codes.length === 0) {
    // VERSION: must succeed whatever stdin holds.
    if (run.code !== 0) problems.push(`exit ${run.code}, expected 0`);
    if (run.stderr !== "") problems.push("stderr not empty");
    if (obj) {
      const keys = Object.keys(obj).sort().join(",");
      if (keys !== "cniVersion,supportedVersions") problems.push(`VERSION keys ${keys}`);
      if (!(SUPPORTED_VERSIONS as readonly unknown[]).includes(obj.cniVersion)) {
        problems.push(`VERSION cniVersion ${JSON.stringify(obj.cniVersion)}`);
      }
    }
    return problems;
  }

  if (run.code !== 1) problems.push(`exit ${run.code}, expected 1`);
  if (obj) {
    const extra = Object.keys(obj).filter((k) =>
      !["cniVersion", "code", "msg", "details"].includes(k)
    );
    if (extra.length) problems.push(`unexpected keys ${extra.join(",")}`);
    if (typeof obj.cniVersion !== "string" || obj.cniVersion === "") {
      problems.push("cniVersion missing");
    }
    if (typeof obj.msg !== "string" || obj.msg === "") problems.push("msg missing");
    if (obj.details !== undefined && typeof obj.details !== "string") {
      problems.push("details not a string");
    }
    const code = obj.code;
    if (typeof code !== "number" || !KNOWN_CODES.has(code)) {
      problems.push(`code ${JSON.stringify(code)} is neither a spec code nor hostnic's`);
    } else if (!cs.codes.includes(code)) {
      problems.push(`code ${code}, expected ${cs.codes.join(" or ")}`);
    }
    const errLines = run.stderr.split("\n");
    if (!run.stderr.endsWith("\n") || errLines.length !== 2) {
      problems.push("stderr is not exactly one line");
    } else if (!errLines[0].startsWith("hostnic: CNI ") || !errLines[0].includes(`code ${code}:`)) {
      problems.push("stderr line does not name the code");
    }
  }
  return problems;
}

function describe(cs: FuzzCase, run: Run, problems: string[]): string {
  const stdin = cs.stdin === null
    ? "(none)"
    : cs.stdin.length > 300
    ? `${cs.stdin.length} bytes: ${JSON.stringify(dec.decode(cs.stdin.subarray(0, 200)))}…`
    : JSON.stringify(dec.decode(cs.stdin));
  const env = JSON.stringify(
    cs.env,
    (_k, v) => typeof v === "string" && v.length > 120 ? `${v.slice(0, 60)}…(${v.length})` : v,
  );
  return [
    `case ${cs.id} ${cs.verb} ${cs.kind}: ${problems.join("; ")}`,
    `  env ${env}`,
    `  stdin ${stdin}`,
    `  exit ${run.code} stdout ${JSON.stringify(run.stdout.slice(0, 600))}`,
    `  stderr ${JSON.stringify(run.stderr.slice(0, 600))}`,
  ].join("\n");
}

/** `iptables-save` without comments and packet counters. */
function iptablesRules(text: string): string[] {
  return text.split("\n").filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ""));
}

async function ipJson(args: string[], netns: string): Promise<unknown[]> {
  return JSON.parse((await runner.run(["ip", "-j", ...args], { netns })).stdout || "[]");
}

/**
 * Everything a malformed call could change. Left out, because they move on their own: read-only
 * cloud calls (`Describe*`, made by the daemon's sync loop) and link statistics.
 */
async function snapshot(c: Cluster, n: ClusterNode, netnsToo: string[]) {
  const admin = async (what: string) => {
    const res = await n.admin([what, "ls", "-o", "json"]);
    assert.equal(res.code, 0, res.stderr);
    return JSON.parse(res.stdout);
  };
  const counters = Object.entries(await c.counters())
    .filter(([action]) => !action.startsWith("Describe")).sort();
  const journal: string[] = [];
  try {
    for await (const e of Deno.readDir(`${n.dir}/state/journal`)) journal.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const kernel: Record<string, unknown> = {};
  for (const ns of [n.netns, ...netnsToo]) {
    kernel[ns] = {
      links: (await ipJson(["link", "show"], ns) as { ifname: string; address?: string }[])
        .map((l) => `${l.ifname} ${l.address ?? ""}`).sort(),
      addrs: (await ipJson(["-4", "addr", "show"], ns) as {
        ifname: string;
        addr_info: { local: string; prefixlen: number }[];
      }[]).flatMap((l) => l.addr_info.map((a) => `${l.ifname} ${a.local}/${a.prefixlen}`)).sort(),
      rules: await ipJson(["-4", "rule", "show"], ns),
      routes: await ipJson(["-4", "route", "show", "table", "all"], ns),
      iptables: iptablesRules((await runner.run(["iptables-save"], { netns: ns })).stdout),
    };
  }
  return {
    pool: await admin("pool") as PoolView,
    nics: await admin("nic") as NicView[],
    pods: await admin("pod") as PodView[],
    cloudNics: (await c.simNics()).sort((a, b) => a.id.localeCompare(b.id)),
    counters,
    journal: journal.sort(),
    kernel,
  };
}

async function settled(n: ClusterNode): Promise<PoolView> {
  return await n.waitPool((p) =>
    p.pending === 0 && p.detaching === 0 && p.waiters === 0 && p.free === p.poolHigh
  );
}

Deno.test({
  name: `CNI fuzz: ${COUNT} malformed invocations answer one error object and change nothing`,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    console.log(`hostnic CNI fuzz: seed ${SEED} (replay with HOSTNIC_FUZZ_SEED=${SEED})`);
    await using c = await Cluster.start({
      nodes: 1,
      prefix: "fz",
      jobLatencyMs: 50,
      pool: { poolLow: 2, poolHigh: 2, maxNic: 8 },
    });
    const n = c.nodes[0];
    await n.waitReady({ free: 2 });

    // State to protect: a nic-mode pod (checked by the CHECK bases), a passthrough pod, and a
    // second interface on the first pod.
    const a = await n.addPod("a");
    const b = await n.addPod("b", {
      args:
        "K8S_POD_NAMESPACE=default;K8S_POD_NAME=b;hostnic.network.kubesphere.io/type=passthrough",
    });
    const net1 = await n.cni("ADD", {
      containerId: a.containerId,
      netns: a.path,
      ifName: "net1",
      args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=a",
    });
    assert.equal(net1.code, 0, net1.stdout + net1.stderr);
    const addNetns = `${c.prefix}-p-target`;
    await runner.run(["ip", "netns", "add", addNetns]);
    c.podNamespaces.add(addNetns);
    await settled(n);

    const pods: Pod[] = [a, b];
    const ctx: FuzzContext = {
      socketPath: n.socket,
      journalDir: `${n.dir}/state/journal`,
      pod: {
        containerId: a.containerId,
        netns: a.path,
        ifName: a.ifName,
        args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=a",
        result: a.result,
      },
      attachments: [
        ...pods.map((p) => ({ containerID: p.containerId, ifname: p.ifName })),
        { containerID: a.containerId, ifname: "net1" },
      ],
      addNetns: `/run/netns/${addNetns}`,
      regularFile: c.scenarioFile,
      directory: c.dir,
    };
    const watched = [a.netns, b.netns, addNetns];

    await t.step("the generator is seeded and covers every mutation and verb", () => {
      const one = generateCases(SEED, 300, ctx);
      const two = generateCases(SEED, 300, ctx);
      assert.deepEqual(one, two);
      const pairs = new Set(one.map((x) => `${x.kind} ${x.verb}`));
      for (const m of MUTATIONS) for (const v of m.verbs) assert.ok(pairs.has(`${m.kind} ${v}`));
      assert.ok(one.every((x) => x.codes.length > 0 && x.codes.every((k) => KNOWN_CODES.has(k))));
    });

    const cases = [...generateCases(SEED, COUNT, ctx), ...versionCases(SEED, VERSION_CASES, COUNT)];
    const before = await snapshot(c, n, watched);

    const failures: string[] = [];
    const byCode = new Map<string, number>();
    const times: number[] = [];
    await t.step(`${cases.length} plugin runs, ${CONCURRENCY} at a time`, async () => {
      const started = performance.now();
      let next = 0;
      const worker = async () => {
        while (next < cases.length) {
          const cs = cases[next++];
          let run: Run;
          try {
            run = await runPlugin(n, cs);
          } catch (err) {
            failures.push(`case ${cs.id} ${cs.verb} ${cs.kind}: could not run: ${err}`);
            continue;
          }
          times.push(run.ms);
          const problems = judge(cs, run);
          if (problems.length) failures.push(describe(cs, run, problems));
          const code = /"code":(\d+)/.exec(run.stdout)?.[1] ?? (run.code === 0 ? "ok" : "none");
          byCode.set(code, (byCode.get(code) ?? 0) + 1);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      const secs = (performance.now() - started) / 1000;
      times.sort((x, y) => x - y);
      console.log(
        `${cases.length} runs in ${secs.toFixed(1)} s; per run median ${
          times[times.length >> 1]?.toFixed(0)
        } ms, max ${times.at(-1)?.toFixed(0)} ms; answers ${
          JSON.stringify(Object.fromEntries([...byCode].sort()))
        }`,
      );
      const report = Deno.env.get("HOSTNIC_FUZZ_REPORT");
      if (report && failures.length) await Deno.writeTextFile(report, failures.join("\n") + "\n");
      assert.equal(
        failures.length,
        0,
        `seed ${SEED}: ${failures.length} of ${cases.length} cases failed:\n` +
          failures.slice(0, 25).join("\n"),
      );
    });

    await t.step("the daemon's state is unchanged and the pods still pass CHECK", async () => {
      assert.equal(await n.daemonExited(), undefined, "the daemon is still running");
      await settled(n);
      const after = await snapshot(c, n, watched);
      assert.deepEqual(after, before);
      for (const [pod, ifName] of [[a, "eth0"], [b, "eth0"]] as const) {
        const res = await n.cni("CHECK", {
          containerId: pod.containerId,
          netns: pod.path,
          ifName,
          args: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod.name}`,
          conf: n.netConf({ prevResult: pod.result }),
        });
        assert.equal(res.code, 0, `CHECK of ${pod.name}: ${res.stdout} ${res.stderr}`);
      }
    });
  },
});
