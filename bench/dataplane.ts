/**
 * Data-plane throughput: iperf3 TCP pod → pod over paths built in the same run, measured
 * interleaved (A B C A B C …) and summarised by the median, because a 2-core machine is noisy.
 *
 *   veth         two namespaces joined by one veth pair — the floor of any namespace path.
 *   vxlan        flannel-style overlay: two "node" namespaces joined by an underlay veth, each
 *                with `flannel.1` (VXLAN id 1, dstport 8472, nolearning; static neighbour + fdb
 *                for the peer like flanneld writes), MTU 1450, and a pod behind `cni0` + veth.
 *   hostnic      the simulator with its Linux backend (2 instances in one VPC, a pod vxnet); NICs
 *                created and attached through the real IaaS client, a pod per node plumbed by
 *                lib/linux `setupPod` in nic mode: pod → veth → node → NIC → simulated SDN →
 *                NIC → node → veth → pod.
 *   routed       routed veth on the simulated nodes, what Calico and upstream hostnic do: a pod
 *                behind a veth (/32, default via 169.254.1.1 answered by proxy ARP), one IP
 *                forward per node, the nodes routing each other's pod /32 over their eth0 across
 *                the simulated VPC — hostnic's path without its policy rules and NICs.
 *   passthrough  the same world, passthrough mode: the NIC is the pod's eth0.
 *   sim_sdn      node eth0 → eth0 across the simulated VPC bridge: what the simulated cloud
 *                itself costs (a real cloud does this off the node's CPU); passthrough's baseline.
 *   vxlan_sim    (full only) the overlay on the simulated nodes, over their eth0: flannel where
 *                hostnic is, so both pay the simulated SDN — the like-for-like comparison.
 *
 * Every namespace is `<prefix>…`; each path's `close()` runs in a finally block.
 */
import { HttpIaasClient } from "../lib/iaas/client.ts";
import { iaasConfigFromObject } from "../lib/iaas/config.ts";
import { waitJob } from "../lib/iaas/jobs.ts";
import { instanceNamespace, scenarioFromObject, startSim } from "../lib/sim/mod.ts";
import { type PodSpec, type PodTeardownSpec, setupPod, teardownPod } from "../lib/linux/mod.ts";
import { nullLogger } from "../lib/log.ts";
import type { BenchContext, Benchmark } from "./lib/context.ts";
import { type Figure, figure } from "./lib/figure.ts";
import { iperfTcp } from "./lib/iperf.ts";
import { addNamespaces, bridgeBatch, ipBatch, removeNamespaces, sysctls } from "./lib/netns.ts";
import { median } from "./lib/stats.ts";

/** A built path: iperf3 runs from `client` to `serverIp` inside `server`. */
export interface DataPath extends AsyncDisposable {
  name: string;
  client: string;
  server: string;
  serverIp: string;
}

function disposer(fn: () => Promise<void>): AsyncDisposable {
  return { [Symbol.asyncDispose]: fn };
}

/** Builds a path; if building fails halfway, whatever was made is removed before rethrowing. */
async function built(
  name: string,
  made: string[],
  ctx: BenchContext,
  build: () => Promise<Omit<DataPath, "name" | typeof Symbol.asyncDispose>>,
): Promise<DataPath> {
  const close = () => removeNamespaces(ctx.runner, made);
  try {
    return { name, ...(await build()), ...disposer(close) };
  } catch (err) {
    await close();
    throw err;
  }
}

export function buildVeth(ctx: BenchContext): Promise<DataPath> {
  const a = `${ctx.prefix}-va`;
  const b = `${ctx.prefix}-vb`;
  return built("veth", [a, b], ctx, async () => {
    await addNamespaces(ctx.runner, [a, b]);
    await ipBatch(ctx.runner, a, [
      `link add eth0 type veth peer name eth0 netns ${b}`,
      "address add 10.201.0.1/24 dev eth0",
      "link set eth0 up",
    ]);
    await ipBatch(ctx.runner, b, ["address add 10.201.0.2/24 dev eth0", "link set eth0 up"]);
    return { client: a, server: b, serverIp: "10.201.0.2" };
  });
}

/** Where a flannel-style overlay is plumbed: two node namespaces, their underlay device and IP. */
interface OverlaySpec {
  nodes: readonly [string, string];
  underlayIps: readonly [string, string];
  underlayDev: string;
  /** Pod namespaces to create (one per node); the path's `close()` deletes them. */
  pods: readonly [string, string];
}

/**
 * What flannel's vxlan backend sets up on each node, written by hand: `flannel.1` (VNI 1, port
 * 8472, nolearning, MTU 1450), `cni0` bridge with the node's /24 and a veth per pod, and for the
 * peer's lease a route via its VTEP address, a permanent neighbour and an fdb entry.
 */
async function plumbOverlay(ctx: BenchContext, o: OverlaySpec): Promise<void> {
  const vtepMac = (i: number) => `02:42:c0:a8:c9:0${i + 1}`;
  await addNamespaces(ctx.runner, o.pods);
  for (const i of [0, 1]) {
    const j = 1 - i;
    const node = o.nodes[i];
    await ipBatch(ctx.runner, node, [
      `link add flannel.1 address ${vtepMac(i)} type vxlan id 1 local ${o.underlayIps[i]} ` +
      `dev ${o.underlayDev} dstport 8472 nolearning`,
      "link set flannel.1 mtu 1450",
      `address add 10.244.${i}.0/32 dev flannel.1`,
      "link set flannel.1 up",
      "link add cni0 type bridge",
      `address add 10.244.${i}.1/24 dev cni0`,
      "link set cni0 up",
      `link add vethpod mtu 1450 type veth peer name eth0 netns ${o.pods[i]}`,
      "link set vethpod master cni0",
      "link set vethpod up",
      `route add 10.244.${j}.0/24 via 10.244.${j}.0 dev flannel.1 onlink`,
      `neigh replace 10.244.${j}.0 lladdr ${vtepMac(j)} dev flannel.1 nud permanent`,
    ]);
    await bridgeBatch(ctx.runner, node, [
      `fdb append ${vtepMac(j)} dev flannel.1 dst ${o.underlayIps[j]}`,
    ]);
    await sysctls(ctx.runner, node, ["net.ipv4.ip_forward=1"]);
    await ipBatch(ctx.runner, o.pods[i], [
      "link set eth0 mtu 1450",
      `address add 10.244.${i}.2/24 dev eth0`,
      "link set eth0 up",
      `route add default via 10.244.${i}.1 dev eth0`,
    ]);
  }
}

/** The overlay on two node namespaces of its own, joined by one underlay veth. */
export function buildVxlan(ctx: BenchContext): Promise<DataPath> {
  const nodes = [`${ctx.prefix}-xn1`, `${ctx.prefix}-xn2`] as const;
  const pods = [`${ctx.prefix}-xp1`, `${ctx.prefix}-xp2`] as const;
  const underlayIps = ["192.168.201.1", "192.168.201.2"] as const;
  return built("vxlan", [...pods, ...nodes], ctx, async () => {
    await addNamespaces(ctx.runner, nodes);
    await ipBatch(ctx.runner, nodes[0], [`link add ul0 type veth peer name ul0 netns ${nodes[1]}`]);
    for (const i of [0, 1]) {
      await ipBatch(ctx.runner, nodes[i], [
        `address add ${underlayIps[i]}/24 dev ul0`,
        "link set ul0 up",
      ]);
    }
    await plumbOverlay(ctx, { nodes, underlayIps, underlayDev: "ul0", pods });
    return { client: pods[0], server: pods[1], serverIp: "10.244.1.2" };
  });
}

/**
 * The same overlay on the simulated cloud's nodes, riding their primary NICs: flannel deployed
 * where hostnic is, so both pay the simulated SDN. Deleting its pods leaves links in the nodes,
 * which go with the simulator's namespaces.
 */
export function buildVxlanOnSim(
  ctx: BenchContext,
  sim: { nodes: readonly [string, string]; nodeIps: readonly [string, string] },
): Promise<DataPath> {
  const pods = [`${ctx.prefix}-fp1`, `${ctx.prefix}-fp2`] as const;
  return built("vxlan_sim", [...pods], ctx, async () => {
    await plumbOverlay(ctx, {
      nodes: sim.nodes,
      underlayIps: sim.nodeIps,
      underlayDev: "eth0",
      pods,
    });
    return { client: pods[0], server: pods[1], serverIp: "10.244.1.2" };
  });
}

/**
 * Routed veth on the simulated nodes (one forwarding hop per node): pod `10.245.<i>.2/32` behind
 * `rveth0`, whose node end answers ARP for the pod's gateway 169.254.1.1 (proxy ARP, as Calico),
 * and each node routes the other pod's /32 via the other node's eth0 address. The pods' links
 * go with the simulator's node namespaces.
 */
export function buildRoutedOnSim(
  ctx: BenchContext,
  sim: { nodes: readonly [string, string]; nodeIps: readonly [string, string] },
): Promise<DataPath> {
  const pods = [`${ctx.prefix}-rp1`, `${ctx.prefix}-rp2`] as const;
  const podIp = (i: number) => `10.245.${i}.2`;
  return built("routed", [...pods], ctx, async () => {
    await addNamespaces(ctx.runner, pods);
    for (const i of [0, 1]) {
      const j = 1 - i;
      const node = sim.nodes[i];
      await ipBatch(ctx.runner, node, [
        `link add rveth0 type veth peer name eth0 netns ${pods[i]}`,
        "link set rveth0 up",
        `route add ${podIp(i)}/32 dev rveth0 scope link`,
        `route add ${podIp(j)}/32 via ${sim.nodeIps[j]} dev eth0`,
      ]);
      await sysctls(ctx.runner, node, [
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.rveth0.proxy_arp=1",
        "net.ipv4.conf.rveth0.forwarding=1",
        "net.ipv4.conf.eth0.forwarding=1",
      ]);
      await ipBatch(ctx.runner, pods[i], [
        `address add ${podIp(i)}/32 dev eth0`,
        "link set eth0 up",
        "route add 169.254.1.1 dev eth0 scope link",
        "route add default via 169.254.1.1 dev eth0",
      ]);
    }
    return { client: pods[0], server: pods[1], serverIp: podIp(1) };
  });
}

const NODES = ["i-hbnnode1", "i-hbnnode2"] as const;
const NODE_IPS = ["172.30.1.10", "172.30.1.11"] as const;
const POD_VXNET = { id: "vxnet-hbnpods", cidr: "172.30.8.0/24", gateway: "172.30.8.1" };

/** One simulated world serving several paths; only `pods` owns it (its close tears it down). */
export interface HostnicWorld {
  /** nic mode (the default): pod behind a veth, egress through its NIC. */
  pods: DataPath;
  /** passthrough mode: the NIC itself is the pod's eth0. */
  passthrough: DataPath;
  /** Node eth0 → node eth0 over the simulated VPC bridge. */
  sdn: DataPath;
  nodes: [string, string];
  nodeIps: [string, string];
}

/**
 * The simulated cloud with, per node, two NICs (one CreateNics count=2, one AttachNics) and two
 * pods plumbed by lib/linux: one in nic mode, one in passthrough mode.
 */
export async function buildHostnic(ctx: BenchContext): Promise<HostnicWorld> {
  const simPrefix = `${ctx.prefix}s`;
  const nicPods = [`${ctx.prefix}-hp1`, `${ctx.prefix}-hp2`];
  const ptPods = [`${ctx.prefix}-ht1`, `${ctx.prefix}-ht2`];
  const scenario = scenarioFromObject({
    zone: "bench1",
    credentials: [{ qy_access_key_id: "BENCHACCESSKEY", qy_secret_access_key: "bench-not-secret" }],
    vpc_routers: [{ id: "rtr-hbn", cidr: "172.30.0.0/16" }],
    vxnets: [
      {
        id: "vxnet-hbnnodes",
        vpc_router_id: "rtr-hbn",
        cidr: "172.30.1.0/24",
        manager_ip: "172.30.1.1",
        dyn_ip_start: "172.30.1.100",
        dyn_ip_end: "172.30.1.250",
      },
      {
        id: POD_VXNET.id,
        vpc_router_id: "rtr-hbn",
        cidr: POD_VXNET.cidr,
        manager_ip: POD_VXNET.gateway,
        dyn_ip_start: "172.30.8.10",
        dyn_ip_end: "172.30.8.250",
      },
    ],
    instances: NODES.map((id, i) => ({ id, vxnet: "vxnet-hbnnodes", private_ip: NODE_IPS[i] })),
    knobs: { jobLatencyMs: 50 },
    linux: { prefix: simPrefix },
  });
  const sim = await startSim({ scenario, linux: true });
  let iaas: HttpIaasClient | undefined;
  const deps = { runner: ctx.runner, logger: nullLogger };
  const pods: { spec: PodSpec; node: string }[] = [];
  const close = async () => {
    for (const { spec, node } of [...pods].reverse()) {
      await teardownPod(deps, teardownOf(spec), { nodeNetns: node })
        .catch((err) => ctx.log(`dataplane: teardown of ${spec.netns}: ${err}`));
    }
    await iaas?.close();
    await sim.close();
    await removeNamespaces(ctx.runner, [...nicPods, ...ptPods]);
  };
  try {
    iaas = new HttpIaasClient({ config: iaasConfigFromObject(sim.clientConfig()) });
    await addNamespaces(ctx.runner, [...nicPods, ...ptPods]);
    const vxnet = { cidr: POD_VXNET.cidr, gateway: POD_VXNET.gateway };
    for (const [i, instance] of NODES.entries()) {
      const nics = await iaas.createNics({
        vxnet: POD_VXNET.id,
        count: 2,
        nicName: `hostnic_${instance}`,
      });
      const [a, b] = nics.map((n) => {
        if (!n.privateIp) throw new Error(`NIC ${n.nicId} came without a private IP`);
        return { mac: n.nicId, ip: n.privateIp };
      });
      await waitJob(iaas, await iaas.attachNics({ nics: [a.mac, b.mac], instance }), {
        timeoutMs: 30_000,
      });
      const node = instanceNamespace(simPrefix, instance);
      const specs: PodSpec[] = [{
        mode: "nic",
        pod: { containerId: `hbnbench${i}`, k8sNamespace: "bench", podName: `iperf-${i}` },
        ifName: "eth0",
        netns: nicPods[i],
        ip: a.ip,
        table: 261,
        nicMac: a.mac,
        vxnet,
      }, {
        mode: "passthrough",
        pod: { containerId: `hbnbenchpt${i}`, k8sNamespace: "bench", podName: `iperf-pt-${i}` },
        ifName: "eth0",
        netns: ptPods[i],
        ip: b.ip,
        nicMac: b.mac,
        vxnet,
      }];
      for (const spec of specs) {
        await setupPod(deps, spec, { nodeNetns: node });
        pods.push({ spec, node });
      }
    }
  } catch (err) {
    await close();
    throw err;
  }
  const ipOf = (netns: string) => pods.find((p) => p.spec.netns === netns)!.spec.ip;
  const borrowed = (name: string, client: string, server: string, serverIp: string) => ({
    name,
    client,
    server,
    serverIp,
    ...disposer(() => Promise.resolve()),
  });
  return {
    pods: { ...borrowed("hostnic", nicPods[0], nicPods[1], ipOf(nicPods[1])), ...disposer(close) },
    passthrough: borrowed("passthrough", ptPods[0], ptPods[1], ipOf(ptPods[1])),
    sdn: borrowed(
      "sim_sdn",
      instanceNamespace(simPrefix, NODES[0]),
      instanceNamespace(simPrefix, NODES[1]),
      NODE_IPS[1],
    ),
    nodes: [instanceNamespace(simPrefix, NODES[0]), instanceNamespace(simPrefix, NODES[1])],
    nodeIps: [...NODE_IPS],
  };
}

/** What a DEL knows about a pod set up from `spec`. */
function teardownOf(spec: PodSpec): PodTeardownSpec {
  const base = { pod: spec.pod, ifName: spec.ifName, netns: spec.netns, ip: spec.ip };
  if (spec.mode === "nic") return { ...base, mode: "nic", table: spec.table };
  if (spec.mode === "passthrough") return { ...base, mode: "passthrough", nicMac: spec.nicMac };
  return { ...base, mode: spec.mode };
}

export const dataplane: Benchmark = {
  name: "dataplane",
  description: "iperf3 TCP pod→pod: hostnic vs routed veth, veth, VXLAN; passthrough vs the SDN",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const full = ctx.mode === "full";
    const seconds = full ? 10 : 3;
    const rounds = full ? 5 : 3;
    await using stack = new AsyncDisposableStack();
    const veth = stack.use(await buildVeth(ctx));
    const vxlan = stack.use(await buildVxlan(ctx));
    const hn = await buildHostnic(ctx);
    stack.use(hn.pods);
    // Each compared pair runs close together (hostnic between its two baselines, passthrough next
    // to veth); odd rounds run in reverse (A B C, C B A), so a load that drifts steadily during the
    // run weighs the same on every path.
    const routed = stack.use(await buildRoutedOnSim(ctx, hn));
    const paths = full
      ? [
        hn.passthrough,
        hn.sdn,
        veth,
        hn.pods,
        routed,
        vxlan,
        stack.use(await buildVxlanOnSim(ctx, hn)),
      ]
      : [hn.passthrough, hn.sdn, veth, hn.pods, routed, vxlan];
    const gbps = new Map<string, number[]>(paths.map((p) => [p.name, []]));
    ctx.log(`dataplane: ${rounds} rounds × ${paths.length} paths × ${seconds} s of iperf3`);
    for (let r = 0; r < rounds; r++) {
      for (const p of r % 2 === 0 ? paths : [...paths].reverse()) {
        ctx.signal.throwIfAborted();
        const bps = await iperfTcp(ctx, {
          clientNs: p.client,
          serverNs: p.server,
          serverIp: p.serverIp,
          seconds,
          signal: ctx.signal,
        });
        gbps.get(p.name)!.push(bps / 1e9);
      }
    }
    const med = (name: string) => median(gbps.get(name)!);
    // Ratios pair the runs of one round (seconds apart): the machine's load drifts between rounds
    // far more than within one. Their spread says whether the pairing held.
    const pairedRatio = (name: string, base: string, o: { note?: string } = {}) => {
      const b = gbps.get(base)!;
      const rs = gbps.get(name)!.map((x, i) => x / b[i]);
      const spread = Math.max(...rs) / Math.min(...rs);
      const note = [
        `ratio = median of per-round ratios ${rs.map((r) => r.toFixed(2)).join(" ")}`,
        ...(spread > 1.3 ? ["NOISY (other load on the machine): rerun"] : []),
        ...(o.note ? [o.note] : []),
      ].join("; ");
      return { ratio: median(rs), note };
    };
    const runs = (name: string) => `runs ${gbps.get(name)!.map((x) => x.toFixed(1)).join(" ")}`;
    const vs = (
      name: string,
      base: string,
      o: { target?: Figure["target"]; note?: string } = {},
    ) =>
      figure({
        name: `dataplane.${name}.vs_${base}`,
        value: med(name),
        unit: "Gbit/s",
        baseline: { name: `dataplane.${base}.gbps`, value: med(base) },
        ...pairedRatio(name, base, o),
        ...(o.target ? { target: o.target } : {}),
      });
    const plain = (name: string) =>
      figure({
        name: `dataplane.${name}.gbps`,
        value: med(name),
        unit: "Gbit/s",
        note: runs(name),
      });
    const figures = [
      plain("veth"),
      plain("vxlan"),
      plain("routed"),
      plain("sim_sdn"),
      plain("hostnic"),
      plain("passthrough"),
      vs("hostnic", "routed", {
        target: { op: ">=", value: 0.95, of: "ratio" },
        note: "routed veth on the same simulated nodes (one forwarding hop per node)",
      }),
      vs("passthrough", "sim_sdn", {
        target: { op: ">=", value: 0.95, of: "ratio" },
        note: "passthrough mode (the NIC is the pod's eth0) vs node eth0 → eth0 over the same SDN",
      }),
      vs("hostnic", "veth", { target: { op: ">=", value: 0.9, of: "ratio" } }),
      vs("hostnic", "vxlan", { target: { op: ">=", value: 1.3, of: "ratio" } }),
      vs("routed", "veth", { note: "the routed baseline itself against one veth pair" }),
      vs("hostnic", "sim_sdn", { note: "hostnic's part of the path vs the simulated cloud's" }),
    ];
    if (full) {
      figures.push(
        plain("vxlan_sim"),
        vs("hostnic", "vxlan_sim", { note: "flannel on the same simulated nodes" }),
        vs("passthrough", "veth", { note: "passthrough mode: the NIC is the pod's eth0" }),
      );
    }
    return figures;
  },
};
