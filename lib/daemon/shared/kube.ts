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
  // IPPool reads are cached for 5 s: an ADD read its pool up to 7 times (docs/benchmarks.md).
  const stores = new KubeIpamStores({
    kubeConfig: kc,
    requestTimeoutMs: 15_000,
    poolCacheMs: 5_000,
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
  let latest = ipamData;
  let watched = false;
  let first = true;
  const watch: KubeWatch = o.kube.watchConfigMap(HOSTNIC_NAMESPACE, IPAM_CONFIG_MAP, (data) => {
    latest = data;
    watched = true;
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
  /** The last ConfigMap data parsed (the watch's copy is parsed once, not per ADD). */
  let parsed: { data: Record<string, string>; config: IpamConfig } | undefined;
  const sharedKube: SharedKube = {
    async ipamConfig(opts: { fresh?: boolean } = {}): Promise<IpamConfig> {
      // The watch's copy once it has delivered; a read when asked (a namespace the copy does not
      // map: the watch may lag a new mapping) or before, the copy if that read fails.
      const data = !opts.fresh && watched ? latest : await o.kube.getConfigMap(
        HOSTNIC_NAMESPACE,
        IPAM_CONFIG_MAP,
      ).catch(() => latest);
      if (data === undefined) {
        throw new Error(
          `ConfigMap ${HOSTNIC_NAMESPACE}/${IPAM_CONFIG_MAP} is gone; shared mode cannot map ` +
            `namespaces (key "${IPAM_CONFIG.ipamKey}")`,
        );
      }
      if (data !== parsed?.data) parsed = { data, config: parseIpamConfig(data) };
      return parsed.config;
    },
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
