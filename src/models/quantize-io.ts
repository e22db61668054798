// The quantized model directory: `model.safetensors` + `config.json` like a float GPT's, where each quantized layer
// at path P holds, instead of P.weight:
//   P.qweight  U8  int8: (N, K) two's-complement codes; 4-bit: (N, K/2), 32 inputs per 16 bytes (byte i: input
//                  32b+i in the low nibble, 32b+16+i in the high one)
//   P.scales   F32 (N, K/group_size)          w = scale·q (int8), w = scale·(q − zero) (4-bit)
//   P.qzeros   F32 (N, K/group_size), 4-bit only: the integer zero point 0..15
// with N the layer's outputs and K its inputs (a Linear's weight transposed; the embedding table as it is), and
// config.json's `quantization_config` (bits, group_size, method, the quantized module paths). Other tensors (norms,
// biases, position embeddings) stay F32 under their usual names. Loading builds one block at a time, so the float
// model is never held whole. Not the quantization itself (quantize.ts, quantize-model.ts).
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import * as lm from '../core/index.js';
import type { QuantWeight, Tensor } from '../core/index.js';
import { writeSafetensors, type SafetensorsFile, type TensorData } from '../core/safetensors.js';
import { Block } from '../nn/block.js';
import { Linear } from '../nn/layers.js';
import { Module, ModuleList } from '../nn/module.js';
import { QuantizedEmbedding, QuantizedLinear } from '../nn/quantized.js';
import { loadStateDict, StateDictError, stateDict, type NamedArray } from '../nn/state.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { ensureDir } from '../util/fs.js';
import { GPT, type GPTConfig } from './gpt.js';
import { CONFIG_FILE, fromHFConfig, loadGPT, toHFConfig, WEIGHTS_FILE } from './gpt-io.js';
import { EMBEDDING_PATH, HEAD_PATH, type QuantizedLayer } from './quantize-model.js';

export const QUANT_FORMAT_VERSION = 1;

/** config.json's quantization_config. */
export interface QuantizationConfig {
  quant_method: 'lmforge';
  format_version: number;
  bits: 4 | 8;
  /** 4-bit: inputs per scale/zero group; int8: null (one scale per output channel). */
  group_size: number | null;
  /** 'gptq' (calibrated, error-compensating) or 'rtn' (round to nearest). */
  method: 'gptq' | 'rtn';
  /** int8 is symmetric (no zero point); 4-bit has a zero point per group. */
  sym: boolean;
  /** Quantized module paths ('transformer.wte' also serves the tied head). */
  modules: string[];
  /** Calibration tokens used by GPTQ (0 for rtn). */
  calibration_tokens: number;
}

function readConfigJSON(dir: string): Record<string, unknown> {
  const path = join(dir, CONFIG_FILE);
  if (!existsSync(path)) throw new UserError(`${path}: file not found (expected a model directory with ${CONFIG_FILE} and ${WEIGHTS_FILE})`);
  try {
    const raw = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (typeof raw !== 'object' || raw === null) throw new Error('expected a JSON object');
    return raw as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${(e as Error).message})`);
  }
}

/** Whether a model directory holds a quantized model (config.json with quantization_config). */
export function isQuantizedModelDir(dir: string): boolean {
  if (!existsSync(join(dir, CONFIG_FILE))) return false;
  try {
    return typeof readConfigJSON(dir).quantization_config === 'object';
  } catch {
    return false;
  }
}

function parseQuantConfig(raw: unknown, source: string): QuantizationConfig {
  if (typeof raw !== 'object' || raw === null) throw new UserError(`${source}: quantization_config must be an object`);
  const q = raw as Partial<QuantizationConfig>;
  const fail = (field: string, want: string): never => {
    throw new UserError(`${source}: quantization_config.${field} is ${JSON.stringify(q[field as keyof QuantizationConfig])}, expected ${want}`);
  };
  if (q.quant_method !== 'lmforge') fail('quant_method', '"lmforge"');
  if (q.format_version !== QUANT_FORMAT_VERSION) fail('format_version', `${QUANT_FORMAT_VERSION} (written by another lmforge version? re-run lmforge quantize)`);
  if (q.bits !== 4 && q.bits !== 8) fail('bits', '4 or 8');
  if (q.bits === 4 && !(typeof q.group_size === 'number' && q.group_size >= 32 && q.group_size % 32 === 0)) fail('group_size', 'a multiple of 32');
  if (!Array.isArray(q.modules) || !q.modules.every((m) => typeof m === 'string')) fail('modules', 'an array of module paths');
  return q as QuantizationConfig;
}

/** Writes the quantized model: float tensors of `model` except the quantized weights, plus each layer's codes. */
export function saveQuantizedGPT(dir: string, model: GPT, layers: readonly QuantizedLayer[], qc: Omit<QuantizationConfig, 'quant_method' | 'format_version' | 'modules'>, metadata: Record<string, string> = {}): void {
  ensureDir(dir, 'output model directory', { checkWritable: false });
  const weightNames = new Set(layers.map((l) => `${l.path}.weight`));
  const tensors: [string, TensorData][] = [];
  for (const [name, a] of stateDict(model)) if (!weightNames.has(name)) tensors.push([name, { shape: [...a.shape], data: a.data as Float32Array }]);
  for (const { path, w } of layers) {
    const groups = w.K / w.groupSize;
    tensors.push([`${path}.qweight`, { shape: [w.N, w.bits === 8 ? w.K : w.K / 2], data: w.q }]);
    tensors.push([`${path}.scales`, { shape: [w.N, groups], data: w.scales }]);
    if (w.zeros) tensors.push([`${path}.qzeros`, { shape: [w.N, groups], data: w.zeros }]);
  }
  writeSafetensors(join(dir, WEIGHTS_FILE), tensors, { format: 'lmforge-quantized', ...metadata });
  const config: QuantizationConfig = { quant_method: 'lmforge', format_version: QUANT_FORMAT_VERSION, ...qc, modules: layers.map((l) => l.path) };
  writeFileAtomic(join(dir, CONFIG_FILE), JSON.stringify({ ...toHFConfig(model.config), quantization_config: config }, null, 2) + '\n');
}

/**
 * Reads a safetensors file tensor by tensor straight into arrays of their own (F32 and U8 only, as quantized models
 * hold): no whole-file buffer or mapping beside the copies, so loading peaks at the model's size, not twice it.
 */
function readTensorsOneByOne(path: string): SafetensorsFile {
  const fd = openSync(path, 'r');
  try {
    const fail = (msg: string): never => {
      throw new UserError(`${path}: not a valid quantized model file: ${msg}`);
    };
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) !== 8) fail('shorter than its 8-byte header length');
    const n = Number(head.readBigUInt64LE(0));
    if (n > 100_000_000) fail(`header length ${n} is larger than 100 MB`);
    const text = Buffer.alloc(n);
    if (readSync(fd, text, 0, n, 8) !== n) fail(`the header runs past the end of the file`);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(text.toString('utf8')) as Record<string, unknown>;
    } catch (e) {
      return fail(`the header is not JSON (${(e as Error).message})`);
    }
    const tensors = new Map<string, SafetensorsFile['tensors'] extends Map<string, infer T> ? T : never>();
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (e.dtype !== 'F32' && e.dtype !== 'U8') fail(`tensor "${name}" has dtype ${JSON.stringify(e.dtype)}, expected F32 or U8`);
      const shape = e.shape as number[];
      const [begin, end] = e.data_offsets as [number, number];
      const size = e.dtype === 'F32' ? 4 : 1;
      const count = shape.reduce((a, b) => a * b, 1);
      if (!Array.isArray(shape) || end - begin !== count * size) fail(`tensor "${name}": data_offsets [${begin}, ${end}] do not hold shape [${String(shape)}] of ${String(e.dtype)}`);
      const buf = new ArrayBuffer(end - begin);
      if (readSync(fd, new Uint8Array(buf), 0, end - begin, 8 + n + begin) !== end - begin) fail(`tensor "${name}" runs past the end of the file (truncated?)`);
      tensors.set(name, { dtype: e.dtype as 'F32' | 'U8', shape, data: e.dtype === 'F32' ? new Float32Array(buf) : new Uint8Array(buf) });
    }
    return { tensors, metadata: {} };
  } finally {
    closeSync(fd);
  }
}

/** Reads layer `path`'s QuantWeight (N, K) from the file, checking dtypes and shapes. */
function readQuantWeight(file: SafetensorsFile, path: string, N: number, K: number, qc: QuantizationConfig, source: string): QuantWeight {
  const G = qc.bits === 8 ? K : qc.group_size!;
  if (K % G !== 0) throw new UserError(`${source}: group_size ${G} does not divide ${path}'s input width ${K}`);
  const get = (suffix: string, shape: number[], kind: 'U8' | 'F32'): Uint8Array | Float32Array => {
    const name = `${path}.${suffix}`;
    const t = file.tensors.get(name);
    if (!t) throw new UserError(`${source}: tensor "${name}" is missing`);
    if (t.dtype !== kind) throw new UserError(`${source}: tensor "${name}" has dtype ${t.dtype}, expected ${kind}`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) throw new UserError(`${source}: tensor "${name}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    file.tensors.delete(name);
    return t.data as Uint8Array | Float32Array;
  };
  const q = get('qweight', [N, qc.bits === 8 ? K : K / 2], 'U8') as Uint8Array;
  const scales = get('scales', [N, K / G], 'F32') as Float32Array;
  const zeros = qc.bits === 4 ? (get('qzeros', [N, K / G], 'F32') as Float32Array) : null;
  return { bits: qc.bits, groupSize: G, N, K, q, scales, zeros };
}

/** Replaces every Linear under `root` (paths relative to it, full names `prefix + path`) by its quantized layer. */
function quantizeLinears(root: Module, prefix: string, file: SafetensorsFile, qc: QuantizationConfig, source: string, wanted: Set<string>): void {
  for (const [path, m] of root.namedModules()) {
    if (!(m instanceof Linear) || !wanted.has(prefix + path)) continue;
    const w = readQuantWeight(file, prefix + path, m.outFeatures, m.inFeatures, qc, source);
    root.replaceModule(path, (old) => {
      const lin = old as Linear;
      lin.weight.dispose();
      return new QuantizedLinear(w, lin.bias);
    });
    wanted.delete(prefix + path);
  }
}

/** Draws zeros: the blocks built while loading are overwritten from the file, so drawing their random init is waste. */
class ZeroRng extends lm.Rng {
  override uniform(): number {
    return 0;
  }

  override normal(): number {
    return 0;
  }
}

/** Loads a quantized GPT written by saveQuantizedGPT. Its forward, KV cache and generation are a GPT's. */
export function loadQuantizedGPT(dir: string): GPT {
  const configPath = join(dir, CONFIG_FILE);
  const weightsPath = join(dir, WEIGHTS_FILE);
  if (!existsSync(weightsPath)) throw new UserError(`${weightsPath}: file not found (expected a model directory with ${CONFIG_FILE} and ${WEIGHTS_FILE})`);
  const raw = readConfigJSON(dir);
  const qc = parseQuantConfig(raw.quantization_config, configPath);
  let c: GPTConfig;
  try {
    c = fromHFConfig(raw, configPath);
  } catch (e) {
    if (e instanceof RangeError) throw new UserError(`${configPath}: ${e.message}`);
    throw e;
  }
  const file = readTensorsOneByOne(weightsPath);
  const wanted = new Set(qc.modules);
  // A skeleton with one block and a one-token table, so that no full-size float weight is ever allocated; the real
  // blocks are built and quantized one at a time, each block's float weights returned to the pool for the next.
  const model = new GPT({ ...c, n_layer: 1, vocab_size: 1, tie_embeddings: true, local_layers: c.local_layers === '' ? '' : 'all' }, 1);
  try {
    // The skeleton's float block goes back to the pool before the real blocks are built, so that they reuse its
    // buffers: one block's float weights are ever allocated, not two (all of them garbage once loading is done).
    model.replaceModule('transformer.h', (old) => {
      old.dispose();
      return new ModuleList<Block>([]);
    });
    const rng = new ZeroRng(1);
    const blocks: Block[] = [];
    for (let l = 0; l < c.n_layer; l++) {
      const b = lm.tidy(() => new Block(c, rng, l));
      quantizeLinears(b, `transformer.h.${l}.`, file, qc, configPath, wanted);
      blocks.push(b);
    }
    model.replaceModule('transformer.h', (old) => {
      old.dispose();
      return new ModuleList(blocks);
    });
    if (!wanted.has(EMBEDDING_PATH)) throw new UserError(`${configPath}: quantization_config.modules must include ${EMBEDDING_PATH}`);
    const emb = new QuantizedEmbedding(readQuantWeight(file, EMBEDDING_PATH, c.vocab_size, c.n_embd, qc, weightsPath));
    wanted.delete(EMBEDDING_PATH);
    model.replaceModule(EMBEDDING_PATH, (old) => {
      old.dispose();
      return emb;
    });
    let head: (x: Tensor) => Tensor = (x) => emb.head(x);
    if (!c.tie_embeddings) {
      if (!wanted.has(HEAD_PATH)) throw new UserError(`${configPath}: the head is untied, so quantization_config.modules must include ${HEAD_PATH}`);
      const hw = readQuantWeight(file, HEAD_PATH, c.vocab_size, c.n_embd, qc, weightsPath);
      wanted.delete(HEAD_PATH);
      head = (x) => lm.quantLinear(x, hw, null);
    }
    if (wanted.size > 0) throw new UserError(`${configPath}: quantization_config.modules names ${[...wanted].join(', ')}, which the model has no Linear at`);
    // The float model's config (the skeleton's was shrunk) and its head through the quantized table. GPT's head is
    // a private method; an instance property in its place is the one hook needed (no edit to models/gpt.ts).
    (model as { config: GPTConfig }).config = c;
    Object.defineProperty(model, 'head', { value: head, configurable: true, writable: true });
    const entries = new Map<string, NamedArray>();
    for (const [name, t] of file.tensors) {
      if (!(t.data instanceof Float32Array)) throw new UserError(`${weightsPath}: tensor ${name} is ${t.dtype}, expected F32`);
      entries.set(name, { shape: t.shape, data: t.data });
    }
    loadStateDict(model, entries, weightsPath);
    // The float block weights built while loading went back to the pool; training and decoding take other sizes,
    // so hand them to the garbage collector instead of keeping them (QLoRA's peak memory is the point).
    lm.memory.clearPool();
  } catch (e) {
    model.dispose();
    if (e instanceof StateDictError) throw new UserError(e.message);
    throw e;
  }
  return model;
}

/** A float or quantized model directory, whichever it holds. */
export function loadAnyGPT(dir: string): GPT {
  return isQuantizedModelDir(dir) ? loadQuantizedGPT(dir) : loadGPT(dir);
}
