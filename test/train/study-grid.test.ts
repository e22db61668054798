// Ablation grids: a study file's `grid:` expands into every combination of the varied keys with the base config's
// own corner as the baseline (or an added "base" variant when the grid leaves it out), bad grids fail naming the
// field, and `lmforge ablate` runs a grid × seeds from one command, two cells at once, writing the table with
// Welch's interval and p-value as Markdown and HTML with plots. Not the statistics (study-stats.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareCharData } from '../../src/data/prepare.js';
import { readStudyPlan } from '../../src/train/study-plan.js';
import { UserError } from '../../src/util/errors.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const shakespeare = join(root, '../shared/data/tinyshakespeare/input.txt');

function setup(): { dir: string; base: string } {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-grid-'));
  writeFileSync(join(dir, 'input.txt'), readFileSync(shakespeare, 'utf8').slice(0, 40000));
  prepareCharData({ input: join(dir, 'input.txt'), outDir: join(dir, 'data'), valFraction: 0.1 });
  const base = join(dir, 'base.yaml');
  writeFileSync(base, [
    `data: {dir: ${join(dir, 'data')}, batch_size: 4}`,
    'max_iters: 15', 'eval_interval: 100000', 'eval_iters: 2', 'full_val: true', 'log_interval: 5', 'checkpoint_interval: 0', 'threads: 1', 'peak_flops: 0',
    'model: {n_layer: 1, n_embd: 16, n_head: 2, block_size: 32}',
    'optim: {lr: 1.0e-3, warmup_iters: 2, lr_decay_iters: 15}', '',
  ].join('\n'));
  return { dir, base };
}

test('study grid: every combination, the base corner as baseline, an added base when the grid misses it', () => {
  const { dir, base } = setup();
  const file = join(dir, 'grid.yaml');
  writeFileSync(file, `out_dir: ${join(dir, 'out')}\nbase: ${base}\nseeds: [1, 2]\ngrid:\n  model.position: [rope, learned]\n  learning_rate: [3.0e-3, 1.0e-3]\n`);
  const plan = readStudyPlan(file);
  assert.deepEqual(plan.variants, ['position-rope_lr-0.003', 'position-rope_lr-0.001', 'position-learned_lr-0.003', 'position-learned_lr-0.001']);
  assert.equal(plan.baseline, 'position-learned_lr-0.001', "the base config's own values (learned, 1e-3)");
  assert.equal(plan.cells.length, 8);
  const cell = plan.cells.find((c) => c.variant === 'position-rope_lr-0.003' && c.seed === 2)!;
  assert.equal(cell.config.model.position, 'rope');
  assert.equal(cell.config.optim.lr, 0.003);
  assert.equal(cell.config.model.n_embd, 16, 'the base config underneath');
  assert.deepEqual(plan.changes['position-rope_lr-0.003'], { 'model.position': 'rope', 'optim.lr': 0.003 });
  writeFileSync(file, `out_dir: ${join(dir, 'out2')}\nbase: ${base}\ngrid:\n  model.n_layer: [2, 3]\n`);
  const p2 = readStudyPlan(file);
  assert.deepEqual(p2.variants, ['base', 'n_layer-2', 'n_layer-3']);
  assert.equal(p2.baseline, 'base');
  for (const [grid, want] of [['  model.n_layer: []', /grid\.model\.n_layer: expected a non-empty list/], ['  model.n_layerz: [1, 2]', /grid\.model\.n_layerz: expected a train-config key/], ['  model.n_layer: [2, 2]', /distinct values/]] as const) {
    writeFileSync(file, `out_dir: ${join(dir, 'out3')}\nbase: ${base}\ngrid:\n${grid}\n`);
    assert.throws(() => readStudyPlan(file), (e: unknown) => e instanceof UserError && want.test(e.message), grid);
  }
});

test('ablate: a grid × 2 seeds from one command, 2 cells at once, table with interval and p, HTML with plots', () => {
  const { dir, base } = setup();
  const out = join(dir, 'abl');
  const r = spawnSync(process.execPath, [cli, 'ablate', '--base', base, '--vary', 'model.mlp=gelu,swiglu', '--seeds', '1,2', '--jobs', '2', '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /running 4 cells, 2 at a time/);
  const result = JSON.parse(/^RESULT (.*)$/m.exec(r.stdout)![1]!) as { cells: number; ran: number; rows: number };
  assert.deepEqual([result.cells, result.ran, result.rows], [4, 4, 2]);
  const table = readFileSync(join(out, 'table.md'), 'utf8');
  assert.match(table, /Grid: model\.mlp ∈ \{gelu, swiglu\}/);
  assert.match(table, /\| mlp-gelu \| .* \| baseline \| {2}\|/);
  assert.match(table, /\| mlp-swiglu \| .* \| [+-]\d\.\d{4} \[[+-]?\d\.\d{4}, [+-]?\d\.\d{4}\] \| (\d\.\d+|\d\.?\d*e-\d+)( \*+)? \|/);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  for (const id of ['val-loss', 'deltas', 'curves']) assert.ok(html.includes(`<canvas id="${id}">`), id);
  assert.match(html, /Chart\.js v4/);
  // Rerun: every cell is done and skipped.
  const again = spawnSync(process.execPath, [cli, 'ablate', '--base', base, '--vary', 'model.mlp=gelu,swiglu', '--seeds', '1,2', '--out', out], { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /"ran":0,"skipped":4/);
  assert.ok(existsSync(join(out, 'results.json')));
  const bad = spawnSync(process.execPath, [cli, 'ablate', '--base', base, '--vary', 'model.mlp'], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^error: --vary "model\.mlp": expected KEY=V1,V2/);
});
