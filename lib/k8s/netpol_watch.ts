/**
 * The list-then-watch of all NetworkPolicies (`HttpKube.watchNetworkPolicies`): keeps the current
 * set by namespace/name and hands the whole set to `onChange` after the list and after each event.
 * A policy that fails validation is logged and left out, never fatal to the watch.
 */
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { parseNetworkPolicy, type PolicyRef } from "./netpol.ts";
import type { ListWatchSpec } from "./watch.ts";

export function networkPolicyWatch(
  log: Logger,
  onChange: (policies: PolicyRef[]) => void,
  list: (op: string) => ReturnType<ListWatchSpec["list"]>,
): ListWatchSpec {
  const op = "watch NetworkPolicies";
  const known = new Map<string, PolicyRef>();
  const key = (p: PolicyRef) => `${p.namespace}/${p.name}`;
  const parse = (obj: unknown): PolicyRef | undefined => {
    try {
      return parseNetworkPolicy(obj);
    } catch (err) {
      log.warn("ignoring a NetworkPolicy", { op, error: errorMessage(err) });
      return undefined;
    }
  };
  return {
    op,
    path: "/apis/networking.k8s.io/v1/networkpolicies",
    params: {},
    list: () => list(op),
    onList: (items) => {
      known.clear();
      for (const p of items.map(parse)) if (p) known.set(key(p), p);
      onChange([...known.values()]);
    },
    onEvent: (type, obj) => {
      const p = parse(obj);
      if (!p) return;
      if (type === "DELETED") known.delete(key(p));
      else known.set(key(p), p);
      onChange([...known.values()]);
    },
  };
}
