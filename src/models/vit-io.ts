// ViT weights in Hugging Face's ViTForImageClassification layout (model.safetensors + config.json), so a trained
// model loads in `transformers` and an HF ViT of the same shape loads here: the fused c_attn is split into
// attention.attention.{query,key,value}, Linear weights are stored (out, in) as torch.nn.Linear's, the patch projection
// as the (D, C, p, p) kernel of the p-stride Conv2d. Loading is strict (every tensor, exact shapes).
// Also the name/layout map of one encoder tower under any prefix, which CLIP's files reuse. Not the model (vit.ts).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors, type TensorData } from '../core/safetensors.js';
import { loadStateDict, stateDict, type NamedArray } from '../nn/state.js';
import type { Module } from '../nn/module.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError, describeError } from '../util/errors.js';
import { ensureDir } from '../util/fs.js';
import { VIT_DEFAULTS, ViTForImageClassification, validateViTConfig, type ViTConfig } from './vit.js';

export const WEIGHTS_FILE = 'model.safetensors';
export const CONFIG_FILE = 'config.json';
/** Hugging Face's image processor settings: the normalisation the model was trained with. */
export const PREPROCESSOR_FILE = 'preprocessor_config.json';

/** Per-channel mean and std of pixel/255 (data/images.ts's Normalization; models do not import data). */
export interface Normalization {
  mean: number[];
  std: number[];
}

/** (rows, cols) row-major → (cols, rows). */
export function transpose2d(data: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

/** Our block names → HF ViTLayer names (the Linear ones are transposed; c_attn is split three ways). */
const LAYER_MAP: [string, string, boolean][] = [
  ['ln_1.weight', 'layernorm_before.weight', false],
  ['ln_1.bias', 'layernorm_before.bias', false],
  ['attn.c_proj.weight', 'attention.output.dense.weight', true],
  ['attn.c_proj.bias', 'attention.output.dense.bias', false],
  ['ln_2.weight', 'layernorm_after.weight', false],
  ['ln_2.bias', 'layernorm_after.bias', false],
  ['mlp.c_fc.weight', 'intermediate.dense.weight', true],
  ['mlp.c_fc.bias', 'intermediate.dense.bias', false],
  ['mlp.c_proj.weight', 'output.dense.weight', true],
  ['mlp.c_proj.bias', 'output.dense.bias', false],
];

/** Which block of the tower (layer index and the rest of the name) an internal name is, if any. */
function blockName(name: string, layerPrefix: string): { l: string; rest: string } | null {
  if (!name.startsWith(layerPrefix)) return null;
  const tail = name.slice(layerPrefix.length);
  const dot = tail.indexOf('.');
  return { l: tail.slice(0, dot), rest: tail.slice(dot + 1) };
}

/**
 * A module's state dict in HF's layout: blocks under `layerPrefix` (e.g. 'vit.encoder.layer.') are renamed and
 * split, every 2-D Linear weight transposed, the patch projection reshaped into a conv kernel.
 */
export function toHFLayout(module: Module, layerPrefix: string, patchPrefix: string, C: number): [string, TensorData][] {
  const out: [string, TensorData][] = [];
  for (const [name, a] of stateDict(module)) {
    const data = Float32Array.from(a.data);
    const b = blockName(name, layerPrefix);
    if (b) {
      const base = `${layerPrefix}${b.l}.`;
      if (b.rest === 'attn.c_attn.weight') {
        const wt = transpose2d(data, C, 3 * C); // (3C, C): rows q, k, v
        ['query', 'key', 'value'].forEach((p, i) => out.push([`${base}attention.attention.${p}.weight`, { shape: [C, C], data: wt.slice(i * C * C, (i + 1) * C * C) }]));
        continue;
      }
      if (b.rest === 'attn.c_attn.bias') {
        ['query', 'key', 'value'].forEach((p, i) => out.push([`${base}attention.attention.${p}.bias`, { shape: [C], data: data.slice(i * C, (i + 1) * C) }]));
        continue;
      }
      const m = LAYER_MAP.find(([ours]) => ours === b.rest);
      if (!m) throw new Error(`toHFLayout: no HF name for ${name}`);
      out.push([base + m[1], m[2] ? { shape: [a.shape[1]!, a.shape[0]!], data: transpose2d(data, a.shape[0]!, a.shape[1]!) } : { shape: [...a.shape], data }]);
      continue;
    }
    if (a.shape.length === 2 && name.endsWith('.weight')) {
      const [inF, outF] = a.shape as [number, number];
      const t = transpose2d(data, inF, outF);
      // A patch projection (Cin·p·p, D) is the (D, Cin, p, p) kernel of a p-stride conv (the stem's: 3×3).
      const conv = name === `${patchPrefix}projection.weight` ? patchKernel(inF, module, patchPrefix) : name === `${patchPrefix}stem.weight` ? [inF / 9, 3, 3] : null;
      out.push([name, { shape: conv ? [outF, ...conv] : [outF, inF], data: t }]);
      continue;
    }
    out.push([name, { shape: [...a.shape], data }]);
  }
  return out;
}

/** (Cin, p, p) of a patch projection with inF = Cin·p·p inputs, p read from the module's config. */
function patchKernel(inF: number, module: Module, _prefix: string): number[] {
  const p = (module as unknown as { config?: { patch_size?: number }; vision_config?: { patch_size?: number } }).config?.patch_size
    ?? (module as unknown as { visionConfig?: { patch_size?: number } }).visionConfig?.patch_size;
  if (!p) throw new Error('toHFLayout: the module has no patch_size in its config');
  return [inF / (p * p), p, p];
}

/** The inverse of toHFLayout: HF-layout entries → our names and layouts (shapes checked by loadStateDict after). */
export function fromHFLayout(entries: Map<string, NamedArray>, layerPrefix: string, C: number, source: string): Map<string, NamedArray> {
  const out = new Map<string, NamedArray>();
  const qkv = new Map<string, Partial<Record<string, NamedArray>>>();
  for (const [name, a] of entries) {
    const b = blockName(name, layerPrefix);
    if (b) {
      const base = `${layerPrefix}${b.l}.`;
      const q = /^attention\.attention\.(query|key|value)\.(weight|bias)$/.exec(b.rest);
      if (q) {
        const key = `${base}attn.c_attn.${q[2]}`;
        const parts = qkv.get(key) ?? {};
        parts[q[1]!] = a;
        qkv.set(key, parts);
        continue;
      }
      const m = LAYER_MAP.find(([, hf]) => hf === b.rest);
      if (!m) throw new UserError(`${source}: unexpected tensor ${name}`);
      out.set(base + m[0], m[2] ? { shape: [a.shape[1]!, a.shape[0]!], data: transpose2d(a.data, a.shape[0]!, a.shape[1]!) } : a);
      continue;
    }
    if (name.endsWith('.weight') && a.shape.length >= 2 && !name.includes('embeddings.') || /patch_embeddings\.(projection|stem)\.weight$/.test(name)) {
      const outF = a.shape[0]!;
      const inF = a.shape.slice(1).reduce((x, y) => x * y, 1);
      out.set(name, { shape: [inF, outF], data: transpose2d(a.data, outF, inF) });
      continue;
    }
    out.set(name, a);
  }
  for (const [key, parts] of qkv) {
    const q = parts.query, k = parts.key, v = parts.value;
    if (!q || !k || !v) throw new UserError(`${source}: ${key.replace('attn.c_attn', 'attention.attention.{query,key,value}')} needs all three of query, key and value`);
    if (key.endsWith('.weight')) {
      const wt = new Float32Array(3 * C * C); // (3C, C) then transposed to (C, 3C)
      [q, k, v].forEach((p, i) => wt.set(Float32Array.from(p.data), i * C * C));
      out.set(key, { shape: [C, 3 * C], data: transpose2d(wt, 3 * C, C) });
    } else {
      const bias = new Float32Array(3 * C);
      [q, k, v].forEach((p, i) => bias.set(Float32Array.from(p.data), i * C));
      out.set(key, { shape: [3 * C], data: bias });
    }
  }
  return out;
}

/** config.json in HF's ViTConfig vocabulary, with lmforge's own keys under `lmforge`. */
export function toHFViTConfig(c: ViTConfig, classNames: string[]): Record<string, unknown> {
  return {
    model_type: 'vit',
    architectures: ['ViTForImageClassification'],
    hidden_size: c.n_embd,
    num_hidden_layers: c.n_layer,
    num_attention_heads: c.n_head,
    intermediate_size: c.mlp_hidden > 0 ? c.mlp_hidden : 4 * c.n_embd,
    hidden_act: 'gelu',
    layer_norm_eps: c.norm_eps,
    image_size: c.image_size,
    patch_size: c.patch_size,
    num_channels: c.num_channels,
    qkv_bias: true,
    hidden_dropout_prob: c.dropout,
    attention_probs_dropout_prob: c.dropout,
    id2label: Object.fromEntries(classNames.map((n, i) => [String(i), n])),
    label2id: Object.fromEntries(classNames.map((n, i) => [n, i])),
    lmforge: { ...c },
  };
}

function readJSONFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new UserError(`${path}: file not found (expected a model directory with ${CONFIG_FILE} and ${WEIGHTS_FILE})`);
  try {
    const o = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (typeof o !== 'object' || o === null) throw new Error('expected a JSON object');
    return o as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${describeError(e)})`);
  }
}

/** Our ViTConfig from an HF config.json (lmforge's own block when present). */
export function fromHFViTConfig(o: Record<string, unknown>, source: string): { config: ViTConfig; classNames: string[] } {
  if (o.model_type !== 'vit') throw new UserError(`${source}: model_type is ${JSON.stringify(o.model_type)}, expected "vit"`);
  const id2label = (o.id2label ?? {}) as Record<string, string>;
  const num = (k: string): number => {
    if (typeof o[k] !== 'number') throw new UserError(`${source}: field ${k} must be a number, got ${JSON.stringify(o[k])}`);
    return o[k];
  };
  const config: ViTConfig = typeof o.lmforge === 'object' && o.lmforge !== null
    ? { ...VIT_DEFAULTS, ...(o.lmforge as Partial<ViTConfig>) }
    : {
      ...VIT_DEFAULTS, image_size: num('image_size'), patch_size: num('patch_size'), num_channels: num('num_channels'), n_embd: num('hidden_size'),
      n_layer: num('num_hidden_layers'), n_head: num('num_attention_heads'), mlp_hidden: num('intermediate_size'),
      norm_eps: typeof o.layer_norm_eps === 'number' ? o.layer_norm_eps : 1e-12, num_labels: Object.keys(id2label).length || 2,
    };
  const classNames = Array.from({ length: config.num_labels }, (_, i) => id2label[String(i)] ?? `LABEL_${i}`);
  return { config, classNames };
}

export function saveViT(dir: string, model: ViTForImageClassification, classNames: string[], normalization: Normalization, metadata: Record<string, string> = {}): void {
  ensureDir(dir, 'model directory', { checkWritable: false });
  const size = model.config.image_size;
  const pre = { image_processor_type: 'ViTImageProcessor', do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, image_mean: normalization.mean, image_std: normalization.std, do_resize: false, size: { height: size, width: size } };
  writeFileAtomic(join(dir, PREPROCESSOR_FILE), JSON.stringify(pre, null, 2) + '\n');
  writeSafetensors(join(dir, WEIGHTS_FILE), toHFLayout(model, 'vit.encoder.layer.', 'vit.embeddings.patch_embeddings.', model.config.n_embd), { format: 'pt', ...metadata });
  writeFileAtomic(join(dir, CONFIG_FILE), JSON.stringify(toHFViTConfig(model.config, classNames), null, 2) + '\n');
}

/** Loads a ViTForImageClassification from config.json + model.safetensors (HF layout), strictly, with its normalisation. */
export function loadViT(dir: string): { model: ViTForImageClassification; classNames: string[]; normalization: Normalization } {
  const cfgPath = join(dir, CONFIG_FILE);
  const { config, classNames } = fromHFViTConfig(readJSONFile(cfgPath), cfgPath);
  try {
    validateViTConfig(config);
  } catch (e) {
    throw new UserError(`${cfgPath}: ${describeError(e)}`);
  }
  const weights = join(dir, WEIGHTS_FILE);
  if (!existsSync(weights)) throw new UserError(`${weights}: file not found`);
  const file = readSafetensors(weights);
  const model = new ViTForImageClassification(config, 0);
  try {
    const entries = new Map<string, NamedArray>([...file.tensors].map(([n, t]) => [n, { shape: t.shape, data: t.data as ArrayLike<number> }]));
    loadStateDict(model, fromHFLayout(entries, 'vit.encoder.layer.', config.n_embd, weights), weights);
  } catch (e) {
    model.dispose();
    throw new UserError(describeError(e));
  }
  return { model, classNames, normalization: readNormalization(dir, config.num_channels) };
}

/** preprocessor_config.json's image_mean / image_std (HF's ImageNet-style 0.5 / 0.5 when the file is absent). */
export function readNormalization(dir: string, channels: number): Normalization {
  const path = join(dir, PREPROCESSOR_FILE);
  if (!existsSync(path)) return { mean: new Array<number>(channels).fill(0.5), std: new Array<number>(channels).fill(0.5) };
  const o = readJSONFile(path) as { image_mean?: unknown; image_std?: unknown };
  const ok = (v: unknown): v is number[] => Array.isArray(v) && v.length === channels && v.every((x) => typeof x === 'number');
  if (!ok(o.image_mean) || !ok(o.image_std)) throw new UserError(`${path}: image_mean and image_std must be lists of ${channels} numbers`);
  return { mean: o.image_mean, std: o.image_std };
}

/** Whether a directory holds a ViT (config.json with model_type "vit"). */
export function isViTDir(dir: string): boolean {
  const p = join(dir, CONFIG_FILE);
  if (!existsSync(p)) return false;
  try {
    return (JSON.parse(readFileSync(p, 'utf8')) as { model_type?: unknown }).model_type === 'vit';
  } catch {
    return false;
  }
}
