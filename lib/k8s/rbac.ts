/**
 * The Kubernetes permissions hostnic's calls through the `Kube` adapter need, as data:
 * `deploy/hostnic.yaml` grants exactly these (tests/deploy checks it), so a new API call cannot ship
 * without its RBAC rule. Least privilege: only what the daemon (lib/daemon/kube/) calls is granted;
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
  // watchNetworkPolicies: a Warning event on passthrough pods a policy selects (lib/daemon/kube/netpol_warn.ts)
  { apiGroup: "networking.k8s.io", resource: "networkpolicies", verbs: ["list", "watch"] },
  // createPodEvent (create, then patch `count` for repeats)
  { apiGroup: "", resource: "events", verbs: ["create", "patch"] },
  // Shared mode (lib/daemon/shared/, lib/ipam/kube_store.ts): block IPAM through IPAMBlock and
  // IPAMHandle (CAS updates), IPPools and the VxNetPool read to decide the mode and the pools, and
  // Calico's podIP(s) annotations written on pods (server.networkPolicy: calico).
  {
    apiGroup: "network.qingcloud.com",
    resource: "ipamblocks",
    verbs: ["get", "list", "watch", "create", "update", "delete"],
  },
  {
    apiGroup: "network.qingcloud.com",
    resource: "ipamhandles",
    verbs: ["get", "list", "watch", "create", "update", "delete"],
  },
  { apiGroup: "network.qingcloud.com", resource: "ippools", verbs: ["get", "list", "watch"] },
  { apiGroup: "network.qingcloud.com", resource: "vxnetpools", verbs: ["get", "list", "watch"] },
  { apiGroup: "", resource: "pods", verbs: ["patch"] },
  // getConfigMap, watchConfigMap (hostnic-cfg-cm in the daemon's namespace, POD_NAMESPACE)
  {
    apiGroup: "",
    resource: "configmaps",
    verbs: ["get", "list", "watch"],
    namespace: HOSTNIC_NAMESPACE,
  },
];
