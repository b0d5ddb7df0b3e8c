/**
 * A shared-mode testbed on the real control plane: CRDs from deploy/crds applied with kubectl, then
 * what the controller would make — VxNetPool `v-pool` (status ready), the IPPool of the pod vxnet,
 * its IPAMBlocks — and ConfigMap `hostnic-ipam-config`, all with kubectl. The daemons run as the
 * `hostnic-node` ServiceAccount with the extra rules shared mode needs (IPAM objects, pod patch).
 * Used by the shared-mode tests (tests/helpers/shared_bed.ts re-exports it) and by
 * bench/hostnic_shared.ts.
 */
import { blockName, carveBlocks, type IpPoolSpec, newBlock, VXNET_POOL_NAME } from "../ipam/mod.ts";
import { type Cluster, POD_GATEWAY, POD_VXNET } from "./cluster.ts";
import type { ControlPlane } from "./kube.ts";

/** The pod vxnet's IPPool (172.30.8.0/22; no pool NIC takes an address in shared mode). */
export const POOL: IpPoolSpec = {
  type: "local",
  cidr: "172.30.8.0/22",
  rangeStart: "172.30.8.2",
  rangeEnd: "172.30.11.254",
  blockSize: 26,
  gateway: POD_GATEWAY,
};

export const BLOCKS = carveBlocks(POD_VXNET, POOL).map((cidr) => ({
  cidr,
  name: blockName(cidr),
}));

export interface SharedBedOptions {
  /** Namespace → how many blocks (taken in order from the pool's). */
  namespaces: Record<string, number>;
  /** `Default` → the pod vxnet. */
  withDefault?: boolean;
  /** The daemons' `pool` config keys. */
  pool?: Record<string, unknown>;
  networkPolicy?: "calico";
}

export interface SharedBed {
  /** Namespace → its block names. */
  blocksOf: Record<string, string[]>;
  kubeconfig: string;
}

/** Installs hostnic, the CRDs and the shared-mode objects; starts one daemon per node. */
export async function startSharedBed(
  c: Cluster,
  cp: ControlPlane,
  nodes: string[],
  o: SharedBedOptions,
): Promise<SharedBed> {
  await cp.installHostnic();
  await cp.applyCrds();
  const blocksOf: Record<string, string[]> = {};
  let next = 0;
  for (const [ns, n] of Object.entries(o.namespaces)) {
    blocksOf[ns] = BLOCKS.slice(next, next + n).map((b) => b.name);
    next += n;
  }
  const api = "network.qingcloud.com/v1alpha1";
  const items: unknown[] = [
    {
      apiVersion: api,
      kind: "VxNetPool",
      metadata: { name: VXNET_POOL_NAME },
      spec: { vxnets: [{ name: POD_VXNET }], blockSize: POOL.blockSize },
    },
    {
      apiVersion: api,
      kind: "IPPool",
      metadata: { name: POD_VXNET },
      spec: POOL,
    },
    ...BLOCKS.map((b) => ({
      apiVersion: api,
      kind: "IPAMBlock",
      metadata: { name: b.name, labels: { "ippool.network.qingcloud.com/name": POD_VXNET } },
      spec: newBlock({ pool: POD_VXNET, spec: POOL, cidr: b.cidr }),
    })),
    ...Object.keys(o.namespaces).map((ns) => ({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: ns },
    })),
  ];
  // kubectl's client-side validation misreads nullable array items (deploy/crds notes it).
  await cp.kubectlOk(["create", "--validate=false", "-f", "-"], {
    stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items }),
  });
  await cp.kubectlOk([
    "patch",
    "vxnetpool",
    VXNET_POOL_NAME,
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify({
      status: {
        ready: true,
        pools: [{ name: POD_VXNET, ippool: POD_VXNET, subnets: BLOCKS.map((b) => b.name) }],
      },
    }),
  ]);
  await cp.apply(JSON.stringify({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "hostnic-ipam-config", namespace: "kube-system" },
    data: {
      ipam: JSON.stringify({
        ...blocksOf,
        ...(o.withDefault ? { Default: [POD_VXNET] } : {}),
      }),
    },
  }));
  await cp.setHostnicConfig({
    hostnic: JSON.stringify({
      pool: { maxNic: 63, sync: 1, nodeSync: 5, freePeriod: 0.05, ...o.pool },
      ...(o.networkPolicy ? { server: { networkPolicy: o.networkPolicy } } : {}),
    }),
    "hostnic-cni": '{"cniVersion":"1.0.0","name":"hostnic","plugins":[{"type":"hostnic"}]}',
  });
  for (const n of nodes) await cp.addNode(n);
  const kubeconfig = await cp.serviceAccountKubeconfig("kube-system", "hostnic-node");
  await Promise.all(c.nodes.map((node, i) => startDaemonOn(node, nodes[i], kubeconfig)));
  await Promise.all(c.nodes.map((node) => node.waitReady({ timeoutMs: 60_000 })));
  return { blocksOf, kubeconfig };
}

export function startDaemonOn(
  node: Cluster["nodes"][number],
  name: string,
  kubeconfig: string,
): Promise<void> {
  return node.startDaemon(["--kubeconfig", kubeconfig, "--node-name", name], {
    env: { POD_NAMESPACE: "kube-system", POD_NAME: `hostnic-${name}` },
  });
}

/** Creates pods (API objects bound to nodes) in one kubectl call. */
export async function createPods(
  cp: ControlPlane,
  pods: { name: string; namespace: string; node: string; annotations?: Record<string, string> }[],
): Promise<void> {
  await cp.kubectlOk(["apply", "-f", "-"], {
    stdin: JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: pods.map((p) => ({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: p.name, namespace: p.namespace, annotations: p.annotations ?? {} },
        spec: {
          nodeName: p.node,
          containers: [{ name: "main", image: "localhost/busybox:1" }],
        },
      })),
    }),
  });
}

/** The IPAMBlocks as kubectl shows them: block → (ip → attribute). */
export async function blockHolders(
  cp: ControlPlane,
): Promise<
  Map<
    string,
    {
      block: string;
      handle: string;
      sequence: number;
      node?: string;
      pod?: string;
      namespace?: string;
    }
  >
> {
  const list = await cp.getJson<{
    items: {
      metadata: { name: string };
      spec: {
        cidr: string;
        allocations: (number | null)[];
        attributes: { handle_id: string; sequence: number; secondary: Record<string, string> }[];
      };
    }[];
  }>(["ipamblocks"]);
  const out = new Map<
    string,
    {
      block: string;
      handle: string;
      sequence: number;
      node?: string;
      pod?: string;
      namespace?: string;
    }
  >();
  for (const b of list.items) {
    const [net] = b.spec.cidr.split("/");
    const base = net.split(".").reduce((a, x) => a * 256 + Number(x), 0);
    b.spec.allocations.forEach((idx, ord) => {
      if (idx === null) return;
      const a = b.spec.attributes[idx];
      if (a.handle_id === "kubesphere-reserved-handle") return;
      const n = base + ord;
      const ip = [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
      out.set(ip, {
        block: b.metadata.name,
        handle: a.handle_id,
        sequence: a.sequence,
        ...a.secondary,
      });
    });
  }
  return out;
}

/**
 * Seed 001 steps 4 and 5 as objects to `kubectl apply`: the VxNetPool `v-pool` over the pod vxnet
 * (blocks of /26) and `hostnic-ipam-config` with every new namespace auto-assigned to it.
 */
export const SHARED_MODE_OBJECTS: readonly string[] = [
  JSON.stringify({
    apiVersion: "network.qingcloud.com/v1alpha1",
    kind: "VxNetPool",
    metadata: { name: "v-pool" },
    spec: { vxnets: [{ name: POD_VXNET }], blockSize: 26 },
  }),
  JSON.stringify({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "hostnic-ipam-config", namespace: "kube-system" },
    data: { "subnet-auto-assign": "on", ipam: "{}" },
  }),
];
