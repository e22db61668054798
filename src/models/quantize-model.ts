// Quantizing a whole GPT: which layers (every Linear of the blocks, and the token embedding, which with GPT-2's tied
// head is also the output projection — 38M of GPT-2 small's 124M weights, read once per decoded token), the
// calibration pass that collects each layer's H = 2·XᵀX from real text, and GPTQ (or round-to-nearest without
// calibration) per layer. The result is the quantized tensors under the names quantize-io.ts writes.
// Hessians are collected in one pass over the float model (each layer sees float inputs), not layer by layer
// through already-quantized layers as the paper does: one forward instead of n_layer, at a small cost in accuracy.
import * as lm from '../core/index.js';
import type { QuantWeight, Tensor } from '../core/index.js';
import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import type { GPT } from './gpt.js';
import { quantizeGPTQ, quantizeRTN, type Bits } from './quantize.js';

/** The path under which the tied head/embedding table is quantized. */
export const EMBEDDING_PATH = 'transformer.wte';
export const HEAD_PATH = 'lm_head';

export interface QuantizeOptions {
  bits: Bits;
  /** 4-bit group size along the input dimension (32, 64 or 128); int8 is per output channel. */
  groupSize: number;
  /** Calibration token ids (GPTQ); null rounds to nearest. */
  calibration: ArrayLike<number> | null;
  /** Rows of block_size tokens per calibration forward pass. */
  calibrationBatch?: number;
  log?: (line: string) => void;
}

export interface QuantizedLayer {
  path: string;
  w: QuantWeight;
}

/** The quantized layers of a model: a Linear's weight (in, out) transposed to (out, in); embedding tables as they are. */
function targets(model: GPT): { path: string; N: number; K: number; weight: () => Float32Array }[] {
  const out: { path: string; N: number; K: number; weight: () => Float32Array }[] = [];
  for (const [path, m] of model.namedModules()) {
    if (!(m instanceof Linear)) continue;
    out.push({ path, N: m.outFeatures, K: m.inFeatures, weight: () => transposed(m.weight.toTypedArray() as Float32Array, m.inFeatures, m.outFeatures) });
  }
  const wte = model.transformer.wte.weight;
  out.push({ path: EMBEDDING_PATH, N: wte.shape[0]!, K: wte.shape[1]!, weight: () => wte.toTypedArray() as Float32Array });
  if (model.lmHead) {
    const h = model.lmHead;
    out.push({ path: HEAD_PATH, N: h.shape[0]!, K: h.shape[1]!, weight: () => h.toTypedArray() as Float32Array });
  }
  return out;
}

/** a (R, C) row-major → (C, R). */
function transposed(a: Float32Array, R: number, C: number): Float32Array {
  const t = new Float32Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) t[c * R + r] = a[r * C + c]!;
  return t;
}

/** Adds 2·XᵀX of x (…, K) into H (K, K) (float32 GEMM per batch, summed in float64). */
function accumulateHessian(H: Float64Array, x: Tensor): void {
  lm.tidy(() => {
    const K = x.shape[x.ndim - 1]!;
    const x2 = lm.reshape(x, [-1, K]);
    const xtx = lm.matmul(lm.transpose(x2), x2).toTypedArray(); // (K, K)
    for (let i = 0; i < K * K; i++) H[i] = H[i]! + 2 * xtx[i]!;
  });
}

/** Passes x through the wrapped Linear, adding its input to H on the way. */
class HessianRecorder extends Module {
  readonly H: Float64Array;
  rows = 0;

  constructor(readonly inner: Linear) {
    super();
    this.H = new Float64Array(inner.inFeatures * inner.inFeatures);
  }

  forward(x: Tensor): Tensor {
    accumulateHessian(this.H, x);
    this.rows += x.size / this.inner.inFeatures;
    return this.inner.forward(x);
  }
}

/** H (scaled by 1/rows, as GPTQ's running mean) of every Linear's and the head's input over the calibration tokens. */
export function collectHessians(model: GPT, tokens: ArrayLike<number>, batch: number): Map<string, Float64Array> {
  const T = model.config.block_size;
  const rows = Math.floor(tokens.length / T);
  if (rows < 1) throw new RangeError(`calibration: ${tokens.length} tokens is less than one block of ${T}`);
  const recorders = new Map<string, HessianRecorder>();
  for (const [path, m] of model.namedModules()) if (m instanceof Linear) recorders.set(path, model.replaceModule(path, (old) => new HessianRecorder(old as Linear)));
  const C = model.config.n_embd;
  const headH = new Float64Array(C * C);
  let headRows = 0;
  const wasTraining = model.training;
  model.eval();
  try {
    lm.noGrad(() => {
      for (let r0 = 0; r0 < rows; r0 += batch) {
        const B = Math.min(batch, rows - r0);
        lm.tidy(() => {
          const ids = lm.tensor(Array.from({ length: B * T }, (_, i) => tokens[r0 * T + i]!), [B, T], 'int32');
          const { hidden } = model.forward(ids); // (B, T, C): the head's input
          accumulateHessian(headH, hidden);
          headRows += B * T;
        });
      }
    });
  } finally {
    for (const [path, rec] of recorders) model.replaceModule(path, () => rec.inner);
    model.train(wasTraining);
  }
  const out = new Map<string, Float64Array>();
  const scaled = (H: Float64Array, n: number): Float64Array => H.map((v) => v / Math.max(n, 1));
  for (const [path, rec] of recorders) out.set(path, scaled(rec.H, rec.rows));
  out.set(model.lmHead ? HEAD_PATH : EMBEDDING_PATH, scaled(headH, headRows));
  return out;
}

/** Quantizes every target layer of the model (GPTQ with calibration, else round-to-nearest). */
export function quantizeGPT(model: GPT, o: QuantizeOptions): QuantizedLayer[] {
  const log = o.log ?? (() => {});
  let hessians: Map<string, Float64Array> | null = null;
  if (o.calibration) {
    const t0 = performance.now();
    hessians = collectHessians(model, o.calibration, o.calibrationBatch ?? 8);
    log(`calibration: ${o.calibration.length} tokens through the model in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const layers: QuantizedLayer[] = [];
  for (const t of targets(model)) {
    const t0 = performance.now();
    const H = hessians?.get(t.path);
    const w = H ? quantizeGPTQ(t.weight(), t.N, t.K, H, o.bits, o.groupSize) : quantizeRTN(t.weight(), t.N, t.K, o.bits, o.groupSize);
    layers.push({ path: t.path, w });
    log(`${t.path} (${t.N}×${t.K}): ${H ? 'GPTQ' : 'round-to-nearest'} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  return layers;
}
