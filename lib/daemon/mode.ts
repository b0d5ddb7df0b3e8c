/**
 * The one place the daemon's allocation mode is chosen, once, at start:
 * - `shared` when Kubernetes is configured, the VxNetPool is ready and `hostnic-ipam-config`
 *   exists (shared/kube.ts decides and opens the IPAM stores);
 * - `nic` otherwise (nic and passthrough pods from the warm NIC pool).
 * A change of those inputs is announced and takes effect at the next restart.
 *
 * The backends are loaded with literal dynamic imports: without Kubernetes the shared backend
 * (and @kubernetes/client-node) is never loaded.
 */
import type { Logger } from "../log.ts";
import type { Backend, BackendDeps } from "./backend.ts";
import type { KubeBinding } from "./kube/mod.ts";

export interface ModeChoice {
  readonly name: "nic" | "shared";
  /** Builds the backend; it is ready to serve once this resolves (first GC pass done). */
  start(deps: BackendDeps): Promise<Backend>;
  /** Releases what the decision holds open (the IPAM stores, the ConfigMap watch). */
  close(): Promise<void>;
}

export async function chooseMode(o: {
  kube: KubeBinding | undefined;
  kubeconfig: string | undefined;
  calico: boolean;
  logger: Logger;
}): Promise<ModeChoice> {
  const nic = await import("./nic/mod.ts");
  const nicMode = (close: () => Promise<void>): ModeChoice => ({
    name: "nic",
    async start(deps) {
      const b = await nic.startNicBackend(deps, { warm: true });
      await settleOrClose(b);
      return b;
    },
    close,
  });
  if (!o.kube) return nicMode(() => Promise.resolve());
  const shared = await import("./shared/mod.ts");
  const decided = await shared.startSharedKube({
    kube: o.kube.kube,
    kubeconfig: o.kubeconfig,
    logger: o.logger,
    calico: o.calico,
  });
  if (!("ipam" in decided)) return nicMode(() => decided.close());
  return {
    name: "shared",
    async start(deps) {
      // Shared mode keeps no warm NICs: a vxnet's NIC comes with its first pod.
      const base = await nic.startNicBackend(deps, { warm: false });
      let b: Backend;
      try {
        b = await shared.startSharedBackend({ binding: decided, base, deps });
      } catch (err) {
        await base.close({ drainFree: false }).catch(() => {});
        throw err;
      }
      await settleOrClose(base);
      return b;
    },
    close: () => decided.close(),
  };
}

/** The pool backend's first GC pass; on failure the backend is closed before the error goes on. */
async function settleOrClose(b: { settle(): Promise<void>; close: Backend["close"] }) {
  try {
    await b.settle();
  } catch (err) {
    await b.close({ drainFree: false }).catch(() => {});
    throw err;
  }
}
