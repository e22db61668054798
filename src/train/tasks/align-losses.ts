// The alignment losses as published, on tensors of per-sequence (or per-token) figures, so that each is checked
// on its own against an independent PyTorch script (test/reference/align_reference.py):
//   reward model (Bradley–Terry, InstructGPT / TRL RewardTrainer): −log σ(r_c − r_r − m), + c·mean((r_c + r_r)²)
//   DPO (Rafailov et al.): l = (log π_c − log π_r) − (log π_ref,c − log π_ref,r),
//     sigmoid: −(1−ε)·log σ(β l) − ε·log σ(−β l)  (ε = label smoothing, cDPO);  IPO (Azar et al.): (l − 1/(2β))² on
//     log-probabilities averaged per reply token, as TRL's loss_type="ipo"
//   PPO (Schulman et al., as TRL's PPOTrainer): ratio = exp(log π − log π_old), policy loss
//     mean(max(−A·ratio, −A·clip(ratio, 1 ± ε))), value loss ½·mean(max((v − R)², (v_old + clip(v − v_old, ± ε_v) − R)²))
// Means over a mask are Σ(x·m)/Σm. Not the batching (tasks/preference.ts, sft.ts) and not GAE (align/ppo.ts).
import * as lm from '../../core/index.js';
import type { Tensor } from '../../core/index.js';

/** log σ(x) = min(x, 0) − log(1 + e^{−|x|}), stable for large |x|. */
export function logSigmoid(x: Tensor): Tensor {
  return lm.sub(lm.minimum(x, 0), lm.log(lm.addScalar(lm.exp(lm.neg(lm.abs(x))), 1)));
}

export interface RewardLossOptions {
  /** Per-pair margins m (TRL's `margin` column), or null. */
  margin?: Tensor | null;
  /** Reward centering (Eisenstein et al., TRL's center_rewards_coefficient): c·mean((r_c + r_r)²); 0 = off. */
  centerCoef?: number;
}

/** Bradley–Terry loss of chosen and rejected scores (B) → scalar, with TRL's metrics. */
export function rewardLoss(rc: Tensor, rr: Tensor, o: RewardLossOptions = {}): { loss: Tensor; metrics: Record<string, number> } {
  let d = lm.sub(rc, rr);
  if (o.margin) d = lm.sub(d, o.margin);
  let loss = lm.neg(lm.mean(logSigmoid(d)));
  if (o.centerCoef) loss = lm.add(loss, lm.mulScalar(lm.mean(lm.square(lm.add(rc, rr))), o.centerCoef));
  const c = rc.toTypedArray();
  const r = rr.toTypedArray();
  let acc = 0;
  let margin = 0;
  for (let i = 0; i < c.length; i++) {
    if (c[i]! > r[i]!) acc++;
    margin += c[i]! - r[i]!;
  }
  return { loss, metrics: { accuracy: acc / c.length, margin: margin / c.length, 'rewards/chosen': mean(c), 'rewards/rejected': mean(r) } };
}

export type DpoLossType = 'sigmoid' | 'ipo';

export interface DpoOptions {
  beta: number;
  lossType: DpoLossType;
  /** Label smoothing ε of the sigmoid loss (conservative DPO); 0 = plain DPO. */
  labelSmoothing: number;
}

/** Reply tokens of each chosen and rejected row: IPO averages log-probabilities over them. */
export interface ReplyTokens {
  chosen: ArrayLike<number>;
  rejected: ArrayLike<number>;
}

/**
 * DPO's loss from policy and reference log-probabilities of the chosen and rejected replies (B each, summed over
 * each reply's tokens) → scalar, with TRL's metrics: rewards/chosen = β(log π_c − log π_ref,c), rewards/rejected,
 * rewards/accuracies, rewards/margins. IPO, as TRL's loss_type="ipo", works on the average log-probability per
 * reply token (policy and reference alike divided by the reply's length; its metrics too), so replyTokens is
 * required for it: h = (π̄_c − π̄_r) − (ref̄_c − ref̄_r), loss mean((h − 1/(2β))²).
 */
export function dpoLoss(pc: Tensor, pr: Tensor, refC: Tensor, refR: Tensor, o: DpoOptions, replyTokens?: ReplyTokens): { loss: Tensor; metrics: Record<string, number> } {
  if (o.lossType === 'ipo') {
    if (!replyTokens) throw new Error('dpoLoss: IPO averages over reply tokens; pass replyTokens');
    const inv = (n: ArrayLike<number>): Tensor => lm.tensor(Array.from(n, (k) => 1 / Math.max(1, k)));
    const ic = inv(replyTokens.chosen), ir = inv(replyTokens.rejected);
    [pc, pr, refC, refR] = [lm.mul(pc, ic), lm.mul(pr, ir), lm.mul(refC, ic), lm.mul(refR, ir)];
  }
  const l = lm.sub(lm.sub(pc, pr), lm.sub(refC, refR)); // (B)
  let loss: Tensor;
  if (o.lossType === 'ipo') {
    loss = lm.mean(lm.square(lm.addScalar(l, -1 / (2 * o.beta))));
  } else {
    const bl = lm.mulScalar(l, o.beta);
    const pos = lm.mulScalar(logSigmoid(bl), -(1 - o.labelSmoothing));
    loss = lm.mean(o.labelSmoothing > 0 ? lm.sub(pos, lm.mulScalar(logSigmoid(lm.neg(bl)), o.labelSmoothing)) : pos);
  }
  return { loss, metrics: dpoMetrics(pc.toTypedArray(), pr.toTypedArray(), refC.toTypedArray(), refR.toTypedArray(), o.beta) };
}

/** Summed log-probabilities divided by their reply lengths (IPO's per-token average), for held-out evaluation. */
export function perToken(logps: ArrayLike<number>, replyTokens: ArrayLike<number>): Float64Array {
  return Float64Array.from(logps, (v, i) => v / Math.max(1, replyTokens[i]!));
}

/** TRL's DPO metrics from plain arrays (also used by held-out evaluation). */
export function dpoMetrics(pc: ArrayLike<number>, pr: ArrayLike<number>, refC: ArrayLike<number>, refR: ArrayLike<number>, beta: number): Record<string, number> {
  const n = pc.length;
  let ch = 0, rj = 0, acc = 0;
  for (let i = 0; i < n; i++) {
    const c = beta * (pc[i]! - refC[i]!);
    const r = beta * (pr[i]! - refR[i]!);
    ch += c;
    rj += r;
    if (c > r) acc++;
  }
  return {
    'rewards/chosen': ch / n, 'rewards/rejected': rj / n, 'rewards/accuracies': acc / n, 'rewards/margins': (ch - rj) / n,
    'logps/chosen': mean(pc), 'logps/rejected': mean(pr),
  };
}

/** Σ(x·m)/Σm over all elements. */
export function maskedMean(x: Tensor, mask: Tensor): Tensor {
  const m = mask.toTypedArray();
  let n = 0;
  for (let i = 0; i < m.length; i++) n += m[i]!;
  return lm.mulScalar(lm.sum(lm.mul(x, mask)), 1 / Math.max(n, 1));
}

export interface PpoLossOptions {
  /** Policy ratio clip ε (TRL's cliprange, 0.2). */
  clip: number;
  /** Value clip ε_v (TRL's cliprange_value, 0.2). */
  clipValue: number;
  /** Weight of the value loss (TRL's vf_coef, 0.1). */
  vfCoef: number;
}

/**
 * PPO's clipped policy and value losses over the response tokens (mask 1): new and old log-probs, advantages,
 * new and old values, returns, all (B, T) → { loss = pg + vf_coef·vf, metrics with TRL's names }.
 */
export function ppoLoss(logp: Tensor, oldLogp: Tensor, adv: Tensor, values: Tensor, oldValues: Tensor, returns: Tensor, mask: Tensor, o: PpoLossOptions): { loss: Tensor; pg: Tensor; vf: Tensor; metrics: Record<string, number> } {
  const ratio = lm.exp(lm.sub(logp, oldLogp));
  const pg1 = lm.neg(lm.mul(adv, ratio));
  const pg2 = lm.neg(lm.mul(adv, lm.minimum(lm.maximum(ratio, 1 - o.clip), 1 + o.clip)));
  const pg = maskedMean(lm.maximum(pg1, pg2), mask);
  const vClipped = lm.add(oldValues, lm.minimum(lm.maximum(lm.sub(values, oldValues), -o.clipValue), o.clipValue));
  const vf1 = lm.square(lm.sub(values, returns));
  const vf2 = lm.square(lm.sub(vClipped, returns));
  const vf = lm.mulScalar(maskedMean(lm.maximum(vf1, vf2), mask), 0.5);
  const loss = lm.add(pg, lm.mulScalar(vf, o.vfCoef));
  // Figures (no autograd): clip fractions and the approximate KL ½·mean((log π − log π_old)²).
  const m = mask.toTypedArray();
  const r = ratio.toTypedArray();
  const a1 = pg1.toTypedArray(), a2 = pg2.toTypedArray(), w1 = vf1.toTypedArray(), w2 = vf2.toTypedArray();
  const lp = logp.toTypedArray(), olp = oldLogp.toTypedArray();
  let n = 0, pclip = 0, vclip = 0, kl = 0, rsum = 0;
  for (let i = 0; i < m.length; i++) {
    if (!m[i]) continue;
    n++;
    if (a2[i]! > a1[i]!) pclip++;
    if (w2[i]! > w1[i]!) vclip++;
    kl += 0.5 * (lp[i]! - olp[i]!) ** 2;
    rsum += r[i]!;
  }
  n = Math.max(n, 1);
  return {
    loss, pg, vf,
    metrics: { 'loss/policy_avg': pg.item(), 'loss/value_avg': vf.item(), 'policy/clipfrac_avg': pclip / n, 'val/clipfrac_avg': vclip / n, 'policy/approxkl_avg': kl / n, 'val/ratio': rsum / n },
  };
}

function mean(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return a.length ? s / a.length : 0;
}

/**
 * Generalized advantage estimation over one response (Schulman et al. 2016): δ_t = r_t + γ V_{t+1} − V_t (V after
 * the last token is 0), A_t = δ_t + γλ A_{t+1}; returns R_t = A_t + V_t.
 */
export function gae(rewards: ArrayLike<number>, values: ArrayLike<number>, gamma: number, lam: number): { advantages: Float64Array; returns: Float64Array } {
  const n = rewards.length;
  const advantages = new Float64Array(n);
  const returns = new Float64Array(n);
  let last = 0;
  for (let t = n - 1; t >= 0; t--) {
    const next = t + 1 < n ? values[t + 1]! : 0;
    last = rewards[t]! + gamma * next - values[t]! + gamma * lam * last;
    advantages[t] = last;
    returns[t] = last + values[t]!;
  }
  return { advantages, returns };
}
