// The kernel contract: every compute primitive a backend must provide, as plain functions over typed arrays.
// Not the autograd layer (see ops/): kernels know nothing of tensors, graphs or memory ownership.
//
// Conventions shared by every kernel:
// - Arrays are row-major and contiguous unless the kernel takes explicit offsets and strides (in elements).
// - Outputs are written, never allocated; the caller sizes them. "Accumulate" flags add into the output.
// - `F` is the floating array type: Float32Array everywhere, Float64Array too in the reference backend
//   (used for finite-difference gradient checks). Index arrays are Int32Array.
// - A missing kernel in a backend is a compile error: `Backend` is keyed by `KernelName`.

export type FloatArray = Float32Array | Float64Array;
export type IndexArray = Int32Array;
export type AnyArray = FloatArray | IndexArray;

/** Elementwise unary functions. `p` is the scalar parameter where one applies (pow exponent, scale, shift). */
export const UNARY_OPS = [
  'neg', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh', 'relu', 'gelu', 'gelu_tanh', 'silu', 'sigmoid',
  'abs', 'square', 'pow_scalar', 'mul_scalar', 'add_scalar',
] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];

/** Elementwise binary functions with broadcasting. Comparisons give 1 or 0. */
export const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];

export type ReduceOp = 'sum' | 'max';

/** A strided view into a flat array: element (i0..iN) lives at offset + Σ i_d·strides[d]. */
export interface StridedArg<A extends AnyArray = AnyArray> {
  data: A;
  offset: number;
  strides: readonly number[];
}

export interface MatmulArgs<F extends FloatArray> {
  /** A is (batch, M, K), or (batch, K, M) when transA; B is (batch, K, N), or (batch, N, K) when transB. */
  a: F;
  aOffset: number;
  b: F;
  bOffset: number;
  /** C is (batch, M, N), contiguous. */
  c: F;
  cOffset: number;
  batch: number;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  /** Element distance between consecutive batch matrices of A and B; 0 broadcasts one matrix to every batch. */
  aBatchStride: number;
  bBatchStride: number;
  /** C += A·B instead of C = A·B. */
  accumulate: boolean;
}

/**
 * Causal or full scaled-dot-product attention, one (B, H) pair at a time, softmax(q·kᵀ·scale + mask)·v.
 * q is (B, H, Tq, D), k and v are (B, H, Tk, D), given by strides [sB, sH, sT] with the last dim contiguous,
 * so views of a fused (B, T, 3, H, D) projection are read in place. out has strides too.
 * lse (B, H, Tq) contiguous receives the row log-sum-exp (natural log) that the backward pass reuses.
 * causal masks key j > query i + (Tk − Tq). mask (optional) is additive, (Tq, Tk) rows with strides
 * [mB, mH, mT] (0 to broadcast), last dim contiguous.
 * window w ≥ 1 (causal only; 0 or absent = unlimited) is sliding-window (local) attention: query i, at absolute
 * position i + off with off = Tk − Tq, sees keys i + off − w < j ≤ i + off, its last w positions itself included.
 * Backends skip whole key tiles outside that band, so time and scratch are O(Tq·w·D), not O(Tq·Tk·D).
 * Memory: O(T·D) per head besides the inputs — never a (T, T) score matrix.
 * A query row with no allowed key (every score −∞) gives out = 0, lse = −∞ and zero gradients (not NaN);
 * NaN in q, k, v or the mask propagates to the affected rows.
 * Dropout (training) acts on the probabilities after normalisation, as torch's dropout on softmax output:
 * out_i = Σ_j P̃_ij v_j with P̃ = P ⊙ keep/(1 − p), where P_ij of head (b, h) is kept ⇔
 * hashUniform(dropoutSeed, idx) ≥ p, idx = (((b·H + h)·Tq + i)·Tk + j) mod 2^32 (core/random.ts; bit-identical
 * in every backend). lse stays the log-sum-exp of the undropped scores; the backward recomputes the same mask.
 */
export interface AttentionArgs<F extends FloatArray> {
  q: StridedArg<F>;
  k: StridedArg<F>;
  v: StridedArg<F>;
  out: StridedArg<F>;
  lse: F;
  mask: StridedArg<F> | null;
  B: number;
  H: number;
  Tq: number;
  Tk: number;
  D: number;
  scale: number;
  causal: boolean;
  /** Sliding window w (integer ≥ 1, with causal) or 0 / absent for none: keys j ≤ i + off − w are masked too. */
  window?: number;
  /** Probability p in [0, 1) of dropping each attention probability; 0 = no dropout. */
  dropout: number;
  /** Seeds the dropout mask (used as seed >>> 0, like every hashUniform seed). */
  dropoutSeed: number;
}

export interface AttentionBackwardArgs<F extends FloatArray> extends AttentionArgs<F> {
  /** Upstream gradient, same layout contract as out. */
  gout: StridedArg<F>;
  /** Gradients are written (not accumulated), same layout contract as q, k, v. */
  gq: StridedArg<F>;
  gk: StridedArg<F>;
  gv: StridedArg<F>;
}

/**
 * Causal attention over gathered slots, the shared core of Reformer (LSH) and Routing attention.
 * q, k, v and out are (B, H, T, D) views with strides [sB, sH, sT] (last dim contiguous). slots (B, H, N) int32
 * contiguous holds a position in [0, T) per slot and groups (B, H, N) a group id (hash bucket, cluster) per slot;
 * the N = rounds·L slots of a head form `rounds` rounds of L slots (hash rounds), each sorted by (group, position)
 * by the caller (strictly increasing positions within a group; kernels refuse other orders). Query slot n (position p) sees the key slots m of its round with n − window ≤ m ≤ n,
 * groups[m] = groups[n] and pos(m) ≤ p: the last `window` earlier members of its group and itself, so what a
 * position sees never depends on a later position. Its score is scale·q_p·k_pos(m), minus selfPenalty when
 * pos(m) = p (Reformer's "not oneself unless nothing else", a finite penalty so a lone slot attends to itself).
 * Every slot gives a softmax over its keys (lse_n, o_n); a position's output merges its slots by log-sum-exp
 * weights, out_p = Σ_{n: pos(n)=p} exp(lse_n − L_p)·o_n with L_p = log Σ exp(lse_n), which is one softmax over the
 * union of the slots' keys (a key seen in two rounds counts twice). lse (B, H, T) contiguous receives L_p; a
 * position with no slot gets out = 0, lse = −∞ and zero gradients. Time O(N·window·D), never O(T²).
 */
export interface BucketAttentionArgs<F extends FloatArray> {
  q: StridedArg<F>;
  k: StridedArg<F>;
  v: StridedArg<F>;
  out: StridedArg<F>;
  lse: F;
  slots: IndexArray;
  groups: IndexArray;
  B: number;
  H: number;
  T: number;
  D: number;
  /** Slots per head (rounds · L). */
  N: number;
  rounds: number;
  /** Earlier slots of the same group a query slot may see (≥ 0). */
  window: number;
  selfPenalty: number;
  scale: number;
  /**
   * Keys are k·(Σk² + 1e-12)^(−1/2), normalised inside the kernel (Reformer's shared QK: pass q as k too);
   * gk is then the gradient with respect to the raw k: r·(g − k̂(k̂·g)) with r = (Σk² + 1e-12)^(−1/2).
   */
  unitKeys?: boolean;
}

export interface BucketAttentionBackwardArgs<F extends FloatArray> extends BucketAttentionArgs<F> {
  /** Upstream gradient, same layout contract as out. */
  gout: StridedArg<F>;
  /** Gradients, (B, H, T, D) contiguous, accumulated (+=): the caller zeroes them. */
  gq: F;
  gk: F;
  gv: F;
}

export interface AdamWArgs<F extends FloatArray> {
  param: F;
  grad: F;
  m: F;
  v: F;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay: param -= lr·wd·param before the Adam step. */
  weightDecay: number;
  /** 1-based step, for bias correction m̂ = m/(1-β1^t), v̂ = v/(1-β2^t). */
  step: number;
  /** Multiplies grad before use (gradient clipping and accumulation scale). */
  gradScale: number;
}

/**
 * A weight-only quantized matrix W (N, K) (N outputs, K inputs: row n is output channel n), in one of two layouts:
 * - bits 8: q holds N·K int8 values (two's complement bytes) row after row, w = scale_n·q with one scale per row
 *   (groupSize = K, zeros null): symmetric per-output-channel.
 * - bits 4: K is cut into groups of groupSize (a multiple of 32) per row with scale s and zero point z (an integer
 *   0..15 stored as float), w = s·(q − z), q in 0..15. Each 32 consecutive k of a row pack into 16 bytes: byte i
 *   holds k = 32b + i in its low nibble and k = 32b + 16 + i in its high nibble, so one 16-byte load unpacks into
 *   two 16-lane vectors. Row n starts at byte n·K/2.
 * scales and zeros are (N, K/groupSize) row-major. docs in README ("Quantized models") name the file layout.
 */
export interface QuantWeight {
  bits: 4 | 8;
  groupSize: number;
  N: number;
  K: number;
  q: Uint8Array;
  scales: Float32Array;
  zeros: Float32Array | null;
}

/** y = x·Wᵀ (y (M, N), x (M, K)), or with trans y = x·W (y (M, K), x (M, N)): the input gradient. Contiguous rows. */
export interface QuantMatmulArgs<F extends FloatArray> {
  x: F;
  xOffset: number;
  w: QuantWeight;
  y: F;
  M: number;
  trans: boolean;
}

/**
 * Every kernel. Shapes are passed as numbers; the meaning of each is documented on the member.
 * (outer, r, inner) describes an axis of length r inside a contiguous array: index (o, i, n) ↦ (o·r + i)·inner + n.
 */
export interface Kernels<F extends FloatArray> {
  /** dst[dstOffset + Σ i·dstStrides] = src[srcOffset + Σ i·srcStrides] over `shape`. Works for any element type. */
  copyStrided(src: StridedArg, dst: StridedArg, shape: readonly number[]): void;
  /** dst[i] = value for i in [offset, offset + n). */
  fill(dst: AnyArray, value: number, offset: number, n: number): void;
  /** dst[i] = src[i] with numeric conversion (float ↔ int32 truncates toward zero). */
  cast(src: AnyArray, dst: AnyArray, n: number): void;

  /** y = f(x) elementwise over n contiguous elements. */
  unary(op: UnaryOp, x: F, y: F, n: number, p: number): void;
  /** gx = gy·f'(x) (y = f(x) is given too, for functions whose derivative is cheaper from y). */
  unaryBackward(op: UnaryOp, x: F, y: F, gy: F, gx: F, n: number, p: number): void;
  /** out (contiguous, `shape`) = f(a, b) with a and b strided (stride 0 broadcasts). out may alias a or b when that
   *  operand is contiguous with the same shape (in-place accumulation). */
  binary(op: BinaryOp, a: StridedArg<F>, b: StridedArg<F>, out: F, shape: readonly number[]): void;
  /** out = cond ≠ 0 ? a : b, all strided (broadcast) into a contiguous `shape`. */
  where(cond: StridedArg, a: StridedArg<F>, b: StridedArg<F>, out: F, shape: readonly number[]): void;

  /** out (outer, inner) = Σ or max over the middle axis of x (outer, r, inner). argmax (optional, max only) gets the index. */
  reduce(op: ReduceOp, x: F, out: F, outer: number, r: number, inner: number, argmax: IndexArray | null): void;
  /** Σ x[i]² over n elements, accumulated in float64. */
  sumSquares(x: F, n: number): number;
  /** y (outer, r, inner) = running sum of x along the middle axis; reverse sums from the end. */
  cumsum(x: F, y: F, outer: number, r: number, inner: number, reverse: boolean): void;

  /** Batched matrix multiply, see MatmulArgs. */
  matmul(args: MatmulArgs<F>): void;
  /**
   * matmul in bf16 mixed precision: A and B rounded to bf16 (nearest even), products accumulated in fp32, C fp32.
   * The native kernel runs AMX or AVX512-BF16, or the fp32 GEMM on a CPU without them (ops/matmul.ts's precision).
   */
  matmulBf16(args: MatmulArgs<F>): void;

  /** Row-wise softmax (or log-softmax) of x (rows, cols) into y. */
  softmax(x: F, y: F, rows: number, cols: number, log: boolean): void;
  /** gx from y and gy: softmax gx = y⊙(gy − Σ gy⊙y); log-softmax gx = gy − exp(y)·Σ gy. */
  softmaxBackward(y: F, gy: F, gx: F, rows: number, cols: number, log: boolean): void;

  /** y = (x − mean)·rstd·w + b per row of C; w, b may be null (no affine). mean and rstd (rows) are saved. */
  layernorm(x: F, w: F | null, b: F | null, y: F, mean: F, rstd: F, rows: number, C: number, eps: number): void;
  /** gx is written; gw and gb (when not null) are accumulated (+=). */
  layernormBackward(x: F, w: F | null, mean: F, rstd: F, gy: F, gx: F, gw: F | null, gb: F | null, rows: number, C: number): void;
  /** y = x·rstd·w with rstd = 1/sqrt(mean(x²) + eps); w may be null. */
  rmsnorm(x: F, w: F | null, y: F, rstd: F, rows: number, C: number, eps: number): void;
  /** gx is written; gw (when not null) is accumulated. */
  rmsnormBackward(x: F, w: F | null, rstd: F, gy: F, gx: F, gw: F | null, rows: number, C: number): void;

  /** out (n, C) = weight[ids[i]] rows; an id outside [0, V) throws naming the position. */
  embedding(weight: F, ids: IndexArray, out: F, n: number, C: number, V: number): void;
  /** gw[ids[i]] += gy[i] rows (gw (V, C) is accumulated). */
  embeddingBackward(gy: F, ids: IndexArray, gw: F, n: number, C: number): void;

  /**
   * Row-wise cross-entropy of logits (N, V) against integer targets: losses[i] = lse_i − logits[i, t_i],
   * 0 where t_i = ignoreIndex. lse (N) is saved. A target outside [0, V) (and not ignoreIndex) throws.
   */
  crossEntropy(logits: F, targets: IndexArray, losses: F, lse: F, N: number, V: number, ignoreIndex: number): void;
  /** glogits[i] = gLoss[i]·(softmax(logits[i]) − onehot(t_i)); rows with t_i = ignoreIndex get 0. */
  crossEntropyBackward(logits: F, targets: IndexArray, lse: F, gLoss: F, glogits: F, N: number, V: number, ignoreIndex: number): void;

  /**
   * y = x·keep/(1−p) where keep_i = (hashUniform(seed, i) ≥ p). The same call on gy gives the backward pass.
   * hashUniform is defined in core/random.ts and must be bit-identical in every backend.
   */
  dropout(x: F, y: F, n: number, p: number, seed: number): void;

  /** out (outer, k, inner) = x (outer, r, inner) at idx (outer, k, inner) along the middle axis. Out-of-range throws. */
  gather(x: F, idx: IndexArray, out: F, outer: number, r: number, k: number, inner: number): void;
  /** out (outer, r, inner) += src (outer, k, inner) at idx along the middle axis (the adjoint of gather). */
  scatterAdd(src: F, idx: IndexArray, out: F, outer: number, r: number, k: number, inner: number): void;
  /** Largest k of each row of x (rows, cols), sorted descending (ties: lower index first); NaN counts as largest. */
  topk(x: F, values: F, indices: IndexArray, rows: number, cols: number, k: number): void;

  /**
   * Grouped matrix product (mixture of experts): rows [offsets[g], offsets[g+1]) of x (S, K) times W_g, into the
   * same rows of out (S, N), for g < G; S = offsets[G], offsets (G + 1) start at 0 and never decrease. w is (G, K, N),
   * or (G, N, K) read transposed when transW. accumulate adds into out.
   */
  groupedMatmul(x: F, w: F, out: F, offsets: IndexArray, G: number, K: number, N: number, transW: boolean, accumulate: boolean): void;
  /** gw_g (+)= x_gᵀ·gy_g over the same row groups: x (S, K), gy (S, N), gw (G, K, N); an empty group gives 0. */
  groupedMatmulGradW(x: F, gy: F, gw: F, offsets: IndexArray, G: number, K: number, N: number, accumulate: boolean): void;

  /** Fused attention forward, see AttentionArgs. */
  attention(args: AttentionArgs<F>): void;
  /** Fused attention backward (recomputes the probabilities from lse), see AttentionBackwardArgs. */
  attentionBackward(args: AttentionBackwardArgs<F>): void;

  /** Matmul with a weight-only quantized matrix, dequantized on the fly (W is never expanded whole), see QuantMatmulArgs. */
  quantMatmul(args: QuantMatmulArgs<F>): void;
  /** Causal attention over gathered, grouped slots (LSH and Routing attention), see BucketAttentionArgs. */
  bucketAttention(args: BucketAttentionArgs<F>): void;
  /** Its backward (recomputes the probabilities from lse and out), see BucketAttentionBackwardArgs. */
  bucketAttentionBackward(args: BucketAttentionBackwardArgs<F>): void;

  /** In-place AdamW step over param, m and v, see AdamWArgs. */
  adamw(args: AdamWArgs<F>): void;
}

export type KernelName = keyof Kernels<Float32Array>;
