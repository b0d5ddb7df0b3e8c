/**
 * Shared mode's Kubernetes side: the mode decision at start (shared when VxNetPool `v-pool` is
 * ready and ConfigMap `kube-system/hostnic-ipam-config` exists; a change later needs a restart,
 * announced in the log like a hostnic-cfg-cm change), the IPAM stores and allocator, the
 * ConfigMap's watched copy (namespace mappings), and Calico's pod IP annotations.
 *
 * Loaded only by the daemon in Kubernetes mode (dynamic import): it pulls the Kubernetes client.
 */
import * as k8s from "@kubernetes/client-node";
import { errorMessage } from "../../errors.ts";
import {
  Ipam,
  IPAM_CONFIG,
  type IpamConfig,
  IpamCounters,
  parseIpamConfig,
  VXNET_POOL_NAME,
} from "../../ipam/mod.ts";
import { KubeIpamStores } from "../../ipam/kube_store.ts";
import { loadKubeConfig } from "../../k8s/client.ts";
import { KubeError } from "../../k8s/errors.ts";
import { HOSTNIC_NAMESPACE } from "../../k8s/rbac.ts";
import type { Kube, KubeWatch } from "../../k8s/types.ts";
import type { Logger } from "../../log.ts";
import { CALICO_POD_IP, CALICO_POD_IPS, type SharedKube } from "./service.ts";

export const IPAM_CONFIG_MAP = "hostnic-ipam-config";

export interface SharedModeDecision {
  shared: boolean;
  /** Why, for the log and `admin`. */
  reason: string;
}

/** The mode rule: `v-pool` ready and the IPAM ConfigMap present. */
export function decideMode(o: {
  vpool: { ready: boolean; message?: string } | undefined;
  ipamConfig: Record<string, string> | undefined;
}): SharedModeDecision {
  if (!o.vpool) {
    return { shared: false, reason: `VxNetPool "${VXNET_POOL_NAME}" does not exist` };
  }
  if (!o.vpool.ready) {
    return {
      shared: false,
      reason: `VxNetPool "${VXNET_POOL_NAME}" is not ready${
        o.vpool.message ? ` (${o.vpool.message})` : ""
      }`,
    };
  }
  if (!o.ipamConfig) {
    return {
      shared: false,
      reason: `ConfigMap ${HOSTNIC_NAMESPACE}/${IPAM_CONFIG_MAP} does not exist`,
    };
  }
  return {
    shared: true,
    reason: `VxNetPool "${VXNET_POOL_NAME}" is ready and ${IPAM_CONFIG_MAP} exists`,
  };
}

export interface SharedKubeOptions {
  kube: Kube;
  kubeconfig?: string;
  logger: Logger;
  calico: boolean;
  /** IPAM retry/cooldown knobs (tests). */
  cooldownMs?: number;
}

/** Everything shared mode holds open against the API server. */
export interface SharedKubeBinding {
  decision: SharedModeDecision;
  stores: KubeIpamStores;
  ipam: Ipam;
  counters: IpamCounters;
  sharedKube: SharedKube;
  close(): Promise<void>;
}

/**
 * Decides the mode and, in shared mode, opens the IPAM stores and watches the inputs of the
 * decision so a change is announced ("restart to apply"). Nic mode returns `decision` only.
 */
export async function startSharedKube(
  o: SharedKubeOptions,
): Promise<SharedKubeBinding | { decision: SharedModeDecision; close(): Promise<void> }> {
  const kc = loadKubeConfig(o.kubeconfig);
  // IPPool reads are reused for a minute. What an ADD takes from its pool (CIDR, gateway, block
  // size, range) never changes; `disabled` does, and only stops new claims early: the controller
  // deletes a disabled pool's blocks on their resourceVersion, so a daemon that has not seen it
  // yet and writes a block makes that delete fail, never loses an address (lib/controller).
  const stores = new KubeIpamStores({
    kubeConfig: kc,
    requestTimeoutMs: 15_000,
    poolCacheMs: 60_000,
  });
  const log = o.logger.child({ component: "shared" });
  let vpool;
  let ipamData;
  let unreadable: string | undefined;
  try {
    vpool = await stores.getVxNetPool().catch((err) => {
      // No CRDs installed (404), or no permission to read them (403): a nic-mode cluster.
      if (err instanceof KubeError && (err.status === 404 || err.status === 403)) {
        unreadable = errorMessage(err);
        return undefined;
      }
      throw err;
    });
    ipamData = await o.kube.getConfigMap(HOSTNIC_NAMESPACE, IPAM_CONFIG_MAP);
  } catch (err) {
    await stores.close();
    throw err;
  }
  const decision = unreadable
    ? { shared: false, reason: `VxNetPool "${VXNET_POOL_NAME}" cannot be read (${unreadable})` }
    : decideMode({ vpool, ipamConfig: ipamData });
  log.info(`${decision.shared ? "shared" : "nic"} mode: ${decision.reason}`);
  // A later change of the ConfigMap's existence needs a restart, like hostnic-cfg-cm. The watch
  // also keeps the copy ADDs resolve namespaces with (no read per ADD).
  const configSource = new IpamConfigSource(
    () => o.kube.getConfigMap(HOSTNIC_NAMESPACE, IPAM_CONFIG_MAP),
    ipamData,
  );
  let first = true;
  const watch: KubeWatch = o.kube.watchConfigMap(HOSTNIC_NAMESPACE, IPAM_CONFIG_MAP, (data) => {
    configSource.watched(data);
    if (first) {
      first = false;
      return;
    }
    if ((data !== undefined) !== (ipamData !== undefined)) {
      log.warn(
        `ConfigMap ${IPAM_CONFIG_MAP} was ${data ? "created" : "deleted"}: the mode (${
          decision.shared ? "shared" : "nic"
        }) changes only when the daemon restarts ` +
          "(kubectl -n kube-system rollout restart daemonset/hostnic-node)",
      );
    }
  });
  if (!decision.shared) {
    await stores.close();
    return {
      decision,
      async close() {
        await watch.stop().catch(() => {});
      },
    };
  }
  const counters = new IpamCounters();
  const ipam = new Ipam({
    blocks: stores.blocks,
    handles: stores.handles,
    pools: stores.pools,
    now: Date.now,
    random: Math.random,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    counters,
  }, o.cooldownMs !== undefined ? { cooldownMs: o.cooldownMs } : {});
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const sharedKube: SharedKube = {
    ipamConfig: (opts) => configSource.get(opts),
    async podAnnotations(pod) {
      return (await o.kube.getPod(pod.namespace, pod.name))?.annotations;
    },
    ...(o.calico
      ? {
        annotateCalico: async (namespace: string, name: string, ip: string) => {
          try {
            await core.patchNamespacedPod(
              {
                namespace,
                name,
                body: {
                  metadata: {
                    annotations: { [CALICO_POD_IP]: `${ip}/32`, [CALICO_POD_IPS]: `${ip}/32` },
                  },
                },
              },
              k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
            );
          } catch (err) {
            const code = err instanceof k8s.ApiException ? ` (HTTP ${err.code})` : "";
            throw new Error(
              `Cannot annotate pod "${namespace}/${name}" with its Calico pod IP${code}: ${
                err instanceof k8s.ApiException ? "refused" : errorMessage(err)
              }`,
            );
          }
        },
      }
      : {}),
  };
  return {
    decision,
    stores,
    ipam,
    counters,
    sharedKube,
    async close() {
      await watch.stop().catch(() => {});
      await stores.close();
    },
  };
}

/**
 * `hostnic-ipam-config` for ADDs: the watch's copy once it has delivered, parsed once per change;
 * a read when asked (`fresh`: a namespace the copy does not map, as the watch may lag a new
 * mapping) or before the watch delivered, falling back to the copy when that read fails.
 */
export class IpamConfigSource {
  readonly #read: () => Promise<Record<string, string> | undefined>;
  #latest: Record<string, string> | undefined;
  #watched = false;
  #parsed: { data: Record<string, string>; config: IpamConfig } | undefined;

  constructor(
    read: () => Promise<Record<string, string> | undefined>,
    initial: Record<string, string> | undefined,
  ) {
    this.#read = read;
    this.#latest = initial;
  }

  /** The watch delivered the ConfigMap's data (undefined: deleted). */
  watched(data: Record<string, string> | undefined): void {
    this.#latest = data;
    this.#watched = true;
  }

  async get(opts: { fresh?: boolean } = {}): Promise<IpamConfig> {
    const data = !opts.fresh && this.#watched
      ? this.#latest
      : await this.#read().catch(() => this.#latest);
    if (data === undefined) {
      throw new Error(
        `ConfigMap ${HOSTNIC_NAMESPACE}/${IPAM_CONFIG_MAP} is gone; shared mode cannot map ` +
          `namespaces (key "${IPAM_CONFIG.ipamKey}")`,
      );
    }
    if (data !== this.#parsed?.data) this.#parsed = { data, config: parseIpamConfig(data) };
    return this.#parsed.config;
  }
}
