/**
 * Helpers of tests/e2e/k8s_node_test.ts (real nodes): manifests, kubectl waits with diagnostics,
 * a pod's cloud NIC and its packet counters, pings that run across a step, Service polling.
 */
import { CommandRunner } from "../../lib/linux/exec.ts";
import type { ControlPlane } from "../../lib/testbed/kube.ts";
import type { RealNode } from "../../lib/testbed/node.ts";
import { waitFor } from "../helpers/wait.ts";

export { busyboxDeployment, httpGet } from "../../lib/testbed/workloads.ts";
import { httpGet } from "../../lib/testbed/workloads.ts";

export const OTHER_VXNET = "vxnet-tbother";
export const runner = new CommandRunner();
export const inPodVxnet = (ip: string): boolean => /^172\.30\.(8|9|10|11)\.\d+$/.test(ip);

export interface PodJson {
  metadata: {
    name: string;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
  };
  spec: { nodeName?: string };
  status: { podIP?: string; phase?: string; conditions?: { type: string; status: string }[] };
}

export const REPO = new URL("../../", import.meta.url).pathname;

/** The cloud NIC a nic-mode pod uses on its node: `hostnic_<table>` of its `from <ip>` rule. */
export async function podNic(node: RealNode, podIp: string): Promise<string> {
  const rules = JSON.parse(
    (await runner.run(["ip", "-n", node.instance.netns, "-j", "rule"])).stdout,
  ) as { src?: string; iif?: string; table?: string }[];
  // `from <ip> lookup <table>` (with `iif <veth>` when hairpin is on).
  const r = rules.find((x) => x.src === podIp && /^\d+$/.test(x.table ?? ""));
  if (!r?.table) throw new Error(`no NIC rule for ${podIp} on ${node.name}`);
  return `hostnic_${r.table}`;
}

export async function linkStats(
  node: RealNode,
  dev: string,
): Promise<{ mac: string; rx: number; tx: number }> {
  const [l] = JSON.parse(
    (await runner.run(["ip", "-n", node.instance.netns, "-j", "-s", "link", "show", "dev", dev]))
      .stdout,
  ) as { address: string; stats64: { rx: { packets: number }; tx: { packets: number } } }[];
  return { mac: l.address, rx: l.stats64.rx.packets, tx: l.stats64.tx.packets };
}

/** A ping (every 0.2 s) from `netns` that runs until `stop()`, which returns its counts. */
export function startPing(
  netns: string,
  ip: string,
): { stop(): Promise<{ sent: number; got: number }> } {
  const child = new Deno.Command("nsenter", {
    args: [`--net=/run/netns/${netns}`, "ping", "-i", "0.2", "-W", "1", ip],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  return {
    async stop() {
      child.kill("SIGINT");
      const out = new TextDecoder().decode((await child.output()).stdout);
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      if (!m) throw new Error(`ping printed no summary: ${out.slice(-300)}`);
      return { sent: Number(m[1]), got: Number(m[2]) };
    },
  };
}

/** Polls a Service through `client` until every backend in `backends` answered. */
export async function reachAll(
  cp: ControlPlane,
  client: string,
  ip: string,
  backends: Set<string>,
): Promise<Set<string>> {
  const seen = new Set<string>();
  let last = "";
  await waitFor(`all backends through ${ip}`, async () => {
    const r = await cp.kubectl([
      "exec",
      client,
      "--",
      "sh",
      "-c",
      `for i in 1 2 3 4 5 6 7 8; do ${httpGet(ip, 80)}; echo; done`,
    ]);
    for (const line of r.stdout.split("\n")) {
      if (backends.has(line.trim())) seen.add(line.trim());
    }
    last = `${r.stdout}${r.stderr}`;
    return seen.size === backends.size;
  }, { timeoutMs: 60_000, intervalMs: 500 }).catch((err) => {
    throw new Error(`${err.message}: answered by [${[...seen]}] of [${[...backends]}]; ${last}`);
  });
  return seen;
}

export function mountPoints(): Set<string> {
  return new Set(
    Deno.readTextFileSync("/proc/self/mountinfo").split("\n").filter(Boolean).map((l) =>
      l.split(" ")[4]
    ),
  );
}

export async function podsOf(cp: ControlPlane, app: string): Promise<PodJson[]> {
  return (await cp.getJson<{ items: PodJson[] }>(["pods", "-n", "default", "-l", `app=${app}`]))
    .items;
}

export async function waitAvailable(
  cp: ControlPlane,
  name: string,
  o: { node?: RealNode; timeoutS?: number } = {},
): Promise<void> {
  const r = await cp.kubectl([
    "-n",
    "default",
    "rollout",
    "status",
    `deployment/${name}`,
    `--timeout=${o.timeoutS ?? 120}s`,
  ]);
  if (r.code === 0) return;
  const pods = await cp.kubectl(["-n", "default", "describe", "pods", "-l", `app=${name}`]);
  const daemon = await cp.kubectl(["-n", "kube-system", "logs", "ds/hostnic-node", "--tail=40"]);
  throw new Error(
    [
      `deployment ${name} not available: ${r.stderr.trim()}`,
      pods.stdout,
      `--- hostnic-node: ${daemon.stdout}${daemon.stderr}`,
      ...(o.node
        ? [
          `--- kubelet: ${o.node.logTail("kubelet")}`,
          `--- containerd: ${o.node.logTail("containerd")}`,
        ]
        : []),
    ].join("\n"),
  );
}
