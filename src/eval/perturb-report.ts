// The clean-against-perturbed table of a robustness run: per task and metric the clean score, the perturbed score
// (each ± its standard error where the harness has one) and the change, with a 95% interval of the change when
// both sides have a standard error (normal approximation; the two runs score the same items, so treating them as
// independent makes the interval conservative). Not scoring (harness.ts) nor the perturbations (perturb.ts).
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
      const se = cv.stderr !== null && pv.stderr !== null ? Math.hypot(cv.stderr, pv.stderr) : null;
      rows.push({ task: c.task, metric, clean: cv, perturbed: pv, delta, deltaCi95: se === null ? null : [delta - 1.96 * se, delta + 1.96 * se] });
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
  const lines = [`Perturbation ${spec} (seed ${seed}), applied to the inputs of every scored item:`, '', '| Task | Metric | Clean | Perturbed | Δ | Δ 95% CI |', '|---|---|---:|---:|---:|---:|'];
  for (const r of rows) {
    const ci = r.deltaCi95 ? `[${fmt(r.deltaCi95[0])}, ${fmt(r.deltaCi95[1])}]` : 'N/A';
    lines.push(`| ${r.task} | ${r.metric} | ${withErr(r.clean)} | ${withErr(r.perturbed)} | ${r.delta >= 0 ? '+' : ''}${fmt(r.delta)} | ${ci} |`);
  }
  return lines.join('\n') + '\n';
}
