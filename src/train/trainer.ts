// `lmforge train`: composes a run from its config — the data's token files and meta, a GPT, the next-token task,
// the configured optimizer — and hands them to the training loop (loop.ts), which owns schedules, accumulation,
// clipping, evaluation, checkpoints and exact resume. The run directory (run-dir.ts) owns the files.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as lm from '../core/index.js';
import { bf16PrecisionNote } from '../core/native/gemm.js';
import { GPT, GPT_DEFAULTS, GPT_KEYS, type GPTConfig } from '../models/gpt.js';
import { MOE_KEYS, upcycleGPT } from '../models/moe-upcycle.js';
import { loadAnyGPT, isQuantizedModelDir } from '../models/quantize-io.js';
import { isAdapterDir, saveAdapter, type AdapterConfig } from '../models/lora-io.js';
import { applyLoRA, loraPlusLrScale, loraPlusVectors, matchesTarget, parseLoRAPattern, parseModulesToSave, parseTargetModules, trainableParameters, trainModulesToSave } from '../nn/lora.js';
import { makeOptimizer, scheduleOf } from '../optim/config.js';
import { objectLayer, resolveConfigWithAliases } from '../util/config.js';
import { cpuName } from '../util/cpu.js';
import { UserError, describeError } from '../util/errors.js';
import { codeVersion, lmforgeVersion } from '../util/git.js';
import { EnergyMeter } from '../util/energy.js';
import { fingerprintDataDir, writeProvenance } from '../util/provenance.js';
import { initDistributed } from './distributed/comm.js';
import { broadcastParameters, DataParallel, type GradientSync } from './distributed/data-parallel.js';
import { HybridSync, splitGrid } from './distributed/hybrid.js';
import { layoutOf, ModelParallelGPT, ModelParallelTask } from './distributed/model-parallel.js';
import { Zero1 } from './distributed/zero.js';
import { infraFigures, reconcilePeak, resolvePeakFlops } from './infra.js';
import { runLoop, type Task } from './loop.js';
import type { Optimizer } from '../optim/optimizer.js';
import { readMeta, RunDir, type DataMeta } from './run-dir.js';
import { DebiasedNextTokenTask } from './tasks/debias.js';
import { NextTokenTask } from './tasks/next-token.js';
import { CurriculumTask } from './tasks/curriculum.js';
import { curriculumSetup, curriculumWanted, gradientAccumulationOf, lossTermsOf } from './curriculum-setup.js';
import { openTokenFile } from './token-reader.js';
import { CharTokenizer } from '../tokenizers/char.js';
import { loadAnyTokenizer } from '../tokenizers/load-any.js';
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
  /** This process's rank in a distributed run (0 otherwise): only rank 0 reports. */
  rank: number;
}

/** The GPT architecture a train config describes, for a vocabulary of vocabSize. */
export function modelConfigOf(c: TrainConfig, vocabSize: number): GPTConfig {
  return { ...c.model, vocab_size: vocabSize };
}

/**
 * The model a run starts from: init_from's (its architecture replaces the model section, whose explicitly set keys
 * must agree with it; dropout stays the run's), else a new GPT. The data must be tokenized as the base was.
 */
function initialModel(c: TrainConfig, meta: DataMeta): { model: GPT; config: TrainConfig } {
  const dir = c.init_from;
  if (dir === null) {
    const vocabSize = c.model.vocab_size ?? meta.vocab_size;
    if (vocabSize < meta.vocab_size) throw new UserError(`model.vocab_size: ${vocabSize} is smaller than the data's vocabulary (${meta.vocab_size} in ${join(c.data.dir, 'meta.json')})`);
    try {
      return { model: new GPT(modelConfigOf(c, vocabSize), c.seed), config: c };
    } catch (e) {
      if (e instanceof RangeError) throw new UserError(e.message.replace(/^GPT config: /, 'model.'));
      throw e;
    }
  }
  if (isAdapterDir(dir) && !existsSync(join(dir, 'model.safetensors'))) {
    throw new UserError(`init_from ${dir}: holds a LoRA adapter, not a model; merge it first (lmforge lora merge --run ${dir} --out DIR) and start from DIR`);
  }
  // A quantized base (lmforge quantize) is frozen 4- or 8-bit weights: only adapters can train over it (QLoRA).
  if (isQuantizedModelDir(dir) && c.lora.r === 0) throw new UserError(`init_from ${dir}: holds a quantized model, whose weights cannot be trained; train LoRA adapters over it (lora.r > 0: QLoRA) or start from the float model`);
  const base = loadAnyGPT(dir);
  const fail = (msg: string): never => {
    base.dispose();
    throw new UserError(msg);
  };
  const upcycle = c.moe_upcycle;
  for (const k of GPT_KEYS) {
    if (k === 'dropout' || (upcycle && (MOE_KEYS as readonly string[]).includes(k))) continue;
    const set = c.model[k];
    if (set !== (k === 'vocab_size' ? null : GPT_DEFAULTS[k]) && set !== base.config[k]) {
      fail(`model.${k} is ${JSON.stringify(set)} but the init_from model ${dir} has ${JSON.stringify(base.config[k])}; the architecture is the base's (leave model.${k} unset)`);
    }
  }
  if (meta.vocab_size > base.config.vocab_size) fail(`${join(c.data.dir, 'meta.json')}: vocab_size ${meta.vocab_size} is larger than the init_from model's (${base.config.vocab_size} in ${dir})`);
  const baseMetaPath = join(dir, 'meta.json');
  if (existsSync(baseMetaPath)) {
    const baseMeta = readMeta(dir);
    const fileOf = (m: DataMeta, d: string): string => (typeof m.tokenizer.file === 'string' ? readFileSync(join(d, m.tokenizer.file), 'utf8') : '');
    if (JSON.stringify(baseMeta.tokenizer) !== JSON.stringify(meta.tokenizer) || fileOf(baseMeta, dir) !== fileOf(meta, c.data.dir)) {
      fail(`${join(c.data.dir, 'meta.json')}: the data is tokenized differently from the init_from model (${baseMetaPath}); prepare it with the base's vocabulary (lmforge prepare --vocab-from ${dir})`);
    }
  }
  // The run's dropout applies to the fine-tuning passes (GPT reads config.dropout at every forward).
  base.config.dropout = c.model.dropout;
  if (upcycle) {
    let model: GPT | null = null;
    let refused = '';
    try {
      model = upcycleGPT(base, Object.fromEntries(MOE_KEYS.map((k) => [k, c.model[k]])), c.seed);
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      refused = e.message;
    } finally {
      base.dispose();
    }
    if (!model) throw new UserError(refused);
    return { model, config: { ...c, model: { ...model.config } } };
  }
  return { model: base, config: { ...c, model: { ...base.config } } };
}

/** Token ids → text with the data's tokenizer (a char vocabulary in meta.json, or the tokenizer file beside it). */
function decoderOf(meta: DataMeta, dataDir: string): (ids: ArrayLike<number>) => string {
  const t = meta.tokenizer as { type?: unknown; file?: unknown };
  const tok = t.type === 'file' && typeof t.file === 'string' ? loadAnyTokenizer(join(dataDir, t.file)) : CharTokenizer.fromJSON(meta.tokenizer, join(dataDir, 'meta.json'));
  return (ids) => tok.decode(ids);
}

export function train(config: TrainConfig, options: TrainOptions = {}): TrainResult {
  // config.precision holds for the whole run (every matmul of training and evaluation) and no longer.
  return lm.withMatmulPrecision(config.precision, () => trainAtPrecision(config, options));
}

function trainAtPrecision(config: TrainConfig, options: TrainOptions): TrainResult {
  // Distributed runs (under mpirun): data parallelism (--dp, --zero), one model-parallel layout (--tp / --pp /
  // --ep), or --dp over --tp or --pp groups (hybrid.ts). Rank 0 logs and owns out_dir; with model parallelism rank r keeps its own checkpoints (its shard and
  // optimizer state) in out_dir/rank-r and the saved model is gathered whole; with data parallelism only rank 0 writes.
  const layout = layoutOf(config);
  if (layout && config.lora.r > 0) throw new UserError(`--${layout.kind}: LoRA runs train on one process (lora.r = 0 for model parallelism)`);
  // --dp with --tp or --pp: a grid of dp replicas, each a model-parallel group (hybrid.ts).
  if (layout?.kind === 'ep' && config.dp > 1) throw new UserError(`--dp=${config.dp} with --ep=${layout.size}: expert parallelism already splits each batch over its ranks; combining it with data parallelism is not supported (use --ep alone, or --dp with --tp or --pp)`);
  if (config.debias.adversary_weight > 0 && (layout || config.dp > 1 || config.lora.r > 0)) throw new UserError('debias.adversary_weight: adversarial debiasing trains one full model on one process (no model or data parallelism, no LoRA)');
  const world = initDistributed({ expectSize: (layout ? layout.size : 1) * config.dp });
  const grid = layout && config.dp > 1 ? splitGrid(world, config.dp, layout.size) : null;
  // The ranks the model is split over (the whole world unless a grid splits it).
  const comm = grid ? grid.mp : world;
  const writer = world.rank === 0;
  // Model-parallel rank s keeps its files in out_dir/rank-s (rank 0: out_dir); a grid's replicas of shard s share
  // that folder, where only the first replica writes.
  const leads = !grid || grid.replica === 0;
  if (layout && comm.rank > 0) config = { ...config, out_dir: join(config.out_dir, `rank-${comm.rank}`) };
  const log = writer ? options.log ?? ((line: string) => console.log(line)) : () => undefined;
  if (config.zero > 0 && (layout || comm.size === 1)) throw new UserError('zero: ZeRO-1 shards the optimizer state over data-parallel ranks; set dp > 1 (and launch with mpirun)');
  if (config.threads > 0) lm.setThreads(config.threads);
  // bf16 needs no loss scaling: it has fp32's 8-bit exponent, so small gradients do not underflow as fp16's would.
  if (config.precision === 'bf16') log(bf16PrecisionNote().line);
  const meta = readMeta(config.data.dir);
  const lora = config.lora.r > 0;
  if (lora && config.init_from === null) throw new UserError('lora.r: a LoRA run adapts a trained model; set init_from to its run or model directory');
  const targetModules = parseTargetModules(config.lora.target_modules, 'lora.target_modules');
  const modulesToSave = parseModulesToSave(config.lora.modules_to_save, 'lora.modules_to_save');
  const rankPattern = parseLoRAPattern(config.lora.rank_pattern, 'lora.rank_pattern', 'rank');
  const alphaPattern = parseLoRAPattern(config.lora.alpha_pattern, 'lora.alpha_pattern', 'alpha');
  // The model first: a bad architecture is refused before anything is written.
  const { model, config: c } = initialModel(config, meta);
  const vocabSize = model.config.vocab_size;
  const adapter: AdapterConfig | null = lora && c.init_from !== null
    ? {
      r: c.lora.r, alpha: c.lora.alpha, dropout: c.lora.dropout, targetModules, useRsLoRA: c.lora.use_rslora, useDora: c.lora.use_dora, baseModel: resolve(c.init_from), modulesToSave, rankPattern, alphaPattern,
      // A trained token embedding is also lmforge's (tied) output head: PEFT must keep them tied too.
      ensureWeightTying: model.config.tie_embeddings && matchesTarget('transformer.wte', modulesToSave),
    }
    : null;
  let trainFile, valFile;
  const run = new RunDir(c.out_dir);
  try {
    trainFile = openTokenFile(join(c.data.dir, 'train.bin'), { vocabSize });
    valFile = openTokenFile(join(c.data.dir, 'val.bin'), { vocabSize });
    // Shared layers are one module used at several depths: an adapter would wrap it once per use.
    if (adapter && model.config.share_layers !== 'none') throw new UserError(`lora.r: the init_from model shares its layers (share_layers ${model.config.share_layers}); LoRA over shared layers is not supported`);
    if (adapter) {
      applyLoRA(model, { ...adapter, seed: c.seed });
      trainModulesToSave(model, modulesToSave);
    }
    // Rank 0 prepares out_dir (an --overwrite empties it) before the other ranks read it or make their rank-r folders in it.
    if (!writer) world.barrier();
    if (writer || (layout && leads)) run.prepareForTraining({ resume: options.resume ?? false, overwrite: options.overwrite ?? false });
    if (writer) world.barrier();
    if (grid) world.barrier(); // every shard's folder is ready before its replicas read it
  } catch (e) {
    model.dispose();
    throw e;
  }
  // What the run is made of, taken before training: the data as it was read, and the code.
  const started = new Date();
  const dataFiles = fingerprintDataDir(c.data.dir);
  const peak = resolvePeakFlops(c.peak_flops, log);
  let energy: EnergyMeter;
  try {
    energy = new EnergyMeter({ source: c.energy.source, wattsPerCore: c.energy.watts_per_core });
  } catch (e) {
    model.dispose();
    throw new UserError(`energy.source: ${describeError(e)}`);
  }
  let parallel: ModelParallelGPT | null = null;
  try {
    if (layout) parallel = new ModelParallelGPT(model, comm, layout);
  } catch (e) {
    model.dispose();
    throw e;
  }
  // Issue 14's switches (batching, curriculum, mix, loss): checked before the first step; a refusal frees the model.
  let terms, accumulation, curriculum;
  try {
    terms = lossTermsOf(c);
    accumulation = gradientAccumulationOf(c, c.data.batch_size * c.model.block_size * (layout ? config.dp : comm.size));
    if ((layout || comm.size > 1) && (curriculumWanted(c) || terms.zLoss > 0 || terms.labelSmoothing > 0)) throw new UserError('batching, curriculum, mix and loss.* switches train on one process (no data or model parallelism)');
    if (curriculumWanted(c) && c.debias.adversary_weight > 0) throw new UserError('debias.adversary_weight: adversarial debiasing trains on plain random windows; turn off the batching, curriculum and mix switches');
    curriculum = curriculumWanted(c) ? new CurriculumTask(model, ...curriculumSetup(c, meta, vocabSize, trainFile, valFile, accumulation, terms, log)) : null;
  } catch (e) {
    model.dispose();
    throw e;
  }
  let task: Task<unknown> = curriculum
    ?? (parallel
      ? new ModelParallelTask(parallel, trainFile, valFile, { batchSize: c.data.batch_size, evalIters: c.eval_iters, seed: c.seed, replica: grid ? { index: grid.replica, count: config.dp } : undefined })
      : new NextTokenTask(model, trainFile, valFile, { batchSize: c.data.batch_size, evalIters: c.eval_iters, seed: c.seed, fullVal: c.full_val, comm, terms }));
  if (c.debias.adversary_weight > 0) {
    task = new DebiasedNextTokenTask(task as NextTokenTask, { weight: c.debias.adversary_weight, hidden: c.debias.adversary_hidden, seed: c.seed, decode: decoderOf(meta, c.data.dir) });
  }
  let optimizer: Optimizer | GradientSync;
  if (parallel && grid) optimizer = new HybridSync(grid.dp, makeOptimizer(parallel.module.namedTrainableParameters(), c.optim), task.distribution!);
  else if (parallel) optimizer = makeOptimizer(parallel.module.namedTrainableParameters(), c.optim);
  else if (comm.size === 1) optimizer = makeOptimizer(task.model.namedTrainableParameters(), c.optim, adapter ? loraPlusLrScale(c.lora.lr_ratio, loraPlusVectors(task.model, c.lora.lr_ratio_vectors)) : undefined);
  else {
    const named = model.namedTrainableParameters();
    broadcastParameters(comm, named);
    optimizer = c.zero === 1 ? new Zero1(comm, named, c.optim) : new DataParallel(comm, makeOptimizer(named, c.optim), { bucketBytes: c.bucket_mb * 2 ** 20 });
  }
  try {
    const r = runLoop(task, optimizer, {
      maxIters: c.max_iters, gradientAccumulationSteps: accumulation, gradClip: c.grad_clip, nanPolicy: c.nan_policy,
      evalInterval: c.eval_interval, logInterval: c.log_interval, checkpointInterval: c.checkpoint_interval, keepCheckpoints: c.keep_checkpoints,
      peakFlops: peak.flops ?? 0, peakMeasured: peak.source !== 'config' && comm.size === 1, seed: c.seed, schedule: scheduleOf(c.optim), config: c,
    }, {
      runDir: c.out_dir,
      resume: options.resume ?? false,
      log: (line) => {
        energy.sample(); // RAPL counters wrap within the hour: fold them in at every progress line
        log(line);
      },
      checkResume: (ck) => {
        // A checkpoint's config may be flat (before sections) or sectioned: read it through the same aliases.
        const saved = resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, objectLayer(ck.state.config, `${ck.dir}/state.json`));
        for (const k of GPT_KEYS) {
          if (k === 'dropout') continue;
          const want = k === 'vocab_size' ? saved.model.vocab_size ?? vocabSize : saved.model[k];
          const have = k === 'vocab_size' ? vocabSize : c.model[k];
          if (want !== have) throw new UserError(`--resume: model.${k} is ${JSON.stringify(have)} but the checkpoint in ${ck.dir} was trained with ${JSON.stringify(want)}`);
        }
        if (saved.init_from !== c.init_from) throw new UserError(`--resume: init_from is ${JSON.stringify(c.init_from)} but the checkpoint in ${ck.dir} started from ${JSON.stringify(saved.init_from)}`);
        for (const k of ['r', 'alpha', 'target_modules', 'use_rslora', 'use_dora', 'modules_to_save', 'rank_pattern', 'alpha_pattern'] as const) {
          if (saved.lora[k] !== c.lora[k]) throw new UserError(`--resume: lora.${k} is ${JSON.stringify(c.lora[k])} but the checkpoint in ${ck.dir} was trained with ${JSON.stringify(saved.lora[k])}`);
        }
        if (ck.optimizer.kind !== optimizer.kind) {
          throw new UserError(`--resume: the checkpoint in ${ck.dir} holds ${ck.optimizer.kind} state but optim.name is ${optimizer.kind}; resume with optim.name=${ck.optimizer.kind} or start a new run`);
        }
      },
      beforeStart: () => {
        if (comm.size > 1 && !layout) {
          // Bytes of optimizer state on each rank: with ZeRO-1 each holds 1/dp of it.
          const bytes = new Float64Array(comm.size);
          comm.allGather(new Float64Array([optimizer.stateBytes()]), bytes);
          const mb = (b: number): string => (b / 2 ** 20).toFixed(3);
          log(`data parallel: ${comm.size} ranks × ${c.data.batch_size / comm.size} rows, ${c.zero === 1 ? 'ZeRO-1' : 'replicated optimizer'}; optimizer state per rank ${[...bytes].map(mb).join(' / ')} MB`);
        }
        if (grid) log(`grid: ${config.dp} data-parallel replicas × ${layout!.kind} = ${layout!.size}; ${c.data.batch_size / config.dp} rows per replica, gradients averaged over each shard's ${config.dp} replicas`);
        if (!writer && !(layout && leads)) return; // a model-parallel rank keeps its own folder's files
        run.writeTrainConfig(c);
        run.writeMeta(meta, c.data.dir, vocabSize);
        log(`model: ${(model.numParametersNonEmbedding() / 1e6).toFixed(2)}M parameters, backend ${lm.getBackend()}, optimizer ${optimizer.kind}, ${task.itemsPerBatch * accumulation * (layout ? config.dp : comm.size)} tokens per step`);
        if (layout) log(`${layout.kind} = ${layout.size} over ${comm!.backend}${layout.kind === 'pp' ? ` (${layout.schedule}, ${layout.microBatches} micro-batches)` : ''}: this rank holds ${(parallel!.module.numParameters() / 1e6).toFixed(2)}M parameters`);
        if (adapter) {
          const extras = [adapter.useRsLoRA ? 'rsLoRA' : '', adapter.useDora ? 'DoRA' : '', c.lora.lr_ratio !== 1 ? `LoRA+ lr_ratio ${c.lora.lr_ratio}${c.lora.lr_ratio_vectors ? ' (with 1-D parameters)' : ''}` : '', modulesToSave.length > 0 ? `modules_to_save ${modulesToSave.join(',')}` : '',
            c.lora.rank_pattern !== '' ? `rank_pattern ${c.lora.rank_pattern}` : '', c.lora.alpha_pattern !== '' ? `alpha_pattern ${c.lora.alpha_pattern}` : ''].filter((x) => x !== '');
          log(`LoRA r=${adapter.r} alpha=${adapter.alpha} on ${c.lora.target_modules}${extras.length > 0 ? ` (${extras.join('; ')})` : ''} of ${c.init_from}: ${trainableParameters(model).line}`);
        }
      },
    });
    if (optimizer instanceof DataParallel) log(`data parallel: gradients in ${optimizer.bucketCount} buckets of about ${c.bucket_mb} MB; ${optimizer.earlyBuckets} started their all-reduce while backward ran (last step)`);
    // A LoRA run keeps only its adapter (PEFT's files); the base stays where init_from names it.
    if (adapter) {
      if (writer) saveAdapter(c.out_dir, model, adapter, { step: String(c.max_iters) });
    } else if (parallel) {
      const full = parallel.gatherFull();
      if (writer) run.saveModel(full, { step: String(c.max_iters) });
      full.dispose();
    } else if (writer) run.saveModel(model, { step: String(c.max_iters) });
    const finished = new Date();
    // A one-process run faster than a measured peak shows the peak was measured low: recalibrate (infra.ts
    // reconcilePeak). Several ranks together may outrun one process's peak, so they leave it as it is.
    const achieved = Math.max(r.trainSeconds > 0 ? (task.flopsPerItem * r.items) / r.trainSeconds : 0, r.observedPeakFlops ?? 0);
    const runPeak = comm.size === 1 ? reconcilePeak(peak, achieved, log) : peak;
    const infra = infraFigures(runPeak, task.flopsPerItem, r.items, r.trainSeconds, energy.read(), c.energy.grid_g_per_kwh);
    if (writer) {
      writeProvenance(c.out_dir, {
        lmforge_provenance: 1, lmforge_version: lmforgeVersion(), code: codeVersion(), started: started.toISOString(), finished: finished.toISOString(),
        wall_s: (finished.getTime() - started.getTime()) / 1000, cpu: cpuName(), resumed: options.resume ?? false,
        data: { dir: resolve(c.data.dir), files: dataFiles }, infra: infra,
      });
      log(`infrastructure: ${infra.mfu === null || peak.flops === null ? 'MFU n/a (peak_flops 0)' : `MFU ${(100 * infra.mfu).toFixed(2)}% of ${(runPeak.flops! / 1e9).toFixed(1)} GFLOP/s (${runPeak.source})`} over ${infra.train_s.toFixed(1)} s of steps; ` +
        `energy ${(infra.energy_j / 3600).toFixed(3)} Wh (${infra.energy_source === 'rapl' ? 'RAPL' : `model: ${(infra.energy_detail.cpu_s as number).toFixed(1)} CPU s × ${c.energy.watts_per_core} W`}), ${infra.co2_g.toFixed(3)} g CO₂e at ${c.energy.grid_g_per_kwh} g/kWh`);
    }
    return {
      steps: r.steps, trainLoss: r.eval.train_loss ?? null, valLoss: r.eval.val_loss ?? null, valLossFull: r.eval.val_loss_full ?? null,
      tokensPerSecond: r.tokensPerSecond, runDir: c.out_dir, rank: world.rank,
    };
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}
