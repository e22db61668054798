#!/usr/bin/env python3
"""Independent PyTorch implementations of the alignment losses, written from the papers (and TRL's documented
formulas), used once to produce the golden fixture test/fixtures/align/losses.json that test/align/losses.test.ts
compares with (losses and every input gradient, float64 here, float32 there).

Run with Debian's python3-torch 1.13:
    /usr/bin/python3 test/reference/align_reference.py
CI never runs this script; it only reads the fixture.

Formulas:
  reward model (Bradley-Terry; InstructGPT, TRL RewardTrainer): loss = -mean(logsigmoid(r_c - r_r - m))
    + c * mean((r_c + r_r)^2)   (m: per-pair margin, c: center_rewards_coefficient)
  DPO (Rafailov et al. 2023): l = (pi_c - pi_r) - (ref_c - ref_r);
    sigmoid: mean(-(1 - eps) logsigmoid(beta l) - eps logsigmoid(-beta l))   (eps: label smoothing, cDPO)
    IPO (Azar et al. 2023; TRL loss_type="ipo"): the same l on log-probabilities averaged per reply token
      (policy and reference sums divided by the reply's length n), mean((l - 1/(2 beta))^2)
  PPO (Schulman et al. 2017, clipped surrogate, value clipping as in TRL/OpenAI baselines): ratio = exp(lp - old_lp);
    pg = masked_mean(max(-A ratio, -A clamp(ratio, 1 - e, 1 + e)));
    vf = 0.5 masked_mean(max((v - R)^2, (old_v + clamp(v - old_v, -ev, ev) - R)^2)); loss = pg + vf_coef vf
    masked_mean(x) = sum(x m) / sum(m)
  sequence log-probabilities: sum over targets != -1 of log_softmax(logits)[target]
  scalar head: score[b] = hidden[b, last[b]] . w + bias
  GAE (Schulman et al. 2016): delta_t = r_t + g V_{t+1} - V_t (V_T = 0), A_t = delta_t + g l A_{t+1}; R_t = A_t + V_t
"""
import json
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
g = torch.Generator().manual_seed(20261204)


def randn(*shape, scale=1.0):
    return (torch.randn(*shape, generator=g) * scale)


def leaf(t):
    return t.clone().requires_grad_(True)


def tolist(t):
    return t.detach().reshape(-1).tolist()


cases = []

# Reward model: 6 pairs, with and without margin and centering.
rc0, rr0, m0 = randn(6), randn(6), randn(6, scale=0.3).abs()
for name, use_margin, center in [('reward', False, 0.0), ('reward_margin_center', True, 0.01)]:
    rc, rr = leaf(rc0), leaf(rr0)
    d = rc - rr - (m0 if use_margin else 0)
    loss = -F.logsigmoid(d).mean() + (center * ((rc + rr) ** 2).mean() if center else 0)
    loss.backward()
    cases.append({'name': name, 'kind': 'reward', 'inputs': {'rc': tolist(rc0), 'rr': tolist(rr0), 'margin': tolist(m0) if use_margin else None},
                  'options': {'centerCoef': center}, 'loss': loss.item(), 'grads': {'rc': tolist(rc.grad), 'rr': tolist(rr.grad)}})

# DPO: 5 pairs of summed log-probabilities (negative, tens of nats), three variants.
pc0, pr0 = -20 + randn(5, scale=3), -20 + randn(5, scale=3)
refc0, refr0 = pc0 + randn(5), pr0 + randn(5)
# Reply lengths in tokens (fixed, not drawn, so that the other cases' random inputs stay as they were).
nc0, nr0 = torch.tensor([3.0, 7.0, 1.0, 12.0, 5.0]), torch.tensor([4.0, 2.0, 9.0, 6.0, 11.0])
for name, loss_type, beta, eps in [('dpo_sigmoid', 'sigmoid', 0.1, 0.0), ('dpo_label_smoothed', 'sigmoid', 0.1, 0.2), ('dpo_ipo', 'ipo', 0.5, 0.0)]:
    pc, pr = leaf(pc0), leaf(pr0)
    if loss_type == 'ipo':
        # Per-token averages (TRL divides the policy's and the reference's log-probabilities by the reply length).
        apc, apr, arefc, arefr = pc / nc0, pr / nr0, refc0 / nc0, refr0 / nr0
        l = (apc - apr) - (arefc - arefr)
        loss = ((l - 1 / (2 * beta)) ** 2).mean()
    else:
        apc, apr, arefc, arefr = pc, pr, refc0, refr0
        l = (pc - pr) - (refc0 - refr0)
        loss = (-(1 - eps) * F.logsigmoid(beta * l) - eps * F.logsigmoid(-beta * l)).mean()
    loss.backward()
    cr, rj = beta * (apc.detach() - arefc), beta * (apr.detach() - arefr)
    cases.append({'name': name, 'kind': 'dpo', 'inputs': {'pc': tolist(pc0), 'pr': tolist(pr0), 'refC': tolist(refc0), 'refR': tolist(refr0),
                                                           **({'replyTokensChosen': tolist(nc0), 'replyTokensRejected': tolist(nr0)} if loss_type == 'ipo' else {})},
                  'options': {'beta': beta, 'lossType': loss_type, 'labelSmoothing': eps}, 'loss': loss.item(),
                  'grads': {'pc': tolist(pc.grad), 'pr': tolist(pr.grad)},
                  'metrics': {'rewards/chosen': cr.mean().item(), 'rewards/rejected': rj.mean().item(),
                              'rewards/accuracies': (cr > rj).double().mean().item(), 'rewards/margins': (cr - rj).mean().item()}})

# PPO: (3, 5) tokens, the last two of row 2 masked out; ratios spread so that some clip.
B, T = 3, 5
old_lp0 = -2 + randn(B, T, scale=0.5)
lp0 = old_lp0 + randn(B, T, scale=0.3)
adv0 = randn(B, T)
old_v0 = randn(B, T)
v0 = old_v0 + randn(B, T, scale=0.3)
ret0 = old_v0 + randn(B, T)
mask0 = torch.ones(B, T)
mask0[2, 3:] = 0
opts = {'clip': 0.2, 'clipValue': 0.2, 'vfCoef': 0.1}
lp, v = leaf(lp0), leaf(v0)
ratio = torch.exp(lp - old_lp0)
mm = lambda x: (x * mask0).sum() / mask0.sum()
pg = mm(torch.max(-adv0 * ratio, -adv0 * torch.clamp(ratio, 1 - opts['clip'], 1 + opts['clip'])))
vclip = old_v0 + torch.clamp(v - old_v0, -opts['clipValue'], opts['clipValue'])
vf = 0.5 * mm(torch.max((v - ret0) ** 2, (vclip - ret0) ** 2))
loss = pg + opts['vfCoef'] * vf
loss.backward()
cases.append({'name': 'ppo', 'kind': 'ppo', 'shape': [B, T],
              'inputs': {'logp': tolist(lp0), 'oldLogp': tolist(old_lp0), 'adv': tolist(adv0), 'values': tolist(v0), 'oldValues': tolist(old_v0), 'returns': tolist(ret0), 'mask': tolist(mask0)},
              'options': opts, 'loss': loss.item(), 'pg': pg.item(), 'vf': vf.item(), 'grads': {'logp': tolist(lp.grad), 'values': tolist(v.grad)}})

# Sequence log-probabilities from logits (2, 4, 7) with ignored targets, weighted so each row's gradient differs.
logits0 = randn(2, 4, 7)
targets = torch.tensor([[3, -1, 6, 0], [-1, -1, 2, 5]])
weights = torch.tensor([0.7, -1.3])
logits = leaf(logits0)
lsm = F.log_softmax(logits, dim=-1)
keep = targets != -1
tok = torch.where(keep, lsm.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1), torch.zeros(()))
seq = tok.sum(1)
(seq * weights).sum().backward()
cases.append({'name': 'sequence_logprobs', 'kind': 'seqlogp', 'shape': [2, 4, 7], 'inputs': {'logits': tolist(logits0), 'targets': targets.reshape(-1).tolist(), 'weights': weights.tolist()},
              'seq': tolist(seq), 'grads': {'logits': tolist(logits.grad)}})

# Scalar (reward) head at the last real token: hidden (2, 4, 3), last = [1, 3].
hidden0, w0, b0 = randn(2, 4, 3), randn(3), randn(1)
last = [1, 3]
h, w, b = leaf(hidden0), leaf(w0), leaf(b0)
scores = torch.stack([h[i, last[i]] @ w for i in range(2)]) + b
(scores * weights).sum().backward()
cases.append({'name': 'scalar_head', 'kind': 'head', 'shape': [2, 4, 3], 'inputs': {'hidden': tolist(hidden0), 'weight': tolist(w0), 'bias': tolist(b0), 'last': last, 'weights': weights.tolist()},
              'scores': tolist(scores), 'grads': {'hidden': tolist(h.grad), 'weight': tolist(w.grad), 'bias': tolist(b.grad)}})

# GAE over one row of 6 rewards and values.
rew, val = randn(6), randn(6)
gamma, lam = 1.0, 0.95
adv = torch.zeros(6)
last_gae = 0.0
for t in reversed(range(6)):
    nxt = val[t + 1] if t + 1 < 6 else 0.0
    delta = rew[t] + gamma * nxt - val[t]
    last_gae = delta + gamma * lam * last_gae
    adv[t] = last_gae
cases.append({'name': 'gae', 'kind': 'gae', 'inputs': {'rewards': tolist(rew), 'values': tolist(val)}, 'options': {'gamma': gamma, 'lam': lam},
              'advantages': tolist(adv), 'returns': tolist(adv + val)})

out = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'align', 'losses.json')
with open(out, 'w') as f:
    json.dump({'torch': torch.__version__, 'cases': cases}, f, indent=1)
print(f'wrote {len(cases)} cases to {os.path.normpath(out)}')
