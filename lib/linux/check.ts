/**
 * CHECK: compares what a mode's setup should have made (`Desired`, derived from the same spec as
 * the setup plan) with state read back from the kernel, and lists each difference as a sentence
 * naming the object, e.g. `node: rule 1536 from 172.22.1.5 lookup 261 is missing`.
 */
import {
  type AddrSpec,
  describeAddr,
  describeNeigh,
  describeRoute,
  describeRule,
  findRoute,
  hasAddr,
  hasNeigh,
  hasRule,
  linkByMac,
  linkByName,
  type NeighSpec,
  type NsState,
  type RouteSpec,
  type RuleSpec,
} from "./ip.ts";
import type { NsRole } from "./plan.ts";

export interface LinkExpectation {
  name: string;
  mac?: string;
  up?: boolean;
  mtu?: number;
  /** The link must carry no IPv4 address (a NIC whose address the pod owns). */
  noIpv4?: boolean;
}

/** What one namespace must contain. */
export interface Desired {
  links: LinkExpectation[];
  /** MACs that must not be present in this namespace (a NIC that belongs elsewhere). */
  absentMacs: string[];
  addrs: AddrSpec[];
  routes: RouteSpec[];
  rules: RuleSpec[];
  neighs: NeighSpec[];
}

export function emptyDesired(): Desired {
  return { links: [], absentMacs: [], addrs: [], routes: [], rules: [], neighs: [] };
}

/** Differences between `want` and `state`, each prefixed with `role`. */
export function diffDesired(want: Desired, state: NsState, role: NsRole): string[] {
  const out: string[] = [];
  const say = (s: string) => out.push(`${role}: ${s}`);
  for (const l of want.links) {
    const have = linkByName(state, l.name);
    if (!have) {
      say(`link ${l.name} is missing`);
      continue;
    }
    if (l.mac && have.mac?.toLowerCase() !== l.mac.toLowerCase()) {
      say(`link ${l.name} has MAC ${have.mac}, expected ${l.mac}`);
    }
    if (l.up && !have.up) say(`link ${l.name} is down`);
    if (l.mtu !== undefined && have.mtu !== l.mtu) {
      say(`link ${l.name} has MTU ${have.mtu}, expected ${l.mtu}`);
    }
    if (l.noIpv4) {
      for (const a of state.addrs.filter((a) => a.dev === l.name)) {
        say(`link ${l.name} still has address ${a.cidr}`);
      }
    }
  }
  for (const mac of want.absentMacs) {
    const l = linkByMac(state, mac);
    if (l) say(`link ${l.name} (${mac}) should not be here`);
  }
  for (const a of want.addrs) if (!hasAddr(state, a)) say(`${describeAddr(a)} is missing`);
  for (const r of want.routes) if (!findRoute(state, r)) say(`${describeRoute(r)} is missing`);
  for (const r of want.rules) if (!hasRule(state, r)) say(`${describeRule(r)} is missing`);
  for (const n of want.neighs) if (!hasNeigh(state, n)) say(`${describeNeigh(n)} is missing`);
  return out;
}
