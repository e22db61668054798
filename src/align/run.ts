// What every alignment stage does around its task: the loop's config from the align config, the run directory
// (refused when it holds a run unless overwrite/resume), the optimizer, and the stage's report (printed, written as
// report.json, and ended by one `RESULT {json}` line).
import { join } from 'node:path';
import * as lm from '../core/index.js';
import type { GPT } from '../models/gpt.js';
import { applyLoRA, mergeAndUnload, parseTargetModules, trainableParameters } from '../nn/lora.js';
import type { Module } from '../nn/module.js';
import { makeOptimizer, scheduleOf } from '../optim/config.js';
import { runLoop, type LoopResult, type Task } from '../train/loop.js';
import { RunDir } from '../train/run-dir.js';
import { writeFileAtomic } from '../util/atomic.js';
import { saveConfig } from '../util/config.js';
import { cpuName } from '../util/cpu.js';
import type { AlignConfig } from './config.js';

export interface StageOptions {
  overwrite?: boolean;
  resume?: boolean;
  log?: (line: string) => void;
}

export function logOf(o: StageOptions): (line: string) => void {
  return o.log ?? ((line: string) => console.log(line));
}

/** Prepares out_dir for a new (or resumed) run and saves the resolved config. */
export function prepareRun(c: AlignConfig, o: StageOptions, stage: string): RunDir {
  if (c.threads > 0) lm.setThreads(c.threads);
  const run = new RunDir(c.out_dir);
  run.prepareForTraining({ resume: o.resume ?? false, overwrite: o.overwrite ?? false });
  saveConfig(join(c.out_dir, 'align-config.json'), { stage, ...c });
  return run;
}

/** Trains a task with the loop (schedules, clipping, evaluation, metrics.jsonl, checkpoints). */
export function trainTask<B>(task: Task<B>, params: Module, c: AlignConfig, o: StageOptions, maxIters = c.max_iters): LoopResult {
  const optimizer = makeOptimizer(params.namedTrainableParameters(), { ...c.optim, lr_decay_iters: Math.min(c.optim.lr_decay_iters, Math.max(maxIters, 1)) });
  try {
    return runLoop(task, optimizer, {
      maxIters, gradientAccumulationSteps: c.gradient_accumulation_steps, gradClip: c.grad_clip, nanPolicy: 'stop',
      evalInterval: c.eval_interval, logInterval: c.log_interval, checkpointInterval: c.checkpoint_interval, keepCheckpoints: c.keep_checkpoints,
      peakFlops: 0, seed: c.seed, schedule: scheduleOf({ ...c.optim, lr_decay_iters: Math.min(c.optim.lr_decay_iters, Math.max(maxIters, 1)) }), config: c,
    }, { runDir: c.out_dir, resume: o.resume ?? false, log: logOf(o) });
  } finally {
    optimizer.dispose();
  }
}

/** With lora.r > 0: LoRA adapters on the model (all else frozen; the token embedding stays trainable when asked). */
export function maybeLoRA(model: GPT, c: AlignConfig, log: (line: string) => void, trainEmbedding = false): boolean {
  if (c.lora.r === 0) return false;
  applyLoRA(model, { r: c.lora.r, alpha: c.lora.alpha, dropout: c.lora.dropout, targetModules: parseTargetModules(c.lora.target_modules, 'lora.target_modules'), seed: c.seed, source: 'lora' });
  if (trainEmbedding) model.transformer.wte.freeze(false);
  log(`LoRA r=${c.lora.r} alpha=${c.lora.alpha} on ${c.lora.target_modules}${trainEmbedding ? ' (+ the token embedding)' : ''}: ${trainableParameters(model).line}`);
  return true;
}

/** Folds LoRA adapters (if any) into the weights before the model is written. */
export function mergeLoRA(model: GPT, applied: boolean): void {
  if (applied) mergeAndUnload(model);
}

/** Writes report.json and prints the report's lines, then `RESULT {json}`. */
export function finishReport(dir: string, stage: string, lines: readonly string[], result: Record<string, unknown>, log: (line: string) => void): Record<string, unknown> {
  const full = { stage, cpu: cpuName(), ...result };
  writeFileAtomic(join(dir, 'report.json'), JSON.stringify(full, null, 2) + '\n');
  for (const l of lines) log(l);
  log(`RESULT ${JSON.stringify(full)}`);
  return full;
}

export const fmt = (v: number, d = 3): string => v.toFixed(d);
export const ci = (r: [number, number]): string => `[${r[0].toFixed(3)}, ${r[1].toFixed(3)}]`;
