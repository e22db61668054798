// The op test cases shared by the gradient checks (float64, reference backend) and the backend parity tests
// (float32, native against reference). Each case builds its output from freshly made inputs.
import * as lm from '../../src/core/index.js';
import type { DType, QuantWeight, Tensor } from '../../src/core/index.js';
import { tryLoadAddon } from '../../src/core/native/addon.js';
import { quantActivationMode } from '../../src/core/native/quant.js';
import { quantizeRTN } from '../../src/models/quantize.js';

export interface OpCase {
  name: string;
  /** Shapes of the float inputs that get gradients. */
  inputs: number[][];
  /** Input values are uniform in [low, high) (default [−2, 2)). */
  range?: [number, number];
  run(xs: Tensor[], dtype: DType): Tensor;
}

const ids = (values: number[], shape: number[]): Tensor => lm.tensor(values, shape, 'int32');

/** A fixed quantized weight (N, K) from seeded normal values: quantized ops take it as a constant. */
function quantWeight(N: number, K: number, bits: 4 | 8, groupSize: number): QuantWeight {
  const rng = new lm.Rng(N * 1000 + K + bits);
  return quantizeRTN(Array.from({ length: N * K }, () => rng.normal()), N, K, bits, groupSize);
}
// The cases check the float-activation arithmetic, the reference's; the int8-activation (VNNI) decoding path is checked
// against it within its rounding in test/models/quantize.test.ts.
if (tryLoadAddon()) quantActivationMode('off');
const qInt8 = quantWeight(5, 80, 8, 80);
const qInt4 = quantWeight(6, 128, 4, 64);
const qInt4g32 = quantWeight(7, 64, 4, 32);
/**
 * Slots and groups of `rounds` rounds over positions [0, T) for H heads, two groups per round (group 1 takes the
 * positions with (p·(r + h + 3)) mod 11 ≥ 9), sorted by (group, position): group 0 is one long run of slots.
 */
function longRuns(H: number, T: number, rounds: number): [Tensor, Tensor] {
  const slots: number[] = [];
  const groups: number[] = [];
  for (let h = 0; h < H; h++) {
    for (let r = 0; r < rounds; r++) {
      const g = (p: number): number => ((p * (r + h + 3)) % 11 >= 9 ? 1 : 0);
      const order = Array.from({ length: T }, (_, p) => p).sort((a, b) => g(a) - g(b) || a - b);
      for (const p of order) {
        slots.push(p);
        groups.push(g(p));
      }
    }
  }
  return [ids(slots, [1, H, rounds * T]), ids(groups, [1, H, rounds * T])];
}

export const opCases: OpCase[] = [
  // elementwise unary
  ...(['neg', 'exp', 'tanh', 'relu', 'silu', 'sigmoid', 'abs', 'square'] as const).map((op) => ({
    name: op, inputs: [[3, 5]], run: (xs: Tensor[]) => lm.unary(op, xs[0]!),
  })),
  { name: 'gelu', inputs: [[4, 6]], run: (xs) => lm.gelu(xs[0]!) },
  { name: 'gelu_tanh', inputs: [[4, 6]], run: (xs) => lm.gelu(xs[0]!, 'tanh') },
  { name: 'log', inputs: [[7]], range: [0.2, 3], run: (xs) => lm.log(xs[0]!) },
  { name: 'sqrt', inputs: [[7]], range: [0.2, 3], run: (xs) => lm.sqrt(xs[0]!) },
  { name: 'rsqrt', inputs: [[7]], range: [0.2, 3], run: (xs) => lm.rsqrt(xs[0]!) },
  { name: 'powScalar', inputs: [[7]], range: [0.2, 3], run: (xs) => lm.powScalar(xs[0]!, 2.5) },
  { name: 'mulScalar+addScalar', inputs: [[2, 3]], run: (xs) => lm.addScalar(lm.mulScalar(xs[0]!, -1.5), 0.25) },
  // binary with broadcasting
  { name: 'add broadcast', inputs: [[2, 3, 4], [3, 1]], run: (xs) => lm.add(xs[0]!, xs[1]!) },
  { name: 'sub broadcast', inputs: [[4], [2, 3, 4]], run: (xs) => lm.sub(xs[0]!, xs[1]!) },
  { name: 'mul broadcast', inputs: [[2, 1, 4], [3, 1]], run: (xs) => lm.mul(xs[0]!, xs[1]!) },
  { name: 'div', inputs: [[3, 4], [3, 4]], range: [0.5, 2], run: (xs) => lm.div(xs[0]!, xs[1]!) },
  { name: 'pow', inputs: [[5], [5]], range: [0.5, 2], run: (xs) => lm.pow(xs[0]!, xs[1]!) },
  { name: 'maximum', inputs: [[6], [6]], run: (xs) => lm.maximum(xs[0]!, xs[1]!) },
  { name: 'minimum', inputs: [[2, 3], [3]], run: (xs) => lm.minimum(xs[0]!, xs[1]!) },
  { name: 'same input twice', inputs: [[4]], run: (xs) => lm.mul(xs[0]!, xs[0]!) },
  // reductions
  { name: 'sum all', inputs: [[3, 4]], run: (xs) => lm.sum(xs[0]!) },
  { name: 'sum axes keepdim', inputs: [[2, 3, 4]], run: (xs) => lm.sum(xs[0]!, [0, 2], true) },
  { name: 'mean axis', inputs: [[2, 3, 4]], run: (xs) => lm.mean(xs[0]!, 1) },
  { name: 'max axis', inputs: [[3, 5]], run: (xs) => lm.max(xs[0]!, 1) },
  { name: 'max axis 0 keepdim', inputs: [[4, 3]], run: (xs) => lm.max(xs[0]!, 0, true) },
  // views
  { name: 'reshape+permute', inputs: [[2, 3, 4]], run: (xs) => lm.mul(lm.permute(lm.reshape(xs[0]!, [6, 4]), [1, 0]), lm.tensor(Array.from({ length: 24 }, (_, i) => i / 10), [4, 6], xs[0]!.dtype)) },
  { name: 'slice', inputs: [[5, 4]], run: (xs) => lm.slice(xs[0]!, 0, 1, 4) },
  { name: 'expand', inputs: [[3, 1]], run: (xs) => lm.expand(xs[0]!, [2, 3, 4]) },
  { name: 'contiguous of transpose', inputs: [[3, 4]], run: (xs) => lm.contiguous(lm.transpose(xs[0]!)) },
  // matmul
  { name: 'matmul 2d', inputs: [[3, 4], [4, 5]], run: (xs) => lm.matmul(xs[0]!, xs[1]!) },
  { name: 'matmul batched', inputs: [[2, 3, 4], [2, 4, 5]], run: (xs) => lm.matmul(xs[0]!, xs[1]!) },
  { name: 'matmul batch x 2d', inputs: [[2, 3, 4], [4, 5]], run: (xs) => lm.matmul(xs[0]!, xs[1]!) },
  { name: 'matmul 2d x batch', inputs: [[3, 4], [2, 4, 5]], run: (xs) => lm.matmul(xs[0]!, xs[1]!) },
  { name: 'matmul transposed views', inputs: [[4, 3], [5, 4]], run: (xs) => lm.matmul(lm.transpose(xs[0]!), lm.transpose(xs[1]!)) },
  { name: 'linear with bias', inputs: [[2, 3, 4], [4, 5], [5]], run: (xs) => lm.linear(xs[0]!, xs[1]!, xs[2]!) },
  { name: 'linear no bias', inputs: [[3, 4], [4, 2]], run: (xs) => lm.linear(xs[0]!, xs[1]!, null) },
  { name: 'sum over leading dims (bias grad path)', inputs: [[2, 3, 4], [4]], run: (xs) => lm.add(xs[0]!, xs[1]!) },
  // weight-only quantized linear (rows ≤ 8 take the native GEMV path, more rows the decoded-tile GEMM path)
  { name: 'quantLinear int8 + bias', inputs: [[2, 80], [5]], run: (xs) => lm.quantLinear(xs[0]!, qInt8, xs[1]!) },
  { name: 'quantLinear int8 tiled', inputs: [[3, 4, 80]], run: (xs) => lm.quantLinear(xs[0]!, qInt8, null) },
  { name: 'quantLinear 4-bit g64', inputs: [[1, 3, 128], [6]], run: (xs) => lm.quantLinear(xs[0]!, qInt4, xs[1]!) },
  { name: 'quantLinear 4-bit g32 tiled', inputs: [[2, 9, 64], [7]], run: (xs) => lm.quantLinear(xs[0]!, qInt4g32, xs[1]!) },
  // nn
  { name: 'softmax', inputs: [[3, 5]], run: (xs) => lm.softmax(xs[0]!) },
  { name: 'softmax axis 0', inputs: [[3, 5]], run: (xs) => lm.softmax(xs[0]!, 0) },
  { name: 'logSoftmax', inputs: [[3, 5]], run: (xs) => lm.logSoftmax(xs[0]!) },
  { name: 'layerNorm', inputs: [[4, 6], [6], [6]], run: (xs) => lm.layerNorm(xs[0]!, xs[1]!, xs[2]!) },
  { name: 'layerNorm no affine', inputs: [[4, 6]], run: (xs) => lm.layerNorm(xs[0]!, null, null) },
  { name: 'rmsNorm', inputs: [[4, 6], [6]], run: (xs) => lm.rmsNorm(xs[0]!, xs[1]!) },
  { name: 'embedding', inputs: [[5, 3]], run: (xs) => lm.embedding(xs[0]!, ids([0, 4, 4, 2, 1, 0], [2, 3])) },
  { name: 'crossEntropy mean', inputs: [[4, 7]], run: (xs) => lm.crossEntropy(xs[0]!, ids([1, 6, 0, 3], [4])) },
  { name: 'crossEntropy ignore+sum', inputs: [[2, 3, 5]], run: (xs) => lm.crossEntropy(xs[0]!, ids([1, -100, 4, 0, -100, 2], [2, 3]), { reduction: 'sum' }) },
  { name: 'crossEntropy none', inputs: [[3, 4]], run: (xs) => lm.crossEntropy(xs[0]!, ids([3, 0, 1], [3]), { reduction: 'none' }) },
  { name: 'dropout', inputs: [[6, 7]], run: (xs) => lm.dropout(xs[0]!, 0.3, 1234) },
  // indexing
  { name: 'concat', inputs: [[2, 3], [2, 2]], run: (xs) => lm.concat([xs[0]!, xs[1]!], 1) },
  { name: 'split', inputs: [[5, 2]], run: (xs) => { const [a, b] = lm.split(xs[0]!, [2, 3], 0); return lm.concat([lm.mulScalar(a!, 2), b!], 0); } },
  { name: 'where', inputs: [[3, 4], [4]], run: (xs) => lm.where(lm.tensor([1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1], [3, 4], xs[0]!.dtype), xs[0]!, xs[1]!) },
  { name: 'maskedFill', inputs: [[3, 4]], run: (xs) => lm.maskedFill(xs[0]!, lm.tensor([0, 1, 0, 1], [4], xs[0]!.dtype), -7) },
  { name: 'gather', inputs: [[3, 5]], run: (xs) => lm.gather(xs[0]!, 1, ids([0, 4, 4, 1, 2, 3], [3, 2])) },
  { name: 'topk', inputs: [[3, 6]], run: (xs) => lm.topk(xs[0]!, 3).values },
  { name: 'cumsum', inputs: [[3, 4]], run: (xs) => lm.cumsum(xs[0]!, 1) },
  // attention
  { name: 'attention causal', inputs: [[2, 2, 5, 3], [2, 2, 5, 3], [2, 2, 5, 3]], run: (xs) => lm.attention(xs[0]!, xs[1]!, xs[2]!, { causal: true }) },
  {
    name: 'attention decode (Tq < Tk) + mask', inputs: [[1, 2, 2, 4], [1, 2, 6, 4], [1, 2, 6, 4]],
    run: (xs, dtype) => lm.attention(xs[0]!, xs[1]!, xs[2]!, { causal: true, mask: lm.tensor([0, -1, 0.5, 0, -Infinity, 0, 0.3, 0, 0, -2, 0, 0], [2, 6], dtype) }),
  },
  { name: 'selfAttention', inputs: [[2, 5, 12]], run: (xs) => lm.selfAttention(xs[0]!, 2) },
  // attention with dropout on the probabilities: the mask is fixed by the seed, so the op is smooth in its inputs
  { name: 'attention + dropout', inputs: [[2, 2, 6, 3], [2, 2, 6, 3], [2, 2, 6, 3]], run: (xs) => lm.attention(xs[0]!, xs[1]!, xs[2]!, { dropout: 0.3, dropoutSeed: 17 }) },
  { name: 'attention causal + dropout', inputs: [[2, 2, 5, 3], [2, 2, 5, 3], [2, 2, 5, 3]], run: (xs) => lm.attention(xs[0]!, xs[1]!, xs[2]!, { causal: true, dropout: 0.4, dropoutSeed: 5 }) },
  {
    name: 'attention decode (Tq < Tk) + mask + dropout', inputs: [[1, 2, 2, 4], [1, 2, 6, 4], [1, 2, 6, 4]],
    run: (xs, dtype) => lm.attention(xs[0]!, xs[1]!, xs[2]!, { causal: true, dropout: 0.2, dropoutSeed: 2024, mask: lm.tensor([0, -1, 0.5, 0, -Infinity, 0, 0.3, 0, 0, -2, 0, 0], [2, 6], dtype) }),
  },
  { name: 'selfAttention + dropout', inputs: [[2, 5, 12]], run: (xs) => lm.selfAttention(xs[0]!, 2, { dropout: 0.25, dropoutSeed: 3 }) },
  // sliding-window (local) attention: each query sees its last `window` positions
  { name: 'attention causal window 2', inputs: [[2, 2, 7, 3], [2, 2, 7, 3], [2, 2, 7, 3]], run: (xs) => lm.attention(xs[0]!, xs[1]!, xs[2]!, { causal: true, window: 2 }) },
  {
    name: 'attention decode (Tq < Tk) + mask + window 3', inputs: [[1, 2, 3, 5], [1, 2, 8, 5], [1, 2, 8, 5]],
    run: (xs, dtype) => lm.attention(xs[0]!, xs[1]!, xs[2]!, { causal: true, window: 3, mask: lm.tensor([0, -1, 0.5, 0, -Infinity, 0, 0.3, 0], [1, 8], dtype) }),
  },
  { name: 'attention causal window 3 + dropout', inputs: [[1, 2, 6, 3], [1, 2, 6, 3], [1, 2, 6, 3]], run: (xs) => lm.attention(xs[0]!, xs[1]!, xs[2]!, { causal: true, window: 3, dropout: 0.3, dropoutSeed: 8 }) },
  { name: 'selfAttention window 3', inputs: [[2, 9, 12]], run: (xs) => lm.selfAttention(xs[0]!, 2, { window: 3 }) },
  { name: 'selfAttention window 1', inputs: [[1, 4, 6]], run: (xs) => lm.selfAttention(xs[0]!, 1, { window: 1 }) },
  // causal attention over gathered, grouped slots (Reformer / Routing core): two hash rounds sorted by (bucket,
  // position) with the self penalty and a window that cuts a long bucket, and clusters that repeat a position
  // and leave another out
  {
    name: 'bucketAttention LSH rounds', inputs: [[1, 2, 6, 3], [1, 2, 6, 3], [1, 2, 6, 3]],
    run: (xs) => lm.bucketAttention(xs[0]!, xs[1]!, xs[2]!,
      ids([0, 3, 5, 1, 2, 4, 2, 1, 4, 0, 3, 5, 0, 1, 2, 4, 3, 5, 1, 0, 2, 3, 5, 4], [1, 2, 12]),
      ids([0, 0, 0, 1, 1, 1, 0, 1, 1, 2, 2, 2, 0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 2], [1, 2, 12]), { window: 2, rounds: 2, selfPenalty: 1e3 }),
  },
  {
    name: 'bucketAttention LSH small penalty', inputs: [[2, 1, 4, 3], [2, 1, 4, 3], [2, 1, 4, 3]],
    run: (xs) => lm.bucketAttention(xs[0]!, xs[1]!, xs[2]!, ids([1, 3, 0, 2, 0, 1, 2, 3], [2, 1, 4]), ids([0, 0, 1, 1, 0, 0, 0, 0], [2, 1, 4]), { window: 3, selfPenalty: 0.7 }),
  },
  {
    name: 'bucketAttention shared unit keys (k = q)', inputs: [[1, 2, 6, 3], [1, 2, 6, 3]],
    run: (xs) => lm.bucketAttention(xs[0]!, xs[0]!, xs[1]!,
      ids([0, 3, 5, 1, 2, 4, 2, 1, 4, 0, 3, 5, 0, 1, 2, 4, 3, 5, 1, 0, 2, 3, 5, 4], [1, 2, 12]),
      ids([0, 0, 0, 1, 1, 1, 0, 1, 1, 2, 2, 2, 0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 2], [1, 2, 12]), { window: 2, rounds: 2, selfPenalty: 100, unitKeys: true }),
  },
  {
    name: 'bucketAttention routing clusters', inputs: [[1, 2, 7, 4], [1, 2, 7, 4], [1, 2, 7, 4]],
    run: (xs) => lm.bucketAttention(xs[0]!, xs[1]!, xs[2]!, ids([0, 2, 5, 1, 2, 6, 1, 3, 4, 0, 5, 6], [1, 2, 6]), ids([0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1], [1, 2, 6]), { window: 2 }),
  },
  // long group runs (≈ 33 slots: several query blocks of the tiled kernel, tiles that start mid-run once the
  // window cuts in) with a head size that is not a multiple of the vector width
  {
    name: 'bucketAttention long runs, several blocks', inputs: [[1, 2, 40, 5], [1, 2, 40, 5], [1, 2, 40, 5]],
    run: (xs) => {
      const [slots, groups] = longRuns(2, 40, 2);
      return lm.bucketAttention(xs[0]!, xs[1]!, xs[2]!, slots, groups, { window: 20, rounds: 2, selfPenalty: 5 });
    },
  },
  {
    name: 'bucketAttention long runs, unit keys, window past the run', inputs: [[1, 1, 40, 5], [1, 1, 40, 5]],
    run: (xs) => {
      const [slots, groups] = longRuns(1, 40, 2);
      return lm.bucketAttention(xs[0]!, xs[0]!, xs[1]!, slots, groups, { window: 60, rounds: 2, selfPenalty: 100, unitKeys: true });
    },
  },
];
