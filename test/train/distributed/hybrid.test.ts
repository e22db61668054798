// Data parallelism over model-parallel groups: the grid's placement of ranks, and `lmforge train --dp=2 --tp=2` and
// `--dp=2 --pp=2` on 4 ranks under mpirun against the one-process run (losses within 1e-4, the saved model the
// same, a resume at the same layout continuing the same curve); --dp with --ep refused by name. The mpirun parts
// skip with the reason printed when mpirun or the MPI addon is missing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { prepareCharData } from '../../../src/data/prepare.js';
import { loadGPT } from '../../../src/models/gpt-io.js';
import { readMetrics } from '../../../src/train/metrics.js';
import { gridPosition } from '../../../src/train/distributed/hybrid.js';
import { mpiSkipReason, runMpi, tempDir } from './mpi-run.js';

test('the grid puts model-parallel groups on consecutive ranks and replicas in columns', () => {
  assert.deepEqual([0, 1, 2, 3].map((r) => gridPosition(r, 2, 2)), [
    { replica: 0, shard: 0 }, { replica: 0, shard: 1 }, { replica: 1, shard: 0 }, { replica: 1, shard: 1 },
  ]);
  assert.deepEqual(gridPosition(5, 3, 2), { replica: 2, shard: 1 });
  assert.deepEqual(gridPosition(3, 1, 4), { replica: 0, shard: 3 });
  assert.throws(() => gridPosition(4, 2, 2), /rank 4 of dp 2 × mp 2/);
});

const skip = mpiSkipReason();
if (skip) console.log(`# skipping the dp × tp / dp × pp MPI tests: ${skip}`);

test('lmforge train --dp=2 with --tp=2 and with --pp=2 (1F1B) on 4 ranks: the one-process losses and model; resumable', { skip }, () => {
  const root = fileURLToPath(new URL('../../../../', import.meta.url));
  const dir = tempDir('lmforge-grid-');
  writeFileSync(join(dir, 'input.txt'), readFileSync(join(root, '../shared/data/tinyshakespeare/input.txt'), 'utf8').slice(0, 20000));
  prepareCharData({ input: join(dir, 'input.txt'), outDir: join(dir, 'data'), valFraction: 0.1 });
  const cli = join(root, 'dist/src/cli/main.js');
  const vocab = JSON.parse(readFileSync(join(dir, 'data/meta.json'), 'utf8')).vocab_size as number;
  const args = (iters: number): string[] => ['train', `--data_dir=${join(dir, 'data')}`, '--n_layer=2', '--n_head=2', '--n_embd=32', '--block_size=16',
    '--batch_size=8', `--max_iters=${iters}`, '--eval_interval=100', '--eval_iters=1', '--log_interval=1', '--threads=1', '--pp_micro_batches=2',
    `--model.vocab_size=${vocab + (vocab % 2)}`];
  const one = spawnSync(process.execPath, [cli, ...args(3), `--out_dir=${join(dir, 'one')}`], { encoding: 'utf8' });
  assert.equal(one.status, 0, one.stderr);
  const losses = (d: string): number[] => readMetrics(join(dir, d, 'metrics.jsonl')).flatMap((r) => (typeof r.loss === 'number' ? [r.loss] : []));
  const sameModel = (d: string): void => {
    const a = loadGPT(join(dir, 'one'));
    const b = new Map(loadGPT(join(dir, d)).namedParameters());
    for (const [n, p] of a.namedParameters()) {
      const q = b.get(n)!.toArray();
      p.toArray().forEach((v, i) => assert.ok(Math.abs(v - q[i]!) < 1e-5, `${d}: ${n}[${i}] ${v} vs ${q[i]}`));
    }
  };
  for (const layout of [['--tp=2'], ['--pp=2', '--pp_schedule=1f1b']]) {
    const name = layout[0]!.slice(2, 4);
    const r = runMpi(4, cli, [...args(3), `--out_dir=${join(dir, name)}`, '--dp=2', ...layout], 180_000);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, new RegExp(`grid: 2 data-parallel replicas × ${name} = 2; 4 rows per replica`));
    assert.equal(r.stdout.match(/^done:/gm)?.length, 1, 'only world rank 0 reports');
    const [a, b] = [losses('one'), losses(name)];
    assert.equal(b.length, 3);
    a.forEach((l, i) => assert.ok(Math.abs(l - b[i]!) < 1e-4, `${name} step ${i}: ${l} vs ${b[i]}`));
    sameModel(name);
  }
  // Two more steps from the dp × tp checkpoint, against the one-process run resumed the same way.
  const one5 = spawnSync(process.execPath, [cli, ...args(5), `--out_dir=${join(dir, 'one')}`, '--resume'], { encoding: 'utf8' });
  assert.equal(one5.status, 0, one5.stderr);
  const r = runMpi(4, cli, [...args(5), `--out_dir=${join(dir, 'tp')}`, '--dp=2', '--tp=2', '--resume'], 180_000);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const [a, b] = [losses('one'), losses('tp')];
  assert.equal(b.length, 5);
  a.forEach((l, i) => assert.ok(Math.abs(l - b[i]!) < 1e-4, `resumed step ${i}: ${l} vs ${b[i]}`));
  sameModel('tp');
  const ep = runMpi(4, cli, [...args(1), `--out_dir=${join(dir, 'ep')}`, '--dp=2', '--ep=2'], 60_000);
  assert.notEqual(ep.code, 0);
  assert.match(ep.stderr + ep.stdout, /--dp=2 with --ep=2: expert parallelism already splits each batch/);
});
