/**
 * hostnic's version, in a module of its own so lib/ can name it (the Kubernetes client's
 * User-Agent) without importing main.ts. main.ts re-exports it.
 */
export const VERSION = "0.1.0";
