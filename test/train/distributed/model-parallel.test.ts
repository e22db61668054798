// Tensor, pipeline and expert parallelism: the layouts' pure parts in one process (schedules and their bubble,
// stage and expert placement, shard cuts and their inverse, vocabulary-parallel cross-entropy on one rank), then
// every layout on 2 ranks under mpirun against the single-process model (logits, loss, gradients, a short
// training run's losses, bytes per step against the formula) and `lmforge train --tp=2`; the mpirun parts skip with the reason printed when
// mpirun or the MPI addon is missing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as lm from '../../../src/core/index.js';
import { Rng } from '../../../src/core/index.js';
import { prepareCharData } from '../../../src/data/prepare.js';
import { loadGPT } from '../../../src/models/gpt-io.js';
import { GPT } from '../../../src/models/gpt.js';
import { readMetrics } from '../../../src/train/metrics.js';
import { SingleComm } from '../../../src/train/distributed/comm.js';
import { expertMajorOrder, expertOwner, expertRange } from '../../../src/train/distributed/expert-parallel.js';
import { layoutOf, place } from '../../../src/train/distributed/model-parallel.js';
import {
  bubbleFraction, gpipeSchedule, oneFOneBSchedule, peakInFlight, simulatePipeline, stageLayers, type PipeAction,
} from '../../../src/train/distributed/pipeline.js';
import { cut, tensorParallelSpec, vocabParallelCrossEntropy } from '../../../src/train/distributed/tensor-parallel.js';
import { mpiSkipReason, runMpi, taggedLines, tempDir } from './mpi-run.js';

test('GPipe and 1F1B run every micro-batch forward then backward once per stage; 1F1B holds at most p − s', () => {
  for (const [p, m] of [[2, 1], [2, 4], [4, 8], [4, 2], [3, 5]] as const) {
    for (let s = 0; s < p; s++) {
      for (const [name, sched] of [['gpipe', gpipeSchedule(p, m, s)], ['1f1b', oneFOneBSchedule(p, m, s)]] as const) {
        const seen = new Map<string, number>();
        sched.forEach((a, i) => seen.set(`${a.kind}${a.micro}`, i));
        assert.equal(seen.size, 2 * m, `${name} p=${p} m=${m} s=${s}`);
        for (let i = 0; i < m; i++) assert.ok(seen.get(`F${i}`)! < seen.get(`B${i}`)!, `${name}: B${i} before F${i}`);
      }
      assert.equal(peakInFlight(gpipeSchedule(p, m, s)), m);
      assert.equal(peakInFlight(oneFOneBSchedule(p, m, s)), Math.min(p - s, m));
    }
  }
  assert.deepEqual(oneFOneBSchedule(2, 3, 0).map((a) => `${a.kind}${a.micro}`), ['F0', 'F1', 'B0', 'F2', 'B1', 'B2']);
  assert.deepEqual(oneFOneBSchedule(2, 3, 1).map((a) => `${a.kind}${a.micro}`), ['F0', 'B0', 'F1', 'B1', 'F2', 'B2']);
  assert.throws(() => gpipeSchedule(2, 0, 0), /micro-batches 0/);
});

test('both schedules finish in (m + p − 1)(t_f + t_b): the bubble is (p − 1)/(m + p − 1)', () => {
  for (const [p, m] of [[2, 4], [4, 8], [4, 1], [3, 6]] as const) {
    for (const make of [gpipeSchedule, oneFOneBSchedule]) {
      const span = simulatePipeline(Array.from({ length: p }, (_, s) => make(p, m, s)), 1, 2);
      assert.equal(span, (m + p - 1) * 3);
      assert.ok(Math.abs(1 - (m * 3) / span - bubbleFraction(p, m)) < 1e-12);
    }
  }
  // A backward before its forward never becomes ready.
  const bad: PipeAction[][] = [[{ kind: 'B', micro: 0 }, { kind: 'F', micro: 0 }], [{ kind: 'F', micro: 0 }, { kind: 'B', micro: 0 }]];
  assert.throws(() => simulatePipeline(bad, 1, 1), /deadlock/);
});

test('stages cover the layers in order, earlier stages taking the remainder; experts spread evenly', () => {
  assert.deepEqual([0, 1, 2].map((s) => stageLayers(7, 3, s)), [[0, 3], [3, 5], [5, 7]]);
  assert.throws(() => stageLayers(1, 2, 0), /1 layers cannot fill 2 stages/);
  assert.deepEqual([0, 1].map((r) => expertRange(8, 2, r)), [[0, 4], [4, 8]]);
  assert.deepEqual([0, 3, 4, 7].map((e) => expertOwner(8, 2, e)), [0, 0, 1, 1]);
  assert.throws(() => expertRange(6, 4, 0), /moe_experts = 6 does not divide by ep = 4/);
  // From rank 0: 2 rows for local expert 0, 1 for expert 1; from rank 1: 1 and 2 → expert-major [r0e0, r0e0, r1e0, r0e1, r1e1, r1e1].
  assert.deepEqual([...expertMajorOrder([[2, 1], [1, 2]])], [0, 1, 3, 2, 4, 5]);
});

test('tensor-parallel shards put back together give every full weight (swiglu and gelu)', () => {
  for (const mlp of ['gelu', 'swiglu'] as const) {
    const model = new GPT({ vocab_size: 32, block_size: 8, n_layer: 1, n_head: 4, n_embd: 16, mlp }, 3);
    const c = model.config;
    for (const [name, t] of model.namedParameters()) {
      const sum = new Float32Array(t.size);
      for (let r = 0; r < 2; r++) {
        const spec = tensorParallelSpec(name, c, { rank: r, size: 2 });
        const part = new Float32Array(t.size);
        const shard = cut(t, spec);
        place(part, t.shape, shard.toTypedArray() as Float32Array, shard.shape, spec);
        for (let i = 0; i < t.size; i++) sum[i]! += spec.kind === 'whole' ? part[i]! / 2 : part[i]!;
      }
      assert.deepEqual([...sum], [...(t.toTypedArray() as Float32Array)], `${mlp} ${name}`);
    }
    assert.throws(() => tensorParallelSpec('transformer.wte.weight', { ...c, vocab_size: 65 }, { rank: 0, size: 2 }), /vocab_size = 65 does not divide by tp = 2/);
  }
});

test('vocabulary-parallel cross-entropy on one rank is cross-entropy, ignored targets and gradients included', () => {
  const rng = new Rng(5);
  const z = lm.requireGrad(lm.randn([2, 3, 7], rng, 3));
  const t = lm.tensor([1, 6, -1, 0, 3, 3], [2, 3], 'int32');
  const a = vocabParallelCrossEntropy(z, t, 0, new SingleComm());
  lm.backward(a);
  const ga = z.grad!.toArray();
  z.grad = null;
  const b = lm.crossEntropy(z, t, { ignoreIndex: -1 });
  lm.backward(b);
  assert.ok(Math.abs(a.item() - b.item()) < 1e-6);
  ga.forEach((g, i) => assert.ok(Math.abs(g - z.grad!.toArray()[i]!) < 1e-6));
});

test('one model-parallel layout at a time, named in the error', () => {
  const base = { tp: 1, pp: 1, ep: 1, pp_schedule: '1f1b' as const, pp_micro_batches: 4 };
  assert.equal(layoutOf(base), null);
  assert.deepEqual(layoutOf({ ...base, pp: 2 }), { kind: 'pp', size: 2, schedule: '1f1b', microBatches: 4 });
  assert.throws(() => layoutOf({ ...base, tp: 2, pp: 2 }), /--tp=2 and --pp=2: one model-parallel layout at a time/);
});

const skip = mpiSkipReason();
if (skip) console.log(`# skipping model-parallel MPI tests: ${skip}`);

test('TP (two block variants), PP (GPipe and 1F1B) and EP on 2 ranks match the single-process model within 1e-4; bytes per step as predicted', { skip }, () => {
  const child = fileURLToPath(new URL('./mp-child.js', import.meta.url));
  const r = runMpi(2, child, ['tp,tp-variant,pp-gpipe,pp-1f1b,ep', '2'], 120_000);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const lines = taggedLines<Record<string, number | string>>(r.stdout, 'MP');
  assert.equal(lines.length, 10, r.stdout);
  for (const l of lines) {
    for (const k of ['logits', 'loss', 'grad', 'curve'] as const) assert.ok((l[k] as number) < 1e-4, `${l.mode} rank ${l.rank}: ${k} differs by ${l[k]}`);
    const [got, want] = [l.bytes_per_step as number, l.bytes_theory as number];
    assert.ok(Math.abs(got - want) <= 0.05 * want, `${l.mode} rank ${l.rank}: ${got} bytes per step, formula ${want}`);
  }
});

test('lmforge train --tp=2 under mpirun: the single-process run\'s losses, and the model saved whole', { skip }, () => {
  const root = fileURLToPath(new URL('../../../../', import.meta.url));
  const dir = tempDir('lmforge-tp-');
  writeFileSync(join(dir, 'input.txt'), readFileSync(join(root, '../shared/data/tinyshakespeare/input.txt'), 'utf8').slice(0, 20000));
  prepareCharData({ input: join(dir, 'input.txt'), outDir: join(dir, 'data'), valFraction: 0.1 });
  const cli = join(root, 'dist/src/cli/main.js');
  const vocab = JSON.parse(readFileSync(join(dir, 'data/meta.json'), 'utf8')).vocab_size as number;
  const args = ['train', `--data_dir=${join(dir, 'data')}`, '--n_layer=2', '--n_head=2', '--n_embd=32', '--block_size=16', '--batch_size=4',
    '--max_iters=3', '--eval_interval=3', '--eval_iters=1', '--log_interval=1', '--threads=1', `--model.vocab_size=${vocab + (vocab % 2)}`];
  const one = spawnSync(process.execPath, [cli, ...args, `--out_dir=${join(dir, 'one')}`], { encoding: 'utf8' });
  assert.equal(one.status, 0, one.stderr);
  const two = runMpi(2, cli, [...args, `--out_dir=${join(dir, 'two')}`, '--tp=2'], 120_000);
  assert.equal(two.code, 0, two.stderr + two.stdout);
  assert.match(two.stdout, /tp = 2 over mpi: this rank holds/);
  assert.equal(two.stdout.match(/^done:/gm)?.length, 1, 'only rank 0 reports');
  const losses = (d: string): number[] => readMetrics(join(dir, d, 'metrics.jsonl')).flatMap((r) => (typeof r.loss === 'number' ? [r.loss] : []));
  const [a, b] = [losses('one'), losses('two')];
  assert.equal(a.length, 3);
  a.forEach((l, i) => assert.ok(Math.abs(l - b[i]!) < 1e-4, `step ${i}: ${l} vs ${b[i]}`));
  assert.ok(existsSync(join(dir, 'two/rank-1')), 'rank 1 keeps its shard checkpoints in out_dir/rank-1');
  const w1 = loadGPT(join(dir, 'one'));
  const w2 = loadGPT(join(dir, 'two'));
  const full = new Map(w2.namedParameters());
  for (const [n, p] of w1.namedParameters()) {
    const q = full.get(n)!.toArray();
    p.toArray().forEach((v, i) => assert.ok(Math.abs(v - q[i]!) < 1e-5, `${n}[${i}]`));
  }
});
