/**
 * One iperf3 TCP measurement between two namespaces. The server runs as our own child with
 * `--one-off` (no `-D`: a daemonised server is not ours to wait for or kill) and the client
 * starts only once `ss` shows the port listening in the server's namespace — no blind sleeps.
 * Throughput is `end.sum_received.bits_per_second` of the client's `-J` report (what the
 * receiver got, not what the sender queued).
 */
import type { Runner } from "../../lib/linux/exec.ts";
import type { Resources } from "./context.ts";

export interface IperfRun {
  clientNs: string;
  serverNs: string;
  serverIp: string;
  seconds: number;
  port?: number;
  signal?: AbortSignal;
}

const decoder = new TextDecoder();

/** Runs one client→server TCP test; resolves with the received bits per second. */
export async function iperfTcp(
  deps: { runner: Runner; resources: Resources },
  o: IperfRun,
): Promise<number> {
  const port = String(o.port ?? 5201);
  const server = deps.resources.spawn(
    ["iperf3", "--server", "--one-off", "--bind", o.serverIp, "--port", port],
    { netns: o.serverNs, stdout: "null", stderr: "piped" },
  );
  const serverDone = server.output();
  try {
    await waitListening(deps.runner, {
      netns: o.serverNs,
      port,
      exited: serverDone,
      signal: o.signal,
    });
    o.signal?.throwIfAborted();
    const client = deps.resources.spawn(
      ["iperf3", "--client", o.serverIp, "--port", port, "--time", String(o.seconds), "--json"],
      { netns: o.clientNs },
    );
    const out = await client.output();
    const text = decoder.decode(out.stdout);
    let report: { error?: string; end?: { sum_received?: { bits_per_second?: number } } };
    try {
      report = JSON.parse(text);
    } catch {
      throw new Error(
        `iperf3 client in "${o.clientNs}" printed no JSON (exit ${out.code}): ` +
          (decoder.decode(out.stderr).trim() || text.slice(0, 200)),
      );
    }
    const bps = report.end?.sum_received?.bits_per_second;
    if (report.error || out.code !== 0 || typeof bps !== "number") {
      throw new Error(
        `iperf3 ${o.clientNs} → ${o.serverIp} failed (exit ${out.code}): ${
          report.error ?? "no sum"
        }`,
      );
    }
    return bps;
  } finally {
    // A one-off server exits after its client; if the client never came, stop it.
    const settled = await Promise.race([
      serverDone.then(() => true, () => true),
      new Promise<false>((r) => setTimeout(() => r(false), 2000)),
    ]);
    if (!settled) {
      try {
        server.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await serverDone.catch(() => {});
  }
}

/** Polls `ss` in the namespace until something listens on `port` (deadline 10 s). */
async function waitListening(
  runner: Runner,
  o: { netns: string; port: string; exited: Promise<Deno.CommandOutput>; signal?: AbortSignal },
): Promise<void> {
  let exited: Deno.CommandOutput | undefined;
  o.exited.then((x) => exited = x, () => {});
  const deadline = Date.now() + 10_000;
  for (;;) {
    o.signal?.throwIfAborted();
    if (exited) {
      throw new Error(
        `iperf3 server in "${o.netns}" exited (code ${exited.code}) before listening: ` +
          decoder.decode(exited.stderr).trim(),
      );
    }
    const { stdout } = await runner.run(
      ["ss", "--no-header", "--listening", "--tcp", "--numeric", `sport = :${o.port}`],
      { netns: o.netns },
    );
    if (stdout.trim() !== "") return;
    if (Date.now() > deadline) {
      throw new Error(`iperf3 server in "${o.netns}" did not listen on port ${o.port} within 10 s`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}
