/**
 * The QingCloud API simulator (`hostnic sim`): a local server that speaks the subset of
 * `https://api.qingcloud.com/iaas/` hostnic uses — same paths, parameters, signature check,
 * `{ret_code, message}` envelope and asynchronous jobs as reference/qingcloud-api.md — backed by
 * an in-memory cloud loaded from a scenario file, with fault knobs (job latency, injected errors,
 * dropped connections, rate limit) and per-action call counters. With `linux: true` it makes the
 * cloud real on this machine: namespaces for the VPC router and the instances, veth pairs for NICs.
 *
 * Invariants: every §5 rule of the spec is enforced by the state model (world.ts) and answered
 * with the platform's error codes; secrets are never logged or returned (except by
 * `clientConfig()`, whose purpose is to hand them to a client); fault injection is reproducible
 * from the seeds; `close()` leaves no namespace, link or socket behind.
 *
 * Layout: scenario.ts (file → Scenario), world.ts (state + invariants: a composition of
 * world/tables.ts and one module per resource under world/), params.ts (decoding), auth.ts
 * (signature check), actions.ts (replies), knobs.ts, server.ts (HTTP, control, jobs timer),
 * linux.ts (namespaces), ip.ts, prng.ts, errors.ts.
 */
export { parseScenario, type Scenario, scenarioFromObject } from "./scenario.ts";
export {
  type SimControl,
  type SimServer,
  type SimWorld,
  startSim,
  type StartSimOptions,
} from "./server.ts";
export { DEFAULT_KNOBS, type ErrorKnob, type Knobs, parseKnobs } from "./knobs.ts";
export { RetCode, SimApiError } from "./errors.ts";
export type { Instance, Job, JobStatus, Nic, NicStatus, Tag, Vip, Vxnet } from "./world.ts";
export { NICS_PER_INSTANCE, NICS_PER_VXNET } from "./world.ts";
export { deleteNamespaces, instanceNamespace, leftoverNamespaces, vpcLinkName } from "./linux.ts";
