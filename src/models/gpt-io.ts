// Saving and loading GPT weights as `model.safetensors` + `config.json` in Hugging Face's GPT-2 layout.
// Loading is strict: every parameter present with its exact shape, nothing unexpected. Checkpoints written by
// Hugging Face's GPT2Model (names without the `transformer.` prefix, attention-mask buffers) load too.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors, type TensorData } from '../core/safetensors.js';
import { loadStateDict, StateDictError, stateDict, type NamedArray } from '../nn/state.js';
import { writeFileAtomic } from '../util/atomic.js';
import { ensureDir } from '../util/fs.js';
import { UserError } from '../util/errors.js';
import { GPT, GPT_DEFAULTS, type GPTConfig } from './gpt.js';

export const WEIGHTS_FILE = 'model.safetensors';
export const CONFIG_FILE = 'config.json';

/** config.json in Hugging Face's GPT-2 vocabulary, with lmforge's architecture options alongside. */
export function toHFConfig(c: GPTConfig): Record<string, unknown> {
  return {
    model_type: 'gpt2',
    architectures: ['GPT2LMHeadModel'],
    vocab_size: c.vocab_size,
    n_positions: c.block_size,
    n_ctx: c.block_size,
    n_embd: c.n_embd,
    n_layer: c.n_layer,
    n_head: c.n_head,
    n_inner: c.mlp_hidden > 0 ? c.mlp_hidden : null,
    activation_function: c.activation === 'gelu_tanh' ? 'gelu_new' : 'gelu',
    layer_norm_epsilon: c.norm_eps,
    resid_pdrop: c.dropout,
    embd_pdrop: c.dropout,
    attn_pdrop: c.dropout,
    tie_word_embeddings: c.tie_embeddings,
    lmforge: { ...c },
  };
}

export function fromHFConfig(raw: unknown, source: string): GPTConfig {
  if (typeof raw !== 'object' || raw === null) throw new UserError(`${source}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  if (typeof o.lmforge === 'object' && o.lmforge !== null) return { ...GPT_DEFAULTS, ...(o.lmforge as Partial<GPTConfig>) };
  if (o.model_type !== 'gpt2') throw new UserError(`${source}: model_type is ${JSON.stringify(o.model_type)}, expected "gpt2"`);
  const num = (key: string, fallback?: number): number => {
    const v = o[key] ?? fallback;
    if (typeof v !== 'number') throw new UserError(`${source}: field ${key} must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const act = o.activation_function ?? 'gelu_new';
  return {
    ...GPT_DEFAULTS,
    vocab_size: num('vocab_size'),
    block_size: num('n_positions'),
    n_embd: num('n_embd'),
    n_layer: num('n_layer'),
    n_head: num('n_head'),
    mlp_hidden: typeof o.n_inner === 'number' ? o.n_inner : 0,
    norm_eps: num('layer_norm_epsilon', 1e-5),
    activation: act === 'gelu' ? 'gelu' : 'gelu_tanh',
    tie_embeddings: o.tie_word_embeddings !== false,
  };
}

/** Writes model.safetensors and config.json into dir (each atomically). */
export function saveGPT(dir: string, model: GPT, metadata: Record<string, string> = {}): void {
  ensureDir(dir, 'model directory', { checkWritable: false });
  const tensors: [string, TensorData][] = [];
  for (const [name, a] of stateDict(model)) tensors.push([name, { shape: [...a.shape], data: a.data as Float32Array }]);
  writeSafetensors(join(dir, WEIGHTS_FILE), tensors, { format: 'pt', ...metadata });
  writeFileAtomic(join(dir, CONFIG_FILE), JSON.stringify(toHFConfig(model.config), null, 2) + '\n');
}

/**
 * Loads a GPT from a directory holding config.json and model.safetensors (non-finite weights refused unless allowed).
 * blockSize lengthens the context of a model without learned positions (RoPE or none: no weight depends on it).
 */
export function loadGPT(dir: string, options: { allowNonFinite?: boolean; blockSize?: number } = {}): GPT {
  const configPath = join(dir, CONFIG_FILE);
  const weightsPath = join(dir, WEIGHTS_FILE);
  for (const p of [configPath, weightsPath]) if (!existsSync(p)) throw new UserError(`${p}: file not found (expected a model directory with ${CONFIG_FILE} and ${WEIGHTS_FILE})`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(configPath, 'utf8'));
  } catch (e) {
    throw new UserError(`${configPath}: invalid JSON (${(e as Error).message})`);
  }
  let model: GPT;
  try {
    const config = fromHFConfig(raw, configPath);
    if (options.blockSize !== undefined && options.blockSize !== config.block_size) {
      if (config.position === 'learned') throw new UserError(`${configPath}: the model learned its ${config.block_size} positions; its context cannot become ${options.blockSize} tokens`);
      config.block_size = options.blockSize;
    }
    model = new GPT(config);
  } catch (e) {
    if (e instanceof RangeError) throw new UserError(`${configPath}: ${e.message}`);
    throw e;
  }
  try {
    loadWeights(model, weightsPath, options);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * Loads weights into an existing model, accepting Hugging Face GPT2Model names and ignoring its mask buffers.
 * A NaN or infinite weight is refused naming the tensor (allowNonFinite lets one through, for debugging).
 */
export function loadWeights(model: GPT, path: string, options: { allowNonFinite?: boolean } = {}): void {
  const file = readSafetensors(path);
  const entries = new Map<string, NamedArray>();
  for (const [name, t] of file.tensors) {
    if (t.data instanceof BigInt64Array) throw new UserError(`${path}: tensor ${name} is ${t.dtype}, expected a float dtype`);
    if (!options.allowNonFinite) {
      const d = t.data;
      for (let i = 0; i < d.length; i++) {
        if (!Number.isFinite(d[i] as number)) throw new UserError(`${path}: tensor ${name} holds ${d[i]} at element ${i}: the weights are not finite (a diverged run?)`);
      }
    }
    const full = name.startsWith('transformer.') || name.startsWith('lm_head.') ? name : `transformer.${name}`;
    entries.set(full, { shape: t.shape, data: t.data as ArrayLike<number> });
  }
  try {
    loadStateDict(model, entries, path, { ignore: /\.attn\.(bias|masked_bias)$/ });
  } catch (e) {
    if (e instanceof StateDictError) throw new UserError(e.message);
    throw e;
  }
}
