/**
 * The simulated cloud's state: access keys, routers, vxnets, instances, NICs, jobs, tags, VIPs,
 * security groups. Pure and synchronous, with an injected clock and PRNG; the HTTP layer decodes
 * parameters and formats replies, the Linux backend mirrors attachments into namespaces.
 *
 * Invariants (reference/qingcloud-api.md §5), each enforced here and raised as `SimApiError`:
 * - NIC ids are unique lowercase MACs 52:54:xx:xx:xx:xx, never reissued.
 * - available → (attach job succeeds) → in-use → (detach job succeeds) → available → deleted.
 *   An in-use NIC has exactly one instance; available NICs have none. The state changes when the
 *   job completes; a failed job changes nothing.
 * - While an attach/detach job is in flight on a NIC, other attach/detach/delete calls on it → 1400.
 * - In-use or primary (role 1) NICs cannot be deleted or (primary) detached → 1400.
 * - Attach needs a running instance; at most 64 NICs per instance (incl. primary and attaches in
 *   flight), at most 252 NICs per vxnet, `count` 1–252 → otherwise 1400 / 1100.
 * - IPs are unique per vxnet across NICs and VIPs, never the gateway, network or broadcast;
 *   explicit IPs outside the network → 1100, taken → 1400. Deleting a NIC frees its IP.
 * - Every batch is validated in full before anything changes.
 * - Resources of another owner are invisible to Describe* and give 1400 when mutated.
 * - Deleting a resource or a tag removes its tag bindings.
 *
 * This file only composes: the tables live in world/tables.ts (filled by world/load.ts), and each
 * resource's rules in its own module under world/ (nics, network, addresses, jobs, tags, vips,
 * security_groups, snapshot), as functions over the tables that `World` binds to itself.
 */
import * as addresses from "./world/addresses.ts";
import * as jobs from "./world/jobs.ts";
import { loadScenario } from "./world/load.ts";
import * as network from "./world/network.ts";
import * as nics from "./world/nics.ts";
import * as securityGroups from "./world/security_groups.ts";
import { snapshot } from "./world/snapshot.ts";
import { Tables } from "./world/tables.ts";
import * as tags from "./world/tags.ts";
import type { WorldOptions } from "./world/types.ts";
import * as vips from "./world/vips.ts";

export * from "./world/types.ts";

/** `f` with its tables argument fixed: `(w, ...args) => r` becomes `(...args) => r`. */
type Bound<F> = F extends (w: Tables, ...args: infer A) => infer R ? (...args: A) => R : never;

function on<F extends (w: Tables, ...args: never[]) => unknown>(w: Tables, f: F): Bound<F> {
  const g = f as unknown as (w: Tables, ...args: unknown[]) => unknown;
  return ((...args: unknown[]) => g(w, ...args)) as Bound<F>;
}

export class World extends Tables {
  constructor(o: WorldOptions) {
    super(o);
    loadScenario(this, o.scenario);
  }

  // addresses (world/addresses.ts)
  readonly usedIps = on(this, addresses.usedIps);
  readonly nicCountInVxnet = on(this, addresses.nicCountInVxnet);
  readonly availableIpCount = on(this, addresses.availableIpCount);

  // access keys, vxnets, instances, clusters (world/network.ts)
  readonly accessKey = on(this, network.accessKey);
  readonly describeAccessKeys = on(this, network.describeAccessKeys);
  readonly describeVxnets = on(this, network.describeVxnets);
  readonly vxnetInstanceIds = on(this, network.vxnetInstanceIds);
  readonly describeInstances = on(this, network.describeInstances);
  readonly setInstanceStatus = on(this, network.setInstanceStatus);
  readonly recordReboot = on(this, network.recordReboot);
  readonly addCluster = on(this, network.addCluster);
  readonly describeClusters = on(this, network.describeClusters);

  // NICs (world/nics.ts)
  readonly describeNics = on(this, nics.describeNics);
  readonly createNics = on(this, nics.createNics);
  readonly attachNics = on(this, nics.attachNics);
  readonly detachNics = on(this, nics.detachNics);
  readonly deleteNics = on(this, nics.deleteNics);
  readonly instanceNics = on(this, nics.instanceNics);

  // jobs (world/jobs.ts)
  readonly jobStatus = on(this, jobs.jobStatus);
  readonly dueJobs = on(this, jobs.dueJobs);
  readonly nextDueMs = on(this, jobs.nextDueMs);
  readonly finishJob = on(this, jobs.finishJob);
  readonly claimJob = on(this, jobs.claimJob);
  readonly settle = on(this, jobs.settle);
  readonly describeJobs = on(this, jobs.describeJobs);

  // tags (world/tags.ts)
  readonly tagsOf = on(this, tags.tagsOf);
  readonly bindingsOf = on(this, tags.bindingsOf);
  readonly createTag = on(this, tags.createTag);
  readonly describeTags = on(this, tags.describeTags);
  readonly attachTags = on(this, tags.attachTags);
  readonly detachTags = on(this, tags.detachTags);
  readonly deleteTags = on(this, tags.deleteTags);

  // VIPs (world/vips.ts)
  readonly allocateVips = on(this, vips.allocateVips);
  readonly describeVips = on(this, vips.describeVips);
  readonly releaseVips = on(this, vips.releaseVips);

  // security groups (world/security_groups.ts)
  readonly describeSecurityGroups = on(this, securityGroups.describeSecurityGroups);
  readonly securityGroup = on(this, securityGroups.securityGroup);
  readonly securityGroupInstances = on(this, securityGroups.securityGroupInstances);
  readonly addSecurityGroupRules = on(this, securityGroups.addSecurityGroupRules);
  readonly describeSecurityGroupRules = on(this, securityGroups.describeSecurityGroupRules);
  readonly deleteSecurityGroupRules = on(this, securityGroups.deleteSecurityGroupRules);
  readonly applySecurityGroup = on(this, securityGroups.applySecurityGroup);
  readonly createSecurityGroup = on(this, securityGroups.createSecurityGroup);

  /** Everything except secrets, as plain JSON (for `GET /_sim/state`). */
  readonly snapshot = on(this, snapshot);
}
