// A study's (or ablation grid's) HTML report beside its table.md: the table with each variant's changes over the
// base, val loss mean ± std with every seed's value, the difference from the baseline with Welch's 95% interval
// and p-value, and Chart.js plots — val loss per variant (mean and seeds), the differences with their intervals,
// and the training-loss curves averaged over seeds. Self-contained (Chart.js inlined). Not the study runner.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readMetrics } from '../train/metrics.js';
import { budgetLabel, type StudyPlan } from '../train/study-plan.js';
import { formatP, PLOT_FILE, type StudyReport, type StudyRow } from '../train/study.js';
import { writeFileAtomic } from '../util/atomic.js';
import { cpuName } from '../util/cpu.js';
import { chartBlock, esc, htmlPage, htmlTable, PALETTE, type ChartSpec } from './html.js';

export const STUDY_HTML = 'report.html';

const rowLabel = (r: StudyRow): string => (r.budget === null ? r.variant : `${r.variant}@${budgetLabel(r.budget)}`);
const signed = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(4)}`;

/** The training-loss curve of a row: at each logged step, the mean over its seeds' metrics.jsonl. */
function meanCurve(plan: StudyPlan, r: StudyRow): { x: number; y: number }[] {
  const cells = plan.cells.filter((c) => c.variant === r.variant && c.budget === r.budget);
  const sums = new Map<number, { s: number; n: number }>();
  for (const c of cells) {
    for (const m of readMetrics(join(c.dir, 'metrics.jsonl'))) {
      if (typeof m.loss !== 'number') continue;
      const e = sums.get(m.step) ?? { s: 0, n: 0 };
      sums.set(m.step, { s: e.s + m.loss, n: e.n + 1 });
    }
  }
  return [...sums].filter(([, e]) => e.n === cells.length).sort((a, b) => a[0] - b[0]).map(([x, e]) => ({ x, y: e.s / e.n }));
}

export function studyHTML(plan: StudyPlan, report: StudyReport): string {
  const rows = report.rows;
  const labels = rows.map(rowLabel);
  const change = (v: string): string => Object.entries(plan.changes[v] ?? {}).map(([k, x]) => `${k}=${typeof x === 'string' ? x : JSON.stringify(x)}`).join(', ') || '(base)';
  const head = ['variant', 'changes', 'steps', 'tokens/s', `val loss mean ± std (n=${plan.seeds.length})`, 'per seed', `Δ vs ${plan.baseline} [95% CI]`, 'p (Welch)'];
  const body = rows.map((r) => [
    rowLabel(r), change(r.variant), String(r.steps), Math.round(r.tokens_per_s).toLocaleString('en-US'),
    `${r.val_loss.mean.toFixed(4)} ± ${r.val_loss.std === null ? 'n/a' : r.val_loss.std.toFixed(4)}`, r.seeds_losses.map((x) => x.toFixed(4)).join(', '),
    r.vs_baseline === null ? 'baseline' : `${signed(r.vs_baseline.diff)} [${r.vs_baseline.low === null ? 'n/a' : `${signed(r.vs_baseline.low)}, ${signed(r.vs_baseline.high!)}`}]`,
    r.vs_baseline === null ? '' : formatP(r.vs_baseline.p),
  ]);
  const charts: ChartSpec[] = [];
  charts.push({
    id: 'val-loss', title: 'Val loss per variant (bar: mean over seeds; points: each seed)',
    config: {
      type: 'bar',
      data: {
        labels,
        datasets: [
          { type: 'bar', label: 'mean', data: rows.map((r) => r.val_loss.mean), backgroundColor: rows.map((r) => (r.variant === plan.baseline ? '#7f7f7f88' : '#1f77b488')) },
          ...plan.seeds.map((s, i) => ({ type: 'line', label: `seed ${s}`, data: rows.map((r) => r.seeds_losses[i] ?? null), showLine: false, pointRadius: 4, borderColor: PALETTE[(i + 1) % PALETTE.length], backgroundColor: PALETTE[(i + 1) % PALETTE.length] })),
        ],
      },
      options: { animation: false, maintainAspectRatio: false, scales: { y: { beginAtZero: false, title: { display: true, text: 'val loss (nats/token)' } } } },
    },
  });
  const vs = rows.filter((r) => r.vs_baseline !== null && r.vs_baseline.low !== null);
  if (vs.length) {
    charts.push({
      id: 'deltas', title: `Difference from ${plan.baseline} with Welch's 95% interval (green: lower loss, significant; red: higher, significant)`,
      config: {
        type: 'bar',
        data: {
          labels: vs.map(rowLabel),
          datasets: [
            { type: 'bar', label: '95% interval', data: vs.map((r) => [r.vs_baseline!.low, r.vs_baseline!.high]), backgroundColor: vs.map((r) => ((r.vs_baseline!.p ?? 1) < 0.05 ? (r.vs_baseline!.diff < 0 ? '#2ca02c99' : '#d6272899') : '#7f7f7f66')) },
            { type: 'line', label: 'Δ mean', data: vs.map((r) => r.vs_baseline!.diff), showLine: false, pointRadius: 5, pointStyle: 'rectRot', borderColor: '#000', backgroundColor: '#000' },
          ],
        },
        options: { animation: false, maintainAspectRatio: false, indexAxis: 'y', scales: { x: { title: { display: true, text: `Δ val loss vs ${plan.baseline}` } } } },
      },
    });
  }
  const curves = rows.map((r) => ({ r, pts: meanCurve(plan, r) })).filter((c) => c.pts.length);
  if (curves.length) {
    charts.push({
      id: 'curves', title: 'Training loss (mean over seeds)',
      config: {
        type: 'line',
        data: { datasets: curves.map((c, i) => ({ label: rowLabel(c.r), data: c.pts, borderColor: PALETTE[i % PALETTE.length], pointRadius: 0, borderWidth: 1.5, borderDash: c.r.variant === plan.baseline ? [6, 3] : [] })) },
        options: { animation: false, maintainAspectRatio: false, parsing: false, scales: { x: { type: 'linear', title: { display: true, text: 'step' } }, y: { title: { display: true, text: 'train loss' } } } },
      },
    });
  }
  const svgPath = join(plan.outDir, PLOT_FILE);
  const parts = [
    `<h1>Study ${esc(plan.name)}</h1>`,
    `<p>From ${esc(plan.file)}; ${plan.variants.length} variants × ${plan.budgets ? `${plan.budgets.length} budgets × ` : ''}${plan.seeds.length} seeds (${plan.seeds.join(', ')}); baseline ${esc(plan.baseline)}; val loss over ${plan.cells[0]!.config.full_val ? 'the whole val split' : `${plan.cells[0]!.config.eval_iters} sampled batches`}; CPU: ${esc(cpuName())}.</p>`,
    ...(plan.grid ? [`<p>Grid: ${plan.grid.map((g) => `${esc(g.key)} ∈ {${g.values.map((v) => esc(String(v))).join(', ')}}`).join(' × ')}.</p>`] : []),
    htmlTable(head, body),
    '<p class="muted">p: two-sided Welch t test of equal mean val loss against the baseline (* &lt; 0.05, ** &lt; 0.01, *** &lt; 0.001); the interval is Welch\'s 95% t interval of the difference.</p>',
    ...charts.map(chartBlock),
    ...(report.files.plot && existsSync(svgPath) ? ['<h3>L(N) fit and frontier</h3>', readFileSync(svgPath, 'utf8')] : []),
  ];
  return htmlPage(`Study ${plan.name}`, parts.join('\n'), charts);
}

/** Writes report.html into the study's out_dir; returns its path. */
export function writeStudyHTML(plan: StudyPlan, report: StudyReport): string {
  const path = join(plan.outDir, STUDY_HTML);
  writeFileAtomic(path, studyHTML(plan, report));
  return path;
}
