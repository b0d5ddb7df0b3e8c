/**
 * Test fixtures of the Kubernetes binding: an in-memory `Kube` (state in maps, failures queued per
 * method, watches driven by the test), ADD requests and replies, a health source, a started binding.
 */
import { KubeError } from "../../k8s/errors.ts";
import type {
  Kube,
  KubeEvent,
  KubeWatch,
  NodeCondition,
  NodeInfo,
  PodInfo,
  PodRef,
  WatchEventType,
  WatchPodsOptions,
} from "../../k8s/types.ts";
import { nullLogger } from "../../log.ts";
import type { AddReply, AddRequest } from "../../rpc/api.ts";
import { type KubeBinding, startKubeBinding } from "./binding.ts";
import type { HealthSource } from "./pool_health.ts";

export const VX_A = "vxnet-aaa";
export const VX_B = "vxnet-bbb";
export const unreachable = (op = "get"): KubeError =>
  new KubeError("KUBE_UNREACHABLE", op, `Cannot reach the Kubernetes API server to ${op}`);
export const forbidden = (op = "get"): KubeError =>
  new KubeError("KUBE_API_ERROR", op, `Kubernetes API refused to ${op}: 403 Forbidden`, {
    status: 403,
    reason: "Forbidden",
  });

/** An in-memory `Kube`: state in maps, failures queued per method, watches driven by the test. */
export class MemoryKube implements Kube {
  pods = new Map<string, PodInfo>();
  nodes = new Map<string, NodeInfo>();
  configMaps = new Map<string, Record<string, string>>();
  events: { pod: PodRef; event: KubeEvent }[] = [];
  annotateCalls: { name: string; annotations: Record<string, string | null> }[] = [];
  /** Errors the next calls of a method throw, in order. */
  failures = new Map<string, Error[]>();
  podWatch?: {
    onEvent: (type: WatchEventType, pod: PodInfo) => void;
    opts: WatchPodsOptions;
  };
  cmWatch?: (data: Record<string, string> | undefined) => void;
  closed = false;

  #fail(method: string): void {
    const e = this.failures.get(method)?.shift();
    if (e) throw e;
  }
  addNode(name: string, annotations: Record<string, string> = {}): void {
    this.nodes.set(name, { name, annotations, labels: {}, conditions: [] });
  }
  addPod(namespace: string, name: string, annotations: Record<string, string> = {}): void {
    this.pods.set(`${namespace}/${name}`, {
      namespace,
      name,
      uid: `uid-${name}`,
      annotations,
      labels: {},
    });
  }

  getPod(namespace: string, name: string): Promise<PodInfo | undefined> {
    return Promise.resolve().then(() => {
      this.#fail("getPod");
      return this.pods.get(`${namespace}/${name}`);
    });
  }
  listPodsOnNode(nodeName: string): Promise<PodInfo[]> {
    return Promise.resolve([...this.pods.values()].filter((p) => p.nodeName === nodeName));
  }
  getNode(name: string): Promise<NodeInfo | undefined> {
    return Promise.resolve().then(() => {
      this.#fail("getNode");
      return this.nodes.get(name);
    });
  }
  listNodes(): Promise<NodeInfo[]> {
    return Promise.resolve().then(() => {
      this.#fail("listNodes");
      return [...this.nodes.values()];
    });
  }
  annotateNode(name: string, annotations: Record<string, string | null>): Promise<NodeInfo> {
    return Promise.resolve().then(() => {
      this.#fail("annotateNode");
      this.annotateCalls.push({ name, annotations });
      const n = this.nodes.get(name)!;
      for (const [k, v] of Object.entries(annotations)) {
        if (v === null) delete n.annotations[k];
        else n.annotations[k] = v;
      }
      return n;
    });
  }
  setNodeCondition(_name: string, _condition: NodeCondition): Promise<void> {
    return Promise.resolve();
  }
  createPodEvent(pod: PodRef, event: KubeEvent): Promise<void> {
    return Promise.resolve().then(() => {
      this.#fail("createPodEvent");
      this.events.push({ pod, event });
    });
  }
  getConfigMap(namespace: string, name: string): Promise<Record<string, string> | undefined> {
    return Promise.resolve().then(() => {
      this.#fail("getConfigMap");
      return this.configMaps.get(`${namespace}/${name}`);
    });
  }
  watchConfigMap(
    namespace: string,
    name: string,
    onChange: (data: Record<string, string> | undefined) => void,
  ): KubeWatch {
    this.cmWatch = onChange;
    onChange(this.configMaps.get(`${namespace}/${name}`));
    return this.#watch(() => (this.cmWatch = undefined));
  }
  watchPodsOnNode(
    _nodeName: string,
    onEvent: (type: WatchEventType, pod: PodInfo) => void,
    opts: WatchPodsOptions = {},
  ): KubeWatch {
    this.podWatch = { onEvent, opts };
    return this.#watch(() => (this.podWatch = undefined));
  }
  #watch(stop: () => void): KubeWatch {
    const w = {
      stop: () => Promise.resolve(stop()),
      [Symbol.asyncDispose]: () => w.stop(),
    };
    return w;
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

export function request(extra: Partial<AddRequest> = {}): AddRequest {
  return {
    containerId: "ctr-1",
    ifName: "eth0",
    netns: "/run/netns/p1",
    podNamespace: "default",
    podName: "web",
    settings: { vethPrefix: "vnic", mtu: 1500, hairpin: false, natMark: 0x10000 },
    ...extra,
  };
}

export function reply(
  o: { vxnet?: string; ip?: string; mode?: "nic" | "passthrough" } = {},
): AddReply {
  return {
    mode: o.mode ?? "nic",
    address: `${o.ip ?? "172.22.1.10"}/32`,
    gateway: "169.254.1.1",
    interfaces: [],
    interfaceIndex: 0,
    routes: [],
    vxnet: o.vxnet ?? VX_A,
    vxnetCidr: "172.22.1.0/24",
    nicId: "52:54:00:00:00:01",
  };
}

export const source = (
  o: { free?: number; ready?: boolean; lastError?: string } = {},
): HealthSource => ({
  poolView: () => ({ vxnet: VX_A, free: o.free ?? 2, inuse: 1, total: 3, lastError: o.lastError }),
  status: () => ({ ready: o.ready ?? true, freeNics: o.free ?? 2 }),
});

export async function binding(
  kube: MemoryKube,
  o: { vxNets?: string[]; podName?: string } = {},
): Promise<KubeBinding> {
  if (!kube.nodes.has("node-1")) kube.addNode("node-1");
  return await startKubeBinding({
    config: {
      nodeName: "node-1",
      pool: { vxNets: o.vxNets ?? [], maxNic: 63 } as never,
    },
    instanceId: "i-abc",
    logger: nullLogger,
    kube,
    env: (k) => (k === "POD_NAME" ? o.podName : undefined),
    startTimeoutMs: 2_000,
  });
}

/** Lets fire-and-forget event writes settle. */
export const settle = (): Promise<unknown> => new Promise((r) => setTimeout(r, 0));
