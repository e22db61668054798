// `lmforge train`: composes a run from its config — the data's token files and meta, a GPT, the next-token task,
// the configured optimizer — and hands them to the training loop (loop.ts), which owns schedules, accumulation,
// clipping, evaluation, checkpoints and exact resume. The run directory (run-dir.ts) owns the files.
import { join } from 'node:path';
import * as lm from '../core/index.js';
import { GPT, GPT_KEYS, type GPTConfig } from '../models/gpt.js';
import { makeOptimizer, scheduleOf } from '../optim/config.js';
import { objectLayer, resolveConfigWithAliases } from '../util/config.js';
import { UserError } from '../util/errors.js';
import { runLoop } from './loop.js';
import { readMeta, RunDir } from './run-dir.js';
import { NextTokenTask } from './tasks/next-token.js';
import { openTokenFile } from './token-reader.js';
import { TRAIN_ALIASES, trainSpec, type TrainConfig } from './train-config.js';

export { fullSplitLoss, splitWindows } from './tasks/next-token.js';
export { readMeta, META_FILE, type DataMeta } from './run-dir.js';

export interface TrainOptions {
  /** Continue from the newest complete checkpoint in out_dir. */
  resume?: boolean;
  /** Replace a run already in out_dir (its checkpoints, metrics and model are removed first). */
  overwrite?: boolean;
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

/** The GPT architecture a train config describes, for a vocabulary of vocabSize. */
export function modelConfigOf(c: TrainConfig, vocabSize: number): GPTConfig {
  return { ...c.model, vocab_size: vocabSize };
}

export function train(c: TrainConfig, options: TrainOptions = {}): TrainResult {
  const log = options.log ?? ((line: string) => console.log(line));
  if (c.threads > 0) lm.setThreads(c.threads);
  const meta = readMeta(c.data.dir);
  const vocabSize = c.model.vocab_size ?? meta.vocab_size;
  if (vocabSize < meta.vocab_size) throw new UserError(`model.vocab_size: ${vocabSize} is smaller than the data's vocabulary (${meta.vocab_size} in ${join(c.data.dir, 'meta.json')})`);
  const trainFile = openTokenFile(join(c.data.dir, 'train.bin'), { vocabSize });
  const valFile = openTokenFile(join(c.data.dir, 'val.bin'), { vocabSize });
  let model: GPT;
  try {
    model = new GPT(modelConfigOf(c, vocabSize), c.seed);
  } catch (e) {
    if (e instanceof RangeError) throw new UserError(e.message.replace(/^GPT config: /, 'model.'));
    throw e;
  }
  const run = new RunDir(c.out_dir);
  try {
    run.prepareForTraining({ resume: options.resume ?? false, overwrite: options.overwrite ?? false });
  } catch (e) {
    model.dispose();
    throw e;
  }
  const task = new NextTokenTask(model, trainFile, valFile, { batchSize: c.data.batch_size, evalIters: c.eval_iters, seed: c.seed, fullVal: c.full_val });
  const optimizer = makeOptimizer(model.namedTrainableParameters(), c.optim);
  try {
    const r = runLoop(task, optimizer, {
      maxIters: c.max_iters, gradientAccumulationSteps: c.gradient_accumulation_steps, gradClip: c.grad_clip, nanPolicy: c.nan_policy,
      evalInterval: c.eval_interval, logInterval: c.log_interval, checkpointInterval: c.checkpoint_interval, keepCheckpoints: c.keep_checkpoints,
      peakFlops: c.peak_flops, seed: c.seed, schedule: scheduleOf(c.optim), config: c,
    }, {
      runDir: c.out_dir,
      resume: options.resume ?? false,
      log,
      checkResume: (ck) => {
        // A checkpoint's config may be flat (before sections) or sectioned: read it through the same aliases.
        const saved = resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, objectLayer(ck.state.config, `${ck.dir}/state.json`));
        for (const k of GPT_KEYS) {
          if (k === 'dropout') continue;
          const want = k === 'vocab_size' ? saved.model.vocab_size ?? vocabSize : saved.model[k];
          const have = k === 'vocab_size' ? vocabSize : c.model[k];
          if (want !== have) throw new UserError(`--resume: model.${k} is ${JSON.stringify(have)} but the checkpoint in ${ck.dir} was trained with ${JSON.stringify(want)}`);
        }
        if (ck.optimizer.kind !== optimizer.kind) {
          throw new UserError(`--resume: the checkpoint in ${ck.dir} holds ${ck.optimizer.kind} state but optim.name is ${optimizer.kind}; resume with optim.name=${ck.optimizer.kind} or start a new run`);
        }
      },
      beforeStart: () => {
        run.writeTrainConfig(c);
        run.writeMeta(meta, c.data.dir, vocabSize);
        log(`model: ${(model.numParametersNonEmbedding() / 1e6).toFixed(2)}M parameters, backend ${lm.getBackend()}, optimizer ${optimizer.kind}, ${task.itemsPerBatch * c.gradient_accumulation_steps} tokens per step`);
      },
    });
    run.saveModel(model, { step: String(c.max_iters) });
    return {
      steps: r.steps, trainLoss: r.eval.train_loss ?? null, valLoss: r.eval.val_loss ?? null, valLossFull: r.eval.val_loss_full ?? null,
      tokensPerSecond: r.tokensPerSecond, runDir: c.out_dir,
    };
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}
