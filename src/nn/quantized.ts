// Weight-only quantized layers: QuantizedLinear (in a Linear's place, found by path) and QuantizedEmbedding (a token
// embedding whose quantized table also serves as the tied output head). Their weights are constants — packed codes
// with scales (core's QuantWeight) outside the tensor pool — so they have no gradient: LoRA adapters on top train
// through them (QLoRA), and the input gradient flows through the dequantized weight. Not quantization (models/quantize.ts).
import * as lm from '../core/index.js';
import type { QuantWeight, Tensor } from '../core/index.js';
import type { ForwardContext } from './context.js';
import { Module } from './module.js';

/** y = x·Wᵀ + b with W (out, in) quantized; the bias (if any) is a frozen float parameter. */
export class QuantizedLinear extends Module {
  readonly bias: Tensor | null;

  constructor(readonly qweight: QuantWeight, bias: Tensor | null) {
    super();
    lm.checkQuantWeight(qweight);
    if (bias) bias.requiresGrad = false; // part of the frozen base, like the weight
    this.bias = bias ? this.param('bias', bias, { trainable: false }) : null;
  }

  get inFeatures(): number {
    return this.qweight.K;
  }

  get outFeatures(): number {
    return this.qweight.N;
  }

  /** Bytes of the packed weight with its scales and zero points. */
  get weightBytes(): number {
    return quantBytes(this.qweight);
  }

  /** ctx is unused, as in Linear (an adapter wrapping this layer passes it). */
  forward(x: Tensor, _ctx?: ForwardContext): Tensor {
    return lm.quantLinear(x, this.qweight, this.bias); // (…, out)
  }
}

export function quantBytes(w: QuantWeight): number {
  return w.q.byteLength + w.scales.byteLength + (w.zeros?.byteLength ?? 0);
}

/** W (N, K) decoded into float32, row-major (tests, and merging an adapter into a dequantized copy). */
export function dequantize(w: QuantWeight): Float32Array {
  const out = new Float32Array(w.N * w.K);
  for (let n = 0; n < w.N; n++) for (let k = 0; k < w.K; k++) out[n * w.K + k] = lm.dequantAt(w, n, k);
  return out;
}

/**
 * A token embedding over a quantized table W (count, dim): a lookup decodes the rows it needs. With a tied head, the
 * same table gives the logits as x·Wᵀ through the quantized matmul (head()).
 */
export class QuantizedEmbedding extends Module {
  constructor(readonly qweight: QuantWeight) {
    super();
    lm.checkQuantWeight(qweight);
  }

  get count(): number {
    return this.qweight.N;
  }

  get dim(): number {
    return this.qweight.K;
  }

  /** ids (…) int32 → (…, dim). */
  forward(ids: Tensor): Tensor {
    const w = this.qweight;
    const C = w.K;
    const idv = ids.toTypedArray();
    const out = lm.empty([...ids.shape, C]);
    const o = out.data as Float32Array;
    for (let i = 0; i < idv.length; i++) {
      const id = idv[i]!;
      if (!(id >= 0 && id < w.N)) {
        out.dispose();
        throw new RangeError(`QuantizedEmbedding: id ${id} at position ${i} is outside [0, ${w.N})`);
      }
      decodeRow(w, id, o, i * C);
    }
    return out;
  }

  /** x (…, dim) → logits (…, count) = x·Wᵀ. */
  head(x: Tensor): Tensor {
    return lm.quantLinear(x, this.qweight, null);
  }
}

/**
 * Row n of W into dst[at, at + K): dequantAt's arithmetic (float64 products of the stored scale and zero, rounded
 * once into float32, so the same values), unrolled over the layout: a 4-bit group is whole 32-input blocks of 16
 * bytes, byte i holding input i (low nibble) and 16 + i (high). A decoded token reads K/2 bytes, not K·4.
 */
function decodeRow(w: QuantWeight, n: number, dst: Float32Array, at: number): void {
  const { K, q } = w;
  if (w.bits === 8) {
    const s = w.scales[n]!;
    for (let k = 0; k < K; k++) {
      const b = q[n * K + k]!;
      dst[at + k] = s * (b >= 128 ? b - 256 : b);
    }
    return;
  }
  const NG = K / w.groupSize;
  for (let k0 = 0; k0 < K; k0 += 32) {
    const g = n * NG + Math.floor(k0 / w.groupSize);
    const s = w.scales[g]!;
    const z = w.zeros![g]!;
    const off = (n * K + k0) / 2;
    for (let i = 0; i < 16; i++) {
      const b = q[off + i]!;
      dst[at + k0 + i] = s * ((b & 15) - z);
      dst[at + k0 + 16 + i] = s * ((b >> 4) - z);
    }
  }
}
