/** The shared-mode testbed lives in lib/testbed/shared.ts (the benchmarks use it too). */
export * from "../../lib/testbed/shared.ts";
