// Data parallelism end to end under mpirun on real text: dp = 2 and 4, replicated and ZeRO-1, train on the same
// global batches as one process and log the same losses (within 1e-5 over 30 steps); a checkpoint written at one
// world size resumes at another; ZeRO-1 prints 1/N of the optimizer state per rank. Skipped (reason printed)
// without mpirun or the MPI addon.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { prepareCharData } from '../../../src/data/prepare.js';
import { readMetrics } from '../../../src/train/metrics.js';
import { mpiSkipReason, runMpi, tempDir } from './mpi-run.js';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const skip = mpiSkipReason();

const STEPS = 30;
const tiny = ['--n_layer=2', '--n_head=2', '--n_embd=32', '--block_size=32', '--batch_size=12', `--max_iters=${STEPS}`,
  '--eval_interval=1000', '--eval_iters=1', '--log_interval=1', '--checkpoint_interval=0', '--warmup_iters=5', `--lr_decay_iters=${STEPS}`,
  '--threads=1', '--bucket_mb=0.02'];

let dataDir: string | undefined;
function data(): string {
  if (!dataDir) {
    const dir = tempDir('lmforge-dp-');
    writeFileSync(join(dir, 'input.txt'), readFileSync(join(root, '../shared/data/tinyshakespeare/input.txt'), 'utf8').slice(0, 100_000));
    prepareCharData({ input: join(dir, 'input.txt'), outDir: join(dir, 'data'), valFraction: 0.1 });
    dataDir = join(dir, 'data');
  }
  return dataDir;
}

function trainArgs(out: string, extra: string[]): string[] {
  return [cli, 'train', `--data_dir=${data()}`, `--out_dir=${out}`, ...tiny, ...extra];
}

function runTrain(n: number, out: string, extra: string[] = []): string {
  const args = trainArgs(out, extra);
  const r = n === 1 ? spawnSync(process.execPath, args, { encoding: 'utf8' }) : runMpi(n, args[0]!, args.slice(1));
  assert.equal('code' in r ? r.code : r.status, 0, `${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

function losses(out: string): Map<number, number> {
  return new Map(readMetrics(join(out, 'metrics.jsonl')).filter((m) => typeof m.loss === 'number').map((m) => [m.step, m.loss as number]));
}

function maxDiff(a: Map<number, number>, b: Map<number, number>): number {
  assert.equal(b.size, a.size);
  let d = 0;
  for (const [k, v] of a) d = Math.max(d, Math.abs(v - b.get(k)!));
  return d;
}

let single: Map<number, number> | undefined;
function singleLosses(tmp: string): Map<number, number> {
  if (!single) {
    runTrain(1, join(tmp, 'single'));
    single = losses(join(tmp, 'single'));
  }
  return single;
}

for (const [n, zero] of [[2, 0], [4, 1]] as const) {
  test(`dp=${n}${zero ? ' with ZeRO-1' : ''} logs the losses of one process within 1e-5`, { skip }, () => {
    const tmp = tempDir('lmforge-dp-run-');
    const out = join(tmp, `dp${n}`);
    const stdout = runTrain(n, out, [`--dp=${n}`, `--zero=${zero}`]);
    const d = maxDiff(singleLosses(tmp), losses(out));
    assert.ok(d <= 1e-5, `max loss difference ${d}`);
    // Rank 0 alone prints; ZeRO-1 holds 1/N of the replicated state on each rank.
    const line = stdout.split('\n').filter((l) => l.startsWith('data parallel:') && l.includes('state per rank'));
    assert.equal(line.length, 1, stdout);
    const perRank = line[0]!.match(/state per rank ([\d./ ]+) MB/)![1]!.split(' / ').map(Number);
    assert.equal(perRank.length, n);
    if (zero) {
      const max = Math.max(...perRank), min = Math.min(...perRank);
      assert.ok(max - min <= 0.002, `blocks differ by at most padding: ${perRank.join(', ')}`);
    }
    // Buckets start while backward runs (the hook saw their gradients land), except with ZeRO-1 (one reduce-scatter).
    if (!zero) {
      const m = /gradients in (\d+) buckets of about [\d.]+ MB; (\d+) started their all-reduce while backward ran/.exec(stdout);
      assert.ok(m, stdout);
      assert.ok(Number(m[1]) > 2 && Number(m[2]) >= 1, m[0]);
    }
    // Bytes per step per rank: about 2(N−1)/N of the gradients' bytes.
    const bytes = readMetrics(join(out, 'metrics.jsonl')).map((m) => m.comm_bytes).filter((b): b is number => typeof b === 'number');
    assert.equal(bytes.length, STEPS);
  });
}

test('a checkpoint written by dp=2 with ZeRO-1 resumes at dp=4 and in one process, on the same loss curve', { skip }, () => {
  const tmp = tempDir('lmforge-dp-resume-');
  const ref = singleLosses(tmp);
  const half = [`--max_iters=${STEPS / 2}`];
  const a = join(tmp, 'a');
  runTrain(2, a, ['--dp=2', '--zero=1', ...half]);
  runTrain(4, a, ['--dp=4', '--resume']);
  assert.ok(maxDiff(ref, losses(a)) <= 1e-5);
  const b = join(tmp, 'b');
  runTrain(1, b, half);
  runTrain(2, b, ['--dp=2', '--zero=1', '--resume']);
  assert.ok(maxDiff(ref, losses(b)) <= 1e-5);
});

test('a distributed run without the MPI addon is refused in one line saying how to get it', () => {
  const tmp = tempDir('lmforge-dp-noaddon-');
  const env = { ...process.env, OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_RANK: '0', LMFORGE_MPI_ADDON: join(tmp, 'missing.node') };
  const r = spawnSync(process.execPath, trainArgs(join(tmp, 'x'), ['--dp=2']), { encoding: 'utf8', env });
  assert.equal(r.status, 1);
  assert.match(r.stderr.trim(), /^error: a distributed run needs the MPI addon \(.*missing\.node\): not built .*; install Open MPI \(apt-get install openmpi-bin libopenmpi-dev\) and rebuild/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});

test('asking for dp=2 in one process, or zero without dp, is refused in one line', () => {
  const tmp = tempDir('lmforge-dp-err-');
  const r = spawnSync(process.execPath, trainArgs(join(tmp, 'x'), ['--dp=2']), { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr.trim(), /^error: the run asks for 2 processes but was started as one; launch it with `mpirun -np 2/);
  const z = spawnSync(process.execPath, trainArgs(join(tmp, 'y'), ['--zero=1']), { encoding: 'utf8' });
  assert.equal(z.status, 1);
  assert.match(z.stderr.trim(), /^error: zero: ZeRO-1 shards the optimizer state over data-parallel ranks; set dp > 1/);
});
