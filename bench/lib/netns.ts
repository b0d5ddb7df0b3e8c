/**
 * Small namespace helpers for benchmarks: create and delete namespaces in one spawn each, and run
 * an `ip -batch` / `bridge -batch` script inside one namespace (a spawn costs ~5 ms, so build
 * scripts, not command sequences). Nothing here touches the root namespace except
 * `netns add`/`netns del` of the caller's own names.
 */
import { deleteNamespaces } from "../../lib/sim/mod.ts";
import type { Runner } from "../../lib/linux/exec.ts";

/** Creates the namespaces (one spawn), then brings `lo` up in each unless `lo: false`. */
export async function addNamespaces(
  runner: Runner,
  names: readonly string[],
  o: { lo?: boolean } = {},
): Promise<void> {
  if (names.length === 0) return;
  await runner.run(["ip", "-batch", "-"], {
    stdin: names.map((n) => `netns add ${n}`).join("\n") + "\n",
  });
  if (o.lo !== false) {
    await Promise.all(names.map((n) => runner.run(["ip", "-n", n, "link", "set", "lo", "up"])));
  }
}

/** Deletes the namespaces (and every link inside); already gone is fine. */
export async function removeNamespaces(runner: Runner, names: readonly string[]): Promise<void> {
  await deleteNamespaces(runner, [...names]);
}

/** Runs `ip -batch` lines inside a named namespace. */
export async function ipBatch(
  runner: Runner,
  netns: string,
  lines: readonly string[],
): Promise<void> {
  await runner.run(["ip", "-n", netns, "-batch", "-"], { stdin: lines.join("\n") + "\n" });
}

/** Runs `bridge -batch` lines inside a named namespace. */
export async function bridgeBatch(
  runner: Runner,
  netns: string,
  lines: readonly string[],
): Promise<void> {
  await runner.run(["bridge", "-n", netns, "-batch", "-"], { stdin: lines.join("\n") + "\n" });
}

/** Sets sysctls inside a namespace (`key=value` items). */
export async function sysctls(
  runner: Runner,
  netns: string,
  items: readonly string[],
): Promise<void> {
  await runner.run(["sysctl", "-q", "-w", ...items], { netns });
}
