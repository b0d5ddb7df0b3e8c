/**
 * Kubernetes for hostnic's long-running modes: narrow interfaces (`Kube`), annotation parsing and
 * the node → vxnet assignment (pure), the RBAC the adapter needs, and `loadKube`, which builds the
 * `@kubernetes/client-node` adapter (client.ts) with its request discipline (transport.ts: token
 * bucket, retries with backoff and Retry-After; request.ts applies it), reply validation
 * (schemas.ts) and resumable list-then-watch (watch.ts). Every request carries
 * `User-Agent: hostnic/<version> (<component>)`.
 *
 * Invariants:
 * - The CNI plugin path never imports anything under lib/k8s (tests/k8s checks the module graph);
 *   the daemon, controller and admin modes load it with a literal dynamic import.
 * - Errors are `KubeError` (API/transport) and `AnnotationError` (a bad annotation), both naming
 *   the object or annotation; no stack traces or credentials in messages.
 * - Pure parts (annotations.ts, rbac.ts, types.ts, transport.ts) import no npm package and can be
 *   used alone.
 * - Retries never repeat a request that is unsafe to repeat, never pass the operation's deadline,
 *   and watches resume from the last resourceVersion instead of relisting.
 */
export * from "./annotations.ts";
export * from "./client.ts";
export * from "./errors.ts";
export * from "./rbac.ts";
export type * from "./types.ts";
