// The run directory and its one owner: the layout (resolved config, data meta + tokenizer copy, final weights +
// config.json, or a LoRA run's adapter_model.safetensors + adapter_config.json, checkpoints, metrics.jsonl), reading each file once, and one error policy: a UserError naming the
// file and what was expected. `train` writes through it, `sample`, `eval` and `inspect` read through it.
// Also the data directory's meta.json, which has the same format. Not the checkpoint format (checkpoint.ts).
import { copyFileSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { GPT } from '../models/gpt.js';
import { CONFIG_FILE, saveGPT, WEIGHTS_FILE } from '../models/gpt-io.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, loadAdaptedGPT } from '../models/lora-io.js';
import { isLowRankDir, loadLowRankGPT } from '../models/low-rank-io.js';
import { loadAnyGPT } from '../models/quantize-io.js';
import { loraLayers, mergeAndUnload } from '../nn/lora.js';
import { QuantizedLinear } from '../nn/quantized.js';
import { codecFromMeta, type TextCodec } from '../tokenizers/codec.js';
import { writeFileAtomic } from '../util/atomic.js';
import { saveConfig } from '../util/config.js';
import { UserError, describeError } from '../util/errors.js';
import { ensureDir } from '../util/fs.js';
import { PROVENANCE_FILE } from '../util/provenance.js';
import { LATEST_FILE, listCheckpointSteps, checkpointDirName } from './checkpoint.js';
import { METRICS_FILE } from './metrics.js';

export const META_FILE = 'meta.json';
export const TRAIN_CONFIG_FILE = 'train-config.json';

/** What `prepare`/`tokenize` leave beside train.bin and val.bin, and what a run keeps of it. */
export interface DataMeta {
  vocab_size: number;
  /** How to turn text into ids and back: a char vocabulary, or a tokenizer file beside meta.json. */
  tokenizer: Record<string, unknown>;
}

function readJSON(path: string, what: string): unknown {
  if (!existsSync(path)) throw new UserError(`${path}: not found (${what})`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${describeError(e)})`);
  }
}

/** Reads and checks `<dir>/meta.json`. */
export function readMeta(dir: string, missingHint = `run \`lmforge prepare\` or \`lmforge tokenize\` to make ${dir}`): DataMeta {
  const path = join(dir, META_FILE);
  const m = readJSON(path, missingHint) as Partial<DataMeta> | null;
  if (typeof m !== 'object' || m === null) throw new UserError(`${path}: expected a JSON object`);
  if (typeof m.vocab_size !== 'number' || !Number.isInteger(m.vocab_size) || m.vocab_size < 1) {
    throw new UserError(`${path}: field vocab_size must be a positive integer, got ${JSON.stringify(m.vocab_size)}`);
  }
  if (typeof m.tokenizer !== 'object' || m.tokenizer === null) throw new UserError(`${path}: field tokenizer must be an object`);
  const file = (m.tokenizer as { type?: unknown; file?: unknown }).file;
  if (file !== undefined && (typeof file !== 'string' || file.includes('/') || file.startsWith('.'))) {
    throw new UserError(`${path}: field tokenizer.file must be a plain file name beside meta.json, got ${JSON.stringify(file)}`);
  }
  return m as DataMeta;
}

export class RunDir {
  private metaCache: DataMeta | null = null;

  constructor(readonly path: string) {}

  get metaPath(): string {
    return join(this.path, META_FILE);
  }

  get metricsPath(): string {
    return join(this.path, METRICS_FILE);
  }

  get weightsPath(): string {
    return join(this.path, WEIGHTS_FILE);
  }

  /** An existing run directory (for sample, eval, inspect). */
  static open(path: string): RunDir {
    if (!existsSync(path)) throw new UserError(`${path}: no such run directory`);
    if (!statSync(path).isDirectory()) throw new UserError(`${path}: not a directory (expected a run directory of \`lmforge train\`)`);
    return new RunDir(path);
  }

  /** Whether the directory already holds (part of) a run. */
  holdsRun(): boolean {
    if (!existsSync(this.path)) return false;
    return [TRAIN_CONFIG_FILE, WEIGHTS_FILE, ADAPTER_CONFIG_FILE, METRICS_FILE, LATEST_FILE].some((f) => existsSync(join(this.path, f))) || listCheckpointSteps(this.path).length > 0;
  }

  /**
   * Makes ready for training: a directory holding a run is only continued (resume) or replaced (overwrite, which
   * first removes the old run's files so that nothing of it is mixed into the new one).
   */
  prepareForTraining(options: { resume: boolean; overwrite: boolean }): void {
    if (existsSync(this.path) && !statSync(this.path).isDirectory()) throw new UserError(`out_dir ${this.path}: exists and is not a directory`);
    if (options.resume || !this.holdsRun()) {
      ensureDir(this.path, 'out_dir');
      return;
    }
    if (!options.overwrite) {
      throw new UserError(`out_dir ${this.path}: already holds a run; pass --resume to continue it or --overwrite to replace it`);
    }
    for (const step of listCheckpointSteps(this.path)) rmSync(join(this.path, checkpointDirName(step)), { recursive: true, force: true });
    for (const f of [LATEST_FILE, METRICS_FILE, WEIGHTS_FILE, CONFIG_FILE, ADAPTER_WEIGHTS_FILE, ADAPTER_CONFIG_FILE, TRAIN_CONFIG_FILE, META_FILE, PROVENANCE_FILE]) rmSync(join(this.path, f), { force: true });
  }

  /** The run's meta.json (read once). */
  meta(): DataMeta {
    this.metaCache ??= readMeta(this.path, `is ${this.path} a run directory of \`lmforge train\`?`);
    return this.metaCache;
  }

  /** Text ↔ ids with the tokenizer the run was trained on. */
  codec(): TextCodec {
    const meta = this.meta();
    try {
      return codecFromMeta(meta.tokenizer, this.path, this.metaPath);
    } catch (e) {
      throw new UserError(describeError(e));
    }
  }

  /** Whether the run's result is a LoRA adapter (adapter_config.json and no model.safetensors of its own). */
  isAdapterRun(): boolean {
    return !existsSync(this.weightsPath) && existsSync(join(this.path, ADAPTER_CONFIG_FILE));
  }

  /** The file that identifies the run's weights (eval reports its SHA-256): the model's, or the adapter's. */
  get resultWeightsPath(): string {
    return this.isAdapterRun() ? join(this.path, ADAPTER_WEIGHTS_FILE) : this.weightsPath;
  }

  /**
   * The final model (config.json + model.safetensors), checked against the run's vocabulary. For a LoRA run: the
   * base model its adapter_config.json names with the adapter merged in (a plain GPT, as fast as the base; over a
   * quantized base, as QLoRA trains, the adapters stay unmerged beside it). For a
   * factorized model (`lmforge lowrank`), the GPT with its LowRankLinear layers.
   */
  loadModel(): GPT {
    let model: GPT;
    if (this.isAdapterRun()) {
      model = loadAdaptedGPT(this.path);
      // A QLoRA run keeps its adapters beside the frozen 4-/8-bit base: they cannot be folded into quantized weights.
      if (!quantizedBase(model)) mergeAndUnload(model);
    } else if (isLowRankDir(this.path)) {
      model = loadLowRankGPT(this.path); // `lmforge lowrank`'s output: factorized layers (config.json's low_rank)
    } else {
      model = loadAnyGPT(this.path); // a float model, or one written by `lmforge quantize`
    }
    if (existsSync(this.metaPath)) {
      const vocab = this.meta().vocab_size;
      if (vocab > model.config.vocab_size) {
        model.dispose();
        throw new UserError(`${this.metaPath}: vocab_size ${vocab} is larger than the model's (${model.config.vocab_size} in ${join(this.path, CONFIG_FILE)}): the tokenizer does not belong to this model`);
      }
    }
    return model;
  }

  /** Saves the resolved training config. */
  writeTrainConfig(config: object): void {
    saveConfig(join(this.path, TRAIN_CONFIG_FILE), config);
  }

  /** Records the data's meta (with the vocabulary the model uses) and copies a tokenizer file it names. */
  writeMeta(meta: DataMeta, dataDir: string, vocabSize: number): void {
    writeFileAtomic(this.metaPath, JSON.stringify({ ...meta, vocab_size: vocabSize }, null, 2) + '\n');
    const file = meta.tokenizer.file;
    if (meta.tokenizer.type === 'file' && typeof file === 'string') copyFileSync(join(dataDir, file), join(this.path, file));
    this.metaCache = null;
  }

  /** Writes the final model.safetensors + config.json. */
  saveModel(model: GPT, metadata: Record<string, string>): void {
    saveGPT(this.path, model, metadata);
  }
}

/** Whether any LoRA layer of the model wraps a quantized base layer (a QLoRA model). */
function quantizedBase(model: GPT): boolean {
  return loraLayers(model).some(([, layer]) => layer.base_layer instanceof QuantizedLinear);
}
