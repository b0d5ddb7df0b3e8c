/**
 * A cloud NIC taken over by hostnic on the node (nic mode: one per pod; shared mode: one per
 * vxnet): found by MAC (the QingCloud NIC id), renamed `hostnic_<table>` with its previous name
 * kept in its alias, brought up with no IPv4 address of its own (the pod owns the IP), and given
 * route table <table> = the vxnet subnet on-link plus a default route via the vxnet gateway.
 * Release reverses it: table emptied, link down, previous name restored from the alias.
 */
import { type Desired, emptyDesired } from "./check.ts";
import { LinkConflictError, NicNotFoundError } from "./errors.ts";
import {
  addrDelLine,
  findRoute,
  linkByMac,
  linkByName,
  type NsState,
  routeAddLine,
  routeDelLine,
  type RouteSpec,
} from "./ip.ts";
import { nicLinkName, requireMac } from "./names.ts";
import type { IpOp } from "./plan.ts";
import { quoteArg, type VxnetSpec } from "./spec.ts";
import { forwardingSysctls, ipv4ConfKey, ipv4NeighKey, type SysctlValues } from "./sysctl.ts";

export interface NicTarget {
  mac: string;
  table: number;
}

/**
 * Ops that turn the link with `mac` into an up, address-less `hostnic_<table>`. Idempotent: a
 * NIC already named so is left as is. Throws `NicNotFoundError` when no link has the MAC and
 * `LinkConflictError` when another link already holds the name.
 */
export function nicAdoptOps(
  nic: NicTarget,
  args: { node: NsState; nodeNetns: string | undefined },
): IpOp[] {
  const mac = requireMac("nicMac", nic.mac);
  const want = nicLinkName(nic.table);
  const link = linkByMac(args.node, mac);
  if (!link) throw new NicNotFoundError(mac, "the node's network namespace");
  const ops: IpOp[] = [];
  const undo = (lines: string[]) => ({ netns: args.nodeNetns, lines });
  if (link.name !== want) {
    const clash = linkByName(args.node, want);
    if (clash) {
      throw new LinkConflictError(
        want,
        `Cannot rename NIC "${link.name}" (${mac}) to "${want}": link "${want}" (${clash.mac}) ` +
          `exists; route table ${nic.table} is already used by another NIC`,
      );
    }
    // Renaming needs the link down on older kernels.
    if (link.up) ops.push({ line: `link set dev ${link.name} down` });
    ops.push({
      line: `link set dev ${link.name} name ${want} alias ${quoteArg(link.name)}`,
      undo: undo([
        `link set dev ${want} down`,
        `link set dev ${want} name ${link.name} alias ${quoteArg(link.alias ?? "")}`,
        ...(link.up ? [`link set dev ${link.name} up`] : []),
      ]),
    });
  }
  if (!link.up || link.name !== want) {
    ops.push({
      line: `link set dev ${want} up`,
      undo: link.up ? undefined : undo([`link set dev ${want} down`]),
    });
  }
  for (const a of args.node.addrs.filter((a) => a.dev === link.name)) {
    ops.push({
      line: addrDelLine({ cidr: a.cidr, dev: want }),
      undo: undo([`address add ${a.cidr} dev ${want}`]),
    });
  }
  return ops;
}

/** `hn` + the MAC's 12 hex digits: a free, stable name for a NIC whose old name is taken. */
export function fallbackNicName(mac: string): string {
  return `hn${mac.replaceAll(":", "").toLowerCase()}`;
}

export function nicTableRoutes(table: number, vxnet: VxnetSpec): RouteSpec[] {
  const dev = nicLinkName(table);
  return [
    { dst: vxnet.cidr, dev, scope: "link", table },
    { dst: "default", via: vxnet.gateway, dev, table },
  ];
}

/** `route replace` lines for table <table>; routes that were absent are undone on failure. */
export function nicTableOps(
  table: number,
  vxnet: VxnetSpec,
  args: { node: NsState; nodeNetns: string | undefined },
): IpOp[] {
  return nicTableRoutes(table, vxnet).map((r) => ({
    line: routeAddLine(r),
    undo: findRoute(args.node, r) ? undefined : { netns: args.nodeNetns, lines: [routeDelLine(r)] },
  }));
}

/**
 * Node sysctls for a NIC that carries pod traffic without an address of its own:
 * - forwarding on (pod traffic is routed through the node);
 * - rp_filter 0 (all and the NIC): with hairpin, the `iif`-scoped rules are invisible to the
 *   reverse-path lookup, so strict mode would drop the pod's own packets coming back;
 * - arp_ignore 1: the node must not answer ARP on the NIC for its other addresses;
 * - accept_local 1: hairpinned packets may carry a source that is local to the node;
 * - shared mode: proxy_delay 0, or proxy-neighbour answers are delayed up to 0.8 s at random.
 */
export function nicSysctls(table: number, opts: { proxyNeighbours: boolean }): SysctlValues {
  const dev = nicLinkName(table);
  const values: SysctlValues = {
    ...forwardingSysctls([dev]),
    [ipv4ConfKey("all", "rp_filter")]: "0",
    [ipv4ConfKey(dev, "rp_filter")]: "0",
    [ipv4ConfKey(dev, "arp_ignore")]: "1",
    [ipv4ConfKey(dev, "accept_local")]: "1",
  };
  if (opts.proxyNeighbours) values[ipv4NeighKey(dev, "proxy_delay")] = "0";
  return values;
}

export function nicDesired(nic: NicTarget, vxnet: VxnetSpec): Desired {
  const d = emptyDesired();
  d.links.push({ name: nicLinkName(nic.table), mac: nic.mac, up: true, noIpv4: true });
  d.routes.push(...nicTableRoutes(nic.table, vxnet));
  return d;
}

/** Teardown ops for `hostnic_<table>`: empty its table, down, restore the name in its alias. */
export function nicReleaseOps(table: number, node: NsState): IpOp[] {
  const name = nicLinkName(table);
  const ops: IpOp[] = node.routes
    .filter((r) => r.table === table)
    .map((r) => ({ line: routeDelLine({ dst: r.dst, via: r.via, dev: r.dev, table }) }));
  const link = linkByName(node, name);
  if (link) {
    if (link.up) ops.push({ line: `link set dev ${name} down` });
    if (link.alias && link.alias !== name) {
      // If udev gave the old name to another link meanwhile, fall back to a MAC-derived one.
      const target = linkByName(node, link.alias) ? fallbackNicName(link.mac ?? "") : link.alias;
      ops.push({ line: `link set dev ${name} name ${target} alias ""`, claims: target });
    }
  }
  return ops;
}
