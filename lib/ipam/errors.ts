/**
 * Typed errors of the block IPAM. Store errors (`ConflictError`, `AlreadyExistsError`,
 * `NotFoundError`) are what a `CasStore` throws; the allocator turns exhausted retries into
 * `IpamRetryError`, which callers map to "try again later".
 */
import { HostnicError } from "../errors.ts";

/** Update or delete carried a stale resourceVersion (HTTP 409 Conflict). */
export class ConflictError extends HostnicError {
  constructor(readonly kind: string, readonly objectName: string, options?: ErrorOptions) {
    super("IPAM_CONFLICT", `${kind} "${objectName}" was changed by someone else`, options);
  }
}

/** Create of a name that exists (HTTP 409 AlreadyExists). */
export class AlreadyExistsError extends HostnicError {
  constructor(readonly kind: string, readonly objectName: string, options?: ErrorOptions) {
    super("IPAM_ALREADY_EXISTS", `${kind} "${objectName}" already exists`, options);
  }
}

/** Update of a name that does not exist (HTTP 404). */
export class NotFoundError extends HostnicError {
  constructor(readonly kind: string, readonly objectName: string, options?: ErrorOptions) {
    super("IPAM_NOT_FOUND", `${kind} "${objectName}" does not exist`, options);
  }
}

/** Compare-and-swap lost too often in a row; the caller should retry later. */
export class IpamRetryError extends HostnicError {
  constructor(
    readonly operation: string,
    readonly attempts: number,
    options?: ErrorOptions,
  ) {
    super(
      "IPAM_RETRIES_EXHAUSTED",
      `IPAM ${operation} lost ${attempts} compare-and-swap races in a row; try again later`,
      options,
    );
  }
}

/** No address left in any block the pod may use. */
export class IpamExhaustedError extends HostnicError {
  constructor(readonly pools: string[], readonly details: string[]) {
    super(
      "IPAM_EXHAUSTED",
      `No free address in ${pools.map((p) => `"${p}"`).join(", ") || "any pool"}` +
        (details.length ? ` (${details.join("; ")})` : ""),
    );
  }
}

/** A requested fixed IP is held by another pod. */
export class IpInUseError extends HostnicError {
  constructor(
    readonly ip: string,
    readonly holder: { handle: string; namespace?: string; pod?: string; node?: string },
  ) {
    const who = holder.pod
      ? `pod "${holder.namespace ?? ""}/${holder.pod}"` +
        (holder.node ? ` on node "${holder.node}"` : "")
      : `handle "${holder.handle}"`;
    super("IPAM_IP_IN_USE", `IP "${ip}" is already used by ${who}`);
  }
}

/** A requested fixed IP is a reserved address of its pool (gateway, network, IaaS tail…). */
export class IpReservedError extends HostnicError {
  constructor(readonly ip: string, readonly block: string, readonly reason: string) {
    super("IPAM_IP_RESERVED", `IP "${ip}" is reserved in block "${block}": ${reason}`);
  }
}

/** A requested fixed IP lies in none of the pools or blocks the pod may use. */
export class IpOutsidePoolsError extends HostnicError {
  constructor(readonly ip: string, readonly scope: string[], readonly detail?: string) {
    super(
      "IPAM_IP_OUTSIDE_POOLS",
      `IP "${ip}" is outside every pool and block this pod may use (${
        scope.map((s) => `"${s}"`).join(", ") || "none"
      })${detail ? `: ${detail}` : ""}`,
    );
  }
}

/** A request was malformed (bad IP text, empty handle, no pools…). */
export class IpamRequestError extends HostnicError {
  constructor(readonly field: string, message: string) {
    super("IPAM_BAD_REQUEST", `Invalid IPAM request "${field}": ${message}`);
  }
}

/** Pool/vxnet data that block maths cannot use (blockSize larger than the pool, bad range…). */
export class IpamPoolError extends HostnicError {
  constructor(readonly pool: string, message: string) {
    super("IPAM_BAD_POOL", `Pool "${pool}": ${message}`);
  }
}

/** Create or update of an object the schema refuses (HTTP 422): bad name or bad spec. */
export class InvalidObjectError extends HostnicError {
  constructor(readonly kind: string, readonly objectName: string, readonly reason: string) {
    super("IPAM_INVALID_OBJECT", `${kind} "${objectName}" is invalid: ${reason}`);
  }
}
