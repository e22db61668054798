// The pretraining loop, nanoGPT's recipe: random windows from a token file, AdamW with warmup + cosine decay,
// gradient accumulation and clipping, periodic train/val evaluation, atomic checkpoints, exact resume.
// A resumed run reproduces the uninterrupted run's losses bit for bit: weights, optimizer moments, the sampler's
// RNG state and the step are restored, dropout masks and evaluation batches are functions of (seed, step).
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as lm from '../core/index.js';
import { hash32 } from '../core/random.js';
import { GPT, type GPTConfig } from '../models/gpt.js';
import { saveGPT } from '../models/gpt-io.js';
import { loadStateDict, stateDict, type NamedArray } from '../nn/state.js';
import { AdamW } from '../optim/adamw.js';
import { learningRate, type LrSchedule } from '../optim/schedule.js';
import { writeFileAtomic } from '../util/atomic.js';
import { saveConfig } from '../util/config.js';
import { UserError } from '../util/errors.js';
import { findLatestComplete, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { estimateFlopsPerToken, formatProgress, MetricsLogger, ProgressTracker } from './metrics.js';
import { BatchSampler, openTokenFile, type TokenFile } from './token-reader.js';
import type { TrainConfig } from './train-config.js';

export const META_FILE = 'meta.json';

/** What `prepare`/`tokenize` leave beside train.bin and val.bin. */
export interface DataMeta {
  vocab_size: number;
  /** How to turn text into ids and back (copied into the run so `sample` can decode). */
  tokenizer: Record<string, unknown>;
}

export interface TrainOptions {
  /** Continue from the newest complete checkpoint in out_dir. */
  resume?: boolean;
  /** Progress output (default: console.log). */
  log?: (line: string) => void;
}

export interface TrainResult {
  steps: number;
  trainLoss: number | null;
  valLoss: number | null;
  /** Loss over the whole val split at the end (config full_val), else null. */
  valLossFull: number | null;
  tokensPerSecond: number;
  runDir: string;
}

/** Model architecture keys of the train config; a resumed run must not change them. */
const MODEL_KEYS = ['n_layer', 'n_head', 'n_embd', 'bias', 'activation', 'norm', 'mlp', 'mlp_hidden', 'position', 'tie_embeddings', 'block_size'] as const;

export function readMeta(dataDir: string): DataMeta {
  const path = join(dataDir, META_FILE);
  if (!existsSync(path)) throw new UserError(`${path}: not found (run \`lmforge prepare\` or \`lmforge tokenize\` to make ${dataDir})`);
  let meta: unknown;
  try {
    meta = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${(e as Error).message})`);
  }
  const m = meta as Partial<DataMeta>;
  if (typeof m.vocab_size !== 'number' || !Number.isInteger(m.vocab_size) || m.vocab_size < 1) {
    throw new UserError(`${path}: field vocab_size must be a positive integer, got ${JSON.stringify(m.vocab_size)}`);
  }
  if (typeof m.tokenizer !== 'object' || m.tokenizer === null) throw new UserError(`${path}: field tokenizer must be an object`);
  return m as DataMeta;
}

export function modelConfigOf(c: TrainConfig, vocabSize: number): Partial<GPTConfig> {
  return {
    vocab_size: vocabSize, block_size: c.block_size, n_layer: c.n_layer, n_head: c.n_head, n_embd: c.n_embd, dropout: c.dropout,
    bias: c.bias, activation: c.activation, norm: c.norm, mlp: c.mlp, mlp_hidden: c.mlp_hidden, position: c.position, tie_embeddings: c.tie_embeddings,
  };
}

function schedule(c: TrainConfig): LrSchedule {
  return c.decay_lr
    ? { kind: 'cosine', lr: c.learning_rate, minLr: c.min_lr, warmupIters: c.warmup_iters, decayIters: c.lr_decay_iters }
    : { kind: 'constant', lr: c.learning_rate };
}

/** Mean loss over eval_iters batches whose windows depend only on (seed, step, split). */
function estimateLoss(model: GPT, file: TokenFile, c: TrainConfig, step: number, split: number): number {
  const sampler = new BatchSampler(file, c.batch_size, c.block_size, hash32((c.seed ^ hash32(step)) + split));
  const shape = [c.batch_size, c.block_size];
  let total = 0;
  model.eval();
  lm.noGrad(() => {
    for (let i = 0; i < c.eval_iters; i++) {
      const { x, y } = sampler.next();
      total += lm.tidy(() => model.forward(lm.fromArray(x, shape), lm.fromArray(y, shape)).loss!.item());
    }
  });
  model.train();
  return total / c.eval_iters;
}

/** How many consecutive (x, y) windows of T tokens a token file holds (y is x shifted by one). */
export function splitWindows(file: TokenFile, T: number): number {
  return Math.floor((file.count - 1) / T);
}

/**
 * Mean loss over a whole token file cut into consecutive non-overlapping (x, y) windows of block_size, batch_size
 * at a time: the noise-free value the random-window estimate samples (each window position weighs the same).
 */
export function fullSplitLoss(model: GPT, file: TokenFile, batchSize: number, blockSize: number): number {
  const T = blockSize;
  const windows = splitWindows(file, T);
  if (windows < 1) throw new UserError(`${file.path}: ${file.count} tokens is too few for one window of block_size ${T}`);
  let total = 0;
  model.eval();
  lm.noGrad(() => {
    for (let w0 = 0; w0 < windows; w0 += batchSize) {
      const B = Math.min(batchSize, windows - w0);
      const x = Int32Array.from(file.ids.subarray(w0 * T, (w0 + B) * T));
      const y = Int32Array.from(file.ids.subarray(w0 * T + 1, (w0 + B) * T + 1));
      total += B * lm.tidy(() => model.forward(lm.fromArray(x, [B, T]), lm.fromArray(y, [B, T])).loss!.item());
    }
  });
  model.train();
  return total / windows;
}

export function train(config: TrainConfig, options: TrainOptions = {}): TrainResult {
  const log = options.log ?? ((line: string) => console.log(line));
  const c = config;
  if (c.threads > 0) lm.setThreads(c.threads);
  const meta = readMeta(c.data_dir);
  const vocabSize = c.vocab_size ?? meta.vocab_size;
  if (vocabSize < meta.vocab_size) throw new UserError(`vocab_size: ${vocabSize} is smaller than the data's vocabulary (${meta.vocab_size} in ${join(c.data_dir, META_FILE)})`);
  const trainFile = openTokenFile(join(c.data_dir, 'train.bin'));
  const valFile = openTokenFile(join(c.data_dir, 'val.bin'));

  const model = new GPT(modelConfigOf(c, vocabSize), c.seed);
  const named = model.namedParameters();
  // Decoupled weight decay on matrices (and embeddings) only, as nanoGPT: biases and norm gains are not decayed.
  const decayed = named.filter(([, p]) => p.ndim >= 2);
  const plain = named.filter(([, p]) => p.ndim < 2);
  const order = [...decayed, ...plain].map(([n]) => n);
  const opt = new AdamW(
    [{ params: decayed.map(([, p]) => p), weightDecay: c.weight_decay }, { params: plain.map(([, p]) => p), weightDecay: 0 }],
    { lr: c.learning_rate, beta1: c.beta1, beta2: c.beta2 },
  );

  let startStep = 0;
  let samplerState: number | lm.RngState = c.seed;
  let bestVal: number | null = null;
  if (options.resume) {
    const latest = findLatestComplete(c.out_dir);
    for (const s of latest?.skipped ?? []) log(`skipping checkpoint ${s.dir}: ${s.reason}`);
    if (!latest) throw new UserError(`${c.out_dir}: no complete checkpoint to resume from`);
    const ck = loadCheckpoint(latest.dir);
    const saved = ck.state.config as Partial<TrainConfig>;
    for (const k of MODEL_KEYS) {
      if (saved[k] !== undefined && saved[k] !== c[k]) {
        throw new UserError(`--resume: ${k} is ${JSON.stringify(c[k])} but the checkpoint in ${latest.dir} was trained with ${JSON.stringify(saved[k])}`);
      }
    }
    loadStateDict(model, new Map<string, NamedArray>(ck.params), join(latest.dir, 'model.safetensors'));
    opt.loadState({ step: ck.optimizer.step, m: order.map((n) => ck.optimizer.m.get(n)!), v: order.map((n) => ck.optimizer.v.get(n)!) });
    startStep = ck.state.step;
    samplerState = ck.state.samplerRng;
    bestVal = ck.state.bestValLoss;
    log(`resumed from ${latest.dir} at step ${startStep}`);
  }
  const sampler = new BatchSampler(trainFile, c.batch_size, c.block_size, samplerState);
  const metrics = new MetricsLogger(c.out_dir, options.resume ? { resumeFrom: startStep } : {});
  saveConfig(join(c.out_dir, 'train-config.json'), c);
  writeFileAtomic(join(c.out_dir, META_FILE), JSON.stringify({ ...meta, vocab_size: vocabSize }, null, 2) + '\n');
  // A tokenizer file named by meta.json travels with the run, so `lmforge sample --run` can decode.
  if (meta.tokenizer.type === 'file' && typeof meta.tokenizer.file === 'string') {
    copyFileSync(join(c.data_dir, meta.tokenizer.file), join(c.out_dir, meta.tokenizer.file));
  }

  const tokensPerStep = c.batch_size * c.block_size * c.gradient_accumulation_steps;
  const tracker = new ProgressTracker({
    maxSteps: c.max_iters, tokensPerStep, peakFlops: c.peak_flops || null,
    flopsPerToken: estimateFlopsPerToken({ nParams: model.numParametersNonEmbedding(), nLayer: c.n_layer, nEmbd: c.n_embd, blockSize: c.block_size }),
  });
  log(`model: ${(model.numParametersNonEmbedding() / 1e6).toFixed(2)}M parameters, backend ${lm.getBackend()}, ${tokensPerStep} tokens per step`);

  const lrSchedule = schedule(c);
  const shape = [c.batch_size, c.block_size];
  let trainLoss: number | null = null;
  let valLoss: number | null = null;
  let valLossFull: number | null = null;
  let lastSaved = -1;
  let tokensPerSecond = 0;
  const save = (step: number): void => {
    const m = new Map<string, Float32Array>();
    const v = new Map<string, Float32Array>();
    const st = opt.state();
    order.forEach((n, i) => {
      m.set(n, st.m[i]!.data as Float32Array);
      v.set(n, st.v[i]!.data as Float32Array);
    });
    const params = [...stateDict(model)].map(([n, a]) => [n, { shape: [...a.shape], data: a.data as Float32Array }] as [string, { shape: number[]; data: Float32Array }]);
    saveCheckpoint(c.out_dir, { step, params, optimizer: { step: st.step, m, v }, samplerRng: sampler.rngState(), bestValLoss: bestVal, config: c }, { keepLast: c.keep_checkpoints });
    lastSaved = step;
  };

  try {
    for (let step = startStep; ; step++) {
      const last = step >= c.max_iters;
      if (step % c.eval_interval === 0 || last) {
        trainLoss = estimateLoss(model, trainFile, c, step, 0);
        valLoss = estimateLoss(model, valFile, c, step, 1);
        if (bestVal === null || valLoss < bestVal) bestVal = valLoss;
        log(`step ${step}: train loss ${trainLoss.toFixed(4)}, val loss ${valLoss.toFixed(4)}`);
        metrics.log({ step, train_loss: trainLoss, val_loss: valLoss });
        if (last && c.full_val) {
          valLossFull = fullSplitLoss(model, valFile, c.batch_size, c.block_size);
          log(`step ${step}: val loss over the whole val split ${valLossFull.toFixed(4)} (${splitWindows(valFile, c.block_size)} windows)`);
          metrics.log({ step, val_loss_full: valLossFull });
        }
      }
      if (step > startStep && ((c.checkpoint_interval > 0 && step % c.checkpoint_interval === 0) || last)) save(step);
      if (last) break;

      const t0 = performance.now();
      const lr = learningRate(lrSchedule, step);
      opt.lr = lr;
      let lossSum = 0;
      for (let micro = 0; micro < c.gradient_accumulation_steps; micro++) {
        const { x, y } = sampler.next();
        lossSum += lm.tidy(() => {
          const { loss } = model.forward(lm.fromArray(x, shape), lm.fromArray(y, shape), { seed: hash32(c.seed + hash32(step * 64 + micro)) });
          lm.backward(loss!);
          return loss!.item();
        });
      }
      const loss = lossSum / c.gradient_accumulation_steps;
      if (!Number.isFinite(loss)) {
        if (c.nan_policy === 'stop') {
          throw new UserError(`step ${step}: loss is ${loss}; stopping. Nothing written at this step; resume with --resume from the last checkpoint${lastSaved >= 0 ? ` (step ${lastSaved})` : ''}, perhaps with a lower learning_rate`);
        }
        log(`step ${step}: loss is ${loss}, update skipped (nan_policy=skip)`);
        opt.zeroGrad();
        continue;
      }
      opt.update({ gradScale: 1 / c.gradient_accumulation_steps, clipNorm: c.grad_clip });
      opt.zeroGrad();
      const ms = performance.now() - t0;
      const rec = tracker.update(step, loss, lr, ms);
      tokensPerSecond = rec.tokens_per_s;
      if (step % c.log_interval === 0) {
        log(formatProgress(rec));
        metrics.log(rec);
      }
    }
    if (lastSaved !== c.max_iters && c.max_iters > startStep) save(c.max_iters);
    saveGPT(c.out_dir, model, { step: String(c.max_iters) });
  } finally {
    metrics.close();
    opt.dispose();
    model.dispose();
  }
  return { steps: c.max_iters, trainLoss, valLoss, valLossFull, tokensPerSecond, runDir: c.out_dir };
}
