// Fused scaled-dot-product attention with autograd. `attention` takes (B, H, T, D) tensors; `selfAttention`
// takes the fused (B, T, 3·C) projection of a Transformer block and returns (B, T, C), reading q, k and v and
// writing every gradient in place through strides, so no head split or merge is ever copied.
import { record } from '../autograd.js';
import type { FloatArray, StridedArg } from '../kernels.js';
import { broadcastStrides, ShapeError } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { alloc, dense, expectNdim, fdata, kernels, sameDtype } from './util.js';

export interface AttentionOptions {
  /** Mask keys after each query's position (with the Tk − Tq offset of a KV cache). */
  causal?: boolean;
  /** Additive mask broadcastable to (B, H, Tq, Tk), e.g. 0 / −∞ padding. */
  mask?: Tensor | null;
  /**
   * Sliding-window (local) attention, causal only: query i (at position i + Tk − Tq) sees its last `window`
   * positions, keys i + Tk − Tq − window < j ≤ i + Tk − Tq. 0 (the default) = unlimited. Time O(T·window).
   */
  window?: number;
  /** Score scale, 1/√D by default. */
  scale?: number;
  /**
   * Dropout probability on the attention probabilities (training), in [0, 1); 0 (the default) = none.
   * Kept probabilities are scaled by 1/(1 − p); the mask is a function of dropoutSeed and the position only.
   */
  dropout?: number;
  /** Seeds the dropout mask (0 by default); use a fresh one per step and per layer. */
  dropoutSeed?: number;
}

/** The dropout fields of the kernel arguments, validated. */
function dropoutArgs(op: string, options: AttentionOptions): { dropout: number; dropoutSeed: number } {
  const dropout = options.dropout ?? 0;
  const dropoutSeed = options.dropoutSeed ?? 0;
  if (!(dropout >= 0 && dropout < 1)) throw new RangeError(`${op}: options.dropout must be a probability in [0, 1), got ${dropout}`);
  if (!Number.isFinite(dropoutSeed)) throw new RangeError(`${op}: options.dropoutSeed must be a finite number, got ${dropoutSeed}`);
  return { dropout, dropoutSeed };
}

/** options.window validated: an integer ≥ 0, and > 0 only together with causal. */
function windowArg(op: string, options: AttentionOptions, causal: boolean): number {
  const window = options.window ?? 0;
  if (!(Number.isInteger(window) && window >= 0)) throw new RangeError(`${op}: options.window must be an integer ≥ 0 (0 = unlimited), got ${window}`);
  if (window > 0 && !causal) throw new RangeError(`${op}: options.window = ${window} needs causal: true (a sliding window looks back from each query)`);
  return window;
}

/** A (B, H, T, D) view whose last dim is contiguous, as the kernel's [sB, sH, sT] strided argument. */
function headArg(op: string, t: Tensor): StridedArg<FloatArray> {
  return { data: fdata(op, t), offset: t.offset, strides: [t.strides[0]!, t.strides[1]!, t.strides[2]!] };
}

function lastDimContiguous(t: Tensor): Tensor {
  return t.strides[t.ndim - 1] === 1 || t.shape[t.ndim - 1] === 1 ? t : dense(t);
}

function maskArg(mask: Tensor | null | undefined, B: number, H: number, Tq: number, Tk: number): { arg: StridedArg<FloatArray> | null; keep: Tensor | null } {
  if (!mask) return { arg: null, keep: null };
  const m = mask.strides[mask.ndim - 1] === 1 || mask.shape[mask.ndim - 1] === 1 ? mask : dense(mask);
  const s = broadcastStrides(m.shape, m.strides, [B, H, Tq, Tk]);
  if (s[3] !== 1 && Tk > 1) throw new ShapeError(`attention: mask ${mask.describe()} must broadcast to [${B}, ${H}, ${Tq}, ${Tk}] with its last dim of size Tk`);
  return { arg: { data: fdata('attention', m), offset: m.offset, strides: [s[0]!, s[1]!, s[2]!] }, keep: m };
}

export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  for (const [t, n] of [[q, 'q'], [k, 'k'], [v, 'v']] as const) expectNdim('attention', t, 4, n);
  sameDtype('attention', q, k, v);
  const [B, H, Tq, D] = q.shape as [number, number, number, number];
  const Tk = k.shape[2]!;
  if (k.shape[0] !== B || k.shape[1] !== H || k.shape[3] !== D || v.shape.some((d, i) => d !== k.shape[i])) {
    throw new ShapeError(`attention: q ${q.describe()}, k ${k.describe()}, v ${v.describe()} disagree (want k and v [${B}, ${H}, Tk, ${D}])`);
  }
  const qc = lastDimContiguous(q);
  const kc = lastDimContiguous(k);
  const vc = lastDimContiguous(v);
  const scale = options.scale ?? 1 / Math.sqrt(D);
  const causal = options.causal ?? false;
  const window = windowArg('attention', options, causal);
  const drop = dropoutArgs('attention', options);
  const mask = maskArg(options.mask, B, H, Tq, Tk);
  const out = alloc([B, H, Tq, D], q.dtype);
  const lse = alloc([B, H, Tq], q.dtype);
  const kern = kernels(q);
  const base = {
    q: headArg('attention', qc), k: headArg('attention', kc), v: headArg('attention', vc), out: headArg('attention', out),
    lse: fdata('attention', lse), mask: mask.arg, B, H, Tq, Tk, D, scale, causal, window, ...drop,
  };
  kern.attention(base);
  return record('attention', [q, k, v], out, (g) => {
    const gc = lastDimContiguous(g);
    const gq = alloc(q.shape, q.dtype);
    const gk = alloc(k.shape, k.dtype);
    const gv = alloc(v.shape, v.dtype);
    kern.attentionBackward({ ...base, gout: headArg('attention', gc), gq: headArg('attention', gq), gk: headArg('attention', gk), gv: headArg('attention', gv) });
    if (gc !== g) gc.dispose();
    return [gq, gk, gv];
  });
}

/**
 * Multi-head self-attention core of a Transformer block: qkv (B, T, 3·C) laid out [q | k | v], each split into
 * nHead heads of C/nHead, → (B, T, C) with heads merged. Causal by default; options.window makes it local;
 * options.mask (additive, broadcast to (B, H, T, T)) adds to the scores, e.g. −∞ across document boundaries.
 */
export function selfAttention(qkv: Tensor, nHead: number, options: AttentionOptions = {}): Tensor {
  expectNdim('selfAttention', qkv, 3, 'qkv');
  const [B, T, C3] = qkv.shape as [number, number, number];
  const C = C3 / 3;
  const H = nHead;
  if (!Number.isInteger(C) || C % H !== 0) throw new ShapeError(`selfAttention: last dim of ${qkv.describe()} must be 3·C with C divisible by ${H} heads`);
  const D = C / H;
  const causal = options.causal ?? true;
  const window = windowArg('selfAttention', options, causal);
  const drop = dropoutArgs('selfAttention', options);
  const x = dense(qkv);
  const data = fdata('selfAttention', x);
  // Element (b, h, t, d) of q is at b·T·3C + t·3C + h·D + d; k and v follow at +C and +2C.
  const headStrides = [T * C3, D, C3];
  const part = (arr: FloatArray, which: number): StridedArg<FloatArray> => ({ data: arr, offset: which * C, strides: headStrides });
  if (options.mask) sameDtype('selfAttention', qkv, options.mask);
  const mask = maskArg(options.mask, B, H, T, T); // e.g. document masking of packed rows (nn/segments.ts)
  const out = alloc([B, T, C], qkv.dtype);
  const lse = alloc([B, H, T], qkv.dtype);
  const kern = kernels(qkv);
  const base = {
    q: part(data, 0), k: part(data, 1), v: part(data, 2),
    out: { data: fdata('selfAttention', out), offset: 0, strides: [T * C, D, C] },
    lse: fdata('selfAttention', lse), mask: mask.arg, B, H, Tq: T, Tk: T, D,
    scale: options.scale ?? 1 / Math.sqrt(D), causal, window, ...drop,
  };
  kern.attention(base);
  return record('selfAttention', [qkv], out, (g) => {
    const gd = dense(g);
    const gqkv = alloc([B, T, C3], qkv.dtype);
    const gdata = fdata('selfAttention', gqkv);
    kern.attentionBackward({
      ...base,
      gout: { data: fdata('selfAttention', gd), offset: 0, strides: [T * C, D, C] },
      gq: part(gdata, 0), gk: part(gdata, 1), gv: part(gdata, 2),
    });
    if (gd !== g) gd.dispose();
    return [gqkv];
  });
}
