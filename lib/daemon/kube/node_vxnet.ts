/**
 * The node's pool vxnet, settled once at start. The node annotation
 * `hostnic.network.kubesphere.io/vxnet` names it (it must be one of `pool.vxNets` when that list
 * is set). Without it and with `pool.vxNets`, the daemon places itself with `assignVxnets` over
 * all nodes (deterministic: every daemon computes the same answer) and annotates its node.
 * Without either, the node has no pool vxnet and only pods with a vxnet annotation get NICs.
 * Read once: changing the annotation takes effect when the daemon restarts.
 */
import { errorMessage } from "../../errors.ts";
import { assignVxnets, NODE_ANNOTATION_VXNET, parseNodeVxnet } from "../../k8s/annotations.ts";
import type { Kube, NodeInfo } from "../../k8s/types.ts";
import type { Logger } from "../../log.ts";
import { KubeStartError, retryTransient, startupApi } from "./client.ts";

export interface NodeVxnetChoice {
  /** The pool vxnet; undefined = none (pods need a vxnet annotation). */
  vxnet?: string;
  /** How it was chosen, for the log. */
  source: "annotation" | "assigned" | "unassigned" | "none";
  /** Set when the daemon must write the node annotation (a fresh assignment). */
  annotate?: string;
  /** Why (unassigned) or a note (kept on a full vxnet …). */
  note?: string;
}

/**
 * The node's pool vxnet from its annotation (must be in `vxNets` when that is set), else from the
 * assignment over `nodes` (only needed then: pass `undefined` when there is an annotation or no
 * `vxNets`). Throws `KubeStartError` naming the annotation when it is unusable.
 */
export function chooseNodeVxnet(o: {
  node: NodeInfo;
  vxNets: readonly string[];
  maxNic: number;
  nodes?: readonly NodeInfo[];
}): NodeVxnetChoice {
  const name = o.node.name;
  let annotated: string | undefined;
  try {
    annotated = parseNodeVxnet(o.node.annotations);
  } catch (err) {
    throw new KubeStartError(
      `Node "${name}": ${errorMessage(err)}. Fix the annotation, or remove it ` +
        `(kubectl annotate node ${name} ${NODE_ANNOTATION_VXNET}-) to let hostnic choose`,
    );
  }
  if (annotated !== undefined) {
    if (o.vxNets.length > 0 && !o.vxNets.includes(annotated)) {
      throw new KubeStartError(
        `Node "${name}": annotation "${NODE_ANNOTATION_VXNET}" names "${annotated}", which is not ` +
          `in pool.vxNets (${o.vxNets.join(", ")}). Add it to pool.vxNets, or remove the ` +
          `annotation (kubectl annotate node ${name} ${NODE_ANNOTATION_VXNET}-) to let hostnic choose`,
      );
    }
    return { vxnet: annotated, source: "annotation" };
  }
  if (o.vxNets.length === 0) return { source: "none" };
  const nodes = o.nodes ?? [o.node];
  const all = nodes.some((n) => n.name === name) ? nodes : [...nodes, o.node];
  const plan = assignVxnets({ nodes: all, vxNets: o.vxNets, maxNic: o.maxNic });
  const mine = plan.assignments.get(name);
  if (mine === undefined) {
    return { source: "unassigned", note: plan.unassigned.get(name) ?? "no vxnet has room" };
  }
  const note = plan.notes.get(name);
  return { vxnet: mine, source: "assigned", annotate: mine, ...(note ? { note } : {}) };
}

/**
 * Chooses the pool vxnet of `node` (listing the nodes only when an assignment is needed), writes a
 * fresh assignment to the node annotation and logs how it was chosen. A failed annotation write is
 * logged, not fatal: every daemon computes the same assignment, so the pool is still right.
 */
export async function settleNodeVxnet(o: {
  kube: Kube;
  node: NodeInfo;
  pool: { vxNets: readonly string[]; maxNic: number };
  deadline: number;
  logger: Logger;
}): Promise<string | undefined> {
  const { kube, node, logger } = o;
  const nodeName = node.name;
  const api = startupApi(o.deadline);
  const { vxNets, maxNic } = o.pool;
  const needsList = vxNets.length > 0 && node.annotations[NODE_ANNOTATION_VXNET] === undefined;
  const nodes = needsList ? await api("list nodes", () => kube.listNodes()) : undefined;
  const choice = chooseNodeVxnet({ node, vxNets, maxNic, ...(nodes ? { nodes } : {}) });
  if (choice.annotate !== undefined) {
    const value = choice.annotate;
    try {
      await retryTransient(
        o.deadline,
        () => kube.annotateNode(nodeName, { [NODE_ANNOTATION_VXNET]: value }),
      );
    } catch (err) {
      // Every daemon computes the same assignment, so the pool is still right; the annotation
      // only records it. Retried at the next start.
      logger.warn("could not annotate the node with its assigned vxnet", {
        node: nodeName,
        vxnet: value,
        err: errorMessage(err),
      });
    }
  }
  const fields = {
    node: nodeName,
    vxnet: choice.vxnet,
    ...(choice.note ? { note: choice.note } : {}),
  };
  if (choice.source === "annotation") logger.info("pool vxnet from the node annotation", fields);
  else if (choice.source === "assigned") logger.info("pool vxnet assigned to this node", fields);
  else if (choice.source === "unassigned") {
    logger.warn(
      "no vxnet in pool.vxNets has room for this node; pods need a vxnet annotation",
      fields,
    );
  } else {
    logger.info(
      "no pool vxnet (no node annotation, no pool.vxNets); pods need a vxnet annotation",
      fields,
    );
  }
  return choice.vxnet;
}
