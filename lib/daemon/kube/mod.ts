/**
 * The node daemon's Kubernetes side (the daemon core's, used by every backend): node vxnet, pod
 * annotations, pool health, events, the ConfigMap, live pods. Loaded by a literal dynamic import
 * only when Kubernetes is configured; see binding.ts for the life cycle and the job modules.
 */
export { type KubeBinding, type KubeBindingOptions, startKubeBinding } from "./binding.ts";
export { CONFIG_MAP_NAME, readConfigMap, type ReadConfigMapOptions } from "./config_map.ts";
export type { HealthSource, PoolHealth } from "./pool_health.ts";
