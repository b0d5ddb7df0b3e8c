/**
 * The Kubernetes permissions the `Kube` adapter needs, as data: `deploy/hostnic.yaml` grants exactly
 * these (tests/deploy checks it), so a new API call cannot ship without its RBAC rule.
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
  // getNode, listNodes, annotateNode (+ watch for the controller)
  { apiGroup: "", resource: "nodes", verbs: ["get", "list", "watch", "patch"] },
  // setNodeCondition
  { apiGroup: "", resource: "nodes/status", verbs: ["patch"] },
  // createPodEvent (create, then patch `count` for repeats)
  { apiGroup: "", resource: "events", verbs: ["create", "patch"] },
  // getConfigMap, watchConfigMap
  {
    apiGroup: "",
    resource: "configmaps",
    verbs: ["get", "list", "watch"],
    namespace: HOSTNIC_NAMESPACE,
  },
];
