// `lmforge study` end to end on real text with a tiny grid: a study killed with SIGKILL (runner and cell process)
// continues without redoing finished cells and resumes a partial one from its checkpoint; the table, results.json
// and the RESULT line come out; a finished cell run with another config is refused by name, and run again with
// --redo-changed; bad study files fail naming the field. Not the statistics (study-stats.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareCharData } from '../../src/data/prepare.js';
import { readStudyPlan } from '../../src/train/study-plan.js';
import { UserError } from '../../src/util/errors.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const shakespeare = join(root, '../shared/data/tinyshakespeare/input.txt');

function studyFile(dir: string, maxIters: number): string {
  const file = join(dir, 'study.yaml');
  writeFileSync(file, [
    `out_dir: ${join(dir, 'out')}`,
    'train:',
    `  data: {dir: ${join(dir, 'data')}, batch_size: 8}`,
    `  max_iters: ${maxIters}`,
    '  eval_interval: 100000',
    '  eval_iters: 2',
    '  checkpoint_interval: 5',
    '  log_interval: 50',
    '  threads: 1',
    '  model: {block_size: 32, n_head: 2}',
    '  optim: {warmup_iters: 5, lr_decay_iters: 80}',
    'seeds: [1, 2]',
    'variants:',
    '  - {name: narrow, set: {model: {n_layer: 1, n_embd: 16}}}',
    '  - {name: shared, set: {model: {n_layer: 3, n_embd: 16, share_layers: all}}}',
    '',
  ].join('\n'));
  return file;
}

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('study: a killed study continues without redoing finished cells and resumes the partial one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-study-'));
  writeFileSync(join(dir, 'input.txt'), readFileSync(shakespeare, 'utf8').slice(0, 60000));
  prepareCharData({ input: join(dir, 'input.txt'), outDir: join(dir, 'data'), valFraction: 0.1 });
  const file = studyFile(dir, 80);
  const first = join(dir, 'out/narrow/seed-1');
  const second = join(dir, 'out/narrow/seed-2');
  // Kill runner and cell process together once the second cell has a checkpoint (or, on a slow machine, has ended).
  await new Promise<void>((resolve) => {
    const child = spawn(process.execPath, [cli, 'study', '--config', file], { stdio: 'ignore', detached: true });
    const poll = setInterval(() => {
      const partial = existsSync(second) && readdirSync(second).some((n) => n.startsWith('ckpt-'));
      if (partial) {
        clearInterval(poll);
        process.kill(-child.pid!, 'SIGKILL');
      }
    }, 5);
    child.on('exit', () => {
      clearInterval(poll);
      resolve();
    });
  });
  const doneAt = statSync(join(first, 'study-cell.json')).mtimeMs;
  const secondFinished = existsSync(join(second, 'study-cell.json'));
  assert.ok(!existsSync(join(dir, 'out/shared')), 'killed before the later cells started');

  const r = run(['study', '--config', file]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\[1\/4\] .*narrow\/seed-1: done earlier \(val loss \d\.\d{4}\), skipped/);
  if (!secondFinished) assert.match(r.stdout, /\[2\/4\] .*narrow\/seed-2: 80 steps \(resumed\)/);
  assert.equal(statSync(join(first, 'study-cell.json')).mtimeMs, doneAt, 'the finished cell was not run again');
  assert.match(readFileSync(join(second, 'train.log'), 'utf8'), secondFinished ? /step 80/ : /resumed from .*ckpt-\d+ at step \d+/);
  const last = r.stdout.trimEnd().split('\n').pop()!;
  assert.match(last, /^RESULT \{/);
  const result = JSON.parse(last.slice('RESULT '.length)) as { cells: number; skipped: number; rows: number; fit: unknown };
  assert.equal(result.cells, 4);
  assert.ok(result.skipped >= 1);
  assert.equal(result.rows, 2);
  assert.equal(result.fit, null);
  const table = readFileSync(join(dir, 'out/table.md'), 'utf8');
  assert.match(table, /\| shared \| 3×16 \| 80 \| [\d,]+ \| [\d,]+ \|/, 'stored and effective counts');
  assert.match(table, /\| narrow \| .* \| baseline \|/);
  const rows = (JSON.parse(readFileSync(join(dir, 'out/results.json'), 'utf8')) as { rows: { variant: string; params_stored: number; params_effective: number; vs_baseline: { low: number } | null }[] }).rows;
  const shared = rows.find((x) => x.variant === 'shared')!;
  assert.ok(shared.params_effective > shared.params_stored, 'sharing: effective > stored');
  assert.equal(typeof shared.vs_baseline!.low, 'number', 'a Welch interval with two seeds a side');

  // Everything done: a third run trains nothing; a changed config is refused naming the key.
  const again = run(['study', '--config', file]);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /"ran":0,"skipped":4/);
  const changed = run(['study', '--config', studyFile(dir, 60)]);
  assert.equal(changed.status, 1);
  assert.match(changed.stderr, /study-cell\.json: this cell was run with a different max_iters \(80 there, 60 now\)/);
  const redo = run(['study', '--config', studyFile(dir, 60), '--redo-changed']);
  assert.equal(redo.status, 0, redo.stderr);
  assert.equal(redo.stdout.match(/finished with another config; running it again/g)?.length, 4);
  assert.match(redo.stdout, /"ran":4,"skipped":0/);
});

test('study: bad study files fail naming the field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-study-bad-'));
  const cases: [string, RegExp][] = [
    ['out_dir: x\nvariants: []\n', /variants: expected a non-empty list/],
    ['out_dir: x\nseeds: [1, 1]\nvariants: [{name: a}]\n', /seeds: expected a non-empty list of distinct integers/],
    ['out_dir: x\nvariants: [{name: a}]\nbaseline: b\n', /baseline: expected one of the variant names \(a\)/],
    ['out_dir: x\nvariants: [{name: a, set: {model: {n_layers: 2}}}]\n', /variant a\): unknown key "model.n_layers"/],
    ['out_dir: x\nvariantz: []\n', /line 2: unknown key "variantz"/],
    ['out_dir: x\nfit: true\nvariants: [{name: a}, {name: b}]\n', /fit: expected at least 3 variants/],
  ];
  for (const [text, want] of cases) {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, text);
    assert.throws(() => readStudyPlan(file), (e: Error) => e instanceof UserError && want.test(e.message), text);
  }
});
