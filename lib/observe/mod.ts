/**
 * Observability shared by the long-running modes (daemon, controller): the Prometheus registry
 * and metric types (prom.ts, no client library) and the management HTTP server (`/metrics`,
 * `/healthz`, `/readyz`). A platform module: it imports only the base (errors, log), so any
 * layer above may use it.
 */
export { collectProcessMetrics, Counter, Gauge, Histogram, Registry } from "./prom.ts";
export {
  type ManageServer,
  type ManageServerOptions,
  parseListenAddr,
  startManageServer,
} from "./manage_server.ts";
