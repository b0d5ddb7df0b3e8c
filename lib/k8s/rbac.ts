/**
 * The Kubernetes permissions hostnic's calls through the `Kube` adapter need, as data:
 * `deploy/hostnic.yaml` grants exactly these (tests/deploy checks it), so a new API call cannot ship
 * without its RBAC rule. Least privilege: only what the daemon (lib/daemon/kube.ts) calls is granted;
 * `setNodeCondition` (nodes/status patch) is not used and not granted.
 */
export interface PermissionRule {
  /** "" is the core group. */
  apiGroup: string;
  resource: string;
  verbs: readonly string[];
  /** Set when the permission is only needed in one namespace (a Role, not the ClusterRole). */
  namespace?: string;
}

/** ConfigMaps hostnic reads live in kube-system (`hostnic-cfg-cm`, `hostnic-ipam-config`). */
export const HOSTNIC_NAMESPACE = "kube-system";

export const REQUIRED_PERMISSIONS: readonly PermissionRule[] = [
  // getPod, listPodsOnNode, watchPodsOnNode (cluster-wide, filtered by spec.nodeName)
  { apiGroup: "", resource: "pods", verbs: ["get", "list", "watch"] },
  // getNode, listNodes (vxnet assignment), annotateNode (vxnet, pool health)
  { apiGroup: "", resource: "nodes", verbs: ["get", "list", "patch"] },
  // createPodEvent (create, then patch `count` for repeats)
  { apiGroup: "", resource: "events", verbs: ["create", "patch"] },
  // getConfigMap, watchConfigMap (hostnic-cfg-cm in the daemon's namespace, POD_NAMESPACE)
  {
    apiGroup: "",
    resource: "configmaps",
    verbs: ["get", "list", "watch"],
    namespace: HOSTNIC_NAMESPACE,
  },
];
