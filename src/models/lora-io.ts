// LoRA adapter files in Hugging Face PEFT's layout: `adapter_model.safetensors` (lora_A (r, in) and lora_B (out, r)
// under PEFT's names, `base_model.model.<module path>.lora_A.weight`; with use_dora also `<path>.lora_magnitude_vector`) and `adapter_config.json` (PEFT's LoraConfig
// fields; modules_to_save's fully trained tensors under their own names, `base_model.model.<parameter name>`). Loading is strict: every tensor the config calls for, with its shape, and nothing else. Also a GPT with
// its adapter from such a directory (base + adapter). Not the LoRA layer itself (nn/lora.ts).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { readSafetensors, writeSafetensors, type TensorData } from '../core/safetensors.js';
import { applyLoRA, checkPatternEntry, loraLayers, modulesToSaveParameters, type LoRAPattern, type TargetModules } from '../nn/lora.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../core/index.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError, describeError } from '../util/errors.js';
import type { GPT } from './gpt.js';
import { CONFIG_FILE, WEIGHTS_FILE } from './gpt-io.js';
import { loadAnyGPT } from './quantize-io.js';

export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
/** PEFT's prefix of saved tensor names: PeftModel.base_model (LoraModel) .model (the transformers model). */
export const PEFT_PREFIX = 'base_model.model.';

/** What lmforge reads of and writes to adapter_config.json. */
export interface AdapterConfig {
  r: number;
  alpha: number;
  dropout: number;
  targetModules: TargetModules;
  useRsLoRA: boolean;
  /** PEFT's use_dora: each adapted layer also holds lora_magnitude_vector (out_features). */
  useDora?: boolean;
  /** The base model directory (PEFT's base_model_name_or_path). */
  baseModel: string;
  /** PEFT's modules_to_save: modules trained in full beside the adapters ([] = none). */
  modulesToSave?: readonly string[];
  /**
   * PEFT's ensure_weight_tying (≥ 0.18): a saved token embedding stays tied to the output head, as lmforge's tied
   * head reads wte; without it PEFT would untie them and keep the old head.
   */
  ensureWeightTying?: boolean;
  /** PEFT's rank_pattern: per-layer ranks by module-path pattern (first match wins); r elsewhere. */
  rankPattern?: LoRAPattern;
  /** PEFT's alpha_pattern: per-layer lora_alpha by module-path pattern; alpha elsewhere. */
  alphaPattern?: LoRAPattern;
}

/** adapter_config.json with PEFT's LoraConfig fields (nothing else, so PEFT's loader accepts it). */
export function adapterConfigJSON(c: AdapterConfig): Record<string, unknown> {
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: c.baseModel,
    revision: null,
    inference_mode: true,
    r: c.r,
    lora_alpha: c.alpha,
    lora_dropout: c.dropout,
    target_modules: 'regex' in c.targetModules ? c.targetModules.regex : [...c.targetModules],
    // GPT-2's Conv1D (and lmforge's Linear) store weights as (in, out): PEFT transposes the update when merging.
    fan_in_fan_out: true,
    bias: 'none',
    use_rslora: c.useRsLoRA,
    use_dora: c.useDora === true,
    modules_to_save: c.modulesToSave && c.modulesToSave.length > 0 ? [...c.modulesToSave] : null,
    ...(c.ensureWeightTying ? { ensure_weight_tying: true } : {}),
    init_lora_weights: true,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: { ...c.rankPattern },
    alpha_pattern: { ...c.alphaPattern },
  };
}

/** Reads and checks adapter_config.json; a field lmforge cannot honour is refused, naming it. */
export function readAdapterConfig(dir: string): AdapterConfig {
  const path = join(dir, ADAPTER_CONFIG_FILE);
  if (!existsSync(path)) throw new UserError(`${path}: not found (expected a LoRA adapter directory with ${ADAPTER_CONFIG_FILE} and ${ADAPTER_WEIGHTS_FILE})`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${describeError(e)})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${path}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  const fail = (field: string, want: string): never => {
    throw new UserError(`${path}: field ${field} is ${JSON.stringify(o[field])}, expected ${want}`);
  };
  if (o.peft_type !== 'LORA') fail('peft_type', '"LORA"');
  const r = o.r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) return fail('r', 'an integer ≥ 1');
  const alpha = o.lora_alpha;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) return fail('lora_alpha', 'a number');
  const dropout = o.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) return fail('lora_dropout', 'a number in [0, 1)');
  const tm = o.target_modules;
  let targetModules: TargetModules;
  if (typeof tm === 'string') targetModules = { regex: tm };
  else if (Array.isArray(tm) && tm.length > 0 && tm.every((t) => typeof t === 'string')) targetModules = tm as string[];
  else return fail('target_modules', 'a list of module names or a regex string');
  if (o.fan_in_fan_out !== true) fail('fan_in_fan_out', 'true (GPT-2 stores its weights as (in, out), Conv1D)');
  if ((o.bias ?? 'none') !== 'none') fail('bias', '"none" (trained biases are not supported)');
  const useDora = o.use_dora ?? false;
  if (typeof useDora !== 'boolean') fail('use_dora', 'true or false');
  const mts = o.modules_to_save ?? [];
  if (!(Array.isArray(mts) && mts.every((t) => typeof t === 'string' && /^[A-Za-z0-9_.]+$/.test(t)))) return fail('modules_to_save', 'null or a list of module names');
  const modulesToSave = mts as string[];
  const patterns: Record<string, Record<string, number>> = {};
  for (const [f, kind] of [['rank_pattern', 'rank'], ['alpha_pattern', 'alpha']] as const) {
    const v = o[f] ?? {};
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(f, 'an object {pattern: value}');
    for (const [key, value] of Object.entries(v)) checkPatternEntry(`${path}: field ${f}`, key, value, kind);
    patterns[f] = v as Record<string, number>;
  }
  for (const f of ['layers_to_transform', 'layers_pattern']) if (o[f] !== undefined && o[f] !== null) fail(f, 'null');
  const base = o.base_model_name_or_path ?? '';
  if (typeof base !== 'string') return fail('base_model_name_or_path', 'a string');
  return { r, alpha, dropout, targetModules, useRsLoRA: o.use_rslora === true, useDora: useDora === true, baseModel: base, modulesToSave, ensureWeightTying: o.ensure_weight_tying === true,
    rankPattern: patterns.rank_pattern, alphaPattern: patterns.alpha_pattern };
}

/**
 * Writes adapter_model.safetensors (every LoRA layer's A and B under PEFT's names, then the modules_to_save
 * parameters under theirs) and adapter_config.json.
 */
export function saveAdapter(dir: string, model: Module, c: AdapterConfig, metadata: Record<string, string> = {}): void {
  const layers = loraLayers(model);
  if (layers.length === 0) throw new Error('saveAdapter: the model has no LoRA layers');
  mkdirSync(dir, { recursive: true });
  const tensors: [string, TensorData][] = [];
  for (const [path, layer] of layers) {
    if (layer.merged) throw new Error(`saveAdapter: ${path} is merged into its base; unmerge it first`);
    tensors.push([`${PEFT_PREFIX}${path}.lora_A.weight`, { shape: [...layer.loraA.shape], data: Float32Array.from(layer.loraA.toTypedArray() as Float32Array) }]);
    tensors.push([`${PEFT_PREFIX}${path}.lora_B.weight`, { shape: [...layer.loraB.shape], data: Float32Array.from(layer.loraB.toTypedArray() as Float32Array) }]);
    // PEFT saves DoRA's magnitude without the ".weight" of its module (its state-dict format from before that refactor).
    if (layer.magnitude) tensors.push([`${PEFT_PREFIX}${path}.lora_magnitude_vector`, { shape: [...layer.magnitude.shape], data: Float32Array.from(layer.magnitude.toTypedArray() as Float32Array) }]);
  }
  for (const [name, p] of modulesToSaveParameters(model, c.modulesToSave ?? [])) {
    tensors.push([`${PEFT_PREFIX}${name}`, { shape: [...p.shape], data: Float32Array.from(p.toTypedArray() as Float32Array) }]);
  }
  writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), tensors, { format: 'pt', ...metadata });
  writeFileAtomic(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify(adapterConfigJSON(c), null, 2) + '\n');
}

/**
 * Wraps the model's target layers as adapter_config.json says and fills them from adapter_model.safetensors.
 * Strict: a missing tensor, an unexpected one, or a shape that disagrees with r and the layer is a UserError
 * naming the file and the tensor. Returns the wrapped paths.
 */
export function loadAdapter(dir: string, model: Module): string[] {
  const c = readAdapterConfig(dir);
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  if (!existsSync(weightsPath)) throw new UserError(`${weightsPath}: not found (the adapter's weights)`);
  const file = readSafetensors(weightsPath);
  const paths = applyLoRA(model, { ...c, source: `${configPath}: target_modules` });
  const problems: string[] = [];
  const used = new Set<string>();
  // Each expected tensor: its saved name, the model tensor it fills, and the shape it must have, in words.
  const expected: [string, Tensor, string][] = [];
  for (const [path, layer] of loraLayers(model)) {
    const r = layer.options.r; // r, or the rank rank_pattern gives this layer
    expected.push([`${PEFT_PREFIX}${path}.lora_A.weight`, layer.loraA, `(r, in_features) = (${r}, ${layer.base_layer.inFeatures})`]);
    expected.push([`${PEFT_PREFIX}${path}.lora_B.weight`, layer.loraB, `(out_features, r) = (${layer.base_layer.outFeatures}, ${r})`]);
    if (layer.magnitude) expected.push([`${PEFT_PREFIX}${path}.lora_magnitude_vector`, layer.magnitude, `(out_features) = (${layer.base_layer.outFeatures}) with use_dora`]);
  }
  for (const [name, p] of modulesToSaveParameters(model, c.modulesToSave ?? [], `${configPath}: modules_to_save`)) {
    expected.push([`${PEFT_PREFIX}${name}`, p, `${JSON.stringify(p.shape)}, the base model's ${name}`]);
  }
  for (const [name, t, want] of expected) {
    const e = file.tensors.get(name);
    used.add(name);
    if (!e) {
      problems.push(`missing tensor ${name}`);
      continue;
    }
    if (e.shape.length !== t.ndim || e.shape.some((n, i) => n !== t.shape[i])) {
      problems.push(`tensor ${name} has shape ${JSON.stringify(e.shape)}, expected ${want} from ${ADAPTER_CONFIG_FILE} and the base model`);
      continue;
    }
    if (e.data instanceof BigInt64Array) {
      problems.push(`tensor ${name} is ${e.dtype}, expected a float dtype`);
      continue;
    }
    const d = t.data;
    for (let i = 0; i < t.size; i++) {
      const v = e.data[i]!;
      if (!Number.isFinite(v)) {
        problems.push(`tensor ${name} holds ${v} at element ${i}`);
        break;
      }
      d[t.offset + i] = v;
    }
  }
  for (const name of file.tensors.keys()) if (!used.has(name)) problems.push(`unexpected tensor ${name} (no LoRA layer or modules_to_save parameter of the model has that name)`);
  if (problems.length > 0) {
    throw new UserError(`${weightsPath}: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? `; and ${problems.length - 3} more` : ''}`);
  }
  return paths;
}

/** Whether a directory holds a LoRA adapter (adapter_config.json) rather than a whole model. */
export function isAdapterDir(dir: string): boolean {
  return existsSync(join(dir, ADAPTER_CONFIG_FILE));
}

/**
 * The base model directory an adapter names: an absolute path as it is; a relative one from the working directory,
 * else from the adapter's own directory. `override` (a --base flag) wins.
 */
export function resolveBaseModel(dir: string, override?: string): string {
  if (override) return override;
  const base = readAdapterConfig(dir).baseModel;
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  if (base === '') throw new UserError(`${configPath}: base_model_name_or_path is empty; name the base model directory`);
  const candidates = isAbsolute(base) ? [base] : [resolve(base), resolve(dir, base)];
  const found = candidates.find((p) => existsSync(join(p, WEIGHTS_FILE)) && existsSync(join(p, CONFIG_FILE)));
  if (!found) throw new UserError(`${configPath}: base_model_name_or_path ${JSON.stringify(base)} is not a model directory here (expected ${CONFIG_FILE} and ${WEIGHTS_FILE} in ${candidates.join(' or ')})`);
  return found;
}

/**
 * A GPT with its adapter: the base model the adapter names (or `base`), wrapped and filled from dir. The base may be
 * a quantized model (a QLoRA run), whose QuantizedLinear layers the adapter wraps as it wraps Linear ones.
 */
export function loadAdaptedGPT(dir: string, options: { base?: string } = {}): GPT {
  const model = loadAnyGPT(resolveBaseModel(dir, options.base));
  try {
    loadAdapter(dir, model);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
