/**
 * Which pods a NetworkPolicy applies to: its namespace and `spec.podSelector` (a label selector:
 * `matchLabels` and `matchExpressions` with In, NotIn, Exists, DoesNotExist). The daemon uses it to
 * warn about passthrough pods that a policy selects but no host-side engine can filter.
 * Pure: no I/O. Objects from the API server are validated with zod before use.
 */
import { z } from "zod";

const requirementSchema = z.object({
  key: z.string().min(1),
  operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
  values: z.array(z.string()).optional(),
}).refine(
  (r) =>
    r.operator === "In" || r.operator === "NotIn"
      ? (r.values?.length ?? 0) > 0
      : (r.values?.length ?? 0) === 0,
  { message: "In/NotIn need values; Exists/DoesNotExist take none" },
);

export const labelSelectorSchema = z.object({
  matchLabels: z.record(z.string(), z.string()).optional(),
  matchExpressions: z.array(requirementSchema).optional(),
});
export type LabelSelector = z.infer<typeof labelSelectorSchema>;

/** The part of a NetworkPolicy that decides which pods it selects. */
export const networkPolicySchema = z.object({
  metadata: z.object({ namespace: z.string().min(1), name: z.string().min(1) }),
  spec: z.object({ podSelector: labelSelectorSchema }),
});
export interface PolicyRef {
  namespace: string;
  name: string;
  podSelector: LabelSelector;
}

/** Parses a NetworkPolicy from the API; throws a message naming the policy and the field. */
export function parseNetworkPolicy(raw: unknown): PolicyRef {
  const r = networkPolicySchema.safeParse(raw);
  if (!r.success) {
    const meta = (raw as { metadata?: { namespace?: unknown; name?: unknown } })?.metadata;
    const issue = r.error.issues[0];
    throw new Error(
      `NetworkPolicy "${String(meta?.namespace)}/${String(meta?.name)}" is malformed at ${
        issue.path.join(".") || "(root)"
      }: ${issue.message}`,
    );
  }
  const { metadata, spec } = r.data;
  return { namespace: metadata.namespace, name: metadata.name, podSelector: spec.podSelector };
}

/** Whether `labels` satisfy the selector (an empty selector selects everything). */
export function selectorMatches(sel: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const req of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, req.key);
    const values = req.values ?? [];
    switch (req.operator) {
      case "In":
        if (!has || !values.includes(labels[req.key])) return false;
        break;
      case "NotIn":
        if (has && values.includes(labels[req.key])) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
    }
  }
  return true;
}

/** The policies (of those given) that select the pod: same namespace and a matching podSelector. */
export function policiesSelecting(
  policies: Iterable<PolicyRef>,
  pod: { namespace: string; labels: Record<string, string> },
): PolicyRef[] {
  const out: PolicyRef[] = [];
  for (const p of policies) {
    if (p.namespace === pod.namespace && selectorMatches(p.podSelector, pod.labels)) out.push(p);
  }
  return out.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}
