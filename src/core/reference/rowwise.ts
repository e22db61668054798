// Reference kernels that work along one axis: reductions, cumsum, softmax, layer/RMS norm, cross-entropy, top-k.
// Accumulation is in float64 (JavaScript numbers); results round to the output array's type.
import type { FloatArray, Kernels } from '../kernels.js';

type RowwiseKernels = Pick<
  Kernels<FloatArray>,
  | 'reduce' | 'sumSquares' | 'cumsum' | 'softmax' | 'softmaxBackward' | 'layernorm' | 'layernormBackward'
  | 'rmsnorm' | 'rmsnormBackward' | 'crossEntropy' | 'crossEntropyBackward' | 'topk'
>;

/** (value, index) order for max and top-k: NaN is largest, then larger values, ties to the lower index. */
function ranksAbove(a: number, ai: number, b: number, bi: number): boolean {
  const an = Number.isNaN(a);
  const bn = Number.isNaN(b);
  if (an !== bn) return an;
  if (!an && a !== b) return a > b;
  return ai < bi;
}

export const rowwiseKernels: RowwiseKernels = {
  reduce(op, x, out, outer, r, inner, argmax) {
    for (let o = 0; o < outer; o++) {
      for (let n = 0; n < inner; n++) {
        const base = o * r * inner + n;
        if (op === 'sum') {
          let s = 0;
          for (let i = 0; i < r; i++) s += x[base + i * inner]!;
          out[o * inner + n] = s;
        } else {
          let best = -Infinity;
          let bestI = 0;
          for (let i = 0; i < r; i++) {
            const v = x[base + i * inner]!;
            if (i === 0 || ranksAbove(v, i, best, bestI)) {
              best = v;
              bestI = i;
            }
          }
          out[o * inner + n] = r === 0 ? -Infinity : best;
          if (argmax) argmax[o * inner + n] = bestI;
        }
      }
    }
  },

  sumSquares(x, n) {
    let s = 0;
    for (let i = 0; i < n; i++) s += x[i]! * x[i]!;
    return s;
  },

  cumsum(x, y, outer, r, inner, reverse) {
    for (let o = 0; o < outer; o++) {
      for (let n = 0; n < inner; n++) {
        const base = o * r * inner + n;
        let s = 0;
        for (let j = 0; j < r; j++) {
          const i = reverse ? r - 1 - j : j;
          s += x[base + i * inner]!;
          y[base + i * inner] = s;
        }
      }
    }
  },

  softmax(x, y, rows, cols, log) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let m = -Infinity;
      for (let j = 0; j < cols; j++) m = Math.max(m, x[o + j]!);
      let s = 0;
      for (let j = 0; j < cols; j++) s += Math.exp(x[o + j]! - m);
      // exp(x − m)/s rather than exp(x − lse): m + log s rounds away log s when |m| is huge.
      const logS = Math.log(s);
      for (let j = 0; j < cols; j++) y[o + j] = log ? x[o + j]! - m - logS : Math.exp(x[o + j]! - m) / s;
    }
  },

  softmaxBackward(y, gy, gx, rows, cols, log) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let dot = 0;
      if (log) for (let j = 0; j < cols; j++) dot += gy[o + j]!;
      else for (let j = 0; j < cols; j++) dot += gy[o + j]! * y[o + j]!;
      for (let j = 0; j < cols; j++) {
        gx[o + j] = log ? gy[o + j]! - Math.exp(y[o + j]!) * dot : y[o + j]! * (gy[o + j]! - dot);
      }
    }
  },

  layernorm(x, w, b, y, mean, rstd, rows, C, eps) {
    for (let r = 0; r < rows; r++) {
      const o = r * C;
      let mu = 0;
      for (let j = 0; j < C; j++) mu += x[o + j]!;
      mu /= C;
      let v = 0;
      for (let j = 0; j < C; j++) v += (x[o + j]! - mu) ** 2;
      const rs = 1 / Math.sqrt(v / C + eps);
      mean[r] = mu;
      rstd[r] = rs;
      for (let j = 0; j < C; j++) {
        const xhat = (x[o + j]! - mu) * rs;
        y[o + j] = xhat * (w ? w[j]! : 1) + (b ? b[j]! : 0);
      }
    }
  },

  // With x̂ = (x − μ)·rstd and g = gy·w: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)); dw = Σ gy·x̂; db = Σ gy.
  layernormBackward(x, w, mean, rstd, gy, gx, gw, gb, rows, C) {
    for (let r = 0; r < rows; r++) {
      const o = r * C;
      const mu = mean[r]!;
      const rs = rstd[r]!;
      let gMean = 0;
      let gxhatMean = 0;
      for (let j = 0; j < C; j++) {
        const xhat = (x[o + j]! - mu) * rs;
        const g = gy[o + j]! * (w ? w[j]! : 1);
        gMean += g;
        gxhatMean += g * xhat;
        if (gw) gw[j] = gw[j]! + gy[o + j]! * xhat;
        if (gb) gb[j] = gb[j]! + gy[o + j]!;
      }
      gMean /= C;
      gxhatMean /= C;
      for (let j = 0; j < C; j++) {
        const xhat = (x[o + j]! - mu) * rs;
        const g = gy[o + j]! * (w ? w[j]! : 1);
        gx[o + j] = rs * (g - gMean - xhat * gxhatMean);
      }
    }
  },

  rmsnorm(x, w, y, rstd, rows, C, eps) {
    for (let r = 0; r < rows; r++) {
      const o = r * C;
      let ms = 0;
      for (let j = 0; j < C; j++) ms += x[o + j]! * x[o + j]!;
      const rs = 1 / Math.sqrt(ms / C + eps);
      rstd[r] = rs;
      for (let j = 0; j < C; j++) y[o + j] = x[o + j]! * rs * (w ? w[j]! : 1);
    }
  },

  // With x̂ = x·rstd and g = gy·w: dx = rstd·(g − x̂·mean(g·x̂)); dw = Σ gy·x̂.
  rmsnormBackward(x, w, rstd, gy, gx, gw, rows, C) {
    for (let r = 0; r < rows; r++) {
      const o = r * C;
      const rs = rstd[r]!;
      let gxhatMean = 0;
      for (let j = 0; j < C; j++) {
        const xhat = x[o + j]! * rs;
        gxhatMean += gy[o + j]! * (w ? w[j]! : 1) * xhat;
        if (gw) gw[j] = gw[j]! + gy[o + j]! * xhat;
      }
      gxhatMean /= C;
      for (let j = 0; j < C; j++) {
        const xhat = x[o + j]! * rs;
        gx[o + j] = rs * (gy[o + j]! * (w ? w[j]! : 1) - xhat * gxhatMean);
      }
    }
  },

  crossEntropy(logits, targets, losses, lse, N, V, ignoreIndex) {
    for (let i = 0; i < N; i++) {
      const o = i * V;
      let m = -Infinity;
      for (let j = 0; j < V; j++) m = Math.max(m, logits[o + j]!);
      let s = 0;
      for (let j = 0; j < V; j++) s += Math.exp(logits[o + j]! - m);
      const l = m + Math.log(s);
      lse[i] = l;
      const t = targets[i]!;
      if (t === ignoreIndex) {
        losses[i] = 0;
        continue;
      }
      if (t < 0 || t >= V) throw new RangeError(`crossEntropy: target ${t} at row ${i} is outside [0, ${V})`);
      losses[i] = l - logits[o + t]!;
    }
  },

  crossEntropyBackward(logits, targets, lse, gLoss, glogits, N, V, ignoreIndex) {
    for (let i = 0; i < N; i++) {
      const o = i * V;
      const t = targets[i]!;
      if (t === ignoreIndex) {
        glogits.fill(0, o, o + V);
        continue;
      }
      const g = gLoss[i]!;
      const l = lse[i]!;
      for (let j = 0; j < V; j++) glogits[o + j] = g * (Math.exp(logits[o + j]! - l) - (j === t ? 1 : 0));
    }
  },

  topk(x, values, indices, rows, cols, k) {
    const order = new Array<number>(cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      for (let j = 0; j < cols; j++) order[j] = j;
      order.sort((a, b) => (ranksAbove(x[o + a]!, a, x[o + b]!, b) ? -1 : 1));
      for (let j = 0; j < k; j++) {
        values[r * k + j] = x[o + order[j]!]!;
        indices[r * k + j] = order[j]!;
      }
    }
  },
};
