/**
 * Phase marks of one plugin process, for the benchmark's per-phase split (docs/benchmarks.md,
 * "Where a plugin call's time goes"). Off unless `HOSTNIC_CNI_TRACE=1` is in the environment:
 * then each mark records the wall clock (epoch ms, sub-ms) and the CPU the process has used so
 * far (every thread's `/proc/self/task/<tid>/schedstat`, ns), and `traceLine` is one stderr line
 * `hostnic-trace {"marks":[…]}` written just before exit. Off, a mark is one closure call.
 */

/** Records the end of a phase (`read`, `parsed`, `rpc-start`, `rpc-done`, `written`…). */
export type Mark = (phase: string) => void;

export interface TraceMark {
  phase: string;
  /** Epoch milliseconds (`performance.timeOrigin + performance.now()`). */
  t: number;
  /** CPU time of the whole process so far, ms (all threads). */
  cpu: number;
}

export const TRACE_ENV = "HOSTNIC_CNI_TRACE";
export const TRACE_PREFIX = "hostnic-trace ";

/** Sum of every thread's run time from /proc (ns → ms); NaN where /proc is not readable. */
export function processCpuMs(): number {
  let ns = 0;
  try {
    for (const t of Deno.readDirSync("/proc/self/task")) {
      try {
        ns += Number(Deno.readTextFileSync(`/proc/self/task/${t.name}/schedstat`).split(" ")[0]);
      } catch {
        // the thread ended between the listing and the read
      }
    }
  } catch {
    return NaN;
  }
  return ns / 1e6;
}

export interface Tracer {
  mark: Mark;
  /** The stderr line, or undefined when tracing is off. */
  line(): string | undefined;
}

export function tracer(enabled: boolean): Tracer {
  if (!enabled) return { mark: () => {}, line: () => undefined };
  const marks: TraceMark[] = [];
  return {
    mark: (phase) => {
      marks.push({ phase, t: performance.timeOrigin + performance.now(), cpu: processCpuMs() });
    },
    line: () => `${TRACE_PREFIX}${JSON.stringify({ marks })}\n`,
  };
}
