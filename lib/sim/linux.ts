/**
 * Linux backend of the simulator: makes the simulated cloud real with network namespaces.
 *
 * Topology (names from the scenario's `linux.prefix`, default `hns`):
 * - `<prefix>-vpc` (one per VPC router; `<prefix>-vpc-<id>` when there are several, routerless
 *   vxnets in `<prefix>-base`): a bridge `br-<vxnet suffix>` per vxnet holding the gateway
 *   (`manager_ip`) with a fixed MAC; ip_forward on, so vxnets of one VPC route to each other.
 * - `<prefix>-<instanceId>` per instance: `eth0` (veth) with the primary NIC's MAC and IP and a
 *   default route via the gateway.
 * - A NIC attached to an instance is a veth pair: the instance end carries the NIC's MAC and is
 *   named `eth<N>` (lowest free N) and left down, like a hot-plugged NIC; the VPC end is named
 *   `n<last 8 hex of the MAC>` and joins the vxnet bridge. Detach deletes the pair through the VPC
 *   end, because hostnic may have renamed the instance end or moved it into a pod namespace.
 *
 * The cloud SDN answers ARP for the addresses it assigned, whatever the node does with them (a
 * node may move a NIC's IP into a pod). We emulate that in the VPC namespace only, never touching
 * the nodes' kernels: a permanent neighbour `<ip> lladdr <mac> dev <bridge>`, a static fdb entry
 * `<mac> dev <port>` and `proxy_arp_wifi on` on every port, so the bridge replies to ARP requests
 * for known IPs itself and does not flood them to the other ports. (`neigh_suppress` was tried
 * first: the kernel skips proxy replies for requests that *arrive* on a suppressing port — it is
 * meant for tunnel ports in EVPN — so with every port suppressing, nothing is answered.)
 *
 * All changes are batched per namespace with `ip -batch` / `bridge -batch` (a spawn costs ~5 ms).
 * Invariant: nothing is created in the root namespace; `close()` deletes every namespace made.
 */
import { ExecError, type Runner } from "../linux/exec.ts";
import type { Logger } from "../log.ts";
import { SimApiError } from "./errors.ts";
import { formatIp } from "./ip.ts";
import type { World } from "./world.ts";

/** Where a NIC lives: enough to plug or unplug it without consulting the world again. */
export interface NicPlacement {
  nicId: string;
  ip: number | null;
  vxnetId: string;
  instanceId: string;
}

export interface BridgeSpec {
  vxnetId: string;
  namespace: string;
  bridge: string;
  /** Fixed so instances' neighbour caches of the gateway stay valid when ports come and go. */
  mac: string;
  gateway: string;
  prefix: number;
}

export interface InstanceSpec {
  instanceId: string;
  namespace: string;
  primary: NicPlacement;
}

export interface Topology {
  /** Namespaces with routing on (VPC routers). */
  routerNamespaces: string[];
  /** Namespace for vxnets without a router (no routing between them). */
  baseNamespace: string | null;
  bridges: Map<string, BridgeSpec>;
  instances: Map<string, InstanceSpec>;
}

/** Name of the VPC-side veth of a NIC: `n` + the MAC's last 8 hex digits (unique per NIC). */
export function vpcLinkName(nicId: string): string {
  return "n" + nicId.replace(/:/g, "").slice(-8);
}

/** A locally administered MAC derived from a name (FNV-1a), stable across runs. */
export function stableMac(name: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  const b = [0x02, 0x5e, h >>> 24, (h >>> 16) & 255, (h >>> 8) & 255, h & 255];
  return b.map((x) => x.toString(16).padStart(2, "0")).join(":");
}

export function instanceNamespace(prefix: string, instanceId: string): string {
  return `${prefix}-${instanceId}`;
}

/** Derives namespace and bridge names for every vxnet and instance of the world. */
export function buildTopology(world: World, prefix: string): Topology {
  const routerIds = [...world.routers.keys()];
  const routerNs = (id: string) =>
    routerIds.length <= 1 ? `${prefix}-vpc` : `${prefix}-vpc-${id.replace(/^rtr-/, "")}`;
  const bridges = new Map<string, BridgeSpec>();
  let base = false;
  for (const v of world.vxnets.values()) {
    if (v.routerId === null) base = true;
    const namespace = v.routerId === null ? `${prefix}-base` : routerNs(v.routerId);
    const bridge = "br-" + v.id.replace(/^vxnet-/, "");
    bridges.set(v.id, {
      vxnetId: v.id,
      namespace,
      bridge,
      mac: stableMac(`${prefix}/${v.id}`),
      gateway: formatIp(v.managerIp),
      prefix: v.prefix,
    });
  }
  const instances = new Map<string, InstanceSpec>();
  for (const x of world.instances.values()) {
    const nic = world.nics.get(x.primaryNicId)!;
    instances.set(x.id, {
      instanceId: x.id,
      namespace: instanceNamespace(prefix, x.id),
      primary: { nicId: nic.id, ip: nic.privateIp, vxnetId: nic.vxnetId, instanceId: x.id },
    });
  }
  return {
    routerNamespaces: [...new Set(routerIds.map(routerNs))],
    baseNamespace: base ? `${prefix}-base` : null,
    bridges,
    instances,
  };
}

// ------------------------------------------------------------------ scripts (pure)

/** `ip -batch` lines for one VPC namespace: loopback plus a bridge with the gateway per vxnet. */
export function vpcScript(bridges: BridgeSpec[]): string[] {
  const lines = ["link set lo up"];
  for (const b of bridges) {
    lines.push(
      `link add ${b.bridge} address ${b.mac} type bridge`,
      `addr add ${b.gateway}/${b.prefix} dev ${b.bridge}`,
      `link set ${b.bridge} up`,
    );
  }
  return lines;
}

export interface PlugSpec {
  placement: NicPlacement;
  bridge: BridgeSpec;
  instanceNamespace: string;
  /** Name of the instance end. */
  ifName: string;
}

/** VPC-namespace lines that create a NIC's veth pair and register it with the SDN emulation. */
export function plugScript(p: PlugSpec): { ip: string[]; bridge: string[] } {
  const v = vpcLinkName(p.placement.nicId);
  const mac = p.placement.nicId;
  const ip = [
    `link add ${v} type veth peer name ${p.ifName} address ${mac} netns ${p.instanceNamespace}`,
    `link set ${v} master ${p.bridge.bridge}`,
    `link set ${v} type bridge_slave proxy_arp_wifi on`,
    `link set ${v} up`,
  ];
  if (p.placement.ip !== null) {
    ip.push(
      `neigh replace ${
        formatIp(p.placement.ip)
      } lladdr ${mac} dev ${p.bridge.bridge} nud permanent`,
    );
  }
  return { ip, bridge: [`fdb replace ${mac} dev ${v} master static`] };
}

/** VPC-namespace lines that remove a NIC's pair (both ends) and its SDN entries. */
export function unplugScript(placement: NicPlacement, bridge: BridgeSpec): string[] {
  const lines = [`link del ${vpcLinkName(placement.nicId)}`];
  if (placement.ip !== null) {
    lines.push(`neigh del ${formatIp(placement.ip)} dev ${bridge.bridge}`);
  }
  return lines;
}

/** Instance-namespace lines for the primary NIC (`eth0`), as the node's OS would configure it. */
export function primaryScript(spec: InstanceSpec, bridge: BridgeSpec): string[] {
  const lines = ["link set lo up", "link set eth0 up"];
  if (spec.primary.ip !== null) {
    lines.push(
      `addr add ${formatIp(spec.primary.ip)}/${bridge.prefix} dev eth0`,
      `route add default via ${bridge.gateway} dev eth0`,
    );
  }
  return lines;
}

/** Lowest `eth<N>` names not in `taken`. */
export function freeEthNames(taken: ReadonlySet<string>, count: number): string[] {
  const out: string[] = [];
  for (let n = 0; out.length < count; n++) {
    const name = `eth${n}`;
    if (!taken.has(name)) out.push(name);
  }
  return out;
}

// ------------------------------------------------------------------ apply

export interface LinuxDeps {
  runner: Runner;
  logger: Logger;
}

/**
 * Errors that mean "already gone" when deleting. "No such device" is a veth whose peer's
 * namespace was just deleted (a passthrough pod's NIC): the kernel is still unregistering it.
 */
const GONE =
  /Cannot find device|No such device|No such file or directory|No such process|not found/i;

export class LinuxNetwork {
  readonly topology: Topology;
  #deps: LinuxDeps;
  #made: string[] = [];

  constructor(world: World, o: { prefix: string; deps: LinuxDeps }) {
    this.topology = buildTopology(world, o.prefix);
    this.#deps = o.deps;
  }

  /** Every namespace this backend owns (VPC namespaces first). */
  namespaces(): string[] {
    const t = this.topology;
    return [
      ...new Set([
        ...t.routerNamespaces,
        ...(t.baseNamespace ? [t.baseNamespace] : []),
        ...[...t.instances.values()].map((i) => i.namespace),
      ]),
    ];
  }

  async #ip(netns: string | null, lines: string[], o: { force?: boolean } = {}) {
    if (lines.length === 0) return;
    const argv = [
      "ip",
      ...(o.force ? ["-force"] : []),
      ...(netns ? ["-n", netns] : []),
      "-batch",
      "-",
    ];
    try {
      await this.#deps.runner.run(argv, { stdin: lines.join("\n") + "\n" });
    } catch (err) {
      if (!(o.force && err instanceof ExecError && onlyGone(err.stderr))) throw err;
    }
  }

  async #bridge(netns: string, lines: string[]) {
    if (lines.length === 0) return;
    await this.#deps.runner.run(["bridge", "-n", netns, "-batch", "-"], {
      stdin: lines.join("\n") + "\n",
    });
  }

  async #existingNamespaces(): Promise<Set<string>> {
    const { stdout } = await this.#deps.runner.run(["ip", "-j", "netns", "list"]);
    const list = stdout.trim() === "" ? [] : JSON.parse(stdout) as { name: string }[];
    return new Set(list.map((n) => n.name));
  }

  /** Creates the VPC namespaces with their bridges and every instance with its eth0. */
  async setup(): Promise<void> {
    const wanted = this.namespaces();
    const existing = await this.#existingNamespaces();
    const clash = wanted.find((n) => existing.has(n));
    if (clash !== undefined) {
      throw new SimApiError(
        5000,
        `Namespace "${clash}" already exists (left over from an earlier run?); ` +
          `remove it with "hostnic sim down --scenario <file>"`,
      );
    }
    try {
      this.#made = [...wanted];
      await this.#ip(null, wanted.map((n) => `netns add ${n}`));
      const t = this.topology;
      for (const ns of [...t.routerNamespaces, ...(t.baseNamespace ? [t.baseNamespace] : [])]) {
        const bridges = [...t.bridges.values()].filter((b) => b.namespace === ns);
        await this.#ip(ns, vpcScript(bridges));
        if (ns !== t.baseNamespace) {
          await this.#deps.runner.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], { netns: ns });
        }
      }
      for (const spec of t.instances.values()) await this.#bootInstance(spec);
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  async #bootInstance(spec: InstanceSpec) {
    const bridge = this.#bridgeOf(spec.primary.vxnetId);
    await this.#plug([spec.primary], new Map([[spec.primary.nicId, "eth0"]]));
    await this.#ip(spec.namespace, primaryScript(spec, bridge));
  }

  #bridgeOf(vxnetId: string): BridgeSpec {
    const b = this.topology.bridges.get(vxnetId);
    if (!b) throw new SimApiError(5000, `InternalError, vxnet [${vxnetId}] has no bridge`);
    return b;
  }

  #instance(instanceId: string): InstanceSpec {
    const i = this.topology.instances.get(instanceId);
    if (!i) throw new SimApiError(5000, `InternalError, instance [${instanceId}] has no namespace`);
    return i;
  }

  async #linkNames(netns: string): Promise<Set<string>> {
    const { stdout } = await this.#deps.runner.run(["ip", "-n", netns, "-j", "link", "show"]);
    const links = JSON.parse(stdout) as { ifname: string }[];
    return new Set(links.map((l) => l.ifname));
  }

  async #plug(placements: NicPlacement[], names: Map<string, string>) {
    const byNs = new Map<string, { ip: string[]; bridge: string[] }>();
    for (const p of placements) {
      const bridge = this.#bridgeOf(p.vxnetId);
      const s = plugScript({
        placement: p,
        bridge,
        instanceNamespace: this.#instance(p.instanceId).namespace,
        ifName: names.get(p.nicId)!,
      });
      const acc = byNs.get(bridge.namespace) ?? { ip: [], bridge: [] };
      acc.ip.push(...s.ip);
      acc.bridge.push(...s.bridge);
      byNs.set(bridge.namespace, acc);
    }
    for (const [ns, s] of byNs) {
      await this.#ip(ns, s.ip);
      await this.#bridge(ns, s.bridge);
    }
  }

  /** Hot-plugs NICs into their instances (the AttachNics job's effect). */
  async attach(placements: NicPlacement[]): Promise<void> {
    const names = new Map<string, string>();
    const byInstance = Map.groupBy(placements, (p) => p.instanceId);
    for (const [instanceId, list] of byInstance) {
      const taken = await this.#linkNames(this.#instance(instanceId).namespace);
      freeEthNames(taken, list.length).forEach((n, i) => names.set(list[i].nicId, n));
    }
    await this.#plug(placements, names);
    this.#deps.logger.debug("nics plugged", { nics: placements.map((p) => p.nicId) });
  }

  /** Unplugs NICs via their VPC ends (the DetachNics job's effect); already-gone is fine. */
  async detach(placements: NicPlacement[]): Promise<void> {
    const byNs = new Map<string, string[]>();
    for (const p of placements) {
      const bridge = this.#bridgeOf(p.vxnetId);
      byNs.set(bridge.namespace, [
        ...(byNs.get(bridge.namespace) ?? []),
        ...unplugScript(p, bridge),
      ]);
    }
    for (const [ns, lines] of byNs) await this.#ip(ns, lines, { force: true });
    this.#deps.logger.debug("nics unplugged", { nics: placements.map((p) => p.nicId) });
  }

  /**
   * A node reboot: its kernel state is gone. Unplug everything of the instance through the VPC
   * ends (a process still inside the old namespace would otherwise keep those links alive on the
   * bridge), recreate the namespace with eth0, and hot-plug its attached NICs again.
   */
  async reboot(instanceId: string, attached: NicPlacement[]): Promise<void> {
    const spec = this.#instance(instanceId);
    await this.detach([spec.primary, ...attached]);
    await this.#ip(null, [`netns del ${spec.namespace}`], { force: true });
    await this.#ip(null, [`netns add ${spec.namespace}`]);
    await this.#bootInstance(spec);
    if (attached.length > 0) await this.attach(attached);
  }

  /** Deletes every namespace made (VPC namespaces first: that removes all veth pairs at once). */
  async close(): Promise<void> {
    if (this.#made.length === 0) return;
    const existing = await this.#existingNamespaces();
    const gone = this.#made.filter((n) => existing.has(n));
    this.#made = [];
    await this.#ip(null, gone.map((n) => `netns del ${n}`), { force: true });
  }
}

/** Whether every error line of a forced `ip -batch` says "already gone". */
export function onlyGone(stderr: string): boolean {
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) =>
    l !== "" && !/^Command failed/.test(l)
  );
  return lines.every((l) => GONE.test(l));
}

/** Namespaces whose name starts with `<prefix>-` (for `hostnic sim down`). */
export async function leftoverNamespaces(runner: Runner, prefix: string): Promise<string[]> {
  const { stdout } = await runner.run(["ip", "-j", "netns", "list"]);
  const list = stdout.trim() === "" ? [] : JSON.parse(stdout) as { name: string }[];
  return list.map((n) => n.name).filter((n) => n.startsWith(`${prefix}-`));
}

/** Deletes the given namespaces (already-gone is fine). */
export async function deleteNamespaces(runner: Runner, names: string[]): Promise<void> {
  if (names.length === 0) return;
  try {
    await runner.run(["ip", "-force", "-batch", "-"], {
      stdin: names.map((n) => `netns del ${n}`).join("\n") + "\n",
    });
  } catch (err) {
    if (!(err instanceof ExecError && onlyGone(err.stderr))) throw err;
  }
}
