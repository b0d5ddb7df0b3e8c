/**
 * `hostnic admin`: read the node daemon's view over its socket.
 *
 *   hostnic admin [--socket PATH] pool ls [-o table|json]
 *   hostnic admin [--socket PATH] nic ls  [-o table|json]
 *   hostnic admin [--socket PATH] pod ls  [-o table|json]
 *   hostnic admin [--socket PATH] gc [--dry-run] [-o table|json]
 *
 * `gc` runs one garbage-collection pass now (release pods that are gone, repair lost kernel
 * state, adopt or delete unknown owned NICs, replay journaled DELs); `--dry-run` only shows what it
 * would do and why. Mutating operations exist only on the root-only socket.
 *
 * Exit codes: 0 ok, 1 the daemon failed or is unreachable (message on stderr), 2 usage.
 */
import { Option } from "commander";
import { newProgram, runProgram } from "../lib/cli.ts";
import type { GcView, NicView, PodView, PoolView } from "../lib/daemon/api.ts";
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

export async function main(args: string[]): Promise<number> {
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
  return await runProgram(program, args, () => code);
}
