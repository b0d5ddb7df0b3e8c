/**
 * In-memory `ControllerKube` and `LeaseApi` with the API server's semantics that the controller
 * relies on (resourceVersion compare-and-swap, AlreadyExists), for unit tests. The real ones are
 * in kube.ts; tests/e2e/controller_test.ts runs the controller against the real API server.
 */
import { AlreadyExistsError, ConflictError } from "../ipam/mod.ts";
import type { LeaseApi, LeaseRecord, StoredLease } from "./lease.ts";
import type {
  ConfigMapObject,
  ControllerKube,
  IpPoolStatus,
  NamespaceInfo,
  PoolStatus,
  VxNetPoolObject,
} from "./types.ts";

export class MemoryControllerKube implements ControllerKube {
  vxnetPool?: VxNetPoolObject;
  readonly configMaps = new Map<string, ConfigMapObject>();
  namespaces: NamespaceInfo[] = [];
  readonly poolStatus = new Map<string, IpPoolStatus>();
  statusWrites = 0;
  #rv = 0;

  getVxNetPool(name: string): Promise<VxNetPoolObject | undefined> {
    const v = this.vxnetPool?.name === name ? structuredClone(this.vxnetPool) : undefined;
    return Promise.resolve(v);
  }

  writeVxNetPoolStatus(name: string, status: PoolStatus): Promise<void> {
    if (this.vxnetPool?.name !== name) throw new Error(`no VxNetPool "${name}"`);
    this.vxnetPool.status = structuredClone(status);
    this.statusWrites++;
    return Promise.resolve();
  }

  setConfigMap(namespace: string, name: string, data: Record<string, string>): void {
    this.configMaps.set(`${namespace}/${name}`, { resourceVersion: String(++this.#rv), data });
  }

  getConfigMap(namespace: string, name: string): Promise<ConfigMapObject | undefined> {
    const cm = this.configMaps.get(`${namespace}/${name}`);
    return Promise.resolve(cm && structuredClone(cm));
  }

  replaceConfigMapData(o: {
    namespace: string;
    name: string;
    resourceVersion: string;
    data: Record<string, string>;
  }): Promise<void> {
    const cur = this.configMaps.get(`${o.namespace}/${o.name}`);
    if (!cur || cur.resourceVersion !== o.resourceVersion) {
      return Promise.reject(new ConflictError("ConfigMap", o.name));
    }
    this.setConfigMap(o.namespace, o.name, structuredClone(o.data));
    return Promise.resolve();
  }

  listNamespaces(): Promise<NamespaceInfo[]> {
    return Promise.resolve(structuredClone(this.namespaces));
  }

  writeIpPoolStatus(name: string, status: IpPoolStatus): Promise<void> {
    this.poolStatus.set(name, structuredClone(status));
    return Promise.resolve();
  }
}

export class MemoryLeaseApi implements LeaseApi {
  readonly #leases = new Map<string, StoredLease>();
  #rv = 0;
  /** When true every call fails (an unreachable API server). */
  down = false;

  #check(): void {
    if (this.down) throw new Error("API server unreachable");
  }

  get(namespace: string, name: string): Promise<StoredLease | undefined> {
    this.#check();
    const l = this.#leases.get(`${namespace}/${name}`);
    return Promise.resolve(l && structuredClone(l));
  }

  create(namespace: string, name: string, record: LeaseRecord): Promise<StoredLease> {
    this.#check();
    const key = `${namespace}/${name}`;
    if (this.#leases.has(key)) return Promise.reject(new AlreadyExistsError("Lease", name));
    const l = { resourceVersion: String(++this.#rv), record: structuredClone(record) };
    this.#leases.set(key, l);
    return Promise.resolve(structuredClone(l));
  }

  replace(
    namespace: string,
    name: string,
    o: { resourceVersion: string; record: LeaseRecord },
  ): Promise<StoredLease> {
    this.#check();
    const key = `${namespace}/${name}`;
    const cur = this.#leases.get(key);
    if (!cur || cur.resourceVersion !== o.resourceVersion) {
      return Promise.reject(new ConflictError("Lease", name));
    }
    const l = { resourceVersion: String(++this.#rv), record: structuredClone(o.record) };
    this.#leases.set(key, l);
    return Promise.resolve(structuredClone(l));
  }
}
