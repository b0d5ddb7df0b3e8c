/**
 * sysctl writes inside a network namespace. A process cannot enter another network namespace
 * (Deno cannot call setns, and /proc/sys/net always shows the caller's namespace), so all values
 * for one namespace go into a single `sysctl -w k=v ...` spawn, run through nsenter when needed.
 *
 * Keys use the slash form (`net/ipv4/conf/<dev>/rp_filter`) so device names containing dots
 * cannot be misread as path separators.
 */
import type { Runner } from "./exec.ts";

/** Key → value, e.g. `{ "net/ipv4/ip_forward": "1" }`. Insertion order is write order. */
export type SysctlValues = Record<string, string>;

/** `net/ipv4/conf/<dev>/<name>` */
export function ipv4ConfKey(dev: string, name: string): string {
  return `net/ipv4/conf/${dev}/${name}`;
}

/** `net/ipv4/neigh/<dev>/<name>` */
export function ipv4NeighKey(dev: string, name: string): string {
  return `net/ipv4/neigh/${dev}/${name}`;
}

/**
 * Forwarding for the node and, explicitly, for each device that receives traffic to forward.
 * Setting `ip_forward` alone is not enough when several writers race: the kernel's forwarding
 * handler restores and retries under contention on the RTNL lock, and devices created meanwhile
 * were seen to keep forwarding 0 (50 concurrent pod setups). The per-device keys are exact.
 */
export function forwardingSysctls(devs: string[]): SysctlValues {
  const values: SysctlValues = { "net/ipv4/ip_forward": "1" };
  for (const dev of devs) values[ipv4ConfKey(dev, "forwarding")] = "1";
  return values;
}

/** argv that writes `values` (`sysctl -q -w k=v ...`). */
export function sysctlArgv(values: SysctlValues): string[] {
  return ["sysctl", "-q", "-w", ...Object.entries(values).map(([k, v]) => `${k}=${v}`)];
}

/** Writes all values in one spawn: `sysctl -w k1=v1 k2=v2` (inside `netns` when given). */
export async function writeSysctls(
  deps: { runner: Runner },
  values: SysctlValues,
  opts: { netns: string | undefined },
): Promise<void> {
  if (Object.keys(values).length === 0) return;
  await deps.runner.run(sysctlArgv(values), { netns: opts.netns });
}
