// The study's figure as a standalone SVG, written by hand (no plotting package): left, val loss against
// non-embedding parameters N on a log axis — one colour per budget, ±1 std bars over seeds, the fitted
// L(N) = a·N^(−α) + c, the compute-optimal cells ringed; right, every cell's val loss against its training FLOPs
// with the compute-optimal (Pareto) frontier drawn through them and its N_opt ∝ C^β. Not the fit (study-stats.ts).
import type { PowerLawFit, ScalingFit } from './study-stats.js';
import { budgetLabel, type StudyPlan } from './study-plan.js';
import type { FrontierPoint, StudyRow } from './study.js';

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];
const W = 480;
const H = 420;
const M = { left: 64, right: 16, top: 36, bottom: 72 };

interface Axis {
  lo: number;
  hi: number;
  log: boolean;
}

function axis(values: number[], log: boolean, pad = 0.06): Axis {
  const v = log ? values.map(Math.log10) : values;
  let lo = Math.min(...v);
  let hi = Math.max(...v);
  if (hi - lo < 1e-9) {
    lo -= 0.5;
    hi += 0.5;
  }
  const p = (hi - lo) * pad;
  return { lo: lo - p, hi: hi + p, log };
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Tick values inside an axis: 1-2-5 per decade on a log axis, a 1-2-5 step on a linear one. */
function ticks(a: Axis): number[] {
  const out: number[] = [];
  if (a.log) {
    for (let e = Math.floor(a.lo); e <= Math.ceil(a.hi); e++) {
      for (const m of a.hi - a.lo > 3 ? [1] : [1, 2, 5]) {
        const v = Math.log10(m) + e;
        if (v >= a.lo && v <= a.hi) out.push(10 ** v);
      }
    }
    return out;
  }
  const raw = (a.hi - a.lo) / 6;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  for (let v = Math.ceil(a.lo / step) * step; v <= a.hi; v += step) out.push(+v.toPrecision(10));
  return out;
}

const tickLabel = (v: number, log: boolean): string => (log ? v.toExponential(0).replace('e+', 'e') : String(+v.toPrecision(4)));

class Panel {
  readonly parts: string[] = [];

  constructor(readonly x0: number, readonly x: Axis, readonly y: Axis, title: string, xLabel: string, yLabel: string) {
    const [l, t, w, h] = [x0 + M.left, M.top, W - M.left - M.right, H - M.top - M.bottom];
    this.parts.push(`<rect x="${l}" y="${t}" width="${w}" height="${h}" fill="none" stroke="#333"/>`);
    this.parts.push(`<text x="${l + w / 2}" y="${t - 14}" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`);
    this.parts.push(`<text x="${l + w / 2}" y="${t + h + 36}" text-anchor="middle" font-size="12">${esc(xLabel)}</text>`);
    this.parts.push(`<text transform="translate(${x0 + 16},${t + h / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(yLabel)}</text>`);
    for (const v of ticks(x)) {
      const px = this.px(v);
      this.parts.push(`<line x1="${px}" y1="${t + h}" x2="${px}" y2="${t}" stroke="#eee"/><text x="${px}" y="${t + h + 16}" text-anchor="middle" font-size="11">${tickLabel(v, x.log)}</text>`);
    }
    for (const v of ticks(y)) {
      const py = this.py(v);
      this.parts.push(`<line x1="${l}" y1="${py}" x2="${l + w}" y2="${py}" stroke="#eee"/><text x="${l - 6}" y="${py + 4}" text-anchor="end" font-size="11">${tickLabel(v, y.log)}</text>`);
    }
  }

  px(v: number): number {
    const u = this.x.log ? Math.log10(v) : v;
    return +(this.x0 + M.left + ((u - this.x.lo) / (this.x.hi - this.x.lo)) * (W - M.left - M.right)).toFixed(2);
  }

  py(v: number): number {
    const u = this.y.log ? Math.log10(v) : v;
    return +(M.top + (1 - (u - this.y.lo) / (this.y.hi - this.y.lo)) * (H - M.top - M.bottom)).toFixed(2);
  }

  path(points: [number, number][], color: string, dash = ''): void {
    const d = points.map(([x, y], i) => `${i ? 'L' : 'M'}${this.px(x)},${this.py(y)}`).join(' ');
    this.parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`);
  }
}

export function studyPlotSVG(plan: StudyPlan, rows: StudyRow[], fits: { fit: ScalingFit | null; frontier: FrontierPoint[] | null; frontierFit: PowerLawFit | null }): string {
  const budgets = plan.budgets ?? [null];
  const lossLo = rows.map((r) => r.val_loss.mean - (r.val_loss.std ?? 0));
  const lossHi = rows.map((r) => r.val_loss.mean + (r.val_loss.std ?? 0));
  const left = new Panel(0, axis(rows.map((r) => r.params_non_embedding), true), axis([...lossLo, ...lossHi], false), 'Val loss against model size', 'non-embedding parameters N', 'val loss (nats/token)');
  budgets.forEach((b, i) => {
    const color = COLORS[i % COLORS.length]!;
    const rs = rows.filter((r) => r.budget === b).sort((p, q) => p.params_non_embedding - q.params_non_embedding);
    for (const r of rs) {
      const [x, y] = [left.px(r.params_non_embedding), left.py(r.val_loss.mean)];
      if (r.val_loss.std) left.parts.push(`<line x1="${x}" y1="${left.py(r.val_loss.mean - r.val_loss.std)}" x2="${x}" y2="${left.py(r.val_loss.mean + r.val_loss.std)}" stroke="${color}"/>`);
      left.parts.push(`<circle cx="${x}" cy="${y}" r="3.5" fill="${color}"><title>${esc(`${r.variant}${b === null ? '' : ` @ ${budgetLabel(b)}`}: ${r.val_loss.mean.toFixed(4)}`)}</title></circle>`);
    }
    const label = b === null ? 'val loss' : `budget ${budgetLabel(b)} ${plan.budgetUnit === 'flops' ? 'FLOPs' : 'tokens'}`;
    // The legend runs along the bottom, under the axis label, clear of the points.
    const lx = M.left + 4 + (i % 3) * 135;
    const ly = H - 16 - 14 * Math.floor(i / 3);
    left.parts.push(`<circle cx="${lx}" cy="${ly - 4}" r="3.5" fill="${color}"/><text x="${lx + 8}" y="${ly}" font-size="11">${esc(label)}</text>`);
  });
  const f = fits.fit;
  if (f) {
    const xs = rows.map((r) => r.params_non_embedding);
    const [lo, hi] = [Math.min(...xs), Math.max(...xs)];
    const curve: [number, number][] = Array.from({ length: 60 }, (_, i) => {
      const N = lo * (hi / lo) ** (i / 59);
      return [N, f.a * N ** -f.alpha + f.c];
    });
    left.path(curve, '#000', '5,3');
    left.parts.push(`<text x="${W - M.right - 6}" y="${M.top + 16}" text-anchor="end" font-size="11">${esc(`L(N) = ${f.a.toPrecision(3)}·N^(${(-f.alpha).toFixed(3)}) + ${f.c.toFixed(3)}`)}</text>`);
  }
  for (const p of fits.frontier ?? []) {
    left.parts.push(`<circle cx="${left.px(p.params_non_embedding)}" cy="${left.py(p.val_loss)}" r="8" fill="none" stroke="#000" stroke-width="1.5"/>`);
  }
  const panels = [left];
  const fr = fits.frontier;
  if (fr && fr.length >= 1 && plan.budgets) {
    // Right: every cell's val loss against its training FLOPs, the Pareto front through them, N_opt ∝ C^β.
    const right = new Panel(W, axis(rows.map((r) => r.train_flops), true, 0.08), axis([...lossLo, ...lossHi], false), 'Compute-optimal frontier', 'training FLOPs C', 'val loss (nats/token)');
    budgets.forEach((b, i) => {
      for (const r of rows.filter((x) => x.budget === b)) {
        right.parts.push(`<circle cx="${right.px(r.train_flops)}" cy="${right.py(r.val_loss.mean)}" r="3" fill="${COLORS[i % COLORS.length]}" fill-opacity="0.55"><title>${esc(`${r.variant} @ ${budgetLabel(b!)}: ${r.val_loss.mean.toFixed(4)}`)}</title></circle>`);
      }
    });
    right.path(fr.map((p) => [p.train_flops, p.val_loss] as [number, number]), '#000');
    for (const p of fr) {
      right.parts.push(`<circle cx="${right.px(p.train_flops)}" cy="${right.py(p.val_loss)}" r="5" fill="none" stroke="#000" stroke-width="1.5"/><text x="${right.px(p.train_flops) + 6}" y="${right.py(p.val_loss) - 7}" font-size="10">${esc(p.variant)}</text>`);
    }
    const g = fits.frontierFit;
    if (g) right.parts.push(`<text x="${W * 2 - M.right - 6}" y="${M.top + 16}" text-anchor="end" font-size="11">${esc(`frontier: N_opt ∝ C^${g.beta.toFixed(3)}`)}</text>`);
    panels.push(right);
  }
  const width = W * panels.length;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${H}" viewBox="0 0 ${width} ${H}" font-family="sans-serif">`,
    `<rect width="${width}" height="${H}" fill="#fff"/>`,
    ...panels.flatMap((p) => p.parts),
    '</svg>',
    '',
  ].join('\n');
}
