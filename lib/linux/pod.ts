/**
 * Entry points per pod, for every attachment mode: read state, plan, apply. One shape for the
 * daemon (node = its own namespace: omit `nodeNetns`), for tests (node = a named namespace) and
 * for the CNI plugin's DEL without the daemon (a `PodTeardownSpec` is all it needs).
 */
import { type Desired, diffDesired } from "./check.ts";
import { DatapathTeardownError, isNetnsMissing, NetnsNotFoundError } from "./errors.ts";
import { type NsState, readNsState } from "./ip.ts";
import {
  nicPodDesired,
  nicPodResult,
  type NicPodSpec,
  planNicPodSetup,
  planNicPodTeardown,
} from "./nic_mode.ts";
import {
  passthroughDesired,
  type PassthroughPodSpec,
  passthroughResult,
  planPassthroughNodeTeardown,
  planPassthroughPodTeardown,
  planPassthroughSetup,
} from "./passthrough_mode.ts";
import { applyPlan, type LinuxDeps, type Plan, planClaims, runTeardownPlan } from "./plan.ts";
import {
  planSharedNicSetup,
  planSharedNicTeardown,
  planSharedPodSetup,
  planSharedPodTeardown,
  sharedNicDesired,
  sharedNicPodIpsIn,
  type SharedNicSpec,
  sharedPodDesired,
  sharedPodResult,
  type SharedPodSpec,
} from "./shared_mode.ts";
import type { NodeOptions, PodSetupResult, PodTeardownSpec } from "./spec.ts";

export type PodSpec = NicPodSpec | SharedPodSpec | PassthroughPodSpec;

async function readPod(deps: LinuxDeps, netns: string): Promise<NsState> {
  try {
    return await readNsState(deps, netns);
  } catch (err) {
    if (isNetnsMissing(err)) throw new NetnsNotFoundError(netns, { cause: err });
    throw err;
  }
}

/** A fresh reading of the node, kept in `opts.state` when there is one. */
async function readNode(deps: LinuxDeps, opts: NodeOptions): Promise<NsState> {
  const ticket = opts.state?.begin() ?? 0;
  const node = await readNsState(deps, opts.nodeNetns);
  opts.state?.record(ticket, node);
  return node;
}

/** Reads the state the mode's planner needs and returns the setup plan (a dry run). */
export async function planPodSetup(
  deps: LinuxDeps,
  spec: PodSpec,
  opts: NodeOptions = {},
): Promise<Plan> {
  return await planSetupFrom(deps, spec, opts, await readNode(deps, opts));
}

async function planSetupFrom(
  deps: LinuxDeps,
  spec: PodSpec,
  opts: NodeOptions,
  node: NsState,
): Promise<Plan> {
  switch (spec.mode) {
    case "nic":
      return planNicPodSetup(spec, node, opts);
    case "shared":
      return planSharedPodSetup(spec, node, opts);
    case "passthrough":
      return planPassthroughSetup(spec, { node, pod: await readPod(deps, spec.netns) }, opts);
  }
}

/**
 * Plumbs one pod. Ensure semantics: running it again converges (the veth is recreated). On
 * failure everything it applied is reverted and `DatapathSetupError` is thrown.
 */
export async function setupPod(
  deps: LinuxDeps,
  spec: PodSpec,
  opts: NodeOptions = {},
): Promise<PodSetupResult> {
  const kept = opts.state?.current();
  if (kept && opts.state) {
    // Plan from the reading the last batch left (no read spawn). The batch reads the node back:
    // if that shows less than the pod needs, the plan trusted a stale reading (an ensure step
    // skipped for an object that was gone), and so does a plan that fails or cannot be made
    // (the NIC's link is newer than the reading): then once more from a fresh read.
    try {
      const { node } = await applyPlan(deps, await planSetupFrom(deps, spec, opts, kept), opts);
      if (node && diffDesired(podDesired(spec).node, node, "node").length === 0) {
        return podResult(spec);
      }
      opts.state.invalidate();
    } catch (err) {
      if (err instanceof NetnsNotFoundError) throw err;
      opts.state.invalidate();
    }
  }
  await applyPlan(deps, await planPodSetup(deps, spec, opts), opts);
  return podResult(spec);
}

/** The CNI result data for a pod set up with `spec` (no kernel access). */
export function podResult(spec: PodSpec): PodSetupResult {
  switch (spec.mode) {
    case "nic":
      return nicPodResult(spec);
    case "shared":
      return sharedPodResult(spec);
    case "passthrough":
      return passthroughResult(spec);
  }
}

/**
 * Unplumbs one pod from what a DEL knows. Succeeds when nothing is there, when the pod
 * namespace is gone or empty, and when run twice; throws `DatapathTeardownError` only for
 * objects it found and could not remove.
 */
export async function teardownPod(
  deps: LinuxDeps,
  spec: PodTeardownSpec,
  opts: NodeOptions = {},
): Promise<void> {
  if (spec.mode === "passthrough") return await teardownPassthrough(deps, spec, opts);
  const planFrom = (node: NsState) =>
    spec.mode === "nic"
      ? planNicPodTeardown(spec, node, opts)
      : planSharedPodTeardown(spec, node, opts);
  await teardownFresh(deps, opts, {
    plan: async () => planFrom(opts.state?.current() ?? await readNode(deps, opts)),
    left: (node) =>
      planFrom(node).steps.some((s) => s.role === "node" && s.kind === "ip" && s.ops.length > 0),
  });
}

/** Plans (fresh read + batch) a teardown gets before its failures are reported. */
const TEARDOWN_ATTEMPTS = 3;

/**
 * Runs the teardown plan `plan` makes from a fresh read of the kernel. A plan comes from one read,
 * and the node can change before its batch runs: the cloud hot-plugs a NIC under the very name a
 * released NIC is to get back ("File exists"). Teardown is idempotent, so a failed one is planned
 * again from a fresh read, a few times.
 *
 * With `names`, the node link names the plan gives out are held while its batch runs, so
 * concurrent teardowns never pick the same name; one that had to wait for a name plans again
 * from what the other left (the name is taken now: it picks the MAC-derived one).
 */
async function teardownFresh(
  deps: LinuxDeps,
  opts: NodeOptions,
  o: {
    plan: () => Promise<Plan>;
    /**
     * Whether the node's state after the batch still holds something of the pod: the plan came
     * from a kept reading that missed it (node_state.ts). Then the teardown runs again, fresh.
     */
    left?: (node: NsState) => boolean;
  },
): Promise<void> {
  const names = opts.names;
  for (let attempt = 1;; attempt++) {
    let p = await o.plan();
    const claimed = planClaims(p);
    const claim = names && claimed.length > 0 ? await names.claim(claimed) : undefined;
    try {
      if (claim?.waited) p = await o.plan();
      const { node } = await runTeardownPlan(deps, p, opts.state ? { state: opts.state } : {});
      if (!node || !o.left?.(node) || attempt >= TEARDOWN_ATTEMPTS) return;
      opts.state?.invalidate();
    } catch (err) {
      if (!(err instanceof DatapathTeardownError) || attempt >= TEARDOWN_ATTEMPTS) throw err;
    } finally {
      claim?.release();
    }
  }
}

async function teardownPassthrough(deps: LinuxDeps, spec: PodTeardownSpec, opts: NodeOptions) {
  const what = `passthrough pod ${spec.ip ?? spec.pod.containerId}`;
  // The pod half moves the NIC back into the node from the pod's side: no node reading sees it,
  // so the kept one is dropped and the node half reads afresh (and keeps what it reads back).
  opts.state?.invalidate();
  await teardownFresh(deps, { ...opts, state: undefined }, {
    plan: async () => {
      let steps: Plan["steps"] = [];
      if (spec.netns) {
        try {
          const pod = await readNsState(deps, spec.netns);
          steps = planPassthroughPodTeardown(spec, pod, {
            ...opts,
            nodeLinks: (await readNsState(deps, opts.nodeNetns)).links.map((l) => l.name),
          });
        } catch (err) {
          if (!isNetnsMissing(err)) throw err;
        }
      }
      return { what, steps };
    },
  });
  opts.state?.invalidate();
  await teardownFresh(deps, opts, {
    plan: async () => ({
      what,
      steps: [{
        kind: "ip",
        role: "node",
        netns: opts.nodeNetns,
        ops: planPassthroughNodeTeardown(spec, await readNsState(deps, opts.nodeNetns)),
      }],
    }),
  });
}

/** What CHECK expects for `spec` in the node and pod namespaces. */
export function podDesired(spec: PodSpec): { node: Desired; pod: Desired } {
  switch (spec.mode) {
    case "nic":
      return nicPodDesired(spec);
    case "shared":
      return sharedPodDesired(spec);
    case "passthrough":
      return passthroughDesired(spec);
  }
}

const NETNS_MISSING = / is missing$/;

/** The CHECK difference that says the pod's namespace itself is gone (the pod no longer exists). */
export function isNetnsMissingDiff(d: string): boolean {
  return d.startsWith("pod: network namespace ") && NETNS_MISSING.test(d);
}

/**
 * CNI CHECK: reads both namespaces and lists every difference from what setup makes (empty =
 * healthy). A missing pod namespace is one difference, not an error. `node` is a reading of the
 * node's namespace to use instead of a fresh one (one reading for many pods).
 */
export async function checkPod(
  deps: LinuxDeps,
  spec: PodSpec,
  opts: NodeOptions = {},
  nodeState?: NsState,
): Promise<string[]> {
  const want = podDesired(spec);
  const node = nodeState ?? await readNsState(deps, opts.nodeNetns);
  let pod: NsState;
  try {
    pod = await readNsState(deps, spec.netns);
  } catch (err) {
    if (!isNetnsMissing(err)) throw err;
    return [
      ...diffDesired(want.node, node, "node"),
      `pod: network namespace ${spec.netns} is missing`,
    ];
  }
  return [...diffDesired(want.node, node, "node"), ...diffDesired(want.pod, pod, "pod")];
}

// Shared NICs -----------------------------------------------------------------------------------

/** Takes over the vxnet's shared NIC (idempotent). Run before the first pod of the vxnet. */
export async function setupSharedNic(
  deps: LinuxDeps,
  spec: SharedNicSpec,
  opts: NodeOptions = {},
): Promise<void> {
  await applyPlan(deps, planSharedNicSetup(spec, await readNsState(deps, opts.nodeNetns), opts));
}

/** Releases the vxnet's shared NIC; run when its last pod is gone. */
export async function teardownSharedNic(
  deps: LinuxDeps,
  spec: { table: number },
  opts: NodeOptions = {},
): Promise<void> {
  const node = await readNsState(deps, opts.nodeNetns);
  await runTeardownPlan(deps, planSharedNicTeardown(spec, node, opts));
}

export async function checkSharedNic(
  deps: LinuxDeps,
  spec: SharedNicSpec,
  opts: NodeOptions = {},
): Promise<string[]> {
  return diffDesired(sharedNicDesired(spec), await readNsState(deps, opts.nodeNetns), "node");
}

/** Pod IPs still answered for on the shared NIC of `table` (empty = safe to release it). */
export async function sharedNicPodIps(
  deps: LinuxDeps,
  spec: { table: number },
  opts: NodeOptions = {},
): Promise<string[]> {
  return sharedNicPodIpsIn(await readNsState(deps, opts.nodeNetns), spec.table);
}
