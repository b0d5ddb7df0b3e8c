/**
 * Figures: what a benchmark reports. A figure is one measured value with its unit; when it is
 * compared with a baseline measured in the same run, `ratio` = value / baseline.value unless the
 * benchmark measured in pairs and gives the median of the paired ratios (more robust when the
 * machine's load drifts during a run; the note then says so). A target applies to the ratio or to
 * the value itself and decides `met`. Benchmarks build figures with `figure()`, which fills in
 * `ratio` and `met`, so no module decides them its own way.
 */

export type TargetOp = "<=" | ">=";

export interface Target {
  op: TargetOp;
  value: number;
  /** What the target constrains. */
  of: "ratio" | "value";
}

export interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  ratio?: number;
  target?: Target;
  met?: boolean;
  note?: string;
}

/** A figure with `ratio` (when it has a baseline) and `met` (when it has a target) filled in. */
export function figure(f: Omit<Figure, "met">): Figure {
  const out: Figure = { ...f };
  if (f.baseline && out.ratio === undefined) out.ratio = f.value / f.baseline.value;
  if (out.ratio !== undefined && !f.baseline) {
    throw new Error(`Figure "${f.name}" has a ratio but no baseline`);
  }
  if (f.target) {
    const x = f.target.of === "ratio" ? out.ratio : f.value;
    if (x === undefined) {
      throw new Error(`Figure "${f.name}" has a target on its ratio but no baseline`);
    }
    out.met = f.target.op === "<=" ? x <= f.target.value : x >= f.target.value;
  }
  return out;
}

/** A value with 3 significant digits (no exponent for the magnitudes benchmarks produce). */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const abs = Math.abs(x);
  if (abs >= 100) return x.toFixed(0);
  if (abs >= 10) return x.toFixed(1);
  if (abs >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}

/** `name  value unit  (baseline b v, ratio r)  target ratio <= t  MET|MISSED  — note` */
export function formatFigure(f: Figure, o: { nameWidth?: number } = {}): string {
  const parts = [f.name.padEnd(o.nameWidth ?? 0), `${formatNumber(f.value)} ${f.unit}`];
  if (f.baseline) {
    const r = f.ratio ?? f.value / f.baseline.value;
    parts.push(
      `(baseline ${f.baseline.name} ${formatNumber(f.baseline.value)}, ratio ${r.toFixed(2)})`,
    );
  }
  if (f.target) {
    const what = f.target.of === "ratio" ? "ratio" : "value";
    parts.push(`target ${what} ${f.target.op} ${f.target.value}`, f.met ? "MET" : "MISSED");
  }
  if (f.note) parts.push(`— ${f.note}`);
  return parts.join("  ");
}
