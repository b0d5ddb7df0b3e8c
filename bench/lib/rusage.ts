/**
 * CPU of the children this process has reaped, to the microsecond: `getrusage(RUSAGE_CHILDREN)`
 * through libc (Deno FFI), as hyperfine reads it from `wait4`. The kernel adds a reaped child's
 * run time (`sum_exec_runtime`, ns, split into user and system by its tick ratio) to these
 * totals, so the difference around one call that runs alone is that call's CPU, exact to the
 * microsecond. `/proc/self/stat`'s `cutime`/`cstime` hold the same totals truncated to 10 ms
 * ticks (bench/lib/procfs.ts), which is what the benchmarks read before.
 */
import { childCpu, readCpu } from "./procfs.ts";

const RUSAGE_CHILDREN = -1;
/** `struct rusage` on 64-bit Linux: 2 timevals (16 bytes each) then 14 longs. */
const RUSAGE_LONGS = 18;

type Libc = { symbols: { getrusage(who: number, buf: Uint8Array<ArrayBuffer>): number } };
let libc: Libc | null | undefined;

function open(): Libc | null {
  if (libc === undefined) {
    try {
      libc = Deno.dlopen("libc.so.6", {
        getrusage: { parameters: ["i32", "buffer"], result: "i32" },
      }) as unknown as Libc;
    } catch {
      libc = null; // no FFI (permission, other libc): the tick figures only
    }
  }
  return libc;
}

/** User + system ms of every reaped child, µs-exact; NaN when getrusage is not reachable. */
export function childrenCpuMs(): number {
  const lib = open();
  if (!lib) return NaN;
  const buf = new BigInt64Array(RUSAGE_LONGS);
  if (lib.symbols.getrusage(RUSAGE_CHILDREN, new Uint8Array(buf.buffer)) !== 0) return NaN;
  const tv = (i: number) => Number(buf[i]) * 1e3 + Number(buf[i + 1]) / 1e3;
  return tv(0) + tv(2);
}

/** Both readings of the reaped children's CPU, ms: exact (getrusage) and in 10 ms ticks (/proc). */
export interface ChildCpu {
  exact: number;
  ticks: number;
}

export async function readChildCpu(): Promise<ChildCpu> {
  const ticks = childCpu(await readCpu("self")) * 1000;
  return { exact: childrenCpuMs(), ticks };
}

/** CPU of one call between two readings; `exact` is NaN without getrusage. */
export function cpuBetween(a: ChildCpu, b: ChildCpu): ChildCpu {
  return { exact: b.exact - a.exact, ticks: b.ticks - a.ticks };
}
