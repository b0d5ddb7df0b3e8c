/**
 * Kubernetes for hostnic's long-running modes: narrow interfaces (`Kube`), annotation parsing and
 * the node → vxnet assignment (pure), the RBAC the adapter needs, and `loadKube`, which builds the
 * `@kubernetes/client-node` adapter.
 *
 * Invariants:
 * - The CNI plugin path never imports anything under lib/k8s (tests/k8s checks the module graph);
 *   the daemon, controller and admin modes load it with a literal dynamic import.
 * - Errors are `KubeError` (API/transport) and `AnnotationError` (a bad annotation), both naming
 *   the object or annotation; no stack traces or credentials in messages.
 * - Pure parts (annotations.ts, rbac.ts, types.ts) import no npm package and can be used alone.
 */
export * from "./annotations.ts";
export * from "./client.ts";
export * from "./errors.ts";
export * from "./rbac.ts";
export type * from "./types.ts";
