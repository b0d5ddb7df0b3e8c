/**
 * CNI protocol layer of the hostnic plugin (spec 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0): environment
 * and stdin parsing, version negotiation, result and error encoding, and dispatch of ADD, DEL,
 * CHECK, STATUS and GC to a `CniHandlers` implementation. VERSION is answered here.
 *
 * Invariants:
 * - Loads fast: imports nothing outside `lib/` and no npm package (no zod, yaml, k8s client…);
 *   validation is hand-written and every message names the field or variable.
 * - `runCni` never throws. On failure stdout holds exactly one error object
 *   `{cniVersion, code, msg, details}`, stderr one line, and the exit code is 1. No stack traces.
 * - Results and errors are printed in the version the runtime asked for; a prevResult is read in
 *   its own version and can be re-encoded in any other (`convertResult`).
 * - Unknown config keys are ignored; hostnic's keys are validated and defaulted into
 *   `NetConf.hostnic`, so handlers get a complete typed config.
 * - All process I/O comes in through `CniIo`, so everything here runs in unit tests.
 */
export * from "./config.ts";
export * from "./dispatch.ts";
export * from "./env.ts";
export * from "./errors.ts";
export * from "./net.ts";
export * from "./result.ts";
export * from "./version.ts";
export { daemonUnreachable, unavailableHandlers } from "./unavailable.ts";
