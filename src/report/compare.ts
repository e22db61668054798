// The version report of `lmforge compare A B` (and of the upgrade pipeline's last stage): what changed from A to B
// (config diff, data diff by fingerprints), how training went (loss curves overlaid), what it bought (evaluation
// deltas with 95% intervals from each metric's stderr), and what the models write (samples side by side from the
// same prompts and seed). Written as compare.md, compare.html (self-contained, Chart.js inlined) and compare.json.
// Not the loading of runs (version.ts) nor the command (cli/compare.ts).
import { join } from 'node:path';
import { generate } from '../serve/generate.js';
import { samplingProcessors } from '../serve/logits.js';
import { RunDir } from '../train/run-dir.js';
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/atomic.js';
import { mulberry32 } from '../util/mulberry32.js';
import { describeError } from '../util/errors.js';
import { ensureDir } from '../util/fs.js';
import { chartBlock, esc, htmlPage, htmlTable, mdTable, PALETTE, type ChartSpec } from './html.js';
import { loadVersion, shortName, type VersionInfo } from './version.js';

export const COMPARE_MD = 'compare.md';
export const COMPARE_HTML = 'compare.html';
export const COMPARE_JSON = 'compare.json';

/** z for a two-sided 95% normal interval. */
const Z95 = 1.959963984540054;

export interface ConfigChange {
  key: string;
  a: unknown;
  b: unknown;
}

export interface DataChange {
  what: string;
  a: string | null;
  b: string | null;
}

export interface EvalDelta {
  task: string;
  metric: string;
  a: number;
  aStderr: number | null;
  b: number;
  bStderr: number | null;
  /** b − a. */
  diff: number;
  /**
   * The 95% interval of diff: a paired bootstrap over the items both sides scored when both kept per-item samples
   * (eval --log-samples), else from the two (independent) stderrs, diff ± 1.96·√(se_a² + se_b²); null without either.
   */
  low: number | null;
  high: number | null;
  method: 'paired bootstrap' | 'stderr' | null;
  /** Items in the paired bootstrap. */
  pairedItems?: number;
  /** Whether the interval excludes 0. */
  significant: boolean | null;
}

export interface SamplePair {
  prompt: string;
  a: string;
  b: string;
}

export interface SampleOptions {
  prompts: string[];
  maxNewTokens: number;
  temperature: number;
  topK: number;
  seed: number;
}

export const DEFAULT_SAMPLES: SampleOptions = { prompts: ['\n', 'ROMEO:', 'The king'], maxNewTokens: 160, temperature: 0.8, topK: 200, seed: 1337 };

export interface Comparison {
  a: { label: string; dir: string; commit: string | null; version: string | null };
  b: { label: string; dir: string; commit: string | null; version: string | null };
  config: ConfigChange[];
  data: DataChange[];
  final: { metric: string; a: number | null; b: number | null }[];
  evals: EvalDelta[];
  /** (task, metric) pairs only one side has. */
  evalsUnmatched: string[];
  samples: SamplePair[] | null;
  /** Why there are no samples (no weights, or sampling was turned off). */
  samplesNote: string | null;
}

export interface CompareOptions {
  /** Sampling for the side-by-side samples; null skips them (no models loaded). */
  samples?: SampleOptions | null;
  /** Labels shown for A and B (default: the run directories' names). */
  labels?: [string, string];
  /** Evaluation report files to add to each side's own. */
  evalsA?: string[];
  evalsB?: string[];
}

/** Nested objects flattened to dotted keys (arrays compared whole). */
export function flatten(o: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (typeof o === 'object' && o !== null && !Array.isArray(o)) {
    for (const [k, v] of Object.entries(o)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = o;
  }
  return out;
}

/** Keys whose values differ (out_dir is where a run lives, not what it is). */
export function configDiff(a: Record<string, unknown> | null, b: Record<string, unknown> | null): ConfigChange[] {
  const fa = flatten(a ?? {});
  const fb = flatten(b ?? {});
  const keys = [...new Set([...Object.keys(fa), ...Object.keys(fb)])].sort();
  return keys.filter((k) => k !== 'out_dir' && JSON.stringify(fa[k]) !== JSON.stringify(fb[k])).map((k) => ({ key: k, a: fa[k], b: fb[k] }));
}

const short = (h: string | null | undefined): string | null => (h ? h.slice(0, 12) : null);

export function dataDiff(a: VersionInfo, b: VersionInfo): DataChange[] {
  const out: DataChange[] = [];
  const cmp = (what: string, x: string | null, y: string | null): void => {
    if (x !== y) out.push({ what, a: x, b: y });
  };
  cmp('data.dir', a.data.dir, b.data.dir);
  cmp('source', a.data.source, b.data.source);
  cmp('vocab_size', a.data.vocabSize === null ? null : String(a.data.vocabSize), b.data.vocabSize === null ? null : String(b.data.vocabSize));
  cmp('tokenizer', a.data.tokenizer, b.data.tokenizer);
  cmp('tokenizer sha256', short(a.data.tokenizerSha256), short(b.data.tokenizerSha256));
  for (const f of [...new Set([...Object.keys(a.data.files), ...Object.keys(b.data.files)])].sort()) {
    const fa = a.data.files[f];
    const fb = b.data.files[f];
    if (fa?.sha256 !== fb?.sha256) cmp(`${f} (bytes, sha256)`, fa ? `${fa.bytes}, ${short(fa.sha256)}` : null, fb ? `${fb.bytes}, ${short(fb.sha256)}` : null);
  }
  if (!a.data.present || !b.data.present) out.push({ what: 'fingerprints', a: a.data.present ? 'taken' : 'data dir absent', b: b.data.present ? 'taken' : 'data dir absent' });
  return out;
}

/** Resamples for the paired bootstrap (a fixed seed: the same report twice gives the same interval). */
const BOOTSTRAP_RESAMPLES = 2000;

/** Per-item scores of a side: `task\0metric` → item (`where`) → score, from the reports' .samples.jsonl files. */
function itemScores(v: VersionInfo): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const { file } of v.evals) {
    const path = file.replace(/\.json$/, '') + '.samples.jsonl';
    if (!existsSync(path)) continue;
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (typeof rec.task !== 'string' || typeof rec.where !== 'string') continue;
      for (const [k, x] of Object.entries(rec)) {
        if (typeof x !== 'number' || !Number.isFinite(x) || ['loglikelihoods', 'pred', 'pred_norm', 'gold'].includes(k)) continue;
        const key = `${rec.task}\u0000${k}`;
        if (!out.has(key)) out.set(key, new Map());
        out.get(key)!.set(rec.where, x);
      }
    }
  }
  return out;
}

/** The 2.5% and 97.5% quantiles of mean(b_i − a_i) over items resampled with replacement. */
export function pairedBootstrap(a: readonly number[], b: readonly number[], resamples = BOOTSTRAP_RESAMPLES, seed = 1337): [number, number] {
  const n = a.length;
  const d = a.map((x, i) => b[i]! - x);
  const rand = mulberry32(seed);
  const means = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += d[Math.floor(rand() * n)]!;
    means[r] = s / n;
  }
  means.sort();
  const q = (p: number): number => means[Math.min(resamples - 1, Math.max(0, Math.floor(p * resamples)))]!;
  return [q(0.025), q(0.975)];
}

/** Every (task[/subset or group], metric) of a side's evaluation reports; a later report of the same task wins. */
function evalValues(v: VersionInfo): Map<string, { task: string; metric: string; value: number; stderr: number | null }> {
  const m = new Map<string, { task: string; metric: string; value: number; stderr: number | null }>();
  for (const { report } of v.evals) {
    for (const r of report.results) {
      const add = (task: string, metrics: Record<string, { value: number; stderr: number | null }>): void => {
        for (const [metric, x] of Object.entries(metrics)) if (Number.isFinite(x.value)) m.set(`${task}\u0000${metric}`, { task, metric, value: x.value, stderr: x.stderr });
      };
      add(r.task, r.metrics);
      for (const [g, ms] of Object.entries(r.groups ?? {})) add(`${r.task}/${g}`, ms);
    }
  }
  return m;
}

export function evalDeltas(a: VersionInfo, b: VersionInfo): { deltas: EvalDelta[]; unmatched: string[] } {
  const ea = evalValues(a);
  const eb = evalValues(b);
  const [ia, ib] = [itemScores(a), itemScores(b)];
  const deltas: EvalDelta[] = [];
  for (const [k, x] of ea) {
    const y = eb.get(k);
    if (!y) continue;
    const diff = y.value - x.value;
    // Paired: the same items scored by both models (their difference per item carries the correlation).
    const [sa, sb] = [ia.get(k), ib.get(k)];
    const common = sa && sb ? [...sa.keys()].filter((w) => sb.has(w)) : [];
    let low: number | null = null;
    let high: number | null = null;
    let method: EvalDelta['method'] = null;
    if (common.length >= 2) {
      [low, high] = pairedBootstrap(common.map((w) => sa!.get(w)!), common.map((w) => sb!.get(w)!));
      method = 'paired bootstrap';
    } else if (x.stderr !== null && y.stderr !== null) {
      const se = Math.sqrt(x.stderr ** 2 + y.stderr ** 2);
      [low, high] = [diff - Z95 * se, diff + Z95 * se];
      method = 'stderr';
    }
    deltas.push({
      task: x.task, metric: x.metric, a: x.value, aStderr: x.stderr, b: y.value, bStderr: y.stderr, diff, low, high, method,
      ...(method === 'paired bootstrap' ? { pairedItems: common.length } : {}), significant: low === null ? null : low > 0 || high! < 0,
    });
  }
  const unmatched = [...[...ea.keys()].filter((k) => !eb.has(k)).map((k) => `${k.replace('\u0000', ' ')} (A only)`), ...[...eb.keys()].filter((k) => !ea.has(k)).map((k) => `${k.replace('\u0000', ' ')} (B only)`)];
  return { deltas, unmatched };
}

/** The last logged value of a metric (val loss, the full-split val loss, train loss). */
function last(v: VersionInfo, key: string): number | null {
  for (let i = v.metrics.length - 1; i >= 0; i--) {
    const x = v.metrics[i]![key];
    if (typeof x === 'number') return x;
  }
  return null;
}

/** Samples from both models with the same prompts and seeds (row i of a prompt draws from seed + i in each). */
function sideBySide(a: VersionInfo, b: VersionInfo, o: SampleOptions): { pairs: SamplePair[] | null; note: string | null } {
  if (!a.hasWeights || !b.hasWeights) return { pairs: null, note: `no samples: ${!a.hasWeights ? shortName(a) : shortName(b)} has no final weights (unfinished run?)` };
  const texts = [a, b].map((v) => {
    const run = RunDir.open(v.dir);
    const codec = run.codec();
    const model = run.loadModel();
    try {
      return o.prompts.map((p) => {
        let ids: number[];
        try {
          ids = codec.encode(p);
        } catch (e) {
          return `(the prompt cannot be encoded by this tokenizer: ${describeError(e)})`;
        }
        if (ids.length === 0) return '(the prompt encodes to no tokens)';
        const [g] = generate(model, [ids], { maxNewTokens: o.maxNewTokens, greedy: o.temperature === 0, processors: samplingProcessors({ temperature: o.temperature, topK: o.topK, topP: 1, repetitionPenalty: 1 }), seed: o.seed });
        return p + codec.decode(g!.tokens);
      });
    } finally {
      model.dispose();
    }
  });
  return { pairs: o.prompts.map((prompt, i) => ({ prompt, a: texts[0]![i]!, b: texts[1]![i]! })), note: null };
}

/** Compares two loaded versions (no files written). */
export function compareVersions(a: VersionInfo, b: VersionInfo, options: CompareOptions = {}): Comparison {
  const { deltas, unmatched } = evalDeltas(a, b);
  const samples = options.samples === undefined ? DEFAULT_SAMPLES : options.samples;
  const s = samples === null ? { pairs: null, note: 'no samples (turned off)' } : sideBySide(a, b, samples);
  return {
    a: { label: shortName(a), dir: a.dir, commit: a.commit, version: a.version },
    b: { label: shortName(b), dir: b.dir, commit: b.commit, version: b.version },
    config: configDiff(a.config, b.config),
    data: dataDiff(a, b),
    final: ['val_loss_full', 'val_loss', 'train_loss'].map((metric) => ({ metric, a: last(a, metric), b: last(b, metric) })).filter((f) => f.a !== null || f.b !== null),
    evals: deltas, evalsUnmatched: unmatched, samples: s.pairs, samplesNote: s.note,
  };
}

const show = (v: unknown): string => (v === undefined ? '(absent)' : typeof v === 'string' ? v : JSON.stringify(v));
const num = (x: number | null, d = 4): string => (x === null ? 'n/a' : x.toFixed(d));
const signed = (x: number, d = 4): string => `${x >= 0 ? '+' : ''}${x.toFixed(d)}`;

function tables(c: Comparison): { title: string; head: string[]; rows: string[][]; empty: string }[] {
  return [
    { title: 'Config diff', head: ['key', c.a.label, c.b.label], rows: c.config.map((x) => [x.key, show(x.a), show(x.b)]), empty: 'The resolved configs are the same (out_dir aside).' },
    { title: 'Data diff', head: ['what', c.a.label, c.b.label], rows: c.data.map((x) => [x.what, x.a ?? '(none)', x.b ?? '(none)']), empty: 'Same data: every data file has the same size and SHA-256, same tokenizer.' },
    { title: 'Final losses', head: ['metric', c.a.label, c.b.label, 'Δ (B − A)'], rows: c.final.map((f) => [f.metric, num(f.a), num(f.b), f.a !== null && f.b !== null ? signed(f.b - f.a) : 'n/a']), empty: 'No losses logged.' },
    {
      title: 'Evaluation deltas (95% interval: paired bootstrap over the items when both kept samples, else from the stderrs)', head: ['task', 'metric', c.a.label, c.b.label, 'Δ (B − A)', '95% CI', 'interval from', 'significant'],
      rows: c.evals.map((e) => [e.task, e.metric, `${num(e.a)} ± ${num(e.aStderr)}`, `${num(e.b)} ± ${num(e.bStderr)}`, signed(e.diff), e.low === null ? 'n/a' : `[${signed(e.low)}, ${signed(e.high!)}]`, e.method === null ? 'n/a' : e.method === 'paired bootstrap' ? `paired bootstrap (${e.pairedItems} items)` : 'stderr', e.significant === null ? 'n/a' : e.significant ? 'yes' : 'no']),
      empty: 'No evaluation both sides ran (save `lmforge eval --output <run>/eval/NAME.json` in each run, or pass --eval-a/--eval-b).',
    },
  ];
}

function header(c: Comparison): string[] {
  const side = (k: string, s: Comparison['a']): string => `${k}: ${s.label} (${[s.version && s.version !== s.label ? `version ${s.version}` : null, s.dir, s.commit ? `commit ${s.commit.slice(0, 12)}${s.commit.endsWith('+dirty') ? '+dirty' : ''}` : null].filter(Boolean).join(', ')})`;
  const lines = [side('A', c.a), side('B', c.b)];
  if (c.a.commit !== c.b.commit) lines.push(`Code: ${c.a.commit ?? 'not recorded'} → ${c.b.commit ?? 'not recorded'}`);
  return lines;
}

export function comparisonMarkdown(c: Comparison, o: SampleOptions | null): string {
  const out = [`# ${c.a.label} → ${c.b.label}`, '', ...header(c).map((h) => `- ${h}`), ''];
  for (const t of tables(c)) out.push(`## ${t.title}`, '', t.rows.length ? mdTable(t.head, t.rows) : t.empty, '');
  if (c.evalsUnmatched.length) out.push(`Only on one side: ${c.evalsUnmatched.join('; ')}.`, '');
  out.push('## Loss curves', '', `Overlaid in ${COMPARE_HTML}.`, '', '## Samples side by side', '');
  if (!c.samples) out.push(c.samplesNote ?? '', '');
  else {
    out.push(`Same prompts, seed ${o!.seed}, temperature ${o!.temperature}, top-k ${o!.topK}, ${o!.maxNewTokens} new tokens.`, '');
    for (const s of c.samples) out.push(`### Prompt ${JSON.stringify(s.prompt)}`, '', `**${c.a.label}**`, '', '```', s.a, '```', '', `**${c.b.label}**`, '', '```', s.b, '```', '');
  }
  return out.join('\n');
}

/** Line charts of a metric from both sides, x = step. */
function curveChart(id: string, title: string, key: string, a: VersionInfo, b: VersionInfo, la: string, lb: string): ChartSpec | null {
  const pts = (v: VersionInfo): { x: number; y: number }[] => v.metrics.filter((r) => typeof r[key] === 'number').map((r) => ({ x: r.step, y: r[key] as number }));
  const [pa, pb] = [pts(a), pts(b)];
  if (!pa.length && !pb.length) return null;
  return {
    id, title,
    config: {
      type: 'line',
      data: { datasets: [{ label: la, data: pa, borderColor: PALETTE[0], pointRadius: 0, borderWidth: 1.5 }, { label: lb, data: pb, borderColor: PALETTE[1], pointRadius: 0, borderWidth: 1.5 }] },
      options: { animation: false, maintainAspectRatio: false, parsing: false, scales: { x: { type: 'linear', title: { display: true, text: 'step' } }, y: { title: { display: true, text: key } } } },
    },
  };
}

function evalChart(c: Comparison): ChartSpec | null {
  const withCI = c.evals.filter((e) => e.low !== null);
  if (!withCI.length) return null;
  return {
    id: 'eval-deltas', title: 'Evaluation deltas B − A with 95% intervals',
    config: {
      type: 'bar',
      data: { labels: withCI.map((e) => `${e.task} ${e.metric}`), datasets: [{ label: '95% interval of B − A', data: withCI.map((e) => [e.low, e.high]), backgroundColor: withCI.map((e) => (e.significant ? (e.diff > 0 ? '#2ca02c88' : '#d6272888') : '#7f7f7f66')) }] },
      options: { animation: false, maintainAspectRatio: false, indexAxis: 'y', scales: { x: { title: { display: true, text: 'Δ' } } } },
    },
  };
}

export function comparisonHTML(c: Comparison, a: VersionInfo, b: VersionInfo, o: SampleOptions | null): string {
  const charts = [curveChart('train-loss', 'Training loss', 'loss', a, b, c.a.label, c.b.label), curveChart('val-loss', 'Validation loss (evaluations)', 'val_loss', a, b, c.a.label, c.b.label), evalChart(c)].filter((x): x is ChartSpec => x !== null);
  const body = [`<h1>${esc(c.a.label)} → ${esc(c.b.label)}</h1>`, `<ul>${header(c).map((h) => `<li>${esc(h)}</li>`).join('')}</ul>`];
  for (const t of tables(c)) body.push(`<h2>${esc(t.title)}</h2>`, t.rows.length ? htmlTable(t.head, t.rows) : `<p class="muted">${esc(t.empty)}</p>`);
  if (c.evalsUnmatched.length) body.push(`<p class="muted">Only on one side: ${esc(c.evalsUnmatched.join('; '))}.</p>`);
  body.push('<h2>Loss curves</h2>', ...charts.map(chartBlock));
  body.push('<h2>Samples side by side</h2>');
  if (!c.samples) body.push(`<p class="muted">${esc(c.samplesNote ?? '')}</p>`);
  else {
    body.push(`<p>Same prompts, seed ${o!.seed}, temperature ${o!.temperature}, top-k ${o!.topK}, ${o!.maxNewTokens} new tokens.</p>`);
    for (const s of c.samples) body.push(`<h3>Prompt ${esc(JSON.stringify(s.prompt))}</h3><div class="side"><div><b>${esc(c.a.label)}</b><pre>${esc(s.a)}</pre></div><div><b>${esc(c.b.label)}</b><pre>${esc(s.b)}</pre></div></div>`);
  }
  return htmlPage(`${c.a.label} → ${c.b.label}`, body.join('\n'), charts);
}

export interface ComparisonFiles {
  markdown: string;
  html: string;
  json: string;
  comparison: Comparison;
}

/**
 * The entry point for the pipeline and the CLI: compares run directory `a` (the parent) with `b` (the new version)
 * and writes compare.md, compare.html and compare.json into outDir atomically.
 */
export function writeComparisonReport(a: string | VersionInfo, b: string | VersionInfo, outDir: string, options: CompareOptions = {}): ComparisonFiles {
  const va = typeof a === 'string' ? loadVersion(a, options.labels?.[0] ?? a, options.evalsA) : a;
  const vb = typeof b === 'string' ? loadVersion(b, options.labels?.[1] ?? b, options.evalsB) : b;
  const c = compareVersions(va, vb, options);
  const o = options.samples === undefined ? DEFAULT_SAMPLES : options.samples;
  ensureDir(outDir, 'compare output directory');
  const files = { markdown: join(outDir, COMPARE_MD), html: join(outDir, COMPARE_HTML), json: join(outDir, COMPARE_JSON) };
  writeFileAtomic(files.markdown, comparisonMarkdown(c, o));
  writeFileAtomic(files.html, comparisonHTML(c, va, vb, o));
  writeFileAtomic(files.json, JSON.stringify(c, null, 2) + '\n');
  return { ...files, comparison: c };
}
