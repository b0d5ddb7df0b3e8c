/**
 * A process's resident memory split by where it lives, from /proc (Linux): for the soak's and the
 * RSS probes' samples. `brk` is the `[heap]` mapping (glibc malloc's main arena, where the spawn
 * residue of docs/benchmarks.md collects); `anon` includes it and V8's heap.
 */
export interface ProcMemory {
  rss: number;
  anon: number;
  file: number;
  brk: number;
}

/** Bytes; `pid` "self" for this process. Throws when the process is gone. */
export async function procMemory(pid: number | "self"): Promise<ProcMemory> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = (key: string) =>
    Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? NaN) * 1024;
  return {
    rss: kb("VmRSS"),
    anon: kb("RssAnon"),
    file: kb("RssFile"),
    brk: brkRss(await Deno.readTextFile(`/proc/${pid}/smaps`)),
  };
}

/** The Rss of the `[heap]` mapping in an smaps text (0 without one). */
export function brkRss(smaps: string): number {
  const at = smaps.search(/^[0-9a-f]+-[0-9a-f]+ .*\[heap\]$/m);
  if (at < 0) return 0;
  const kb = /^Rss:\s+(\d+) kB$/m.exec(smaps.slice(at));
  return Number(kb?.[1] ?? 0) * 1024;
}
