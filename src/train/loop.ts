// The training loop, one for every objective: it takes a task (its model, its batches, its loss) and an
// optimizer, and owns the rest — learning-rate schedule, gradient accumulation, clipping, auxiliary losses,
// evaluation hooks, NaN policy, the progress line and metrics.jsonl, checkpoints and exact resume.
// A resumed run reproduces the uninterrupted run's losses bit for bit: weights, optimizer state, the task's state
// (its sampler's RNG) and the step are restored; dropout seeds are functions of (seed, step, micro-step).
import * as lm from '../core/index.js';
import { hash32 } from '../core/random.js';
import type { Tensor } from '../core/index.js';
import type { Module } from '../nn/module.js';
import { loadStateDict, stateDict, type NamedArray } from '../nn/state.js';
import type { Optimizer } from '../optim/optimizer.js';
import { learningRate, type LrSchedule } from '../optim/schedule.js';
import { UserError, describeError } from '../util/errors.js';
import { SingleComm } from './distributed/comm.js';
import { LocalSync, type GradientSync } from './distributed/data-parallel.js';
import { findLatestComplete, loadCheckpoint, saveCheckpoint, type LoadedCheckpoint } from './checkpoint.js';
import { formatProgress, MetricsLogger, ProgressTracker, type MetricRecord } from './metrics.js';

/** Where a loss is computed: the step, the micro-step within it, and the dropout seed of this forward pass. */
export interface StepContext {
  step: number;
  micro: number;
  seed: number;
}

export interface LossOutput {
  /** The objective (a scalar); what the progress line calls loss. */
  loss: Tensor;
  /** Auxiliary losses by name (MoE balance, z-loss): added to the objective, logged under their own names. */
  aux?: Record<string, Tensor>;
  /** Other figures of this micro-batch to log (averaged over the step's micro-batches). */
  metrics?: Record<string, number>;
  /**
   * The task already ran this micro-batch's backward (a pipeline schedule interleaves backwards with forwards):
   * the loop reads the losses and does not differentiate them.
   */
  backwardDone?: boolean;
}

/** How a task whose model is split over several processes finishes its gradients and measures their norm. */
export interface TaskDistribution {
  /** After the step's backward passes, before clipping (e.g. averaging the replicated parameters' gradients). */
  finishGradients?(): void;
  /** clipGradNorm over every rank's parameters, each counted once (optim/clip.ts's contract). */
  clip(maxNorm: number, gradScale: number): { norm: number; scale: number };
}

/** A training objective: its model, its batches and its loss. Pretraining, SFT, reward modelling, DPO, … */
export interface Task<B> {
  /** The module(s) trained and checkpointed (frozen parameters included: checkpoints hold the whole model). */
  readonly model: Module;
  /** Tokens (or examples) one micro-batch holds, for throughput. */
  readonly itemsPerBatch: number;
  /** Training FLOPs per item (for MFU), or 0 when unknown. */
  readonly flopsPerItem: number;
  /** The next training micro-batch. */
  nextBatch(): B;
  loss(batch: B, ctx: StepContext): LossOutput;
  /** Evaluation figures at a step, e.g. { train_loss, val_loss }; `val_loss` also tracks the best. */
  evaluate?(step: number): Record<string, number>;
  /** Extra evaluation at the end of the run (e.g. the loss over the whole val split); may print its own lines. */
  finalEvaluate?(step: number, log: (line: string) => void): Record<string, number>;
  /** JSON state to continue exactly after a resume (e.g. the sampler's RNG). */
  state(): Record<string, unknown>;
  loadState(state: Record<string, unknown>, source: string): void;
  /** Set when the model is split over processes (tensor, pipeline or expert parallelism). */
  readonly distribution?: TaskDistribution;
}

export interface LoopConfig {
  maxIters: number;
  gradientAccumulationSteps: number;
  /** Max global gradient norm of the optimizer's parameters (0 = off). */
  gradClip: number;
  nanPolicy: 'stop' | 'skip';
  evalInterval: number;
  logInterval: number;
  /** Save every N steps (0 = only at the end). */
  checkpointInterval: number;
  keepCheckpoints: number;
  /** Peak FLOP/s for MFU (0 = not reported). */
  peakFlops: number;
  /** The peak is a measurement, raised when a step goes faster (metrics.ts ProgressTracker); default false. */
  peakMeasured?: boolean;
  /** Seeds the per-step dropout seeds. */
  seed: number;
  schedule: LrSchedule;
  /** The resolved config saved in every checkpoint. */
  config: object;
}

export interface LoopOptions {
  runDir: string;
  /** Continue from the newest complete checkpoint in runDir. */
  resume: boolean;
  log: (line: string) => void;
  /** Called with the checkpoint to resume from before anything is restored: throw to refuse (e.g. another model). */
  checkResume?: (checkpoint: LoadedCheckpoint) => void;
  /** Called once the run is set up (after any resume), before the first step: write the run's own files here. */
  beforeStart?: (startStep: number) => void;
}

export interface LoopResult {
  steps: number;
  /** The last evaluation's figures (e.g. train_loss, val_loss, val_loss_full). */
  eval: Record<string, number>;
  tokensPerSecond: number;
  /** Tokens (items) this process trained on, and the seconds its training steps took (evaluation and checkpoints excluded). */
  items: number;
  trainSeconds: number;
  /** The fastest smoothed FLOP/s of a progress line when it outran a measured peak (null: none did). */
  observedPeakFlops: number | null;
}

/** "train_loss" → "train loss", as the log lines print evaluation figures. */
function label(key: string): string {
  return key.replace(/_/g, ' ');
}

/**
 * Trains task with an optimizer, or with a GradientSync (distributed/data-parallel.ts, zero.ts) that turns every
 * rank's gradients into one update. With several ranks each computes the loss of its shard of every batch, and only
 * rank 0 writes metrics and checkpoints.
 */
export function runLoop<B>(task: Task<B>, optimizer: Optimizer | GradientSync, c: LoopConfig, options: LoopOptions): LoopResult {
  const { log } = options;
  const sync = 'afterBackward' in optimizer ? optimizer : new LocalSync(new SingleComm(), optimizer, task.distribution);
  const writer = sync.comm.rank === 0;
  let startStep = 0;
  let bestVal: number | null = null;
  if (options.resume) {
    const latest = findLatestComplete(options.runDir);
    for (const s of latest?.skipped ?? []) log(`skipping checkpoint ${s.dir}: ${s.reason}`);
    if (!latest) throw new UserError(`${options.runDir}: no complete checkpoint to resume from`);
    const ck = loadCheckpoint(latest.dir);
    options.checkResume?.(ck);
    const weights = `${latest.dir}/model.safetensors`;
    try {
      loadStateDict(task.model, new Map<string, NamedArray>(ck.params), weights);
      sync.loadOptimizerState(ck.optimizer, `${latest.dir}/optimizer.safetensors`);
    } catch (e) {
      throw new UserError(`--resume: ${describeError(e)}`);
    }
    task.loadState(ck.state.task, `${latest.dir}/state.json`);
    startStep = ck.state.step;
    bestVal = ck.state.bestValLoss;
    log(`resumed from ${latest.dir} at step ${startStep}`);
  }
  const metrics = writer ? new MetricsLogger(options.runDir, options.resume ? { resumeFrom: startStep } : {}) : null;
  options.beforeStart?.(startStep);

  const accum = c.gradientAccumulationSteps;
  const tracker = new ProgressTracker({ maxSteps: c.maxIters, tokensPerStep: task.itemsPerBatch * accum * sync.comm.size, peakFlops: c.peakFlops || null, peakMeasured: c.peakMeasured ?? false, flopsPerToken: task.flopsPerItem });
  let lastEval: Record<string, number> = {};
  let lastSaved = -1;
  let tokensPerSecond = 0;
  let items = 0;
  let trainMs = 0;
  const save = (step: number): void => {
    const params = [...stateDict(task.model)].map(([n, a]) => [n, { shape: [...a.shape], data: a.data as Float32Array }] as [string, { shape: number[]; data: Float32Array }]);
    const optimizerState = sync.optimizerState(); // collective where the state is sharded
    if (writer) saveCheckpoint(options.runDir, { step, params, optimizer: optimizerState, task: task.state(), bestValLoss: bestVal, config: c.config }, { keepLast: c.keepCheckpoints });
    lastSaved = step;
  };

  try {
    for (let step = startStep; ; step++) {
      const last = step >= c.maxIters;
      if ((step % c.evalInterval === 0 || last) && task.evaluate) {
        lastEval = task.evaluate(step);
        const val = lastEval.val_loss;
        if (val !== undefined && (bestVal === null || val < bestVal)) bestVal = val;
        log(`step ${step}: ${Object.entries(lastEval).map(([k, v]) => `${label(k)} ${v.toFixed(4)}`).join(', ')}`);
        metrics?.log({ step, ...lastEval });
        if (last && task.finalEvaluate) {
          const extra = task.finalEvaluate(step, log);
          if (Object.keys(extra).length > 0) {
            lastEval = { ...lastEval, ...extra };
            metrics?.log({ step, ...extra });
          }
        }
      }
      if (step > startStep && ((c.checkpointInterval > 0 && step % c.checkpointInterval === 0) || last)) save(step);
      if (last) break;

      const t0 = performance.now();
      const bytes0 = sync.comm.bytesSent();
      const lr = learningRate(c.schedule, step);
      sync.setLearningRate(lr);
      let lossSum = 0;
      const sums: Record<string, number> = {};
      const addTo = (name: string, v: number): void => {
        sums[name] = (sums[name] ?? 0) + v;
      };
      for (let micro = 0; micro < accum; micro++) {
        const batch = task.nextBatch();
        lossSum += lm.tidy(() => {
          const out = task.loss(batch, { step, micro, seed: hash32(c.seed + hash32(step * 64 + micro)) });
          let total = out.loss;
          for (const [name, t] of Object.entries(out.aux ?? {})) {
            total = lm.add(total, t);
            addTo(name, t.item());
          }
          for (const [name, v] of Object.entries(out.metrics ?? {})) addTo(name, v);
          if (!out.backwardDone) {
            sync.beforeBackward(micro === accum - 1);
            lm.backward(total);
          }
          return out.loss.item();
        });
      }
      sync.afterBackward();
      // Each rank's loss is its shard's mean: the global batch's mean is their mean (equal shards).
      const names = Object.keys(sums);
      const [meanLoss, ...meanSums] = sync.meanOverRanks([lossSum, ...names.map((k) => sums[k]!)]);
      names.forEach((k, i) => (sums[k] = meanSums[i]!));
      const loss = meanLoss! / accum;
      const auxTotal = Object.values(sums).reduce((a, b) => a + b, 0);
      if (!Number.isFinite(loss) || !Number.isFinite(auxTotal)) {
        if (c.nanPolicy === 'stop') {
          throw new UserError(`step ${step}: loss is ${loss}; stopping. Nothing written at this step; resume with --resume from the last checkpoint${lastSaved >= 0 ? ` (step ${lastSaved})` : ''}, perhaps with a lower learning_rate`);
        }
        log(`step ${step}: loss is ${loss}, update skipped (nan_policy=skip)`);
        sync.zeroGrad();
        continue;
      }
      // Clipping measures the accumulated gradients as they will count (× 1/accum) and folds both into the step.
      const { norm } = sync.step(c.gradClip, 1 / accum);
      sync.zeroGrad();
      const stepMs = performance.now() - t0;
      trainMs += stepMs;
      items += task.itemsPerBatch * accum;
      const rec = tracker.update(step, loss, lr, stepMs);
      tokensPerSecond = rec.tokens_per_s;
      if (step % c.logInterval === 0) {
        log(formatProgress(rec));
        const extra: Record<string, number> = { grad_norm: norm };
        // Bytes this rank sent for the step's collectives (Comm.bytesSent: what the bandwidth-optimal algorithms send).
        if (sync.comm.size > 1) extra.comm_bytes = sync.comm.bytesSent() - bytes0;
        for (const [name, v] of Object.entries(sums)) extra[name] = v / accum;
        metrics?.log({ ...rec, ...extra } as MetricRecord);
      }
    }
    if (lastSaved !== c.maxIters && c.maxIters > startStep) save(c.maxIters);
  } finally {
    metrics?.close();
  }
  return { steps: c.maxIters, eval: lastEval, tokensPerSecond, items, trainSeconds: trainMs / 1000, observedPeakFlops: tracker.observedPeak };
}
