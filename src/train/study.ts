// `lmforge study`: runs every cell of a study plan (study-plan.ts) with the real trainer, one process per cell
// (study-worker.ts), up to `jobs` cells at once, resumably — a cell with study-cell.json is done and skipped, a cell
// with a checkpoint continues from it, anything else starts afresh — then builds the table (parameters
// stored/effective/active, FLOPs per token, tokens/s, peak RSS, val loss mean ± std over seeds, the difference from
// the baseline with Welch's 95% interval and p-value), the L(N) fit and compute-optimal frontier, and writes
// table.md, results.json and plot.svg atomically.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../util/atomic.js';
import { cpuName } from '../util/cpu.js';
import { UserError } from '../util/errors.js';
import { ensureDir } from '../util/fs.js';
import { findLatestComplete } from './checkpoint.js';
import { RunDir } from './run-dir.js';
import { budgetLabel, type StudyCell, type StudyPlan } from './study-plan.js';
import { studyPlotSVG } from './study-plot.js';
import { fitPowerLaw, fitScalingLaw, summarize, welchInterval, type PowerLawFit, type ScalingFit, type Summary } from './study-stats.js';
import { CELL_REQUEST_FILE, CELL_RESULT_FILE, type CellRequest, type CellResult } from './study-worker.js';

export const TABLE_FILE = 'table.md';
export const RESULTS_FILE = 'results.json';
export const PLOT_FILE = 'plot.svg';

export interface StudyRow {
  variant: string;
  budget: number | null;
  shape: string;
  steps: number;
  params_stored: number;
  params_effective: number;
  params_active: number;
  /** Kaplan's N: active parameters without embeddings. */
  params_non_embedding: number;
  flops_per_token: number;
  /** Training FLOPs the row's cells ran (steps × tokens per step × FLOPs per token). */
  train_flops: number;
  tokens_per_s: number;
  peak_rss_mb: number;
  val_loss: Summary;
  seeds_losses: number[];
  vs_baseline: { diff: number; low: number | null; high: number | null; df: number | null; p: number | null } | null;
}

export interface FrontierPoint {
  budget: number | null;
  train_flops: number;
  variant: string;
  params_non_embedding: number;
  val_loss: number;
}

export interface StudyReport {
  rows: StudyRow[];
  /** L(N) over the shapes at the largest budget (or the only one). */
  fit: (ScalingFit & { budget: number | null; points: { variant: string; N: number; loss: number }[] }) | null;
  /** The best shape of each budget (with FLOPs budgets: the minimum of each IsoFLOP curve). */
  budgetBest: FrontierPoint[] | null;
  /** The compute-optimal frontier: rows no cheaper row beats (Pareto front of val loss against training FLOPs). */
  frontier: FrontierPoint[] | null;
  /** N_opt = k·C^β fitted over the frontier. */
  frontierFit: PowerLawFit | null;
  ran: number;
  skipped: number;
  files: { table: string; results: string; plot: string | null };
}

/**
 * The first key path where a finished cell's config `a` and the plan's `b` differ, or null. out_dir is the cell's
 * place, not its config (a study may move); a key the saved config lacks altogether was added to lmforge after the
 * cell ran (it trained without it), so it does not make the cell stale.
 */
function firstDifference(a: unknown, b: unknown, path = ''): string | null {
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (path === '' && k === 'out_dir') continue;
      if (!(k in a)) continue;
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
      if (d) return d;
    }
    return null;
  }
  return a === b ? null : path || '(value)';
}

/**
 * A finished cell's result, 'changed' when it was made with another config (with redoChanged), else null. Without
 * redoChanged a changed cell is refused: its result would mix two studies.
 */
function finishedResult(cell: StudyCell, redoChanged = false): CellResult | 'changed' | null {
  const path = join(cell.dir, CELL_RESULT_FILE);
  if (!existsSync(path)) return null;
  const r = JSON.parse(readFileSync(path, 'utf8')) as CellResult;
  const diff = firstDifference(r.config, cell.config);
  if (diff && redoChanged) return 'changed';
  if (diff) throw new UserError(`${path}: this cell was run with a different ${diff} (${JSON.stringify(lookup(r.config, diff))} there, ${JSON.stringify(lookup(cell.config, diff))} now); remove ${cell.dir}, choose another out_dir, or pass --redo-changed`);
  return r;
}

function lookup(o: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[k] : undefined), o);
}

const WORKER = fileURLToPath(new URL('./study-worker.js', import.meta.url));

/**
 * Runs one cell in its own process (output appended to the cell's train.log); resolves to its result. A partial run
 * is resumed from its checkpoint unless `fresh` (a cell whose config changed starts over).
 */
async function runCell(cell: StudyCell, fresh: boolean): Promise<CellResult> {
  ensureDir(cell.dir, 'study cell directory');
  const run = new RunDir(cell.dir);
  const resume = !fresh && run.holdsRun() && findLatestComplete(cell.dir) !== null;
  // A cell started over loses its old result first, so that a kill now leaves a partial run, not a stale result.
  if (fresh) rmSync(join(cell.dir, CELL_RESULT_FILE), { force: true });
  const request: CellRequest = { config: cell.config, resume, overwrite: !resume };
  const requestPath = join(cell.dir, CELL_REQUEST_FILE);
  writeFileAtomic(requestPath, JSON.stringify(request, null, 2) + '\n');
  const logPath = join(cell.dir, 'train.log');
  const fd = openSync(logPath, 'a');
  try {
    const r = await new Promise<{ status: number | null; signal: NodeJS.Signals | null }>((done, failed) => {
      const child = spawn(process.execPath, [WORKER, requestPath], { stdio: ['ignore', fd, fd] });
      child.on('error', failed);
      child.on('close', (status, signal) => done({ status, signal }));
    });
    if (r.status !== 0) {
      const tail = readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-3).join(' | ');
      throw new UserError(`study cell ${cell.dir} failed (${r.signal ?? `exit ${r.status}`}): ${tail} (log: ${logPath}); fix it and rerun the study to continue`);
    }
  } finally {
    closeSync(fd);
  }
  const result = finishedResult(cell);
  if (!result || result === 'changed') throw new UserError(`study cell ${cell.dir}: finished without writing ${CELL_RESULT_FILE}`);
  return result;
}

/** Val loss of a cell: the whole val split when the config asks for it (noise-free), else the sampled estimate. */
function cellLoss(r: CellResult): number {
  const v = r.val_loss_full ?? r.val_loss;
  if (v === null) throw new UserError(`${r.config.out_dir}: no val loss recorded (eval_interval or max_iters 0?)`);
  return v;
}

export function buildRows(plan: StudyPlan, results: Map<StudyCell, CellResult>): StudyRow[] {
  const rows: StudyRow[] = [];
  const groups = new Map<string, StudyCell[]>();
  for (const cell of plan.cells) {
    const key = `${cell.variant}\u0000${cell.budget}`;
    groups.set(key, [...(groups.get(key) ?? []), cell]);
  }
  const lossesOf = (cells: StudyCell[]): number[] => cells.map((c) => cellLoss(results.get(c)!));
  for (const cells of groups.values()) {
    const first = cells[0]!;
    const rs = cells.map((c) => results.get(c)!);
    const losses = lossesOf(cells);
    const baseCells = plan.cells.filter((c) => c.variant === plan.baseline && c.budget === first.budget);
    const m = first.config.model;
    rows.push({
      variant: first.variant, budget: first.budget, shape: `${m.n_layer}×${m.n_embd}`,
      steps: first.config.max_iters,
      params_stored: first.cost.stored, params_effective: first.cost.effective, params_active: first.cost.active, params_non_embedding: first.cost.nonEmbedding,
      flops_per_token: first.cost.flopsPerToken, train_flops: first.config.max_iters * first.tokensPerStep * first.cost.flopsPerToken,
      tokens_per_s: rs.reduce((s, r) => s + r.tokens_per_s, 0) / rs.length,
      peak_rss_mb: Math.max(...rs.map((r) => r.peak_rss_bytes)) / 2 ** 20,
      val_loss: summarize(losses), seeds_losses: losses,
      vs_baseline: first.variant === plan.baseline ? null : welchInterval(losses, lossesOf(baseCells)),
    });
  }
  return rows;
}

export type StudyFits = Pick<StudyReport, 'fit' | 'budgetBest' | 'frontier' | 'frontierFit'>;

const pointOf = (r: StudyRow): FrontierPoint => ({ budget: r.budget, train_flops: r.train_flops, variant: r.variant, params_non_embedding: r.params_non_embedding, val_loss: r.val_loss.mean });

/**
 * The rows on the Pareto front of (training FLOPs, mean val loss): no row that cost at most as much does better.
 * Costs within `tolerance` (relative) count as equal, since step counts round an IsoFLOP budget a little either way.
 */
export function paretoFrontier(rows: readonly StudyRow[], tolerance = 0.05): FrontierPoint[] {
  const onFront = rows.filter((r) => !rows.some((q) => q !== r && q.train_flops <= r.train_flops * (1 + tolerance) && q.val_loss.mean < r.val_loss.mean));
  return onFront.sort((a, b) => a.train_flops - b.train_flops).map(pointOf);
}

/**
 * L(N) over the shapes at the largest budget (with token budgets: Kaplan's L(N) at fixed data), the best shape per
 * budget, and the compute-optimal frontier over every row with N_opt ∝ C^β fitted on it.
 */
export function fitStudy(plan: StudyPlan, rows: StudyRow[]): StudyFits {
  if (!plan.fit) return { fit: null, budgetBest: null, frontier: null, frontierFit: null };
  const top = plan.budgets ? Math.max(...plan.budgets) : null;
  const points = rows.filter((r) => r.budget === top).map((r) => ({ variant: r.variant, N: r.params_non_embedding, loss: r.val_loss.mean }));
  const fit = { ...fitScalingLaw(points.map((p) => p.N), points.map((p) => p.loss)), budget: top, points };
  const budgetBest = plan.budgets?.map((b) => pointOf(rows.filter((r) => r.budget === b).reduce((x, y) => (y.val_loss.mean < x.val_loss.mean ? y : x)))) ?? null;
  const frontier = paretoFrontier(rows);
  const frontierFit = frontier.length >= 2 ? fitPowerLaw(frontier.map((f) => f.train_flops), frontier.map((f) => f.params_non_embedding)) : null;
  return { fit, budgetBest, frontier, frontierFit };
}

/** The p-value with the usual stars: * < 0.05, ** < 0.01, *** < 0.001. */
export function formatP(p: number | null): string {
  if (p === null) return 'n/a';
  const stars = p < 0.001 ? ' ***' : p < 0.01 ? ' **' : p < 0.05 ? ' *' : '';
  // Two significant digits below 0.01, so that a p just under 0.001 does not print as 0.0010.
  return `${p < 1e-4 ? p.toExponential(1) : p < 0.01 ? p.toPrecision(2) : p.toFixed(3)}${stars}`;
}

const sig = (x: number, digits = 3): string => (x === 0 ? '0' : Math.abs(x) >= 1e5 || Math.abs(x) < 1e-2 ? x.toExponential(digits - 1) : x.toPrecision(digits));
const int = (x: number): string => Math.round(x).toLocaleString('en-US');

export function formatTable(plan: StudyPlan, rows: StudyRow[]): string {
  const head = ['variant', ...(plan.budgets ? [`budget (${plan.budgetUnit})`] : []), 'L×C', 'steps', 'params stored', 'effective', 'active', 'N non-emb.', 'FLOPs/token', 'tokens/s', 'peak RSS MB', `val loss (n=${plan.seeds.length})`, `Δ vs ${plan.baseline} [95% CI]`, 'p (Welch)'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of rows) {
    const loss = `${r.val_loss.mean.toFixed(4)} ± ${r.val_loss.std === null ? 'n/a' : r.val_loss.std.toFixed(4)}`;
    const d = r.vs_baseline;
    const delta = d === null ? 'baseline' : `${d.diff >= 0 ? '+' : ''}${d.diff.toFixed(4)} [${d.low === null ? 'n/a' : `${d.low.toFixed(4)}, ${d.high!.toFixed(4)}`}]`;
    lines.push(`| ${[r.variant, ...(plan.budgets ? [budgetLabel(r.budget!)] : []), r.shape, String(r.steps), int(r.params_stored), int(r.params_effective), int(r.params_active), int(r.params_non_embedding), sig(r.flops_per_token), int(r.tokens_per_s), r.peak_rss_mb.toFixed(0), loss, delta, d === null ? '' : formatP(d.p)].join(' | ')} |`);
  }
  return lines.join('\n');
}

export function formatFit(plan: StudyPlan, report: StudyFits): string[] {
  const out: string[] = [];
  const f = report.fit;
  const at = (b: number | null): string => (b === null ? '' : ` at budget ${budgetLabel(b)} ${plan.budgetUnit}`);
  if (f) out.push(`L(N) = ${sig(f.a, 4)} · N^(${(-f.alpha).toFixed(4)}) + ${f.c.toFixed(4)}  (N = non-embedding parameters, ${f.points.length} shapes${at(f.budget)}; rmse ${sig(f.rmse)}, R² ${f.r2.toFixed(4)})`);
  for (const p of report.budgetBest ?? []) out.push(`best${at(p.budget)}: ${p.variant} (N ${int(p.params_non_embedding)}), val loss ${p.val_loss.toFixed(4)}, ${sig(p.train_flops)} training FLOPs`);
  if (report.frontier) out.push(`compute-optimal frontier (no cheaper cell does better): ${report.frontier.map((p) => `${p.variant}${p.budget === null ? '' : `@${budgetLabel(p.budget)}`} (C ${sig(p.train_flops)}, N ${int(p.params_non_embedding)}, ${p.val_loss.toFixed(4)})`).join(' → ')}`);
  const g = report.frontierFit;
  if (g) out.push(`N_opt(C) = ${sig(g.k, 4)} · C^${g.beta.toFixed(4)}  (log–log least squares over the ${report.frontier!.length} frontier cells${Number.isNaN(g.r2) ? '' : `, R² ${g.r2.toFixed(4)}`})`);
  return out;
}

export interface RunStudyOptions {
  log?: (line: string) => void;
  /** Plan only: print the cells and their steps, run nothing. */
  dryRun?: boolean;
  /** Run again (from scratch) the finished cells whose config differs from the plan's, instead of refusing. */
  redoChanged?: boolean;
  /** Cells run at once, each in its own process (default 1). */
  jobs?: number;
}

export async function runStudy(plan: StudyPlan, options: RunStudyOptions = {}): Promise<StudyReport | null> {
  const log = options.log ?? ((line: string) => console.log(line));
  const total = plan.cells.length;
  const flops = plan.cells.reduce((s, c) => s + c.config.max_iters * c.tokensPerStep * c.cost.flopsPerToken, 0);
  log(`study ${plan.name}: ${plan.variants.length} variants × ${plan.budgets ? `${plan.budgets.length} budgets × ` : ''}${plan.seeds.length} seeds = ${total} cells, ${sig(flops)} training FLOPs in all → ${plan.outDir}`);
  if (options.dryRun) {
    for (const c of plan.cells) log(`  ${c.dir}: ${c.config.max_iters} steps, ${int(c.cost.nonEmbedding)} non-embedding parameters, ${sig(c.cost.flopsPerToken)} FLOPs/token`);
    return null;
  }
  ensureDir(plan.outDir, 'study out_dir');
  const results = new Map<StudyCell, CellResult>();
  let ran = 0;
  let skipped = 0;
  const todo: { cell: StudyCell; i: number; fresh: boolean }[] = [];
  plan.cells.forEach((cell, i) => {
    const done = finishedResult(cell, options.redoChanged ?? false);
    if (done && done !== 'changed') {
      results.set(cell, done);
      skipped++;
      log(`[${i + 1}/${total}] ${cell.dir}: done earlier (val loss ${cellLoss(done).toFixed(4)}), skipped`);
      return;
    }
    if (done === 'changed') log(`[${i + 1}/${total}] ${cell.dir}: finished with another config; running it again`);
    todo.push({ cell, i, fresh: done === 'changed' });
  });
  // A pool of `jobs` workers takes the cells in order; the first failure stops new starts (running cells finish).
  const jobs = Math.max(1, Math.min(options.jobs ?? 1, todo.length));
  if (jobs > 1) log(`running ${todo.length} cells, ${jobs} at a time`);
  let next = 0;
  let failure: unknown = null;
  const worker = async (): Promise<void> => {
    while (failure === null && next < todo.length) {
      const { cell, i, fresh } = todo[next++]!;
      try {
        const r = await runCell(cell, fresh);
        results.set(cell, r);
        ran++;
        log(`[${i + 1}/${total}] ${cell.dir}: ${r.steps} steps${r.resumed ? ' (resumed)' : ''}, val loss ${cellLoss(r).toFixed(4)}, ${int(r.tokens_per_s)} tok/s, ${(r.peak_rss_bytes / 2 ** 20).toFixed(0)} MB, ${r.wall_s.toFixed(1)} s`);
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  if (failure !== null) throw failure;
  const rows = buildRows(plan, results);
  const fits = fitStudy(plan, rows);
  const table = formatTable(plan, rows);
  const fitLines = formatFit(plan, fits);
  const cpu = cpuName();
  const files = { table: join(plan.outDir, TABLE_FILE), results: join(plan.outDir, RESULTS_FILE), plot: fits.fit ? join(plan.outDir, PLOT_FILE) : null };
  const md = [`# Study ${plan.name}`, '', `From ${plan.file}; ${plan.seeds.length} seeds (${plan.seeds.join(', ')}); val loss over ${plan.cells[0]!.config.full_val ? 'the whole val split' : `${plan.cells[0]!.config.eval_iters} sampled batches`}; CPU: ${cpu}.`, ...(plan.grid ? ['', `Grid: ${plan.grid.map((g) => `${g.key} ∈ {${g.values.join(', ')}}`).join(' × ')}; p: two-sided Welch t test against ${plan.baseline} (* < 0.05, ** < 0.01, *** < 0.001); HTML with plots: report.html.`] : []), '', table, '', ...fitLines.map((l) => `- ${l}`), ...(files.plot ? ['', `![L(N) and the compute-optimal frontier](${PLOT_FILE})`] : []), ''].join('\n');
  writeFileAtomic(files.table, md);
  writeFileAtomic(files.results, JSON.stringify({ study: plan.name, file: plan.file, cpu, seeds: plan.seeds, baseline: plan.baseline, budget_unit: plan.budgetUnit, grid: plan.grid, changes: plan.changes, rows, ...fits }, null, 2) + '\n');
  if (files.plot) writeFileAtomic(files.plot, studyPlotSVG(plan, rows, fits));
  log('');
  log(table);
  for (const l of fitLines) log(l);
  log(`wrote ${files.table}, ${files.results}${files.plot ? `, ${files.plot}` : ''}`);
  return { rows, ...fits, ran, skipped, files };
}

/** The study's last line: `RESULT {json}` with the figures the issue's bar names. */
export function resultLine(plan: StudyPlan, report: StudyReport): string {
  const best = report.rows.reduce((a, b) => (b.val_loss.mean < a.val_loss.mean ? b : a));
  const f = report.fit;
  return `RESULT ${JSON.stringify({
    study: plan.name, cpu: cpuName(), cells: plan.cells.length, ran: report.ran, skipped: report.skipped, rows: report.rows.length,
    variants: plan.variants.length, budgets: plan.budgets?.length ?? 0, seeds: plan.seeds.length,
    best: { variant: best.variant, budget: best.budget, val_loss: +best.val_loss.mean.toFixed(4) },
    fit: f ? { a: +f.a.toPrecision(5), alpha: +f.alpha.toFixed(4), c: +f.c.toFixed(4), rmse: +f.rmse.toPrecision(3), r2: +f.r2.toFixed(4), budget: f.budget } : null,
    best_per_budget: report.budgetBest?.map((p) => ({ budget: p.budget, variant: p.variant, N: p.params_non_embedding, val_loss: +p.val_loss.toFixed(4) })) ?? null,
    frontier: report.frontier?.map((p) => ({ variant: p.variant, budget: p.budget, C: +p.train_flops.toPrecision(4), N: p.params_non_embedding, val_loss: +p.val_loss.toFixed(4) })) ?? null,
    n_opt_beta: report.frontierFit ? +report.frontierFit.beta.toFixed(4) : null,
    table: report.files.table, results: report.files.results, plot: report.files.plot,
  })}`;
}
