/**
 * sysctl writes inside a network namespace. A process cannot enter another network namespace
 * (Deno cannot call setns, and /proc/sys/net always shows the caller's namespace), so all values
 * for another namespace go into a single `sysctl -w k=v ...` spawn, run through nsenter. Values
 * for the caller's own namespace are written to /proc/sys directly when the deps carry a
 * `ProcSys` (the daemon's: no spawn per pod), else they take the same spawn.
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

/** Writes sysctls of this process's own network namespace. */
export interface ProcSys {
  /** `echo <value> > /proc/sys/<key>` */
  write(key: string, value: string): Promise<void>;
}

/** `ProcSys` over the real /proc/sys. */
export class RealProcSys implements ProcSys {
  readonly #root: string;
  constructor(root = "/proc/sys") {
    this.#root = root;
  }
  async write(key: string, value: string): Promise<void> {
    if (key.split("/").some((p) => p === "" || p === "." || p === "..")) {
      throw new Error(`Invalid sysctl key "${key}"`);
    }
    await Deno.writeTextFile(`${this.#root}/${key}`, value);
  }
}

/**
 * Writes all values: through `deps.procSys` when `netns` is undefined (this process's own
 * namespace) and the deps have one, else in one spawn `sysctl -w k1=v1 k2=v2` (inside `netns`).
 */
export async function writeSysctls(
  deps: { runner: Runner; procSys?: ProcSys },
  values: SysctlValues,
  opts: { netns: string | undefined },
): Promise<void> {
  const entries = Object.entries(values);
  if (entries.length === 0) return;
  if (opts.netns === undefined && deps.procSys) {
    for (const [k, v] of entries) await deps.procSys.write(k, v);
    return;
  }
  await deps.runner.run(sysctlArgv(values), { netns: opts.netns });
}
