/**
 * Which NetworkPolicies select which pods: the pure part of the `PolicyNotEnforced` warning
 * (a passthrough pod owns its NIC, so no host-side policy engine sees its traffic; docs/policy.md).
 * A policy selects the pods of its own namespace whose labels match its `spec.podSelector`
 * (Kubernetes label-selector semantics: `{}` matches every pod; matchLabels and matchExpressions
 * are ANDed). Policies come from the API server and are validated with zod here.
 */
import { z } from "zod";

const requirementSchema = z.object({
  key: z.string().min(1),
  operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
  values: z.array(z.string()).nullish().transform((v) => v ?? []),
}).refine(
  (r) =>
    (r.operator === "In" || r.operator === "NotIn") ? r.values.length > 0 : r.values.length === 0,
  { message: "In/NotIn need values; Exists/DoesNotExist take none" },
);

export const labelSelectorSchema = z.object({
  matchLabels: z.record(z.string(), z.string()).nullish().transform((v) => v ?? {}),
  matchExpressions: z.array(requirementSchema).nullish().transform((v) => v ?? []),
});
export type LabelSelector = z.infer<typeof labelSelectorSchema>;

export const networkPolicySchema = z.object({
  metadata: z.object({ name: z.string().min(1), namespace: z.string().min(1) }),
  spec: z.object({ podSelector: labelSelectorSchema }),
});
export type NetworkPolicy = z.infer<typeof networkPolicySchema>;

/** Parses one NetworkPolicy from the API; throws naming the policy and the field. */
export function parseNetworkPolicy(raw: unknown): NetworkPolicy {
  const r = networkPolicySchema.safeParse(raw);
  if (r.success) return r.data;
  const name = (raw as { metadata?: { namespace?: string; name?: string } })?.metadata;
  const issue = r.error.issues[0];
  throw new Error(
    `NetworkPolicy ${name?.namespace ?? "?"}/${name?.name ?? "?"}: ${
      issue.path.join(".") || "(root)"
    }: ${issue.message}`,
  );
}

/** Whether `labels` satisfy `sel` (Kubernetes label-selector semantics). */
export function selectorMatches(
  sel: LabelSelector,
  labels: Readonly<Record<string, string>>,
): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels)) if (labels[k] !== v) return false;
  for (const r of sel.matchExpressions) {
    const has = Object.hasOwn(labels, r.key);
    const ok = r.operator === "In"
      ? has && r.values.includes(labels[r.key])
      : r.operator === "NotIn"
      ? !has || !r.values.includes(labels[r.key])
      : r.operator === "Exists"
      ? has
      : !has;
    if (!ok) return false;
  }
  return true;
}

export interface PodLabels {
  namespace: string;
  name: string;
  labels: Readonly<Record<string, string>>;
}

/** The names of the policies (sorted) that select `pod`. */
export function policiesSelecting(policies: readonly NetworkPolicy[], pod: PodLabels): string[] {
  return policies
    .filter((p) => p.metadata.namespace === pod.namespace)
    .filter((p) => selectorMatches(p.spec.podSelector, pod.labels))
    .map((p) => p.metadata.name)
    .sort();
}

/** The `PolicyNotEnforced` Warning's message for a passthrough pod selected by `names`. */
export function policyNotEnforcedMessage(names: readonly string[]): string {
  return `NetworkPolicy ${names.join(", ")} selects this pod, but it is a passthrough pod: ` +
    "its NIC is in the pod, its traffic never crosses the node, and no host-side policy engine " +
    "enforces the policy. Use the cloud's security groups, or drop the passthrough annotation.";
}
