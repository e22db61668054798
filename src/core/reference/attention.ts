// Reference scaled-dot-product attention (forward and backward) and the AdamW update.
// Attention here materialises one row of scores at a time: obvious, O(Tk) scratch, used as the oracle.
import type { AttentionArgs, FloatArray, Kernels, StridedArg } from '../kernels.js';
import { hashUniform } from '../random.js';

type AttentionKernels = Pick<Kernels<FloatArray>, 'attention' | 'attentionBackward' | 'adamw'>;

/** Flat offset of row t of head (b, h) in a [sB, sH, sT] strided view. */
function row(arg: StridedArg, b: number, h: number, t: number): number {
  return arg.offset + b * arg.strides[0]! + h * arg.strides[1]! + t * arg.strides[2]!;
}

/**
 * Scores of query i against every key, with the causal offset and the additive mask applied.
 * A disallowed key gets −∞. Returns the row maximum.
 */
function scoreRow(args: AttentionArgs<FloatArray>, b: number, h: number, i: number, s: Float64Array): number {
  const { q, k, mask, Tq, Tk, D, scale, causal } = args;
  const w = args.window ?? 0;
  const qo = row(q, b, h, i);
  const pos = i + (Tk - Tq); // the query's absolute position: it sees keys (pos − w, pos] (w = 0: [0, pos])
  let m = -Infinity;
  for (let j = 0; j < Tk; j++) {
    if (causal && (j > pos || (w > 0 && j <= pos - w))) {
      s[j] = -Infinity;
      continue;
    }
    const ko = row(k, b, h, j);
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q.data[qo + d]! * k.data[ko + d]!;
    let v = dot * scale;
    if (mask) v += mask.data[row(mask, b, h, i) + j]!;
    s[j] = v;
    if (v > m || Number.isNaN(v)) m = Number.isNaN(m) ? m : v;
  }
  return m;
}

/**
 * Dropout factor of the probabilities of query row `rowIdx` = (b·H + h)·Tq + i (mod 2^32): a function of the key j
 * giving keep/(1 − p) with keep ⇔ hashUniform(seed, (rowIdx·Tk + j) mod 2^32) ≥ p; always 1 without dropout.
 */
function dropFactor(args: AttentionArgs<FloatArray>, rowIdx: number): (j: number) => number {
  const { dropout: p, dropoutSeed: seed, Tk } = args;
  if (p === 0) return () => 1;
  const inv = 1 / (1 - p);
  const base = Math.imul(rowIdx, Tk); // low 32 bits of the product, as the native kernels' unsigned arithmetic
  return (j) => (hashUniform(seed, (base + j) >>> 0) >= p ? inv : 0);
}

function checkDropout(kernel: string, p: number): void {
  if (!(p >= 0 && p < 1)) throw new RangeError(`${kernel}: dropout must be a probability in [0, 1), got ${p}`);
}

function checkWindow(kernel: string, w: number | undefined): void {
  if (w !== undefined && !(Number.isInteger(w) && w >= 0)) throw new RangeError(`${kernel}: window must be an integer ≥ 0, got ${w}`);
}

export const attentionKernels: AttentionKernels = {
  // out_i = Σ_j p̃_ij v_j with p_ij = exp(s_ij − lse_i) and p̃ = p ⊙ keep/(1 − dropout) (p̃ = p without dropout).
  // A row with no allowed key (all −∞) gives out = 0 and lse = −∞ rather than NaN, so fully padded rows are
  // harmless; its gradients are 0. lse is that of the undropped scores.
  attention(args) {
    const { v, out, lse, B, H, Tq, Tk, D } = args;
    checkDropout('attention', args.dropout);
    checkWindow('attention', args.window);
    const s = new Float64Array(Tk);
    const acc = new Float64Array(D);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let i = 0; i < Tq; i++) {
          const m = scoreRow(args, b, h, i, s);
          const oo = row(out, b, h, i);
          const li = (b * H + h) * Tq + i;
          if (m === -Infinity) {
            for (let d = 0; d < D; d++) out.data[oo + d] = 0;
            lse[li] = -Infinity;
            continue;
          }
          acc.fill(0);
          let sum = 0;
          const drop = dropFactor(args, (Math.imul(b * H + h, Tq) + i) >>> 0);
          for (let j = 0; j < Tk; j++) {
            const p = Math.exp(s[j]! - m);
            if (p === 0) continue;
            sum += p;
            const w = p * drop(j);
            if (w === 0) continue;
            const vo = row(v, b, h, j);
            for (let d = 0; d < D; d++) acc[d]! += w * v.data[vo + d]!;
          }
          for (let d = 0; d < D; d++) out.data[oo + d] = acc[d]! / sum;
          lse[li] = m + Math.log(sum);
        }
      }
    }
  },

  // With p_ij = exp(s_ij − lse_i), f_ij = keep_ij/(1 − dropout) (1 without dropout) and p̃ = p·f, O = p̃·V gives
  // dv_j = Σ_i p̃_ij dO_i and dp̃_ij = dO_i·v_j; p̃ is linear in p, so dP_ij = f_ij dp̃_ij, and
  // Δ_i = Σ_j p_ij dP_ij = Σ_j p̃_ij dp̃_ij = dO_i·O_i. The softmax Jacobian gives dS_ij = p_ij (dP_ij − Δ_i);
  // dq_i = scale Σ_j dS_ij k_j; dk_j = scale Σ_i dS_ij q_i. A dropped entry still has dS_ij = −p_ij Δ_i.
  attentionBackward(args) {
    const { q, k, v, out, lse, gout, gq, gk, gv, B, H, Tq, Tk, D, scale } = args;
    checkDropout('attentionBackward', args.dropout);
    checkWindow('attentionBackward', args.window);
    const s = new Float64Array(Tk);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let i = 0; i < Tq; i++) gq.data.fill(0, row(gq, b, h, i), row(gq, b, h, i) + D);
        for (let j = 0; j < Tk; j++) {
          gk.data.fill(0, row(gk, b, h, j), row(gk, b, h, j) + D);
          gv.data.fill(0, row(gv, b, h, j), row(gv, b, h, j) + D);
        }
        for (let i = 0; i < Tq; i++) {
          const l = lse[(b * H + h) * Tq + i]!;
          if (l === -Infinity) continue;
          scoreRow(args, b, h, i, s);
          const go = row(gout, b, h, i);
          const oo = row(out, b, h, i);
          let delta = 0;
          for (let d = 0; d < D; d++) delta += gout.data[go + d]! * out.data[oo + d]!;
          const qo = row(q, b, h, i);
          const gqo = row(gq, b, h, i);
          const drop = dropFactor(args, (Math.imul(b * H + h, Tq) + i) >>> 0);
          for (let j = 0; j < Tk; j++) {
            const p = Math.exp(s[j]! - l);
            if (p === 0) continue;
            const vo = row(v, b, h, j);
            const ko = row(k, b, h, j);
            let dp = 0;
            for (let d = 0; d < D; d++) dp += gout.data[go + d]! * v.data[vo + d]!;
            const f = drop(j);
            const ds = p * (dp * f - delta) * scale;
            const pd = p * f;
            const gko = row(gk, b, h, j);
            const gvo = row(gv, b, h, j);
            for (let d = 0; d < D; d++) {
              gq.data[gqo + d]! += ds * k.data[ko + d]!;
              gk.data[gko + d]! += ds * q.data[qo + d]!;
              gv.data[gvo + d]! += pd * gout.data[go + d]!;
            }
          }
        }
      }
    }
  },

  // Decoupled weight decay (Loshchilov & Hutter): p ← p − lr·wd·p, then the bias-corrected Adam step.
  adamw({ param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale }) {
    const bc1 = 1 - Math.pow(beta1, step);
    const bc2 = 1 - Math.pow(beta2, step);
    for (let i = 0; i < param.length; i++) {
      const g = grad[i]! * gradScale;
      let p = param[i]! * (1 - lr * weightDecay);
      const mi = beta1 * m[i]! + (1 - beta1) * g;
      const vi = beta2 * v[i]! + (1 - beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      p -= (lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + eps);
      param[i] = p;
    }
  },
};
