// `lmforge train` for the image tasks: reads the image data (IDX or an image folder), holds out validation images,
// builds the task's model (a ViT classifier; CLIP; an image-conditioned decoder), the configured optimizer, and hands
// them to the training loop (loop.ts), which owns schedules, clipping, evaluation, checkpoints and exact resume.
// The final model is written in Hugging Face's layout. Not the text pretraining trainer (trainer.ts).
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import * as lm from '../core/index.js';
import { channelStats, readIdxSplit, readImageFolder, subset, type ImageSet, type Normalization } from '../data/images.js';
import { loadViT, saveViT } from '../models/vit-io.js';
import { ImageTextDecoder } from '../models/caption.js';
import type { Module } from '../nn/module.js';
import { loadStateDict, stateDict } from '../nn/state.js';
import { CaptionTask } from './tasks/caption.js';
import { VIT_KEYS, ViTForImageClassification, type ViTConfig } from '../models/vit.js';
import { makeOptimizer, scheduleOf } from '../optim/config.js';
import { saveConfig } from '../util/config.js';
import { UserError, describeError } from '../util/errors.js';
import { runLoop, type LoopConfig, type Task } from './loop.js';
import { RunDir, TRAIN_CONFIG_FILE } from './run-dir.js';
import { ClassificationTask } from './tasks/classification.js';
import { ClipTask } from './tasks/clip.js';
import { TEXT_CHARS } from '../data/captions.js';
import { CLIPModel } from '../models/clip.js';
import { saveCLIP, saveDecoder } from '../models/clip-io.js';
import type { VisionTrainConfig } from './vision-config.js';
import { cpuName } from '../util/cpu.js';

export interface VisionData {
  train: ImageSet;
  val: ImageSet;
  test: ImageSet;
  norm: Normalization;
}

/** The configured image data: train (minus the held-out tail), validation and test, and the train split's statistics. */
export function loadVisionData(d: VisionTrainConfig['data']): VisionData {
  let all: ImageSet, test: ImageSet;
  if (d.format === 'idx') {
    all = readIdxSplit(d.dir, 'train');
    test = readIdxSplit(d.dir, 'test');
  } else {
    for (const s of ['train', 'test']) if (!existsSync(join(d.dir, s))) throw new UserError(`data.dir ${d.dir}: no ${s}/ folder (expected ${s}/<class>/<image>.png)`);
    all = readImageFolder(join(d.dir, 'train'));
    test = readImageFolder(join(d.dir, 'test'));
    if (test.classNames.join('\n') !== all.classNames.join('\n')) throw new UserError(`data.dir ${d.dir}: test/ has classes ${test.classNames.join(', ')}, train/ has ${all.classNames.join(', ')}`);
  }
  if (d.val_size >= all.n) throw new UserError(`data.val_size: ${d.val_size} leaves no training images of the ${all.n} in ${d.dir}`);
  const train = subset(all, 0, all.n - d.val_size);
  const val = subset(all, all.n - d.val_size, all.n);
  return { train, val, test, norm: channelStats(train) };
}

/** The ViT a config describes, checked against the data's image shape and classes. */
export function visionModelConfig(c: VisionTrainConfig, data: VisionData): ViTConfig {
  const m = c.model;
  const { train } = data;
  if (train.height !== train.width) throw new UserError(`data.dir ${c.data.dir}: images are ${train.width}×${train.height}; the ViT takes square images`);
  if (m.image_size !== train.height) throw new UserError(`model.image_size is ${m.image_size} but the images in ${c.data.dir} are ${train.height}×${train.width}`);
  if (m.num_channels !== train.channels) throw new UserError(`model.num_channels is ${m.num_channels} but the images in ${c.data.dir} have ${train.channels}`);
  if (c.task.kind === 'classification' && m.num_labels !== train.classNames.length) throw new UserError(`model.num_labels is ${m.num_labels} but ${c.data.dir} has ${train.classNames.length} classes`);
  return { ...m };
}

export interface VisionTrainResult {
  steps: number;
  eval: Record<string, number>;
  imagesPerSecond: number;
  runDir: string;
  /**
   * What the run cost this process on this machine: CPU seconds of this invocation (all threads; a resumed run counts
   * only its own part) and the 1-minute load average at the end, so that figures from a shared machine say so.
   */
  usage: { cpu: string; cpu_s: number; load_average: number };
}

export function loopConfigOf(c: VisionTrainConfig): LoopConfig {
  return {
    maxIters: c.max_iters, gradientAccumulationSteps: c.gradient_accumulation_steps, gradClip: c.grad_clip, nanPolicy: c.nan_policy,
    evalInterval: c.eval_interval, logInterval: c.log_interval, checkpointInterval: c.checkpoint_interval, keepCheckpoints: c.keep_checkpoints,
    peakFlops: c.peak_flops, seed: c.seed, schedule: scheduleOf(c.optim), config: c,
  };
}

/** --resume: the checkpoint's model section must be this run's (the architecture cannot change under the weights). */
export function checkSameModel(saved: unknown, c: VisionTrainConfig, dir: string): void {
  const s = (saved as { model?: Partial<ViTConfig>; task?: { kind?: string } } | null) ?? {};
  if (s.task?.kind !== undefined && s.task.kind !== c.task.kind) throw new UserError(`--resume: task.kind is ${c.task.kind} but the checkpoint in ${dir} was trained for ${s.task.kind}`);
  for (const k of VIT_KEYS) {
    if (k === 'dropout') continue;
    const want = s.model?.[k];
    if (want !== undefined && want !== c.model[k]) throw new UserError(`--resume: model.${k} is ${JSON.stringify(c.model[k])} but the checkpoint in ${dir} was trained with ${JSON.stringify(want)}`);
  }
}

interface BuiltTask {
  /** Each task has its own batch type; the loop only passes batches from nextBatch back to loss. */
  task: Task<unknown>;
  what: string;
  save(dir: string, metadata: Record<string, string>): void;
}

/** Copies a trained ViT classifier's tower (its vit.* weights) into a model's vision_model; the shapes must agree.
 * `field` names the config key in errors (decoder.vision_from, clip.image_init). */
function loadVisionTower(model: Module, dir: string, want: ViTConfig, field: string): Normalization {
  const { model: vit, normalization } = loadViT(dir);
  try {
    for (const k of VIT_KEYS) {
      if (k === 'dropout' || k === 'num_labels') continue;
      if (vit.config[k] !== want[k]) throw new UserError(`${field} ${dir}: its model.${k} is ${JSON.stringify(vit.config[k])} but the model section says ${JSON.stringify(want[k])}`);
    }
    const entries = new Map([...stateDict(vit)].filter(([n]) => n.startsWith('vit.')).map(([n, a]) => [n.slice(4), a]));
    loadStateDict(model, entries, `${dir}/model.safetensors`, { prefix: 'vision_model.' });
    return normalization;
  } finally {
    vit.dispose();
  }
}

/** The configured task with its model, and how to save the final model. */
function buildTask(c: VisionTrainConfig, data: VisionData): BuiltTask {
  const common = {
    batchSize: c.data.batch_size, evalBatchSize: c.data.eval_batch_size, evalImages: c.data.eval_images, seed: c.seed, norm: data.norm,
    aug: { cropPadding: c.data.crop_padding, flip: c.data.flip },
  };
  const vit = visionModelConfig(c, data);
  switch (c.task.kind) {
    case 'classification': {
      const model = new ViTForImageClassification(vit, c.seed);
      return { task: new ClassificationTask(model, data.train, data.val, data.test, common), what: 'ViT', save: (dir, meta) => saveViT(dir, model, data.train.classNames, data.norm, meta) };
    }
    case 'clip': {
      if (c.clip.lock_image && c.clip.image_init === null) throw new UserError('clip.lock_image: true needs clip.image_init (a trained ViT run directory): locking a random image tower leaves nothing to align to');
      const model = new CLIPModel(vit, c.clip, TEXT_CHARS, c.seed);
      // A pretrained tower sees images normalised as in its own training (saved with it), here and in the saved CLIP.
      let norm = data.norm;
      try {
        if (c.clip.image_init !== null) norm = loadVisionTower(model, c.clip.image_init, vit, 'clip.image_init');
      } catch (e) {
        model.dispose();
        throw e;
      }
      if (c.clip.lock_image) model.vision_model.freeze();
      const what = c.clip.image_init === null ? 'CLIP' : `CLIP over ${c.clip.image_init}'s image tower (${c.clip.lock_image ? 'locked: LiT' : 'fine-tuned'})`;
      return { task: new ClipTask(model, data.train, data.val, data.test, { ...common, norm }), what, save: (dir, meta) => saveCLIP(dir, model, data.train.classNames, norm, meta) };
    }
    case 'caption': {
      const model = new ImageTextDecoder(vit, c.decoder, TEXT_CHARS, c.seed);
      try {
        if (c.decoder.vision_from !== null) loadVisionTower(model, c.decoder.vision_from, vit, 'decoder.vision_from');
      } catch (e) {
        model.dispose();
        throw e;
      }
      if (c.decoder.freeze_vision) model.vision_model.freeze();
      return { task: new CaptionTask(model, data.train, data.val, data.test, common), what: `image-text decoder (${c.decoder.variant})`, save: (dir, meta) => saveDecoder(dir, model, data.train.classNames, data.norm, meta) };
    }
  }
}

export function trainVision(c: VisionTrainConfig, options: { resume?: boolean; overwrite?: boolean; log?: (line: string) => void } = {}): VisionTrainResult {
  const log = options.log ?? ((line: string) => console.log(line));
  const cpu0 = process.cpuUsage();
  if (c.threads > 0) lm.setThreads(c.threads);
  const data = loadVisionData(c.data);
  const run = new RunDir(c.out_dir);
  let built: BuiltTask;
  try {
    built = buildTask(c, data);
  } catch (e) {
    if (e instanceof RangeError) throw new UserError(e.message.replace(/^ViT config: /, 'model.'));
    throw e;
  }
  const { task, save } = built;
  const model = task.model;
  try {
    run.prepareForTraining({ resume: options.resume ?? false, overwrite: options.overwrite ?? false });
  } catch (e) {
    model.dispose();
    throw e;
  }
  const optimizer = makeOptimizer(model.namedTrainableParameters(), c.optim);
  try {
    const r = runLoop(task, optimizer, loopConfigOf(c), {
      runDir: c.out_dir,
      resume: options.resume ?? false,
      log,
      checkResume: (ck) => {
        checkSameModel(ck.state.config, c, ck.dir);
        if (ck.optimizer.kind !== optimizer.kind) throw new UserError(`--resume: the checkpoint in ${ck.dir} holds ${ck.optimizer.kind} state but optim.name is ${optimizer.kind}`);
      },
      beforeStart: () => {
        saveConfig(join(c.out_dir, TRAIN_CONFIG_FILE), c);
        log(`model: ${built.what} ${(model.numParameters() / 1e6).toFixed(3)}M parameters, ${data.train.n} training images (${data.val.n} held out), backend ${lm.getBackend()}, optimizer ${optimizer.kind}, ${c.data.batch_size * c.gradient_accumulation_steps} images per step`);
      },
    });
    try {
      save(c.out_dir, { step: String(c.max_iters) });
    } catch (e) {
      throw new UserError(`${c.out_dir}: cannot write the model (${describeError(e)})`);
    }
    const used = process.cpuUsage(cpu0);
    const usage = { cpu: cpuName(), cpu_s: Math.round((used.user + used.system) / 1e4) / 100, load_average: loadavg()[0]! };
    return { steps: r.steps, eval: r.eval, imagesPerSecond: r.tokensPerSecond, runDir: c.out_dir, usage };
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}
