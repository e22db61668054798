// The training platform's interfaces, each proved on a real run or model: resume with a second optimizer (SGD with
// momentum) is exact and refuses the wrong kind; a frozen parameter gets no gradient and no state; a wrapped
// Linear (a test adapter) trains while its base stays bit-identical; a partial load with a prefix puts a saved
// body under a new head; an auxiliary loss is added to the objective and logged by name; a run folder is never
// written into without --resume or --overwrite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import type { Tensor } from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { readSafetensors } from '../../src/core/safetensors.js';
import { prepareCharData } from '../../src/data/prepare.js';
import { GPT } from '../../src/models/gpt.js';
import { saveGPT } from '../../src/models/gpt-io.js';
import { Linear } from '../../src/nn/layers.js';
import { Module } from '../../src/nn/module.js';
import { loadStateDict, stateDict, type NamedArray } from '../../src/nn/state.js';
import { AdamW } from '../../src/optim/adamw.js';
import { makeOptimizer, optimSpec } from '../../src/optim/config.js';
import { loadCheckpoint, findLatestComplete } from '../../src/train/checkpoint.js';
import { runLoop, type LossOutput, type Task } from '../../src/train/loop.js';
import { readMetrics } from '../../src/train/metrics.js';
import { TRAIN_ALIASES, trainSpec, type TrainConfig } from '../../src/train/train-config.js';
import { train } from '../../src/train/trainer.js';
import { defaultsOf, objectLayer, resolveConfigWithAliases } from '../../src/util/config.js';
import { UserError } from '../../src/util/errors.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const shakespeare = join(root, '../shared/data/tinyshakespeare/input.txt');
loadNativeBackend();

function makeData(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-platform-'));
  writeFileSync(join(dir, 'input.txt'), readFileSync(shakespeare, 'utf8').slice(0, 60000));
  prepareCharData({ input: join(dir, 'input.txt'), outDir: join(dir, 'data'), valFraction: 0.1 });
  return dir;
}

function config(dir: string, out: string, extra: Record<string, unknown>): TrainConfig {
  return resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, objectLayer({
    data_dir: join(dir, 'data'), out_dir: join(dir, out), n_layer: 2, n_head: 2, n_embd: 32, block_size: 32, batch_size: 4,
    eval_interval: 10, eval_iters: 2, log_interval: 1, checkpoint_interval: 5, warmup_iters: 3, lr_decay_iters: 30, dropout: 0.1,
    ...extra,
  }, 'test'));
}

function curve(runDir: string): [number, number | null, number | null][] {
  return readMetrics(join(runDir, 'metrics.jsonl')).map((r) => [r.step, (r.loss as number | undefined) ?? null, (r.val_loss as number | undefined) ?? null]);
}

const quiet = { log: (): void => {} };

test('resume with SGD with momentum is exact; its checkpoint holds momentum buffers; resuming as AdamW is refused', () => {
  const dir = makeData();
  const sgd = { optim: { name: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true, warmup_iters: 3, lr_decay_iters: 30 } };
  train(config(dir, 'straight', { ...sgd, max_iters: 30 }), quiet);
  train(config(dir, 'split', { ...sgd, max_iters: 15 }), quiet);
  const ck = loadCheckpoint(findLatestComplete(join(dir, 'split'))!.dir);
  assert.equal(ck.optimizer.kind, 'sgd');
  assert.deepEqual([...ck.optimizer.tensors.keys()].every((k) => k.endsWith('.momentum_buffer')), true);
  assert.equal(ck.optimizer.tensors.size, ck.params.size);
  train(config(dir, 'split', { ...sgd, max_iters: 30 }), { ...quiet, resume: true });
  assert.deepEqual(curve(join(dir, 'split')), curve(join(dir, 'straight')));
  assert.equal(readFileSync(join(dir, 'split', 'model.safetensors')).equals(readFileSync(join(dir, 'straight', 'model.safetensors'))), true);
  assert.throws(() => train(config(dir, 'split', { max_iters: 40 }), { ...quiet, resume: true }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /holds sgd state but optim\.name is adamw/);
    return true;
  });
});

test('a run folder that holds a run is refused without --resume or --overwrite; --overwrite starts clean', () => {
  const dir = makeData();
  train(config(dir, 'run', { max_iters: 10 }), quiet);
  assert.throws(() => train(config(dir, 'run', { max_iters: 10 }), quiet), /already holds a run; pass --resume to continue it or --overwrite/);
  train(config(dir, 'run', { max_iters: 5, checkpoint_interval: 0 }), { ...quiet, overwrite: true });
  assert.deepEqual(curve(join(dir, 'run')).map(([s]) => s).filter((s, i, a) => a.indexOf(s) === i), [0, 1, 2, 3, 4, 5]);
  assert.equal(existsSync(join(dir, 'run', 'ckpt-10')), false);
});

test('a frozen parameter gets no gradient and no optimizer state, and does not move', () => {
  const model = new GPT({ vocab_size: 20, block_size: 8, n_layer: 1, n_head: 2, n_embd: 8 }, 4);
  model.transformer.wte.freeze();
  const before = Float32Array.from(model.transformer.wte.weight.toTypedArray() as Float32Array);
  const trainable = model.namedTrainableParameters();
  assert.ok(!trainable.some(([n]) => n === 'transformer.wte.weight'));
  assert.equal(trainable.length, model.namedParameters().length - 1);
  const opt = makeOptimizer(trainable, { ...defaultsOf(optimSpec), lr: 1e-2 });
  assert.ok(![...opt.state().tensors.keys()].some((k) => k.startsWith('transformer.wte.')));
  assert.throws(() => new AdamW([{ params: model.namedParameters() }], { lr: 1 }), /"transformer\.wte\.weight" is frozen/);
  const x = lm.keep(lm.tensor([1, 2, 3, 4, 5, 6, 7, 8], [1, 8], 'int32'));
  const y = lm.keep(lm.tensor([2, 3, 4, 5, 6, 7, 8, 9], [1, 8], 'int32'));
  const wpeBefore = Float32Array.from(model.transformer.wpe!.weight.toTypedArray() as Float32Array);
  for (let i = 0; i < 3; i++) {
    lm.tidy(() => lm.backward(model.forward(x, y).loss!));
    assert.equal(model.transformer.wte.weight.grad, null);
    assert.ok(model.transformer.wpe!.weight.grad !== null);
    opt.step();
    opt.zeroGrad();
  }
  assert.deepEqual(model.transformer.wte.weight.toTypedArray(), before);
  assert.notDeepEqual(model.transformer.wpe!.weight.toTypedArray(), wpeBefore);
  opt.dispose();
  model.dispose();
  x.dispose();
  y.dispose();
});

/** A test adapter: y = base(x) + (x·A)·B with a frozen base, B zero at the start (LoRA's shape), and a buffer. */
class TestAdapter extends Module {
  readonly A: Tensor;
  readonly B: Tensor;
  readonly calls: Tensor;

  constructor(readonly base: Linear, rank: number, rng: lm.Rng) {
    super();
    this.child('base', base);
    base.freeze();
    this.A = this.param('A', lm.randn([base.inFeatures, rank], rng, 0.1));
    this.B = this.param('B', lm.zeros([rank, base.outFeatures]));
    this.calls = this.buffer('calls', lm.zeros([1]));
  }

  forward(x: Tensor): Tensor {
    return lm.add(this.base.forward(x), lm.matmul(lm.matmul(x, this.A), this.B));
  }
}

test('a wrapped Linear (a test adapter) trains while the base stays bit-identical; buffers are saved, not trained', () => {
  const model = new GPT({ vocab_size: 20, block_size: 8, n_layer: 2, n_head: 2, n_embd: 8 }, 5);
  const path = 'transformer.h.1.attn.c_attn';
  const baseWeight = Float32Array.from((model.getModule(path) as Linear).weight.toTypedArray() as Float32Array);
  model.freeze();
  const adapter = model.replaceModule(path, (old) => new TestAdapter(old as Linear, 2, new lm.Rng(1)));
  assert.equal(model.transformer.h.items[1]!.attn.c_attn as unknown, adapter, 'the parent now calls the adapter');
  assert.deepEqual(model.namedTrainableParameters().map(([n]) => n), [`${path}.A`, `${path}.B`]);
  assert.ok(stateDict(model).has(`${path}.calls`) && stateDict(model).has(`${path}.base.weight`));
  assert.ok(!model.namedParameters().some(([n]) => n.endsWith('.calls')));
  const opt = makeOptimizer(model.namedTrainableParameters(), { ...defaultsOf(optimSpec), lr: 0.1, weight_decay: 0 });
  const x = lm.keep(lm.tensor([1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8], [2, 8], 'int32'));
  const y = lm.keep(lm.tensor([2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5, 6, 7, 8, 9], [2, 8], 'int32'));
  const losses: number[] = [];
  for (let i = 0; i < 40; i++) {
    losses.push(lm.tidy(() => {
      const { loss } = model.forward(x, y);
      lm.backward(loss!);
      return loss!.item();
    }));
    opt.step();
    opt.zeroGrad();
  }
  assert.ok(losses[39]! < losses[0]! - 0.04, `the adapter alone lowers the loss: ${losses[0]} → ${losses[39]}`);
  assert.deepEqual(adapter.base.weight.toTypedArray(), baseWeight);
  assert.ok((adapter.B.toTypedArray() as Float32Array).some((v) => v !== 0));
  opt.dispose();
  model.dispose();
  x.dispose();
  y.dispose();
});

/** A reward-model shape: a GPT body and a scalar head on the last position's final hidden state. */
class Scorer extends Module {
  readonly body: GPT;
  readonly head: Linear;

  constructor(body: GPT) {
    super();
    this.body = this.child('body', body);
    this.head = this.child('head', new Linear(body.config.n_embd, 1, { bias: true, rng: new lm.Rng(2), std: 0.02 }));
  }

  score(idx: Tensor): Tensor {
    const { hidden } = this.body.forward(idx);
    const T = idx.shape[1]!;
    return this.head.forward(lm.slice(hidden, 1, T - 1, T)); // (B, 1, 1)
  }
}

test('a partial loadStateDict with a prefix loads a saved body under a new head', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-prefix-'));
  const shape = { vocab_size: 20, block_size: 8, n_layer: 1, n_head: 2, n_embd: 8 };
  const trained = new GPT(shape, 11);
  saveGPT(dir, trained);
  const scorer = new Scorer(new GPT(shape, 99));
  const headBefore = scorer.head.weight.toTypedArray();
  const entries = new Map<string, NamedArray>(readSafetensors(join(dir, 'model.safetensors')).tensors as Map<string, NamedArray>);
  assert.throws(() => loadStateDict(scorer, entries, 'model.safetensors'), /missing body\.transformer\.wte\.weight/);
  const strictScope = loadStateDict(scorer, entries, 'model.safetensors', { prefix: 'body.' });
  assert.deepEqual(strictScope, { missing: [], unexpected: [] });
  const r = loadStateDict(scorer, entries, 'model.safetensors', { strict: false });
  assert.deepEqual(r.missing.filter((n) => n.startsWith('head.')), ['head.weight', 'head.bias']);
  for (const [name, t] of trained.namedParameters()) assert.deepEqual(scorer.body.getModule('').namedParameters().find(([n]) => n === name)![1].toTypedArray(), t.toTypedArray(), name);
  assert.deepEqual(scorer.head.weight.toTypedArray(), headBefore);
  const idx = lm.keep(lm.tensor([1, 2, 3, 4], [1, 4], 'int32'));
  const want = lm.tidy(() => lm.noGrad(() => {
    const h = trained.forward(idx).hidden;
    return scorer.head.forward(lm.slice(h, 1, 3, 4)).toArray();
  }));
  assert.deepEqual(lm.tidy(() => lm.noGrad(() => scorer.score(idx).toArray())), want);
  idx.dispose();
  trained.dispose();
  scorer.dispose();
});

/** A one-parameter regression whose model returns an auxiliary L2 term, to show the loop adds and logs it. */
class AuxTask implements Task<number> {
  readonly itemsPerBatch = 1;
  readonly flopsPerItem = 0;
  readonly model: Linear;
  private i = 0;

  constructor(readonly auxWeight: number, readonly asAux: boolean) {
    this.model = new Linear(1, 1, { bias: false, rng: new lm.Rng(1), std: 1 });
  }

  nextBatch(): number {
    return this.i++ % 5;
  }

  loss(b: number): LossOutput {
    const w = this.model.weight;
    const err = lm.sub(lm.mul(w, lm.tensor([b], [1, 1])), lm.tensor([2 * b + 1], [1, 1]));
    const mse = lm.mean(lm.mul(err, err));
    const l2 = lm.mul(lm.sum(lm.mul(w, w)), lm.tensor([this.auxWeight], []));
    return this.asAux ? { loss: mse, aux: { l2 } } : { loss: lm.add(mse, l2) };
  }

  state(): Record<string, unknown> {
    return { i: this.i };
  }

  loadState(s: Record<string, unknown>): void {
    this.i = s.i as number;
  }
}

test('an auxiliary loss a model returns is added to the objective and logged under its own name', () => {
  const run = (asAux: boolean, out: string): { w: number; logged: number[] } => {
    const task = new AuxTask(0.5, asAux);
    const opt = new AdamW([{ params: task.model.namedTrainableParameters() }], { lr: 0.1, weightDecay: 0 });
    runLoop(task, opt, {
      maxIters: 12, gradientAccumulationSteps: 2, gradClip: 0, nanPolicy: 'stop', evalInterval: 100, logInterval: 1, checkpointInterval: 0,
      keepCheckpoints: 1, peakFlops: 0, seed: 1, schedule: { kind: 'constant', lr: 0.1 }, config: {},
    }, { runDir: out, resume: false, log: () => {} });
    const w = task.model.weight.item();
    opt.dispose();
    task.model.dispose();
    return { w, logged: readMetrics(join(out, 'metrics.jsonl')).filter((r) => r.l2 !== undefined).map((r) => r.l2 as number) };
  };
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-aux-'));
  const withAux = run(true, join(dir, 'aux'));
  const summed = run(false, join(dir, 'sum'));
  assert.equal(withAux.w, summed.w, 'the same update as a loss that includes the term');
  assert.equal(withAux.logged.length, 12);
  assert.ok(withAux.logged.every((v) => v > 0));
  assert.equal(summed.logged.length, 0);
});
