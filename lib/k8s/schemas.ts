/**
 * The API server's replies as hostnic reads them: zod schemas and the conversion to the narrow
 * types of types.ts. The client hands back deserialized objects (timestamps as Date); watch events
 * are raw JSON (timestamps as strings). Both pass. A reply that does not fit is a `KubeError`
 * `KUBE_INVALID_REPLY` naming the field.
 */
import { z } from "zod";
import { KubeError } from "./errors.ts";
import type { NodeCondition, NodeInfo, PodInfo } from "./types.ts";

const stringMap = z.record(z.string(), z.string()).nullish().transform((v) => v ?? {});
const timestamp = z.union([z.date(), z.string()]).nullish().transform((v) =>
  v instanceof Date ? v.toISOString() : v ?? undefined
);
export const metaSchema = z.object({
  name: z.string().min(1),
  namespace: z.string().nullish(),
  uid: z.string().nullish(),
  resourceVersion: z.string().nullish(),
  creationTimestamp: timestamp,
  annotations: stringMap,
  labels: stringMap,
});

export const podSchema = z.object({
  metadata: metaSchema.extend({ namespace: z.string().min(1), uid: z.string().min(1) }),
  spec: z.object({ nodeName: z.string().nullish() }).nullish(),
  status: z.object({ phase: z.string().nullish(), podIP: z.string().nullish() }).nullish(),
});

export const conditionSchema = z.object({
  type: z.string().min(1),
  status: z.enum(["True", "False", "Unknown"]),
  reason: z.string().nullish(),
  message: z.string().nullish(),
  lastTransitionTime: timestamp,
  lastHeartbeatTime: timestamp,
});

export const nodeSchema = z.object({
  metadata: metaSchema,
  spec: z.object({ providerID: z.string().nullish() }).nullish(),
  status: z.object({
    addresses: z.array(z.object({ type: z.string(), address: z.string() })).nullish(),
    conditions: z.array(conditionSchema).nullish(),
  }).nullish(),
});

export const configMapSchema = z.object({ metadata: metaSchema, data: stringMap });

export const listMetaSchema = z.object({
  metadata: z.object({
    resourceVersion: z.string().nullish(),
    _continue: z.string().nullish(),
    continue: z.string().nullish(),
  }).nullish(),
  items: z.array(z.unknown()),
});

export const statusBodySchema = z.object({
  kind: z.literal("Status"),
  message: z.string().optional(),
  reason: z.string().optional(),
  code: z.number().optional(),
});

export function validate<T extends z.ZodType>(
  schema: T,
  value: unknown,
  op: string,
  what: string,
): z.output<T> {
  const res = schema.safeParse(value);
  if (res.success) return res.data as z.output<T>;
  const issue = res.error.issues[0];
  const at = issue.path.length > 0 ? issue.path.map(String).join(".") : "(root)";
  throw new KubeError(
    "KUBE_INVALID_REPLY",
    op,
    `The API server's reply to ${op} is not a valid ${what}: ${at}: ${issue.message}`,
  );
}

export function toPod(raw: unknown, op: string): PodInfo {
  const p = validate(podSchema, raw, op, "Pod");
  const pod: PodInfo = {
    namespace: p.metadata.namespace,
    name: p.metadata.name,
    uid: p.metadata.uid,
    annotations: p.metadata.annotations,
    labels: p.metadata.labels,
  };
  if (p.spec?.nodeName) pod.nodeName = p.spec.nodeName;
  if (p.status?.phase) pod.phase = p.status.phase;
  if (p.status?.podIP) pod.podIP = p.status.podIP;
  return pod;
}

function toCondition(c: z.output<typeof conditionSchema>): NodeCondition {
  const out: NodeCondition = { type: c.type, status: c.status };
  if (c.reason) out.reason = c.reason;
  if (c.message) out.message = c.message;
  if (c.lastTransitionTime) out.lastTransitionTime = c.lastTransitionTime;
  if (c.lastHeartbeatTime) out.lastHeartbeatTime = c.lastHeartbeatTime;
  return out;
}

export function toNode(raw: unknown, op: string): NodeInfo {
  const n = validate(nodeSchema, raw, op, "Node");
  const node: NodeInfo = {
    name: n.metadata.name,
    annotations: n.metadata.annotations,
    labels: n.metadata.labels,
    conditions: (n.status?.conditions ?? []).map(toCondition),
  };
  if (n.metadata.uid) node.uid = n.metadata.uid;
  if (n.metadata.creationTimestamp) node.createdAt = n.metadata.creationTimestamp;
  if (n.spec?.providerID) node.providerId = n.spec.providerID;
  const ip = n.status?.addresses?.find((a) => a.type === "InternalIP")?.address;
  if (ip) node.internalIp = ip;
  return node;
}

/** A Kubernetes `Status` in an error reply (string or parsed), if it is one. */
export function parseStatusBody(body: unknown): z.output<typeof statusBodySchema> | undefined {
  let value = body;
  if (typeof body === "string") {
    try {
      value = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  const res = statusBodySchema.safeParse(value);
  return res.success ? res.data : undefined;
}
