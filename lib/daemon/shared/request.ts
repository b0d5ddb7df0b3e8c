/**
 * Shared mode's request rules: the fixed IP a pod asks for (hostnic's annotation or Calico's
 * `ipAddrs`), and shared-mode failures as the socket protocol's reasons.
 */
import { HostnicError } from "../../errors.ts";
import { parseIp } from "../../ipam/mod.ts";
import { RpcError } from "../../rpc/protocol.ts";
import { isTransientKubeError } from "../kube/client.ts";

/** Calico's fixed-IP annotation (a JSON list of addresses), honoured like hostnic's own. */
export const CALICO_IP_ADDRS = "cni.projectcalico.org/ipAddrs";
export const CALICO_POD_IP = "cni.projectcalico.org/podIP";
export const CALICO_POD_IPS = "cni.projectcalico.org/podIPs";

/** A fixed IP asked for in a way shared mode cannot honour. */
export class SharedRequestError extends HostnicError {
  constructor(message: string) {
    super("SHARED_BAD_REQUEST", message);
  }
}

/** The fixed IP of a pod: hostnic's annotation (already in `req.ip`) or Calico's `ipAddrs`. */
export function fixedIpOf(
  reqIp: string | undefined,
  annotations: Record<string, string> | undefined,
): string | undefined {
  if (reqIp !== undefined) return reqIp;
  const raw = annotations?.[CALICO_IP_ADDRS];
  if (raw === undefined) return undefined;
  let list: unknown;
  try {
    list = JSON.parse(raw);
  } catch {
    throw new SharedRequestError(
      `Invalid annotation "${CALICO_IP_ADDRS}": ${JSON.stringify(raw)} is not a JSON list`,
    );
  }
  if (!Array.isArray(list) || list.some((x) => typeof x !== "string")) {
    throw new SharedRequestError(
      `Invalid annotation "${CALICO_IP_ADDRS}": ${JSON.stringify(raw)} must be a list of addresses`,
    );
  }
  const v4 = (list as string[]).filter((x) => parseIp(x) !== undefined);
  if (v4.length !== 1 || v4.length !== list.length) {
    throw new SharedRequestError(
      `Invalid annotation "${CALICO_IP_ADDRS}": ${
        JSON.stringify(raw)
      } must hold exactly one IPv4 address (hostnic is IPv4-only)`,
    );
  }
  return v4[0];
}

/**
 * Shared-mode failures as the socket protocol's reasons; undefined for anything else. Every
 * failure a retry can fix is CNI 11 ("try again later"): the API server unreachable, throttled or
 * answering 5xx/429 (shared mode cannot allocate without it), compare-and-swap races lost, a
 * pending release of the same container not finished yet.
 */
export function sharedRpcError(err: unknown): RpcError | undefined {
  const kube = transientKubeCause(err);
  if (kube) {
    return new RpcError(
      "NOT_READY",
      `The Kubernetes API server is not answering (${kube.message}); shared mode needs it to ` +
        "allocate the pod's address, try again later",
      { cniCode: 11, retryable: true },
    );
  }
  if (!(err instanceof HostnicError)) return undefined;
  switch (err.code) {
    case "IPAM_IP_IN_USE":
    case "IPAM_IP_RESERVED":
    case "IPAM_IP_OUTSIDE_POOLS":
      return new RpcError("CONFLICT", err.message, { cniCode: 101 });
    case "IPAM_BAD_REQUEST":
    case "SHARED_BAD_REQUEST":
      return new RpcError("BAD_REQUEST", err.message, { cniCode: 103 });
    case "IPAM_EXHAUSTED":
    case "IPAM_NAMESPACE_UNMAPPED":
      return new RpcError("POOL_EMPTY", err.message, { cniCode: 11, retryable: true });
    case "IPAM_RETRIES_EXHAUSTED":
    case "IPAM_CONFLICT":
      return new RpcError("POOL_TIMEOUT", err.message, { cniCode: 11, retryable: true });
    case "SHARED_RELEASE_PENDING":
      return new RpcError("NOT_READY", err.message, { cniCode: 11, retryable: true });
  }
  return undefined;
}

/** The transient Kubernetes error `err` is or wraps (causes are followed a few levels). */
function transientKubeCause(err: unknown): Error | undefined {
  for (let e = err, i = 0; e instanceof Error && i < 4; e = e.cause, i++) {
    if (isTransientKubeError(e)) return e;
  }
  return undefined;
}
