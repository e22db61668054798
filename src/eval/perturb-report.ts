// The clean-against-perturbed table of a robustness run: per task and metric the clean score, the perturbed score
// (each ± its standard error where the harness has one) and the change with a 95% interval: paired over items where
// both runs logged per-item scores of a mean metric, else from the two standard errors as if the runs were
// independent (conservative: they score the same items). Not scoring (harness.ts) nor the perturbations (perturb.ts).
import type { TaskResult } from './harness.js';
import type { MetricValue } from './metrics.js';

export interface RobustnessRow {
  task: string;
  metric: string;
  clean: MetricValue;
  perturbed: MetricValue;
  delta: number;
  /** 95% interval of perturbed − clean, or null when either side has no standard error. */
  deltaCi95: [number, number] | null;
  /** Whether the interval is the paired one (per-item differences) rather than the independent-runs one. */
  paired: boolean;
}

/**
 * Standard error of the mean per-item change of a metric, when both runs logged the same items with that metric as a
 * number (means over items: acc, exact_match, f1, …): the paired interval, much tighter than treating runs as independent.
 */
export function pairedStderr(clean: TaskResult, perturbed: TaskResult, metric: string): number | null {
  const a = clean.samples;
  const b = perturbed.samples;
  if (!a || !b || a.length !== b.length || a.length < 2) return null;
  const d: number[] = [];
  for (let i = 0; i < a.length; i++) {
    const x = a[i]![metric];
    const y = b[i]![metric];
    if (typeof x !== 'number' || typeof y !== 'number') return null;
    d.push(y - x);
  }
  const mean = d.reduce((s, v) => s + v, 0) / d.length;
  const v = d.reduce((s, x) => s + (x - mean) ** 2, 0) / (d.length - 1);
  return Math.sqrt(v / d.length);
}

export function robustnessRows(clean: readonly TaskResult[], perturbed: readonly TaskResult[]): RobustnessRow[] {
  const rows: RobustnessRow[] = [];
  clean.forEach((c, i) => {
    const p = perturbed[i];
    if (!p || p.task !== c.task) throw new Error(`robustnessRows: perturbed result ${i} is ${p?.task}, expected ${c.task}`);
    for (const [metric, cv] of Object.entries(c.metrics)) {
      const pv = p.metrics[metric];
      if (!pv) continue;
      const delta = pv.value - cv.value;
      const paired = pairedStderr(c, p, metric);
      const se = paired ?? (cv.stderr !== null && pv.stderr !== null ? Math.hypot(cv.stderr, pv.stderr) : null);
      rows.push({ task: c.task, metric, clean: cv, perturbed: pv, delta, deltaCi95: se === null ? null : [delta - 1.96 * se, delta + 1.96 * se], paired: paired !== null });
    }
  });
  return rows;
}

function fmt(x: number | null): string {
  if (x === null || Number.isNaN(x)) return 'N/A';
  return Math.abs(x) >= 1000 ? x.toFixed(2) : x.toFixed(4);
}

const withErr = (v: MetricValue): string => (v.stderr === null ? fmt(v.value) : `${fmt(v.value)} ± ${fmt(v.stderr)}`);

/** Markdown: task | metric | clean | perturbed | Δ | Δ 95% CI. */
export function formatRobustnessTable(rows: readonly RobustnessRow[], spec: string, seed: number): string {
  const lines = [`Perturbation ${spec} (seed ${seed}), applied to the inputs of every scored item (CI: p = paired over items, i = independent runs):`, '', '| Task | Metric | Clean | Perturbed | Δ | Δ 95% CI |', '|---|---|---:|---:|---:|---:|'];
  for (const r of rows) {
    const ci = r.deltaCi95 ? `[${fmt(r.deltaCi95[0])}, ${fmt(r.deltaCi95[1])}] ${r.paired ? 'p' : 'i'}` : 'N/A';
    lines.push(`| ${r.task} | ${r.metric} | ${withErr(r.clean)} | ${withErr(r.perturbed)} | ${r.delta >= 0 ? '+' : ''}${fmt(r.delta)} | ${ci} |`);
  }
  return lines.join('\n') + '\n';
}
