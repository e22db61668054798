// Fused neural-network ops: softmax and log-softmax, layer and RMS norm, embedding lookup, cross-entropy with
// an ignore index, and seeded dropout. Each calls one forward and one backward kernel.
import { record } from '../autograd.js';
import { normAxis, ShapeError } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { alloc, dense, dropCopy, expectNdim, expectShape, fdata, idata, kernels, sameDtype } from './util.js';
import { transpose } from './views.js';

function lastAxisSoftmax(x: Tensor, log: boolean): Tensor {
  const op = log ? 'logSoftmax' : 'softmax';
  const cols = x.shape[x.ndim - 1] ?? 1;
  const rows = cols === 0 ? 0 : x.size / cols;
  const xd = dense(x);
  const y = alloc(x.shape, x.dtype);
  kernels(x).softmax(fdata(op, xd), fdata(op, y), rows, cols, log);
  dropCopy(xd, x);
  return record(op, [x], y, (g) => {
    const gd = dense(g);
    const gx = alloc(x.shape, x.dtype);
    kernels(x).softmaxBackward(fdata(op, y), fdata(op, gd), fdata(op, gx), rows, cols, log);
    dropCopy(gd, g);
    return [gx];
  });
}

function alongAxis(x: Tensor, axis: number, fn: (t: Tensor) => Tensor): Tensor {
  const ax = normAxis('softmax', axis, x.ndim);
  if (ax === x.ndim - 1) return fn(x);
  const moved = transpose(x, ax, -1);
  const y = fn(moved);
  return transpose(y, ax, -1);
}

export function softmax(x: Tensor, axis = -1): Tensor {
  return alongAxis(x, axis, (t) => lastAxisSoftmax(t, false));
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return alongAxis(x, axis, (t) => lastAxisSoftmax(t, true));
}

/** Layer norm over the last dim, with optional affine weight and bias of shape (C). */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  const C = x.shape[x.ndim - 1]!;
  if (weight) expectShape('layerNorm', weight, [C], 'weight');
  if (bias) expectShape('layerNorm', bias, [C], 'bias');
  sameDtype('layerNorm', x, ...(weight ? [weight] : []), ...(bias ? [bias] : []));
  const rows = C === 0 ? 0 : x.size / C;
  const k = kernels(x);
  const xd = dense(x);
  const w = weight && dense(weight);
  const b = bias && dense(bias);
  const y = alloc(x.shape, x.dtype);
  const mean = alloc([rows], x.dtype);
  const rstd = alloc([rows], x.dtype);
  k.layernorm(fdata('layerNorm', xd), w && fdata('layerNorm', w), b && fdata('layerNorm', b), fdata('layerNorm', y), fdata('layerNorm', mean), fdata('layerNorm', rstd), rows, C, eps);
  if (b && bias && b !== bias) b.dispose();
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return record('layerNorm', inputs, y, (g) => {
    const gd = dense(g);
    const gx = alloc(x.shape, x.dtype);
    const gw = weight?.requiresGrad ? alloc([C], x.dtype, true) : null;
    const gb = bias?.requiresGrad ? alloc([C], x.dtype, true) : null;
    k.layernormBackward(fdata('layerNorm', xd), w && fdata('layerNorm', w), fdata('layerNorm', mean), fdata('layerNorm', rstd), fdata('layerNorm', gd), fdata('layerNorm', gx), gw && fdata('layerNorm', gw), gb && fdata('layerNorm', gb), rows, C);
    dropCopy(gd, g);
    return [gx, ...(weight ? [gw] : []), ...(bias ? [gb] : [])];
  });
}

/** RMS norm over the last dim (Zhang & Sennrich): x / sqrt(mean(x²) + eps) · weight. */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps = 1e-6): Tensor {
  const C = x.shape[x.ndim - 1]!;
  if (weight) expectShape('rmsNorm', weight, [C], 'weight');
  const rows = C === 0 ? 0 : x.size / C;
  const k = kernels(x);
  const xd = dense(x);
  const w = weight && dense(weight);
  const y = alloc(x.shape, x.dtype);
  const rstd = alloc([rows], x.dtype);
  k.rmsnorm(fdata('rmsNorm', xd), w && fdata('rmsNorm', w), fdata('rmsNorm', y), fdata('rmsNorm', rstd), rows, C, eps);
  return record('rmsNorm', weight ? [x, weight] : [x], y, (g) => {
    const gd = dense(g);
    const gx = alloc(x.shape, x.dtype);
    const gw = weight?.requiresGrad ? alloc([C], x.dtype, true) : null;
    k.rmsnormBackward(fdata('rmsNorm', xd), w && fdata('rmsNorm', w), fdata('rmsNorm', rstd), fdata('rmsNorm', gd), fdata('rmsNorm', gx), gw && fdata('rmsNorm', gw), rows, C);
    dropCopy(gd, g);
    return weight ? [gx, gw] : [gx];
  });
}

/** Rows of weight (V, C) picked by integer ids of any shape: output (...ids.shape, C). */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  expectNdim('embedding', weight, 2, 'weight');
  const [V, C] = weight.shape as [number, number];
  const idd = dense(ids);
  const w = dense(weight);
  const out = alloc([...ids.shape, C], weight.dtype);
  kernels(weight).embedding(fdata('embedding', w), idata('embedding', idd), fdata('embedding', out), ids.size, C, V);
  dropCopy(w, weight);
  return record('embedding', [weight], out, (g) => {
    const gd = dense(g);
    const gw = alloc([V, C], weight.dtype, true);
    kernels(weight).embeddingBackward(fdata('embedding', gd), idata('embedding', idd), fdata('embedding', gw), ids.size, C);
    dropCopy(gd, g);
    return [gw];
  });
}

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (PyTorch's default −100). */
  ignoreIndex?: number;
  /** 'mean' over non-ignored targets (default), 'sum', or 'none' (per position). */
  reduction?: 'mean' | 'sum' | 'none';
}

/** Cross-entropy of logits (..., V) against int32 targets (...), fused with log-softmax. */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const ignoreIndex = options.ignoreIndex ?? -100;
  const reduction = options.reduction ?? 'mean';
  const V = logits.shape[logits.ndim - 1]!;
  const N = V === 0 ? 0 : logits.size / V;
  if (targets.size !== N || targets.ndim !== logits.ndim - 1 || targets.shape.some((d, i) => d !== logits.shape[i])) {
    throw new ShapeError(`crossEntropy: targets ${targets.describe()} do not match logits ${logits.describe()} (expected shape of all but the last dim)`);
  }
  const k = kernels(logits);
  const ld = dense(logits);
  const td = dense(targets);
  const tdata = idata('crossEntropy', td);
  const losses = alloc(targets.shape, logits.dtype);
  const lse = alloc([N], logits.dtype);
  k.crossEntropy(fdata('crossEntropy', ld), tdata, fdata('crossEntropy', losses), fdata('crossEntropy', lse), N, V, ignoreIndex);
  let count = 0;
  for (let i = 0; i < N; i++) if (tdata[i] !== ignoreIndex) count++;
  let out = losses;
  if (reduction !== 'none') {
    let s = 0;
    const ldata = losses.data;
    for (let i = 0; i < N; i++) s += ldata[i]!;
    out = alloc([], logits.dtype);
    out.data[0] = reduction === 'mean' ? s / count : s;
  }
  return record('crossEntropy', [logits], out, (g) => {
    const gLoss = alloc([N], logits.dtype);
    if (reduction === 'none') {
      const gd = dense(g);
      gLoss.data.set(gd.data.subarray(gd.offset, gd.offset + N));
      dropCopy(gd, g);
    } else {
      gLoss.data.fill(reduction === 'mean' ? g.item() / count : g.item());
    }
    const gx = alloc(logits.shape, logits.dtype);
    k.crossEntropyBackward(fdata('crossEntropy', ld), tdata, fdata('crossEntropy', lse), fdata('crossEntropy', gLoss), fdata('crossEntropy', gx), N, V, ignoreIndex);
    gLoss.dispose();
    return [gx];
  });
}

/** Inverted dropout with a seeded, position-hashed mask (identical across backends); p = 0 returns x. */
export function dropout(x: Tensor, p: number, seed: number): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  if (p === 0) return x;
  const xd = dense(x);
  const y = alloc(x.shape, x.dtype);
  kernels(x).dropout(fdata('dropout', xd), fdata('dropout', y), x.size, p, seed);
  dropCopy(xd, x);
  return record('dropout', [x], y, (g) => {
    const gd = dense(g);
    const gx = alloc(x.shape, x.dtype);
    kernels(x).dropout(fdata('dropout', gd), fdata('dropout', gx), x.size, p, seed);
    dropCopy(gd, g);
    return [gx];
  });
}

