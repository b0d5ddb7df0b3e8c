/**
 * API-level failures of the simulator. Each carries the QingCloud `ret_code` and a message in the
 * platform's `<ErrorClass>, <detail>` pattern; the server turns it into `{ret_code, message}`
 * with HTTP 200, exactly like the real API. Messages never contain secrets.
 */
import { HostnicError } from "../errors.ts";

export const RetCode = {
  OK: 0,
  INVALID_PARAMETER: 1100,
  AUTH_FAILURE: 1200,
  MESSAGE_EXPIRED: 1300,
  PERMISSION_DENIED: 1400,
  NOT_FOUND: 2100,
  ALREADY_EXISTS: 2110,
  INSUFFICIENT_BALANCE: 2400,
  QUOTA_EXCEEDED: 2500,
  INTERNAL_ERROR: 5000,
  SERVER_BUSY: 5100,
  INSUFFICIENT_RESOURCES: 5200,
  SERVICE_UPDATING: 5300,
  DEPENDENCY_EXISTS: 5400,
} as const;

/** A request the simulated API rejects with `retCode`. */
export class SimApiError extends HostnicError {
  readonly retCode: number;
  constructor(retCode: number, message: string) {
    super("SIM_API_ERROR", message);
    this.retCode = retCode;
  }
}

export function invalidParameter(detail: string): SimApiError {
  return new SimApiError(RetCode.INVALID_PARAMETER, `InvalidParameter, ${detail}`);
}

export function missingParameter(name: string): SimApiError {
  return invalidParameter(`parameter [${name}] is required`);
}

export function notFound(id: string): SimApiError {
  return new SimApiError(RetCode.NOT_FOUND, `ResourceNotFound, resource [${id}] not found`);
}

export function permissionDenied(detail: string): SimApiError {
  return new SimApiError(RetCode.PERMISSION_DENIED, `PermissionDenied, ${detail}`);
}

export function authFailure(detail: string): SimApiError {
  return new SimApiError(RetCode.AUTH_FAILURE, `AuthFailure, ${detail}`);
}

export function quotaExceeded(detail: string): SimApiError {
  return new SimApiError(RetCode.QUOTA_EXCEEDED, `QuotaExceeded, ${detail}`);
}

/** Message class used when a fault is injected with an arbitrary code. */
export function injectedError(code: number, message?: string): SimApiError {
  const cls: Record<number, string> = {
    1100: "InvalidParameter",
    1200: "AuthFailure",
    1300: "MessageExpired",
    1400: "PermissionDenied",
    2100: "ResourceNotFound",
    2400: "InsufficientBalance",
    2500: "QuotaExceeded",
    5000: "InternalError",
    5100: "ServerBusy",
    5200: "InsufficientResources",
    5300: "ServiceUpdating",
    5400: "DependencyExists",
  };
  return new SimApiError(
    code,
    message ?? `${cls[code] ?? "Error"}, injected fault (simulator knob "errors")`,
  );
}
