/**
 * Passthrough pods bypass the host (the NIC itself is in the pod), so no host-side policy engine
 * can filter them. When a NetworkPolicy selects a passthrough pod on this node, the daemon records
 * a Warning event `PolicyNotEnforced` on the pod, once per pod and set of selecting policies.
 * Runs only with Kubernetes and a client that can watch NetworkPolicies; `policyWarnings` is the
 * pure decision (unit-tested in netpol_warn_test.ts).
 */
import { ANNOTATION_TYPE } from "../../k8s/annotations.ts";
import { policiesSelecting, type PolicyRef } from "../../k8s/netpol.ts";
import type { Kube, KubeEvent, KubeWatch, PodInfo, PodRef } from "../../k8s/types.ts";
import type { Logger } from "../../log.ts";
import { errorMessage } from "../../errors.ts";

export const POLICY_NOT_ENFORCED = "PolicyNotEnforced";

const isPassthrough = (p: PodInfo) => p.annotations[ANNOTATION_TYPE] === "passthrough";

/**
 * The events to record now: for each passthrough pod selected by policies whose names differ from
 * what it was last warned about. Updates `warned` (pod uid → policy names); pods no longer selected
 * are forgotten so a later selection warns again.
 */
export function policyWarnings(
  policies: readonly PolicyRef[],
  pods: Iterable<PodInfo>,
  warned: Map<string, string>,
): { pod: PodRef; event: KubeEvent }[] {
  const out: { pod: PodRef; event: KubeEvent }[] = [];
  const seen = new Set<string>();
  for (const pod of pods) {
    if (!isPassthrough(pod)) continue;
    seen.add(pod.uid);
    const names = policiesSelecting(policies, pod).map((p) => p.name).join(", ");
    if (!names) {
      warned.delete(pod.uid);
      continue;
    }
    if (warned.get(pod.uid) === names) continue;
    warned.set(pod.uid, names);
    out.push({
      pod: { namespace: pod.namespace, name: pod.name, uid: pod.uid },
      event: {
        type: "Warning",
        reason: POLICY_NOT_ENFORCED,
        message: `NetworkPolicy ${names} selects this pod, but it is a passthrough pod ` +
          `(${ANNOTATION_TYPE}: passthrough): its traffic bypasses the host, so no policy is ` +
          "enforced on it. Use the vxnet's security group, or remove the annotation.",
      },
    });
  }
  for (const uid of [...warned.keys()]) if (!seen.has(uid)) warned.delete(uid);
  return out;
}

/** Watches NetworkPolicies and this node's pods; undefined when the client cannot watch policies. */
export function startPolicyWarnings(
  o: { kube: Kube; nodeName: string; logger: Logger },
): KubeWatch | undefined {
  if (!o.kube.watchNetworkPolicies) return undefined;
  let policies: PolicyRef[] = [];
  let policiesListed = false;
  const pods = new Map<string, PodInfo>();
  const warned = new Map<string, string>();
  const check = () => {
    if (!policiesListed) return;
    for (const w of policyWarnings(policies, pods.values(), warned)) {
      o.logger.warn("a NetworkPolicy selects a passthrough pod; not enforced", {
        pod: `${w.pod.namespace}/${w.pod.name}`,
      });
      o.kube.createPodEvent(w.pod, w.event).catch((err) =>
        o.logger.warn("could not record the PolicyNotEnforced event", {
          pod: `${w.pod.namespace}/${w.pod.name}`,
          error: errorMessage(err),
        })
      );
    }
  };
  const pw = o.kube.watchNetworkPolicies((list) => {
    policies = list;
    policiesListed = true;
    check();
  });
  const podWatch = o.kube.watchPodsOnNode(o.nodeName, (type, pod) => {
    const key = `${pod.namespace}/${pod.name}`;
    if (type === "DELETED") pods.delete(key);
    else pods.set(key, pod);
    check();
  });
  const stop = async () => {
    await Promise.all([pw.stop(), podWatch.stop()]);
  };
  return { stop, [Symbol.asyncDispose]: stop };
}
