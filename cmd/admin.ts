/**
 * `hostnic admin`: read the node daemon's view over its socket.
 *
 *   hostnic admin [--socket PATH] pool ls [-o table|json]
 *   hostnic admin [--socket PATH] nic ls  [-o table|json]
 *   hostnic admin [--socket PATH] pod ls  [-o table|json]
 *   hostnic admin [--socket PATH] gc [--dry-run] [-o table|json]
 *   hostnic admin ipam ls [--kubeconfig PATH] [-o table|json]
 *   hostnic admin [--socket PATH] ipam check [--fix] [-o table|json]
 *
 * `gc` runs one garbage-collection pass now (release pods that are gone, repair lost kernel
 * state, adopt or delete unknown owned NICs, replay journaled DELs); `--dry-run` only shows what it
 * would do and why. Mutating operations exist only on the root-only socket.
 *
 * Shared mode: `ipam ls` reads the IPPools and IPAMBlocks from the API server (pools, blocks,
 * owner node, utilization); `ipam check` asks this node's daemon to compare pods, allocations
 * and the kernel (what its shared-mode GC would release or repair, and why); `--fix` applies it.
 *
 * Exit codes: 0 ok, 1 the daemon failed or is unreachable (message on stderr), 2 usage.
 */
import { Option } from "commander";
import { type ModeProgram, newProgram, runProgram } from "../lib/cli.ts";
import type { GcView, NicView, PodView, PoolView } from "../lib/rpc/api.ts";
import { DEFAULTS } from "../lib/config.ts";
import { RpcClient } from "../lib/rpc/client.ts";
import { RPC, type RpcPath } from "../lib/rpc/protocol.ts";

const enc = new TextEncoder();
const out = (s: string) => Deno.stdout.writeSync(enc.encode(s));

type Format = "table" | "json";

/** Left-aligned columns separated by two spaces; `-` for empty cells. */
export function table(header: string[], rows: (string | number | undefined)[][]): string {
  const cells = [
    header,
    ...rows.map((r) => r.map((c) => c === undefined || c === "" ? "-" : `${c}`)),
  ];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  return cells.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n") +
    "\n";
}

function poolTable(p: PoolView): string {
  return table(
    [
      "INSTANCE",
      "VXNET",
      "FREE",
      "COOLING",
      "PENDING",
      "INUSE",
      "DETACHING",
      "TOTAL",
      "LOW/HIGH/MAX",
      "READY",
    ],
    [[
      p.instanceId,
      p.vxnet,
      p.free,
      p.cooling,
      p.pending,
      p.inuse,
      p.detaching,
      p.total,
      `${p.poolLow}/${p.poolHigh}/${p.maxNic}`,
      p.ready ? "yes" : `no (${p.reason ?? "starting"})`,
    ]],
  ) + (p.lastError ? `last pool error: ${p.lastError}\n` : "");
}

function nicTable(nics: NicView[]): string {
  return table(
    ["NIC", "VXNET", "IP", "STATE", "POD", "TABLE", "DEDICATED"],
    nics.map((n) => [
      n.id,
      n.vxnet,
      n.ip,
      n.state === "inuse" ? "in use" : n.state,
      n.pod ?? n.owner,
      n.table,
      n.dedicated ? "yes" : "no",
    ]),
  );
}

function podTable(pods: PodView[]): string {
  return table(
    ["POD", "CONTAINER", "IF", "MODE", "IP", "NIC", "VXNET", "TABLE"],
    pods.map((p) => [
      p.pod,
      p.containerId.slice(0, 12),
      p.ifName,
      p.mode,
      p.ip,
      p.nicId,
      p.vxnet,
      p.table,
    ]),
  );
}

function gcText(r: GcView): string {
  const verb = r.applied ? "done" : "would do (dry run)";
  if (r.actions.length === 0) return "nothing to collect or repair\n";
  return r.actions.map((a) => `${verb}: ${a.text}\n`).join("") +
    r.failed.map((f) => `failed: ${f.action}: ${f.error}\n`).join("");
}

async function show<T>(
  socket: string,
  path: RpcPath,
  format: Format,
  render: (v: T) => string,
): Promise<number> {
  const data = await new RpcClient(socket).call<T>(path, undefined, { timeoutMs: 10_000 });
  out(format === "json" ? JSON.stringify(data, null, 2) + "\n" : render(data));
  return 0;
}

export interface IpamBlockRow {
  name: string;
  pool: string;
  cidr: string;
  /** Owner node (`host:` stripped); absent while unclaimed. */
  node?: string;
  allocated: number;
  free: number;
  reserved: number;
  utilization: number;
}

export interface IpamView {
  pools: {
    name: string;
    cidr: string;
    blocks: number;
    allocated: number;
    free: number;
    utilization: number;
  }[];
  blocks: IpamBlockRow[];
}

async function ipamView(kubeconfig: string | undefined): Promise<IpamView> {
  const { KubeIpamStores } = await import("../lib/ipam/kube_store.ts");
  const { blockStats } = await import("../lib/ipam/mod.ts");
  await using s = new KubeIpamStores(kubeconfig !== undefined ? { kubeconfig } : {});
  const pools = await s.pools.list();
  const blocks = (await s.blocks.list()).map((b): IpamBlockRow => {
    const st = blockStats(b.spec, { now: Date.now(), cooldownMs: 0 });
    const usable = st.allocated + st.free;
    return {
      name: b.name,
      pool: b.spec.pool,
      cidr: b.spec.cidr,
      ...(b.spec.affinity ? { node: b.spec.affinity.replace(/^host:/, "") } : {}),
      allocated: st.allocated,
      free: st.free,
      reserved: st.reserved,
      utilization: usable ? st.allocated / usable : 0,
    };
  });
  return {
    pools: pools.map((p) => {
      const mine = blocks.filter((b) => b.pool === p.name);
      const allocated = mine.reduce((a, b) => a + b.allocated, 0);
      const free = mine.reduce((a, b) => a + b.free, 0);
      return {
        name: p.name,
        cidr: p.spec.cidr,
        blocks: mine.length,
        allocated,
        free,
        utilization: allocated + free ? allocated / (allocated + free) : 0,
      };
    }),
    blocks,
  };
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

function ipamTable(v: IpamView): string {
  return table(
    ["POOL", "CIDR", "BLOCKS", "ALLOCATED", "FREE", "UTILIZATION"],
    v.pools.map((p) => [p.name, p.cidr, p.blocks, p.allocated, p.free, pct(p.utilization)]),
  ) + "\n" + table(
    ["BLOCK", "POOL", "CIDR", "NODE", "ALLOCATED", "FREE", "RESERVED", "UTILIZATION"],
    v.blocks.map((b) => [
      b.name,
      b.pool,
      b.cidr,
      b.node,
      b.allocated,
      b.free,
      b.reserved,
      pct(b.utilization),
    ]),
  );
}

/** `hostnic admin …` as a commander program (built, not run). */
export function program(): ModeProgram {
  let code = 0;
  const program = newProgram("hostnic admin")
    .description("inspect the hostnic node daemon through its socket")
    .option("--socket <path>", "daemon socket", DEFAULTS.socketPath);
  const formatOption = () =>
    new Option("-o, --output <format>", "output format").choices(["table", "json"]).default(
      "table",
    );
  const socket = () => program.opts<{ socket: string }>().socket;
  const lister = (noun: string, what: string, run: (f: Format) => Promise<number>) => {
    program.command(noun).description(what).command("ls").description(`list ${what}`)
      .addOption(formatOption())
      .action(async (o: { output: Format }) => {
        code = await run(o.output);
      });
  };
  lister("pool", "the node's NIC pool", (f) => show(socket(), RPC.adminPool, f, poolTable));
  lister("nic", "the NICs this node holds", (f) => show(socket(), RPC.adminNics, f, nicTable));
  lister("pod", "pod attachments on this node", (f) => show(socket(), RPC.adminPods, f, podTable));
  program.command("gc").description("run a garbage-collection and repair pass now")
    .option("--dry-run", "only show what the pass would do, and why")
    .addOption(formatOption())
    .action(async (o: { dryRun?: boolean; output: Format }) => {
      const r = await new RpcClient(socket()).call<GcView>(RPC.adminGc, {
        dryRun: o.dryRun === true,
      }, { timeoutMs: 120_000 });
      out(o.output === "json" ? JSON.stringify(r, null, 2) + "\n" : gcText(r));
      code = r.failed.length > 0 ? 1 : 0;
    });
  const ipam = program.command("ipam").description("shared-mode IPAM (IPPools and IPAMBlocks)");
  ipam.command("ls").description("list pools and blocks with owner node and utilization")
    .option("--kubeconfig <path>", "kubeconfig (default: the in-cluster service account)")
    .addOption(formatOption())
    .action(async (o: { kubeconfig?: string; output: Format }) => {
      const v = await ipamView(o.kubeconfig);
      out(o.output === "json" ? JSON.stringify(v, null, 2) + "\n" : ipamTable(v));
      code = 0;
    });
  ipam.command("check")
    .description("compare pods, allocations and the kernel on this node (shared mode)")
    .option("--fix", "release and repair what the check finds")
    .addOption(formatOption())
    .action(async (o: { fix?: boolean; output: Format }) => {
      const r = await new RpcClient(socket()).call<GcView>(RPC.adminIpamCheck, {
        dryRun: o.fix !== true,
      }, { timeoutMs: 120_000 });
      out(o.output === "json" ? JSON.stringify(r, null, 2) + "\n" : gcText(r));
      code = r.failed.length > 0 || (!r.applied && r.actions.length > 0) ? 1 : 0;
    });
  return { program, code: () => code };
}

export async function main(args: string[]): Promise<number> {
  const m = program();
  return await runProgram(m.program, args, m.code);
}
