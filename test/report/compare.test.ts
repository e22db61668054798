// `lmforge compare A B` end to end on real text: two tiny runs on different slices of Tiny Shakespeare with
// different learning rates; the report names the config key and the data files that changed, overlays both loss
// curves in a self-contained HTML page (Chart.js inlined), computes evaluation deltas with the 95% interval from
// the two stderrs, and samples both models from the same prompts and seed. Also the pipeline's entry point
// (writeComparisonReport) and the one-line errors. Not the dashboard (test/web/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareCharData } from '../../src/data/prepare.js';
import { writeComparisonReport, type Comparison } from '../../src/report/compare.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const shakespeare = join(root, '../shared/data/tinyshakespeare/input.txt');

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** An eval report as `lmforge eval --output` writes it, with one accuracy metric. */
function evalReport(acc: number, stderr: number): string {
  return JSON.stringify({ lmforge_eval: 1, created: '2026-01-01T00:00:00Z', model: {}, config: {}, results: [{ task: 'hellaswag', version: 1, nShot: 0, n: 100, metrics: { acc: { value: acc, stderr } }, seconds: 1 }] });
}

let made: { dir: string; a: string; b: string } | null = null;

/** Two runs, made once for both tests. */
function setup(): { dir: string; a: string; b: string } {
  if (made) return made;
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-compare-'));
  const text = readFileSync(shakespeare, 'utf8');
  writeFileSync(join(dir, 'in1.txt'), text.slice(0, 40000));
  writeFileSync(join(dir, 'in2.txt'), text.slice(0, 50000));
  prepareCharData({ input: join(dir, 'in1.txt'), outDir: join(dir, 'data1'), valFraction: 0.1 });
  prepareCharData({ input: join(dir, 'in2.txt'), outDir: join(dir, 'data2'), valFraction: 0.1 });
  const common = ['--max_iters=12', '--eval_interval=6', '--eval_iters=2', '--log_interval=2', '--checkpoint_interval=0', '--threads=1', '--model.n_layer=1', '--model.n_embd=16', '--model.n_head=2', '--model.block_size=32', '--data.batch_size=4', '--peak_flops=0'];
  const a = join(dir, 'run-a');
  const b = join(dir, 'run-b');
  for (const [out, data, lr] of [[a, 'data1', '1e-3'], [b, 'data2', '3e-3']] as const) {
    const r = run(['train', ...common, `--out_dir=${out}`, `--data.dir=${join(dir, data)}`, `--optim.lr=${lr}`]);
    assert.equal(r.status, 0, r.stderr);
  }
  mkdirSync(join(a, 'eval'));
  mkdirSync(join(b, 'eval'));
  writeFileSync(join(a, 'eval', 'hs.json'), evalReport(0.25, 0.03));
  writeFileSync(join(b, 'eval', 'hs.json'), evalReport(0.40, 0.04));
  // Per-item samples (eval --log-samples) of one task on both sides: 40 items, B fixes 6 of A's 20 misses.
  const items = Array.from({ length: 40 }, (_, i) => i);
  const accA: number[] = items.map((i) => (i % 2 === 0 ? 1 : 0));
  const accB: number[] = items.map((i) => (i % 2 === 0 || i < 12 ? 1 : 0));
  for (const [run, acc] of [[a, accA], [b, accB]] as const) {
    const mean = acc.reduce((x, y) => x + y, 0) / 40;
    writeFileSync(join(run, 'eval', 'arc.json'), JSON.stringify({ lmforge_eval: 1, created: '2026-01-01T00:00:00Z', model: {}, config: {}, results: [{ task: 'arc_easy', version: 1, nShot: 0, n: 40, metrics: { acc: { value: mean, stderr: Math.sqrt(mean * (1 - mean) / 39) } }, seconds: 1 }] }));
    writeFileSync(join(run, 'eval', 'arc.samples.jsonl'), acc.map((x, i) => JSON.stringify({ task: 'arc_easy', where: `arc.jsonl:${i + 1}`, acc: x })).join('\n') + '\n');
  }
  made = { dir, a, b };
  return made;
}

test('compare: config and data diffs, eval deltas with intervals, curves and samples in Markdown and HTML', () => {
  const { dir, a, b } = setup();
  const out = join(dir, 'report');
  const r = run(['compare', a, b, '--out', out, '--max-new-tokens', '20', '--prompt', 'ROMEO:', 'The']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /run-a → run-b: \d+ config keys differ/);
  const c = JSON.parse(readFileSync(join(out, 'compare.json'), 'utf8')) as Comparison;
  assert.deepEqual(c.config.map((x) => x.key).sort(), ['data.dir', 'optim.lr']);
  assert.deepEqual(c.config.find((x) => x.key === 'optim.lr'), { key: 'optim.lr', a: 0.001, b: 0.003 });
  assert.ok(c.data.some((d) => d.what.startsWith('train.bin')), 'different text → train.bin fingerprints differ');
  // Δ = 0.40 − 0.25; 95% interval ± 1.96·√(0.03² + 0.04²) = ± 0.098: significant.
  const e = c.evals.find((x) => x.task === 'hellaswag' && x.metric === 'acc')!;
  assert.ok(Math.abs(e.diff - 0.15) < 1e-12);
  assert.ok(Math.abs(e.high! - e.diff - 1.959964 * 0.05) < 1e-6);
  assert.equal(e.significant, true);
  assert.equal(c.samples?.length, 2);
  assert.ok(c.samples![0]!.a.startsWith('ROMEO:') && c.samples![0]!.b.startsWith('ROMEO:'));
  const md = readFileSync(join(out, 'compare.md'), 'utf8');
  assert.match(md, /\| optim\.lr \| 0\.001 \| 0\.003 \|/);
  assert.match(md, /\| hellaswag \| acc \| 0\.2500 ± 0\.0300 \| 0\.4000 ± 0\.0400 \| \+0\.1500 \| \[\+0\.0520, \+0\.2480\] \| stderr \| yes \|/);
  // Paired: +0.15 from 6 fixed items of 40. The stderrs alone (items treated as independent) cannot tell it from
  // noise; the paired bootstrap over the same items can.
  const arc = c.evals.find((x) => x.task === 'arc_easy')!;
  assert.equal(arc.method, 'paired bootstrap');
  assert.equal(arc.pairedItems, 40);
  assert.ok(Math.abs(arc.diff - 0.15) < 1e-12);
  assert.ok(arc.low! > 0 && arc.high! < 0.3, `paired interval [${arc.low}, ${arc.high}] excludes 0`);
  assert.ok(arc.diff - 1.959964 * Math.sqrt(arc.aStderr! ** 2 + arc.bStderr! ** 2) < 0, 'the unpaired interval would include 0');
  assert.match(md, /\| arc_easy \| acc \| .* \| paired bootstrap \(40 items\) \| yes \|/);
  const html = readFileSync(join(out, 'compare.html'), 'utf8');
  assert.match(html, /Chart\.js v4/, 'Chart.js is inlined');
  for (const id of ['train-loss', 'val-loss', 'eval-deltas']) assert.ok(html.includes(`<canvas id="${id}">`), id);
  assert.ok(!/<script src=/.test(html), 'self-contained: no external scripts');
  // Same prompts and seed: sampling again gives the same text.
  const again = writeComparisonReport(a, b, join(dir, 'again'), { samples: { prompts: ['ROMEO:', 'The'], maxNewTokens: 20, temperature: 0.8, topK: 200, seed: 1337 } });
  assert.deepEqual(again.comparison.samples, c.samples);
});

test('compare: the pipeline entry point without samples, and one-line errors', () => {
  const { dir, a, b } = setup();
  const r = writeComparisonReport(a, a, join(dir, 'same'), { samples: null });
  assert.deepEqual(r.comparison.config, []);
  assert.deepEqual(r.comparison.data, []);
  assert.equal(r.comparison.samples, null);
  assert.ok(existsSync(r.html) && existsSync(r.markdown));
  // Registered versions: name@vN through the registry.
  const db = join(dir, 'registry.sqlite');
  for (const r of [a, b]) assert.equal(run(['registry', '--registry', db, 'register', r, '--name', 'tiny']).status, 0);
  const byVersion = run(['compare', 'tiny@v1', 'tiny@v2', '--registry', db, '--no-samples', '--out', join(dir, 'versions')]);
  assert.equal(byVersion.status, 0, byVersion.stderr);
  assert.match(byVersion.stdout, /tiny@v1 → tiny@v2: 2 config keys differ/);
  const missing = run(['compare', a, join(dir, 'nope')]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^error: .*nope: no such (run directory|run or version)/);
  const bad = run(['compare', a, join(dir, 'data1'), '--no-samples', '--out', join(dir, 'x')]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^error: .*data1: neither train-config\.json nor metrics\.jsonl/);
});
