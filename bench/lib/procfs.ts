/**
 * What the kernel knows about a process, read from /proc: resident memory (`/proc/<pid>/status`)
 * and CPU time (`/proc/<pid>/stat`). The parsers are pure (tested on captured text); the readers
 * are one file read each.
 *
 * CPU time of a process's children is added to its `cutime`/`cstime` when the parent reaps them,
 * so the CPU of every plugin process the benchmark has waited for shows up in the benchmark's own
 * `/proc/self/stat`, and the `ip`/`iptables` commands of the daemon in the daemon's.
 */

/** Resident memory of a process, in bytes. */
export interface Rss {
  /** `VmRSS`: resident now. */
  rss: number;
  /** `VmHWM`: the peak resident size so far. */
  hwm: number;
  /** `RssAnon`, `RssFile`: anonymous memory (heaps) and mapped files (the executable's code). */
  anon: number;
  file: number;
}

/** Parses `/proc/<pid>/status` (sizes are in kB there). Throws when VmRSS is missing. */
export function parseStatus(text: string): Rss {
  const kb = (key: string): number | undefined => {
    const m = new RegExp(`^${key}:\\s+(\\d+)\\s+kB`, "m").exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const rss = kb("VmRSS");
  if (rss === undefined) throw new Error("No VmRSS in /proc status (a kernel thread or a zombie?)");
  return { rss, hwm: kb("VmHWM") ?? rss, anon: kb("RssAnon") ?? 0, file: kb("RssFile") ?? 0 };
}

/** CPU seconds of a process and of the children it has reaped. */
export interface CpuTimes {
  user: number;
  system: number;
  childUser: number;
  childSystem: number;
}

/**
 * Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may contain spaces
 * or parentheses itself, so fields are counted after the last `)`. `ticks` is `getconf CLK_TCK`
 * (100 on Linux for as long as it has had /proc).
 */
export function parseStat(text: string, ticks = 100): CpuTimes {
  const close = text.lastIndexOf(")");
  if (close < 0) throw new Error(`Not a /proc stat line: "${text.slice(0, 60)}"`);
  // After ")": field 3 (state) is index 0, so utime (field 14) is index 11.
  const f = text.slice(close + 2).trim().split(/\s+/);
  if (f.length < 15) throw new Error(`Short /proc stat line: "${text.slice(0, 60)}"`);
  const s = (i: number) => Number(f[i]) / ticks;
  return { user: s(11), system: s(12), childUser: s(13), childSystem: s(14) };
}

/** Own CPU seconds (user + system). */
export function ownCpu(t: CpuTimes): number {
  return t.user + t.system;
}

/** CPU seconds of reaped children (user + system). */
export function childCpu(t: CpuTimes): number {
  return t.childUser + t.childSystem;
}

/** `pid` = "self" or a number. */
export async function readRss(pid: number | "self"): Promise<Rss> {
  return parseStatus(await Deno.readTextFile(`/proc/${pid}/status`));
}

export async function readCpu(pid: number | "self"): Promise<CpuTimes> {
  return parseStat(await Deno.readTextFile(`/proc/${pid}/stat`));
}

/** The executable's name as the kernel has it (`/proc/<pid>/comm`), e.g. "deno". */
export async function readComm(pid: number): Promise<string> {
  return (await Deno.readTextFile(`/proc/${pid}/comm`)).trim();
}

export const MiB = 1024 * 1024;
