/**
 * ConfigMap `hostnic-cfg-cm` (in POD_NAMESPACE, default kube-system), keys `hostnic` (daemon
 * config) and `hostnic-cni` (CNI config). `readConfigMap` reads it at start when no config file
 * exists. While the daemon runs, `ConfigMapChanges` turns the watched ConfigMap into what to tell:
 * on a change it logs and returns an event for the daemon's own pod, and sets `restartNeeded` for
 * the health annotation; the change takes effect after
 * `kubectl -n kube-system rollout restart ds/hostnic-node` (no live reload).
 */
import { type FileConfig, parseConfigFile } from "../../config.ts";
import { errorMessage, HostnicError } from "../../errors.ts";
import { loadKube } from "../../k8s/client.ts";
import type { Kube, KubeEvent } from "../../k8s/types.ts";
import type { Logger } from "../../log.ts";
import {
  daemonPodEnv,
  type EnvReader,
  KubeStartError,
  REQUEST_TIMEOUT_MS,
  retryTransient,
  START_TIMEOUT_MS,
} from "./client.ts";

/** The ConfigMap holding `hostnic` (daemon config) and `hostnic-cni` (CNI config). */
export const CONFIG_MAP_NAME = "hostnic-cfg-cm";
/** The keys of the ConfigMap hostnic uses; others are ignored. */
const CONFIG_MAP_KEYS = ["hostnic", "hostnic-cni"] as const;

export interface ReadConfigMapOptions {
  kubeconfig?: string;
  logger: Logger;
  /** Test seam: an existing client (not closed here). */
  kube?: Kube;
  env?: EnvReader;
  timeoutMs?: number;
}

/**
 * The daemon config from ConfigMap `hostnic-cfg-cm` (key `hostnic`) through the API, validated with
 * the config file's schema. Used at start when no config file exists. Undefined when the ConfigMap
 * or its key is absent (defaults apply). Transient API failures are retried for `timeoutMs`.
 */
export async function readConfigMap(
  o: ReadConfigMapOptions,
): Promise<{ config: FileConfig; source: string } | undefined> {
  const { namespace } = daemonPodEnv(o.env);
  const kube = o.kube ?? loadKube({
    ...(o.kubeconfig !== undefined ? { kubeconfig: o.kubeconfig } : {}),
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    logger: o.logger,
  });
  const source = `ConfigMap "${namespace}/${CONFIG_MAP_NAME}" key "hostnic"`;
  try {
    const deadline = Date.now() + (o.timeoutMs ?? START_TIMEOUT_MS);
    let data: Record<string, string> | undefined;
    try {
      data = await retryTransient(deadline, () => kube.getConfigMap(namespace, CONFIG_MAP_NAME));
    } catch (err) {
      throw new KubeStartError(
        `Cannot read ${source} (no config file was found): ${errorMessage(err)}`,
        { cause: err },
      );
    }
    if (data === undefined || data.hostnic === undefined) {
      o.logger.info("no config file and no daemon config in the cluster; using defaults", {
        source,
        configMap: data === undefined ? "absent" : "no hostnic key",
      });
      return undefined;
    }
    try {
      return { config: parseConfigFile(data.hostnic, source), source };
    } catch (err) {
      throw new HostnicError("INVALID_CONFIG", `${source}: ${errorMessage(err)}`, { cause: err });
    }
  } finally {
    if (!o.kube) await kube.close();
  }
}

/** The watched ConfigMap against the values this daemon started with. */
export class ConfigMapChanges {
  readonly #namespace: string;
  readonly #log: Logger;
  /** The ConfigMap's hostnic keys when first seen (null: absent); undefined = not seen yet. */
  #baseline: string | null | undefined;
  /** Set while the ConfigMap differs from the start: the message saying what to run. */
  restartNeeded: string | undefined;

  constructor(namespace: string, logger: Logger) {
    this.#namespace = namespace;
    this.#log = logger;
  }

  /** A new state of the ConfigMap (undefined: deleted); the event to record, if any. */
  update(data: Record<string, string> | undefined): KubeEvent | undefined {
    const picked = data === undefined ? null : JSON.stringify(
      Object.fromEntries(CONFIG_MAP_KEYS.map((k) => [k, data[k] ?? null])),
    );
    if (this.#baseline === undefined) {
      this.#baseline = picked;
      return undefined;
    }
    const where = `ConfigMap "${this.#namespace}/${CONFIG_MAP_NAME}"`;
    if (picked === this.#baseline) {
      if (this.restartNeeded) {
        this.#log.info(`${where} is back to the values this daemon runs with`);
        this.restartNeeded = undefined;
      }
      return undefined;
    }
    const before = this.#baseline === null
      ? {}
      : JSON.parse(this.#baseline) as Record<string, string | null>;
    const changed = CONFIG_MAP_KEYS.filter((k) => (before[k] ?? null) !== (data?.[k] ?? null));
    const restart = `kubectl -n ${this.#namespace} rollout restart ds/hostnic-node`;
    let event: KubeEvent;
    if (data === undefined) {
      event = {
        type: "Warning",
        reason: "ConfigDeleted",
        message: `${where} was deleted. This daemon keeps the configuration it started with; ` +
          `recreate it before the next restart.`,
      };
    } else {
      let problem: string | undefined;
      if (data.hostnic !== undefined) {
        try {
          parseConfigFile(data.hostnic, `${where} key "hostnic"`);
        } catch (err) {
          problem = errorMessage(err);
        }
      }
      const keys = changed.map((k) => `"${k}"`).join(" and ") || "keys";
      event = problem
        ? {
          type: "Warning",
          reason: "InvalidConfig",
          message: `${where} changed (${keys}) and is now invalid: ${problem}. This daemon keeps ` +
            `the configuration it started with; fix the ConfigMap, then run "${restart}".`,
        }
        : {
          type: "Normal",
          reason: "ConfigChanged",
          message: `${where} changed (${keys}). It takes effect when the daemons restart: ` +
            `run "${restart}".`,
        };
    }
    this.restartNeeded = event.message;
    this.#log.warn(event.message, { reason: event.reason });
    return event;
  }
}
