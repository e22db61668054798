// Weight-only quantization of a matrix W (N outputs, K inputs) into core's QuantWeight: round-to-nearest (int8 per
// output channel, symmetric; 4-bit per group of K, with a scale and zero point) and GPTQ (Frantar et al. 2022,
// "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers"), which rounds the columns in
// order and spreads each one's rounding error over the columns not yet rounded, weighted by the inverse Hessian
// of the layer's squared output error, H = 2·XᵀX over calibration inputs X. All arithmetic in float64.
// Not the model-level driver (quantize-model.ts) and not the file format (quantize-io.ts).
import type { QuantWeight } from '../core/index.js';

export type Bits = 4 | 8;

/** Scale and zero point of one group (int8: zero 0, codes −127..127; 4-bit: codes 0..15 over [min, max]). */
interface GroupParams {
  s: number;
  z: number;
}

function fitGroup(bits: Bits, w: Float64Array, n: number, K: number, k0: number, k1: number): GroupParams {
  let lo = Infinity;
  let hi = -Infinity;
  for (let k = k0; k < k1; k++) {
    const v = w[n * K + k]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (bits === 8) {
    const a = Math.max(Math.abs(lo), Math.abs(hi));
    return { s: a > 0 ? a / 127 : 1, z: 0 };
  }
  if (!(hi > lo)) return { s: Math.abs(lo) > 0 ? Math.abs(lo) : 1, z: lo < 0 ? 1 : 0 }; // constant group: exact
  const s = (hi - lo) / 15;
  return { s, z: Math.min(15, Math.max(0, Math.round(-lo / s))) };
}

function code(bits: Bits, v: number, p: GroupParams): number {
  return bits === 8 ? Math.min(127, Math.max(-127, Math.round(v / p.s))) : Math.min(15, Math.max(0, Math.round(v / p.s) + p.z));
}

/** An empty QuantWeight of the given shape, checked (4-bit: K a multiple of groupSize, itself a multiple of 32). */
export function allocQuant(N: number, K: number, bits: Bits, groupSize: number): QuantWeight {
  if (bits !== 8 && bits !== 4) throw new RangeError(`bits = ${String(bits)}, expected 8 or 4`);
  const G = bits === 8 ? K : groupSize;
  if (bits === 4 && !(Number.isInteger(G) && G >= 32 && G % 32 === 0)) throw new RangeError(`group size = ${G}, expected a multiple of 32 (32, 64 or 128)`);
  if (K % G !== 0) throw new RangeError(`group size ${G} does not divide the input width ${K}`);
  const groups = N * (K / G);
  return {
    bits, groupSize: G, N, K,
    q: new Uint8Array(bits === 8 ? N * K : (N * K) / 2),
    scales: new Float32Array(groups),
    zeros: bits === 4 ? new Float32Array(groups) : null,
  };
}

/** Stores code c of W[n, k] in the packed layout (see QuantWeight). */
function put(out: QuantWeight, n: number, k: number, c: number): void {
  if (out.bits === 8) {
    out.q[n * out.K + k] = c & 255;
    return;
  }
  const at = (n * out.K) / 2 + (k >> 5) * 16 + (k & 15);
  out.q[at] = (k & 31) < 16 ? (out.q[at]! & 0xf0) | c : (out.q[at]! & 0x0f) | (c << 4);
}

/** The float32 scale and zero actually stored, so that rounding decisions use what the kernels will decode. */
function stored(p: GroupParams): GroupParams {
  return { s: Math.fround(p.s), z: p.z };
}

/** Round-to-nearest: w (N, K) row-major float values → QuantWeight. */
export function quantizeRTN(w: ArrayLike<number>, N: number, K: number, bits: Bits, groupSize: number): QuantWeight {
  const out = allocQuant(N, K, bits, groupSize);
  const G = out.groupSize;
  const wd = Float64Array.from(w);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < K / G; g++) {
      const p = stored(fitGroup(bits, wd, n, K, g * G, (g + 1) * G));
      out.scales[n * (K / G) + g] = p.s;
      if (out.zeros) out.zeros[n * (K / G) + g] = p.z;
      for (let k = g * G; k < (g + 1) * G; k++) put(out, n, k, code(bits, wd[n * K + k]!, p));
    }
  }
  return out;
}

/** Lower Cholesky factor L of a symmetric positive definite A (n, n), A = L·Lᵀ; null when A is not positive definite. */
export function cholesky(A: Float64Array, n: number): Float64Array | null {
  const L = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = A[j * n + j]!;
    for (let k = 0; k < j; k++) d -= L[j * n + k]! * L[j * n + k]!;
    if (!(d > 0)) return null;
    const ljj = Math.sqrt(d);
    L[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = A[i * n + j]!;
      for (let k = 0; k < j; k++) s -= L[i * n + k]! * L[j * n + k]!;
      L[i * n + j] = s / ljj;
    }
  }
  return L;
}

/**
 * The upper triangular U with H⁻¹ = Uᵀ·U (GPTQ's "Cholesky of H⁻¹"), without forming H⁻¹: with P the reversal
 * permutation, the Cholesky factor M of P·H·P gives H = R·Rᵀ with R = P·M·P upper triangular, so H⁻¹ = R⁻ᵀ·R⁻¹ and
 * U = R⁻¹ (upper). Row i of U, from its diagonal on, is what column i's error is spread by. null if H is not PD.
 */
export function inverseHessianFactor(H: Float64Array, n: number): Float64Array | null {
  const P = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) P[i * n + j] = H[(n - 1 - i) * n + (n - 1 - j)]!;
  const M = cholesky(P, n);
  if (!M) return null;
  // R[i][j] = M[n−1−i][n−1−j] (upper); U = R⁻¹ by back substitution, column by column.
  const R = (i: number, j: number): number => M[(n - 1 - i) * n + (n - 1 - j)]!;
  const U = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    U[j * n + j] = 1 / R(j, j);
    for (let i = j - 1; i >= 0; i--) {
      let s = 0;
      for (let k = i + 1; k <= j; k++) s += R(i, k) * U[k * n + j]!;
      U[i * n + j] = -s / R(i, i);
    }
  }
  return U;
}

/**
 * GPTQ: w (N, K) row-major, H (K, K) = 2·XᵀX summed over calibration rows x (K). The diagonal is dampened by
 * `damp` times its mean (1%, the paper's), inputs never seen (H_kk = 0) get H_kk = 1 and W[:, k] = 0. Columns are
 * rounded left to right; a 4-bit group's scale and zero are fitted when its first column is reached, on the weights
 * as the earlier columns' error feedback left them.
 */
export function quantizeGPTQ(w: ArrayLike<number>, N: number, K: number, Hin: Float64Array, bits: Bits, groupSize: number, damp = 0.01): QuantWeight {
  const out = allocQuant(N, K, bits, groupSize);
  const G = out.groupSize;
  const W = Float64Array.from(w);
  const H = Float64Array.from(Hin);
  let mean = 0;
  for (let k = 0; k < K; k++) mean += H[k * K + k]! / K;
  for (let k = 0; k < K; k++) {
    if (H[k * K + k] === 0) {
      H[k * K + k] = 1;
      for (let n = 0; n < N; n++) W[n * K + k] = 0;
    }
    H[k * K + k] = H[k * K + k]! + damp * (mean > 0 ? mean : 1);
  }
  const U = inverseHessianFactor(H, K);
  if (!U) throw new RangeError('GPTQ: the dampened Hessian is not positive definite (calibration data with NaN?)');
  const params: GroupParams[] = new Array<GroupParams>(N);
  const err = new Float64Array(N);
  for (let i = 0; i < K; i++) {
    if (i % G === 0) {
      for (let n = 0; n < N; n++) {
        const p = stored(fitGroup(bits, W, n, K, i, i + G));
        params[n] = p;
        out.scales[n * (K / G) + i / G] = p.s;
        if (out.zeros) out.zeros[n * (K / G) + i / G] = p.z;
      }
    }
    const d = U[i * K + i]!;
    for (let n = 0; n < N; n++) {
      const p = params[n]!;
      const v = W[n * K + i]!;
      const c = code(bits, v, p);
      put(out, n, i, c);
      err[n] = (v - p.s * (c - p.z)) / d;
    }
    // W[:, j] −= err·U[i, j] for the columns j > i not yet rounded.
    for (let n = 0; n < N; n++) {
      const e = err[n]!;
      if (e === 0) continue;
      const row = n * K;
      for (let j = i + 1; j < K; j++) W[row + j] = W[row + j]! - e * U[i * K + j]!;
    }
  }
  return out;
}
