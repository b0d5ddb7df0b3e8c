/**
 * Handlers used while the plugin cannot reach the hostnic daemon (and, until the daemon client
 * exists, always): ADD and CHECK ask the runtime to retry (code 11), STATUS says "not available"
 * (50), DEL and GC succeed because they must never fail for lack of the daemon.
 */
import type { CniHandlers } from "./dispatch.ts";
import { CniCode, CniError } from "./errors.ts";

/** The error ADD/CHECK (code 11) and STATUS (code 50) report when the daemon socket is unreachable. */
export function daemonUnreachable(socketPath: string, code: 11 | 50): CniError {
  return new CniError(code, `hostnic daemon socket "${socketPath}" is not reachable`, {
    details: "check that the hostnic-node pod on this node is running and ready " +
      "(kubectl -n kube-system get pods -o wide | grep hostnic-node) and look at its logs",
  });
}

export const unavailableHandlers: CniHandlers = {
  add(req) {
    throw daemonUnreachable(req.config.hostnic.socketPath, CniCode.TryAgainLater);
  },
  del() {
    // Nothing to release without the daemon; DEL of an unknown container succeeds.
  },
  check(req) {
    throw daemonUnreachable(req.config.hostnic.socketPath, CniCode.TryAgainLater);
  },
  status(req) {
    throw daemonUnreachable(req.config.hostnic.socketPath, CniCode.NotAvailable);
  },
  gc() {
    // Nothing is known to be stale without the daemon.
  },
};
