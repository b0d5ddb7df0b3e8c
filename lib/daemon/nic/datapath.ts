/**
 * The daemon's node datapath: `PodDatapath` over lib/linux, in the daemon's own network namespace
 * (the node), plus `PoolLinks` (is the NIC's link on the node yet?).
 *
 * Passthrough pods get routes back to the node over a service veth for the service CIDR and the
 * node's own address when a service CIDR is configured, so Services keep working without a
 * gateway NIC; the legacy `gw: 0.0.0.0` routes go through the gateway NIC instead.
 */
import { errorMessage } from "../../errors.ts";
import {
  checkPod,
  type LinuxDeps,
  NameLocks,
  NodeState,
  type PodSpec,
  type PodTeardownSpec,
  readNsState,
  setupGatewayNic,
  setupPod,
  teardownPod,
} from "../../linux/mod.ts";
import type { PoolLinks } from "../../nicpool/pool.ts";
import type { DatapathPod, DatapathResult, PodDatapath } from "./service.ts";

export interface LinuxDatapathOptions {
  /** The node's primary private IP (passthrough pods route it back over the service veth). */
  nodeIp?: string;
  /** Namespace of the node; undefined = this process's (production). Tests name one. */
  nodeNetns?: string;
}

export class LinuxPodDatapath implements PodDatapath {
  readonly #deps: LinuxDeps;
  readonly #opts: LinuxDatapathOptions;
  /**
   * Teardowns of different pods run in parallel; only those that give a NIC back the same name
   * take turns. Releasing a NIC renames its link back to the name it was attached under, and two
   * NICs may remember the same name (the kernel reuses a name once the first NIC was renamed), so
   * two concurrent releases could both pick it (lib/linux/name_locks.ts).
   */
  readonly #names = new NameLocks();
  /**
   * The node as the last batch left it: ADD and DEL plan from it instead of reading the node
   * first (one spawn less each); every node batch reads it back (lib/linux/node_state.ts).
   */
  readonly #state = new NodeState();

  constructor(deps: LinuxDeps, opts: LinuxDatapathOptions = {}) {
    this.#deps = deps;
    this.#opts = opts;
  }

  async setup(p: DatapathPod): Promise<DatapathResult> {
    return await setupPod(this.#deps, this.spec(p), { ...this.#node(), state: this.#state });
  }

  async teardown(p: DatapathPod): Promise<void> {
    const spec: PodTeardownSpec = {
      mode: p.mode,
      pod: {
        containerId: p.containerId,
        k8sNamespace: p.podNamespace,
        podName: p.podName,
        ifName: p.ifName,
      },
      ifName: p.ifName,
      netns: p.netns || undefined,
      ip: p.ip,
      table: p.table,
      nicMac: p.nicId,
      vethPrefix: p.settings.vethPrefix,
    };
    await teardownPod(this.#deps, spec, {
      ...this.#node(),
      names: this.#names,
      state: this.#state,
    });
  }

  check(p: DatapathPod): Promise<string[]> {
    return checkPod(this.#deps, this.spec(p), this.#node());
  }

  /**
   * `check` for many pods on one reading of the node (a GC pass): one `ip` spawn per pod plus
   * one, not two per pod. A pod whose check fails gets that failure as its difference.
   */
  async checkAll(pods: readonly DatapathPod[]): Promise<string[][]> {
    if (pods.length === 0) return [];
    const node = await readNsState(this.#deps, this.#opts.nodeNetns);
    const out: string[][] = [];
    for (const p of pods) {
      out.push(
        await checkPod(this.#deps, this.spec(p), this.#node(), node).catch((err) => [
          `check failed: ${errorMessage(err)}`,
        ]),
      );
    }
    return out;
  }

  async setupGatewayNic(
    g: { nicId: string; ip: string; cidr: string; gateway: string },
  ): Promise<void> {
    // Changes the node without reading it back: the kept reading goes.
    try {
      await setupGatewayNic(this.#deps, {
        nicMac: g.nicId,
        ip: g.ip,
        vxnet: { cidr: g.cidr, gateway: g.gateway },
      }, this.#node());
    } finally {
      this.#state.invalidate();
    }
  }

  /** The lib/linux spec of an allocation. */
  spec(p: DatapathPod): PodSpec {
    const pod = {
      containerId: p.containerId,
      k8sNamespace: p.podNamespace,
      podName: p.podName,
      ifName: p.ifName,
    };
    const vxnet = { cidr: p.cidr, gateway: p.gateway };
    if (p.mode === "passthrough") {
      const svc = p.settings.serviceCIDR;
      return {
        mode: "passthrough",
        pod,
        ifName: p.ifName,
        netns: p.netns,
        ip: p.ip,
        nicMac: p.nicId,
        vxnet,
        hostRoutes: svc && this.#opts.nodeIp ? [svc, `${this.#opts.nodeIp}/32`] : [],
        routes: (p.routes ?? []).map((r) => ({ dst: r.dst, via: r.gw })),
        vethPrefix: p.settings.vethPrefix,
        mtu: p.settings.mtu,
      };
    }
    return {
      mode: "nic",
      pod,
      ifName: p.ifName,
      netns: p.netns,
      ip: p.ip,
      table: p.table,
      nicMac: p.nicId,
      vxnet,
      vethPrefix: p.settings.vethPrefix,
      mtu: p.settings.mtu,
      hairpin: p.settings.hairpin,
    };
  }

  #node() {
    return this.#opts.nodeNetns ? { nodeNetns: this.#opts.nodeNetns } : {};
  }
}

/** Polls `ip -j link` (one spawn per poll for the whole batch) until every NIC's link shows up. */
export class LinuxPoolLinks implements PoolLinks {
  readonly #deps: LinuxDeps;
  readonly #netns?: string;
  readonly #intervalMs: number;

  constructor(deps: LinuxDeps, opts: { nodeNetns?: string; intervalMs?: number } = {}) {
    this.#deps = deps;
    this.#netns = opts.nodeNetns;
    this.#intervalMs = opts.intervalMs ?? 50;
  }

  async waitForMacs(macs: string[], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let missing = macs.map((m) => m.toLowerCase());
    let last = "";
    for (;;) {
      try {
        const have = await this.macs();
        missing = missing.filter((m) => !have.has(m));
        if (missing.length === 0) return;
      } catch (err) {
        last = errorMessage(err);
      }
      if (Date.now() >= deadline) {
        throw new Error(
          `NICs ${missing.join(", ")} were attached but no link with their MAC appeared on the ` +
            `node within ${Math.round(timeoutMs / 1000)} s${last ? ` (${last})` : ""}`,
        );
      }
      await new Promise((r) => setTimeout(r, this.#intervalMs));
    }
  }

  /** MACs of every link on the node, lower case. */
  async macs(): Promise<Set<string>> {
    const out = await this.#deps.runner.run(["ip", "-j", "link", "show"], {
      netns: this.#netns,
    });
    const links = JSON.parse(out.stdout) as { address?: string }[];
    return new Set(links.map((l) => (l.address ?? "").toLowerCase()).filter(Boolean));
  }
}
