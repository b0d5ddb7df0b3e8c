/**
 * The Kubernetes permissions `hostnic controller` calls, as data: deploy/hostnic.yaml grants the
 * controller's ServiceAccount exactly these (tests/deploy/manifests_test.ts checks it), so a new
 * call cannot ship without its rule, and nothing is granted that the code does not call.
 */
import type { PermissionRule } from "../k8s/rbac.ts";

export const CONTROLLER_SERVICE_ACCOUNT = "hostnic-controller";

/** A rule, optionally limited to named objects (`resourceNames`; not possible for list/create). */
export interface ControllerPermission extends PermissionRule {
  resourceNames?: readonly string[];
}

export const CONTROLLER_PERMISSIONS: readonly ControllerPermission[] = [
  // kube.ts getVxNetPool; watch.ts (a change kicks a pass)
  { apiGroup: "network.qingcloud.com", resource: "vxnetpools", verbs: ["get", "watch"] },
  // kube.ts writeVxNetPoolStatus (merge patch of the status subresource)
  { apiGroup: "network.qingcloud.com", resource: "vxnetpools/status", verbs: ["patch"] },
  // KubeIpamStores.pools: get, list, create, update (disable / re-enable), delete (removal)
  {
    apiGroup: "network.qingcloud.com",
    resource: "ippools",
    verbs: ["get", "list", "create", "update", "delete"],
  },
  // kube.ts writeIpPoolStatus
  { apiGroup: "network.qingcloud.com", resource: "ippools/status", verbs: ["patch"] },
  // KubeIpamStores.blocks: list, create (carving), delete (removal); watch.ts kicks
  {
    apiGroup: "network.qingcloud.com",
    resource: "ipamblocks",
    verbs: ["list", "watch", "create", "delete"],
  },
  // autoassign.ts: every namespace gets a block; watch.ts (a new namespace kicks a pass)
  { apiGroup: "", resource: "namespaces", verbs: ["list", "watch"] },
  // clusterconfig (read) and hostnic-ipam-config (read, replace for auto-assign)
  {
    apiGroup: "",
    resource: "configmaps",
    verbs: ["get", "update"],
    namespace: "kube-system",
    resourceNames: ["clusterconfig", "hostnic-ipam-config"],
  },
  // lease.ts leader election: create cannot be limited by name, get/update can
  {
    apiGroup: "coordination.k8s.io",
    resource: "leases",
    verbs: ["create"],
    namespace: "kube-system",
  },
  {
    apiGroup: "coordination.k8s.io",
    resource: "leases",
    verbs: ["get", "update"],
    namespace: "kube-system",
    resourceNames: ["hostnic-controller"],
  },
];
