// Mean next-token cross-entropy through a frozen output head, a block of rows at a time: the (rows, V) logits of one
// block exist at once, never the whole (B·T, V) logits or their gradient (at GPT-2's V = 50,304 that is 200 KB a
// token each). With gradients on, each block's gradient with respect to the hidden states, dh = (softmax − onehot)·W
// / count, is formed right after its loss while its logits are at hand — the same products backward would do, done
// earlier — and backward only scales dh by the upstream gradient. Only for heads whose weights get no gradient (LoRA
// and QLoRA freeze them); GPT.forwardLoss sends a trainable head through the whole logits. Not the head itself.
import * as lm from '../core/index.js';
import type { Tensor } from '../core/index.js';

/**
 * Rows per block: an even split of the rows into blocks of at most ~4 M logits (16 MiB in float32), but never fewer
 * than 128 rows: each block's product streams (and the GEMM packs) the whole (V, C) table again, and at GPT-2's
 * vocabulary 64-row blocks made an fp32 LoRA step ~12% slower on one core, where 128-row blocks cost nothing measurable.
 */
export function headBlockRows(rows: number, V: number): number {
  if (rows <= 0) return 1;
  const most = Math.max(128, Math.floor((1 << 22) / Math.max(V, 1)));
  return Math.ceil(rows / Math.ceil(rows / most));
}

/**
 * loss = Σ_i CE(head(h_i), t_i) / count over rows i whose target ≠ ignoreIndex (crossEntropy's 'mean'; NaN when
 * none counts), for hidden (…, C) and targets (…) int32. head maps (n, C) → (n, V) and must have no trainable weight.
 * The per-row losses are summed in float64 as crossEntropy sums them, so the loss is the unblocked one.
 */
export function blockedHeadCrossEntropy(head: (h: Tensor) => Tensor, hidden: Tensor, targets: Tensor, o: { V: number; ignoreIndex: number; blockRows?: number }): Tensor {
  const ignoreIndex = o.ignoreIndex;
  const C = hidden.shape[hidden.ndim - 1]!;
  const rows = C === 0 ? 0 : hidden.size / C;
  if (targets.dtype !== 'int32' || targets.size !== rows || targets.ndim !== hidden.ndim - 1 || targets.shape.some((d, i) => d !== hidden.shape[i])) {
    throw new lm.ShapeError(`blockedHeadCrossEntropy: targets ${targets.describe()} must be int32 with the shape of hidden ${hidden.describe()} but its last dim`);
  }
  const h2 = lm.reshape(hidden, [rows, C]);
  const t2 = lm.reshape(targets, [rows]);
  const tv = t2.toTypedArray() as Int32Array;
  let count = 0;
  for (let i = 0; i < rows; i++) if (tv[i] !== ignoreIndex) count++;
  const withGrad = lm.isGradEnabled() && hidden.requiresGrad;
  const dh = withGrad ? lm.zeros([rows, C], hidden.dtype) : null; // (rows, C), held until backward
  let total = 0;
  const step = o.blockRows ?? headBlockRows(rows, o.V);
  for (let r0 = 0; r0 < rows; r0 += step) {
    const r1 = Math.min(rows, r0 + step);
    lm.tidy(() => {
      const tb = lm.slice(t2, 0, r0, r1);
      const hb = withGrad ? lm.requireGrad(lm.detach(lm.slice(h2, 0, r0, r1))) : lm.slice(h2, 0, r0, r1); // a leaf over the block's rows
      const losses = lm.crossEntropy(head(hb), tb, { ignoreIndex, reduction: 'none' }); // (n)
      const lv = losses.toTypedArray();
      for (let i = 0; i < lv.length; i++) total += lv[i]!;
      if (!withGrad) return;
      lm.backward(losses, lm.full([r1 - r0], 1 / count, hidden.dtype)); // crossEntropy's mean: each row's loss weighs 1/count
      dh!.data.set(hb.grad!.toTypedArray(), r0 * C);
      hb.grad!.dispose();
      hb.grad = null;
    });
  }
  const out = lm.full([], total / count, hidden.dtype);
  if (!dh) return out;
  return lm.record('blockedHeadCrossEntropy', [hidden], out, (g) => [lm.reshape(lm.mul(dh, g), hidden.shape)]);
}

/** Extra training terms on the output distribution (both off at 0). */
export interface LossTerms {
  /** PaLM's z-loss weight λ: adds λ·mean(log² Z) over counted rows, Z the softmax normaliser (1e-4 typical). */
  zLoss: number;
  /** Label smoothing ε as torch's cross_entropy(label_smoothing=ε): the target is (1 − ε)·onehot + ε/V. */
  labelSmoothing: number;
}

export const NO_LOSS_TERMS: LossTerms = { zLoss: 0, labelSmoothing: 0 };

/**
 * The terms as named auxiliary losses over logits (…, V) and int32 targets (…), each a mean over rows whose target
 * ≠ ignoreIndex, so the plain cross-entropy stays the reported loss and the objective is their sum:
 *   z_loss          = λ · mean(lse²),                        lse = log Σ_v exp(z_v)
 *   label_smoothing = ε · (mean(−(1/V)·Σ_v log p_v) − CE)    so CE + label_smoothing = torch's smoothed loss
 * since (1 − ε)·CE + ε·(−(1/V)·Σ_v log p_v) = CE + ε·(uniform − CE). Composed from differentiable ops: autograd
 * gives the gradients (λ·2·lse·softmax for z-loss; ε·(softmax − 1/V) − ε·(softmax − onehot) for smoothing).
 */
export function lossTermsAux(logits: Tensor, targets: Tensor, terms: LossTerms, ignoreIndex: number): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  if (terms.zLoss === 0 && terms.labelSmoothing === 0) return out;
  const V = logits.shape[logits.ndim - 1]!;
  const N = V === 0 ? 0 : logits.size / V;
  const z = lm.reshape(logits, [N, V]);
  const tv = targets.toTypedArray();
  const keep = logits.dtype === 'float64' ? new Float64Array(N) : new Float32Array(N); // 1 where the row counts
  let count = 0;
  for (let i = 0; i < N; i++) {
    if (tv[i] === ignoreIndex) continue;
    keep[i] = 1;
    count++;
  }
  const mask = lm.tensor(keep, [N]);
  const logp = lm.logSoftmax(z, -1); // (N, V)
  const meanLogp = lm.mean(logp, -1); // (N)
  const maskedMean = (x: Tensor): Tensor => lm.mul(lm.sum(lm.mul(x, mask)), 1 / count);
  if (terms.zLoss !== 0) {
    const lse = lm.sub(lm.mean(z, -1), meanLogp); // log p_v = z_v − lse for every v, so lse = mean(z) − mean(log p)
    out.z_loss = lm.mul(maskedMean(lm.mul(lse, lse)), terms.zLoss);
  }
  if (terms.labelSmoothing !== 0) {
    const uniform = lm.neg(maskedMean(meanLogp));
    const ce = lm.crossEntropy(z, lm.reshape(targets, [N]), { ignoreIndex });
    out.label_smoothing = lm.mul(lm.sub(uniform, ce), terms.labelSmoothing);
  }
  return out;
}

/** terms validated: λ ≥ 0 and ε in [0, 1), named by their config keys. */
export function checkLossTerms(terms: LossTerms): LossTerms {
  if (!(terms.zLoss >= 0 && Number.isFinite(terms.zLoss))) throw new RangeError(`loss.z_loss: expected a number ≥ 0, got ${terms.zLoss}`);
  if (!(terms.labelSmoothing >= 0 && terms.labelSmoothing < 1)) throw new RangeError(`loss.label_smoothing: expected a number in [0, 1), got ${terms.labelSmoothing}`);
  return terms;
}
