// The quantized linear op: y = x·Wᵀ + b with W a weight-only quantized (N, K) matrix (QuantWeight), decoded inside
// the kernel. W is a constant (a frozen base: QLoRA, quantized inference), so the backward pass gives the input's
// gradient dx = dy·W and the bias's, never W's. Not quantization itself (models/quantize.ts).
import { record } from '../autograd.js';
import type { QuantWeight } from '../kernels.js';
import { ShapeError } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { sumTo } from './reduce.js';
import { alloc, dense, dropCopy, fdata, kernels, sameDtype } from './util.js';
import { reshape } from './views.js';

/** Checks a QuantWeight's fields against each other; throws a RangeError naming the field. */
export function checkQuantWeight(w: QuantWeight, what = 'quantized weight'): void {
  const fail = (field: string, want: string): never => {
    throw new RangeError(`${what}: ${field} ${want}`);
  };
  if (w.bits !== 8 && w.bits !== 4) fail('bits', `= ${String(w.bits)}, expected 8 or 4`);
  if (!(Number.isInteger(w.N) && w.N >= 1)) fail('N', `= ${w.N}, expected a positive integer`);
  if (!(Number.isInteger(w.K) && w.K >= 1)) fail('K', `= ${w.K}, expected a positive integer`);
  if (w.bits === 8) {
    if (w.groupSize !== w.K) fail('groupSize', `= ${w.groupSize}, expected K = ${w.K} (int8 is per output channel)`);
    if (w.q.length !== w.N * w.K) fail('q', `has ${w.q.length} bytes, expected N·K = ${w.N * w.K}`);
    if (w.scales.length !== w.N) fail('scales', `has ${w.scales.length} values, expected N = ${w.N}`);
    return;
  }
  if (!(Number.isInteger(w.groupSize) && w.groupSize >= 32 && w.groupSize % 32 === 0)) fail('groupSize', `= ${w.groupSize}, expected a multiple of 32`);
  if (w.K % w.groupSize !== 0) fail('K', `= ${w.K} is not a multiple of groupSize ${w.groupSize}`);
  const groups = w.N * (w.K / w.groupSize);
  if (w.q.length !== (w.N * w.K) / 2) fail('q', `has ${w.q.length} bytes, expected N·K/2 = ${(w.N * w.K) / 2}`);
  if (w.scales.length !== groups) fail('scales', `has ${w.scales.length} values, expected N·K/groupSize = ${groups}`);
  if (!w.zeros || w.zeros.length !== groups) fail('zeros', `must hold N·K/groupSize = ${groups} values`);
}

/** y = x·Wᵀ (x (…, K) → y (…, N)) or, with trans, x·W (x (…, N) → y (…, K)), without autograd. */
export function quantMatmulRaw(x: Tensor, w: QuantWeight, trans: boolean): Tensor {
  const inner = trans ? w.N : w.K;
  const outer = trans ? w.K : w.N;
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== inner) {
    throw new ShapeError(`quantLinear: input ${x.describe()} must end in ${inner} (the weight is (${w.N}, ${w.K})${trans ? ', transposed' : ''})`);
  }
  const M = x.size / inner;
  const xd = dense(x);
  const y = alloc([...x.shape.slice(0, -1), outer], x.dtype);
  kernels(x).quantMatmul({ x: fdata('quantLinear', xd), xOffset: 0, w, y: fdata('quantLinear', y), M, trans });
  dropCopy(xd, x);
  return y;
}

/** x·Wᵀ + b for x (…, K), a quantized W (N, K) and b (N) or null. Gradients: dx = dy·W, db = Σ_rows dy. */
export function quantLinear(x: Tensor, w: QuantWeight, b: Tensor | null): Tensor {
  const N = w.N;
  if (b && (b.ndim !== 1 || b.shape[0] !== N)) throw new ShapeError(`quantLinear: bias ${b.describe()} does not match the weight's ${N} outputs`);
  const out = quantMatmulRaw(x, w, false);
  if (b) {
    sameDtype('quantLinear', x, b);
    const rows = out.size / N;
    kernels(out).binary('add', { data: fdata('quantLinear', out), offset: 0, strides: [N, 1] }, { data: fdata('quantLinear', b), offset: b.offset, strides: [0, b.strides[0]!] }, fdata('quantLinear', out), [rows, N]);
  }
  return record('quantLinear', b ? [x, b] : [x], out, (g) => {
    const gx = x.requiresGrad ? quantMatmulRaw(g, w, true) : null;
    let gb: Tensor | null = null;
    if (b?.requiresGrad) {
      const g2 = reshape(g, [-1, N]);
      gb = sumTo(g2, [N]);
      g2.dispose();
    }
    return b ? [gx, gb] : [gx];
  });
}
