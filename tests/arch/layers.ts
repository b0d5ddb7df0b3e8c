/**
 * The layer table: the one place that says which folder may import which. docs/architecture.md
 * mirrors it (tests/arch/docs_test.ts checks that the two list the same units).
 *
 * Rules (tests/arch/graph.ts applies them to every non-test .ts under lib/, cmd/ and main.ts):
 * - a file imports only its own unit or units of lower layers; units of one layer import each
 *   other only where the layer says `sideways: true` (the base files);
 * - no cycle between files;
 * - the daemon core (lib/daemon/*.ts, lib/daemon/kube/) imports a backend only through the
 *   backend's `mod.ts`; a backend imports no other backend;
 * - the simulator imports nothing from lib/iaas (SIM_MAY_IMPORT), and lib/iaas no simulator;
 * - no source file in lib/ over MAX_LINES lines.
 * A unit is a folder (ending in "/") or one file; a file belongs to the longest unit that
 * prefixes its path.
 */

export interface Layer {
  name: string;
  /** What the layer is for, one line (shown in docs/architecture.md). */
  job: string;
  units: string[];
  /** Units of this layer may import each other (still no cycles). */
  sideways?: boolean;
}

/** Bottom first. */
export const LAYERS: readonly Layer[] = [
  {
    name: "base",
    job: "errors, logging, version, the commander helper, an abortable wait: imported by everyone",
    units: ["lib/errors.ts", "lib/log.ts", "lib/version.ts", "lib/cli.ts", "lib/sleep.ts"],
    sideways: true,
  },
  {
    name: "platform",
    job: "one outside world each: kernel, state, cloud API, Kubernetes, CNI spec, metrics",
    units: ["lib/observe/", "lib/linux/", "lib/store/", "lib/iaas/", "lib/k8s/", "lib/cni/"],
  },
  {
    name: "protocol",
    job: "plugin/admin ⇄ daemon socket protocol and its request/reply types",
    units: ["lib/rpc/"],
  },
  {
    name: "domain",
    job: "decisions over the platform: the NIC pool, block IPAM, the daemon's config",
    units: ["lib/config.ts", "lib/nicpool/", "lib/ipam/"],
  },
  {
    name: "modes",
    job: "one per running program: node daemon, controller, CNI plugin, installer, simulator",
    units: [
      "lib/daemon/",
      "lib/controller/",
      "lib/plugin/",
      "lib/install/",
      "lib/sim/",
    ],
  },
  {
    name: "testbed",
    job: "clusters of simulated nodes for tests, the demo and benchmarks",
    units: ["lib/testbed/"],
  },
  {
    name: "harness",
    job: "the upstream e2e suite run against a testbed cluster (hostnic conformance)",
    units: ["lib/conformance/"],
  },
  { name: "entries", job: "one entry per mode: parse argv, build deps, run", units: ["cmd/"] },
  { name: "main", job: "mode dispatch only", units: ["main.ts"] },
];

/** The daemon's backends (one folder each); the core may import only their `mod.ts`. */
export const DAEMON_CORE = "lib/daemon/";
export const DAEMON_BACKENDS: readonly string[] = ["lib/daemon/nic/", "lib/daemon/shared/"];

/**
 * The simulator's folders and what it may take from lib/iaas: nothing (it writes its replies from
 * the API reference and checks signatures with its own code, docs/decisions.md).
 */
export const SIM_UNITS: readonly string[] = ["lib/sim/"];
export const IAAS_CLIENT = "lib/iaas/";
export const SIM_MAY_IMPORT: readonly string[] = [];

export const MAX_LINES = 600;

/**
 * Violations another helper's branch removes, reported as pending (not failures) until then.
 * An entry that no longer matches anything fails the check, so it is deleted when its fix lands.
 */
export interface Pending {
  kind: "cycle" | "size" | "sim";
  /** The file (size), the importing file (sim), or a folder every file of the cycle is in. */
  path: string;
  owner: string;
  why: string;
}

export const PENDING: readonly Pending[] = [];
