/**
 * The persisted shape of a shared-mode attachment (`shared/<containerId>/<ifName>` in the daemon's
 * store) and what is derived from it: the datapath specs, the ADD reply, the release options.
 *
 * A record in state `releasing` is a pending release (issue 20): its pod's datapath is gone and
 * its DEL has answered success, but IPAM could not be told (the API server was unreachable). It
 * keeps the handle, sequence, block and handle version of the allocation, which is all a later
 * release needs: the release names the handle and sequence, so the block's compare-and-swap frees
 * the address only if this allocation still holds it — never one given to another pod since.
 */
import { HostnicError } from "../../errors.ts";
import { podResult, type PodSpec, type PodTeardownSpec } from "../../linux/mod.ts";
import { withoutUndefined } from "../../nicpool/model.ts";
import type { AddReply, CniSettings } from "../../rpc/api.ts";

export type SharedState = "allocating" | "ready" | "releasing";

/** One shared-mode pod attachment as persisted (`shared/<containerId>/<ifName>`). */
export interface SharedRecord {
  containerId: string;
  ifName: string;
  netns: string;
  podNamespace: string;
  podName: string;
  handle: string;
  state: SharedState;
  ip?: string;
  sequence?: number;
  block?: string;
  /** The IPAMHandle's resourceVersion after the allocation (release reads nothing with it). */
  handleVersion?: string;
  vxnet?: string;
  cidr?: string;
  gateway?: string;
  nicId?: string;
  table?: number;
  hostVeth?: string;
  settings?: CniSettings;
  createdAt: number;
  /** State `releasing`: when the release was first deferred (ms since the epoch). */
  releasePendingSince?: number;
  /** State `releasing`: why the last attempt failed. */
  releaseError?: string;
}

const RECORD_PREFIX = "shared/";
export { RECORD_PREFIX };

export const sharedKey = (containerId: string, ifName: string): string =>
  `${RECORD_PREFIX}${containerId}/${ifName}`;
export const handleOf = (containerId: string, ifName: string): string => `${containerId}.${ifName}`;

/**
 * How long a DEL waits for IPAM before it records the release as pending and answers: well
 * inside the plugin's 10 s DEL deadline (lib/plugin/handlers.ts), so a black-holed API server
 * does not make the plugin time out and journal.
 */
export const DEL_RELEASE_BUDGET_MS = 4_000;

/** An ADD of a container whose earlier release is still pending and cannot be finished now. */
export class ReleasePendingError extends HostnicError {
  constructor(rec: SharedRecord, cause: string | undefined) {
    super(
      "SHARED_RELEASE_PENDING",
      `The address of container "${rec.containerId}" interface "${rec.ifName}" from an earlier ` +
        `DEL is not released yet (${cause ?? "IPAM did not answer"}); try again later`,
    );
  }
}

/** The release did not finish within the DEL's budget (it goes on in the background). */
export class ReleaseTimeoutError extends HostnicError {
  constructor(handle: string) {
    super(
      "SHARED_RELEASE_TIMEOUT",
      `IPAM did not answer the release of handle "${handle}" within ${DEL_RELEASE_BUDGET_MS} ms`,
    );
  }
}

function podIdentityOf(rec: SharedRecord) {
  return {
    containerId: rec.containerId,
    k8sNamespace: rec.podNamespace,
    podName: rec.podName,
    ifName: rec.ifName,
  };
}

export function podSpecOf(rec: SharedRecord, defaults: CniSettings): PodSpec {
  const s = rec.settings ?? defaults;
  return {
    mode: "shared" as const,
    pod: podIdentityOf(rec),
    ifName: rec.ifName,
    netns: rec.netns,
    ip: rec.ip!,
    table: rec.table!,
    vethPrefix: s.vethPrefix,
    mtu: s.mtu,
  };
}

export function teardownSpecOf(rec: SharedRecord, defaults: CniSettings): PodTeardownSpec {
  return {
    mode: "shared" as const,
    pod: podIdentityOf(rec),
    ifName: rec.ifName,
    netns: rec.netns || undefined,
    ip: rec.ip,
    table: rec.table,
    vethPrefix: (rec.settings ?? defaults).vethPrefix,
  };
}

export function replyOf(rec: SharedRecord, defaults: CniSettings): AddReply {
  // The veth result of nic mode: /32 behind 169.254.1.1.
  const out = podResult(podSpecOf(rec, defaults));
  return {
    mode: "nic",
    address: out.address,
    gateway: out.gateway,
    interfaces: out.interfaces,
    interfaceIndex: out.interfaceIndex,
    routes: [],
    vxnet: rec.vxnet!,
    vxnetCidr: rec.cidr!,
    nicId: rec.nicId!,
  };
}

/** Release options of a record: its sequence, and its block and handle version when known. */
export function releaseOpts(
  rec: SharedRecord,
): { sequence?: number; block?: string; handleVersion?: string } {
  return withoutUndefined({
    sequence: rec.sequence,
    ...(rec.handleVersion !== undefined && rec.block !== undefined
      ? { block: rec.block, handleVersion: rec.handleVersion }
      : {}),
  });
}

/** `p`, or a `ReleaseTimeoutError` after `ms` (the timer is cleared either way). */
export async function within<T>(p: Promise<T>, ms: number, handle: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ReleaseTimeoutError(handle)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
