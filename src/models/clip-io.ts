// CLIP (and image-conditioned decoder) model directories: model.safetensors with the module's own names and layouts
// (Linear weights (in, out), as GPT's files) and config.json holding the towers' configs, the text vocabulary, the class
// names and the image normalisation the model was trained with, so that `lmforge eval` rebuilds the same inputs.
// Loading is strict. Not the ViT classifier's files (vit-io.ts, which use Hugging Face's layout).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors, type TensorData } from '../core/safetensors.js';
import type { Module } from '../nn/module.js';
import { loadStateDict, stateDict, type NamedArray } from '../nn/state.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError, describeError } from '../util/errors.js';
import { ensureDir } from '../util/fs.js';
import { CLIP_DEFAULTS, CLIPModel, type ClipSectionConfig } from './clip.js';
import { VIT_DEFAULTS, type ViTConfig } from './vit.js';
import type { Normalization } from './vit-io.js';
import { DECODER_DEFAULTS, ImageTextDecoder, type DecoderConfig } from './caption.js';

export const WEIGHTS_FILE = 'model.safetensors';
export const CONFIG_FILE = 'config.json';

/** What config.json of an image–text model directory holds. */
export interface ImageTextConfig {
  model_type: string;
  vision_config: ViTConfig;
  text_config: Record<string, unknown>;
  chars: string[];
  class_names: string[];
  normalization: Normalization;
}

export function saveModule(dir: string, module: Module, config: ImageTextConfig, metadata: Record<string, string>): void {
  ensureDir(dir, 'model directory', { checkWritable: false });
  const tensors: [string, TensorData][] = [...stateDict(module)].map(([n, a]) => [n, { shape: [...a.shape], data: Float32Array.from(a.data) }]);
  writeSafetensors(join(dir, WEIGHTS_FILE), tensors, { format: 'pt', ...metadata });
  writeFileAtomic(join(dir, CONFIG_FILE), JSON.stringify(config, null, 2) + '\n');
}

/** config.json of an image–text model directory, checked for the fields every loader needs. */
export function readImageTextConfig(dir: string, modelType: string): ImageTextConfig {
  const path = join(dir, CONFIG_FILE);
  if (!existsSync(path)) throw new UserError(`${path}: file not found (expected a model directory with ${CONFIG_FILE} and ${WEIGHTS_FILE})`);
  let o: Partial<ImageTextConfig>;
  try {
    o = JSON.parse(readFileSync(path, 'utf8')) as Partial<ImageTextConfig>;
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${describeError(e)})`);
  }
  if (o.model_type !== modelType) throw new UserError(`${path}: model_type is ${JSON.stringify(o.model_type)}, expected ${JSON.stringify(modelType)}`);
  for (const k of ['vision_config', 'text_config', 'chars', 'class_names', 'normalization'] as const) {
    if (typeof o[k] !== 'object' || o[k] === null) throw new UserError(`${path}: field ${k} is missing or not an object`);
  }
  return { ...(o as ImageTextConfig), vision_config: { ...VIT_DEFAULTS, ...o.vision_config } };
}

export function loadWeights(dir: string, module: Module): void {
  const path = join(dir, WEIGHTS_FILE);
  if (!existsSync(path)) throw new UserError(`${path}: file not found`);
  const file = readSafetensors(path);
  try {
    loadStateDict(module, new Map<string, NamedArray>([...file.tensors].map(([n, t]) => [n, { shape: t.shape, data: t.data as ArrayLike<number> }])), path);
  } catch (e) {
    throw new UserError(describeError(e));
  }
}

export function saveCLIP(dir: string, model: CLIPModel, classNames: string[], normalization: Normalization, metadata: Record<string, string>): void {
  saveModule(dir, model, { model_type: 'lmforge-clip', vision_config: model.visionConfig, text_config: model.config, chars: [...model.codec.chars], class_names: classNames, normalization }, metadata);
}

export function saveDecoder(dir: string, model: ImageTextDecoder, classNames: string[], normalization: Normalization, metadata: Record<string, string>): void {
  saveModule(dir, model, { model_type: 'lmforge-caption', vision_config: model.visionConfig, text_config: model.config, chars: [...model.codec.chars], class_names: classNames, normalization }, metadata);
}

export function loadDecoder(dir: string): { model: ImageTextDecoder; config: ImageTextConfig } {
  const config = readImageTextConfig(dir, 'lmforge-caption');
  const model = new ImageTextDecoder(config.vision_config, { ...DECODER_DEFAULTS, ...(config.text_config as Partial<DecoderConfig>) }, config.chars, 0);
  try {
    loadWeights(dir, model);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, config };
}

/** The type of an image model directory from its config.json: 'vit', 'lmforge-clip', 'lmforge-caption', or null. */
export function imageModelType(dir: string): string | null {
  const p = join(dir, CONFIG_FILE);
  if (!existsSync(p)) return null;
  try {
    const t = (JSON.parse(readFileSync(p, 'utf8')) as { model_type?: unknown }).model_type;
    return typeof t === 'string' && ['vit', 'lmforge-clip', 'lmforge-caption'].includes(t) ? t : null;
  } catch {
    return null;
  }
}

export function loadCLIP(dir: string): { model: CLIPModel; config: ImageTextConfig } {
  const config = readImageTextConfig(dir, 'lmforge-clip');
  const model = new CLIPModel(config.vision_config, { ...CLIP_DEFAULTS, ...(config.text_config as Partial<ClipSectionConfig>) }, config.chars, 0);
  try {
    loadWeights(dir, model);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, config };
}
