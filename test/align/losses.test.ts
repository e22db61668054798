// The alignment losses (reward model, DPO sigmoid / label-smoothed / IPO, PPO's clipped policy and value losses),
// sequence log-probabilities, the scalar head and GAE against the golden fixture of test/reference/align_reference.py
// (an independent float64 PyTorch implementation of the published formulas): losses, metrics and every input
// gradient within float32 tolerance, on both backends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import type { Tensor } from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { gatherRows, sequenceLogprobs } from '../../src/models/heads.js';
import { GPT } from '../../src/models/gpt.js';
import { dpoLoss, gae, ppoLoss, rewardLoss, type DpoLossType } from '../../src/train/tasks/align-losses.js';
import { DpoTask, fitSequence, replyLogprobs, replyTokenCount } from '../../src/train/tasks/preference.js';

loadNativeBackend();

interface Case {
  name: string;
  kind: 'reward' | 'dpo' | 'ppo' | 'seqlogp' | 'head' | 'gae';
  shape?: number[];
  inputs: Record<string, number[] | null>;
  options?: Record<string, number | string>;
  loss?: number;
  pg?: number;
  vf?: number;
  seq?: number[];
  scores?: number[];
  advantages?: number[];
  returns?: number[];
  metrics?: Record<string, number>;
  grads?: Record<string, number[]>;
}

const fixture = JSON.parse(readFileSync(fileURLToPath(new URL('../../../test/fixtures/align/losses.json', import.meta.url)), 'utf8')) as { cases: Case[] };

function close(got: ArrayLike<number>, want: readonly number[], what: string, tol = 1e-5): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    assert.ok(err <= tol * Math.max(1, Math.abs(want[i]!)), `${what}[${i}]: got ${got[i]}, want ${want[i]} (|Δ| ${err.toExponential(2)})`);
  }
}

const leaf = (v: readonly number[], shape?: number[]): Tensor => lm.requireGrad(lm.tensor(v, shape ?? [v.length]));
const grad = (t: Tensor): Float32Array => t.grad!.toTypedArray() as Float32Array;

function check(c: Case): void {
  const I = c.inputs as Record<string, number[]>;
  lm.tidy(() => {
    if (c.kind === 'reward') {
      const rc = leaf(I.rc!), rr = leaf(I.rr!);
      const margin = c.inputs.margin ? lm.tensor(c.inputs.margin) : null;
      const { loss } = rewardLoss(rc, rr, { margin, centerCoef: c.options!.centerCoef as number });
      lm.backward(loss);
      close([loss.item()], [c.loss!], `${c.name} loss`);
      close(grad(rc), c.grads!.rc!, `${c.name} d/drc`);
      close(grad(rr), c.grads!.rr!, `${c.name} d/drr`);
    } else if (c.kind === 'dpo') {
      const pc = leaf(I.pc!), pr = leaf(I.pr!);
      const o = c.options!;
      const replyTokens = I.replyTokensChosen ? { chosen: I.replyTokensChosen, rejected: I.replyTokensRejected! } : undefined;
      const { loss, metrics } = dpoLoss(pc, pr, lm.tensor(I.refC!), lm.tensor(I.refR!), { beta: o.beta as number, lossType: o.lossType as DpoLossType, labelSmoothing: o.labelSmoothing as number }, replyTokens);
      lm.backward(loss);
      close([loss.item()], [c.loss!], `${c.name} loss`);
      close(grad(pc), c.grads!.pc!, `${c.name} d/dpc`);
      close(grad(pr), c.grads!.pr!, `${c.name} d/dpr`);
      for (const [k, v] of Object.entries(c.metrics!)) close([metrics[k]!], [v], `${c.name} ${k}`);
    } else if (c.kind === 'ppo') {
      const s = c.shape!;
      const logp = leaf(I.logp!, s), values = leaf(I.values!, s);
      const t = (k: string): Tensor => lm.tensor(I[k]!, s);
      const o = c.options as { clip: number; clipValue: number; vfCoef: number };
      const out = ppoLoss(logp, t('oldLogp'), t('adv'), values, t('oldValues'), t('returns'), t('mask'), o);
      lm.backward(out.loss);
      close([out.loss.item(), out.pg.item(), out.vf.item()], [c.loss!, c.pg!, c.vf!], `${c.name} loss, pg, vf`);
      close(grad(logp), c.grads!.logp!, `${c.name} d/dlogp`);
      close(grad(values), c.grads!.values!, `${c.name} d/dvalues`);
    } else if (c.kind === 'seqlogp') {
      const s = c.shape!;
      const logits = leaf(I.logits!, s);
      const seq = sequenceLogprobs(logits, lm.tensor(I.targets!, [s[0]!, s[1]!], 'int32'));
      lm.backward(lm.sum(lm.mul(seq, lm.tensor(I.weights!))));
      close(seq.toTypedArray(), c.seq!, `${c.name} values`);
      close(grad(logits), c.grads!.logits!, `${c.name} d/dlogits`);
    } else if (c.kind === 'head') {
      const s = c.shape!;
      const hidden = leaf(I.hidden!, s), w = leaf(I.weight!, [s[2]!, 1]), b = leaf(I.bias!);
      const scores = lm.reshape(lm.linear(gatherRows(hidden, I.last!), w, b), [s[0]!]);
      lm.backward(lm.sum(lm.mul(scores, lm.tensor(I.weights!))));
      close(scores.toTypedArray(), c.scores!, `${c.name} scores`);
      close(grad(hidden), c.grads!.hidden!, `${c.name} d/dhidden`);
      close(grad(w), c.grads!.weight!, `${c.name} d/dweight`);
      close(grad(b), c.grads!.bias!, `${c.name} d/dbias`);
    } else {
      const o = c.options as { gamma: number; lam: number };
      const r = gae(I.rewards!, I.values!, o.gamma, o.lam);
      close(r.advantages, c.advantages!, `${c.name} advantages`, 1e-12);
      close(r.returns, c.returns!, `${c.name} returns`, 1e-12);
    }
  });
}

for (const backend of ['reference', 'native'] as const) {
  for (const c of fixture.cases) {
    test(`align losses parity (${backend}): ${c.name} against PyTorch`, () => lm.withBackend(backend, () => check(c)));
  }
}

test('IPO trains on log-probabilities per reply token (TRL loss_type="ipo"): DpoTask divides by each reply\'s length', () => {
  const model = new GPT({ vocab_size: 11, block_size: 16, n_layer: 1, n_head: 2, n_embd: 8, bias: false }).eval();
  // Two pairs whose replies differ in length (1 to 7 tokens), so summing and averaging give different losses.
  const pairs = [
    { prompt: [1, 2, 3], chosen: [4, 5, 6, 7, 8, 9, 10], rejected: [4] },
    { prompt: [2, 2], chosen: [3, 1], rejected: [9, 8, 7, 6] },
  ];
  const refC = Float64Array.from([-15, -4]), refR = Float64Array.from([-2, -9]);
  const beta = 0.5;
  const task = new DpoTask(model, pairs, refC, refR, { batchSize: 2, maxReplyTokens: 8, seed: 1, beta, lossType: 'ipo', labelSmoothing: 0 });
  const batch = task.nextBatch();
  const loss = lm.tidy(() => task.loss(batch, { step: 0, micro: 0, seed: 0 }).loss.item());
  // By hand from the summed log-probabilities of an independent path (replyLogprobs) and the reply lengths.
  const seqs = (side: 'chosen' | 'rejected'): { ids: number[]; replyStart: number }[] => batch.idx.map((i) => fitSequence(pairs[i]!.prompt, pairs[i]![side], 16, 8));
  const [sc, sr] = [replyLogprobs(model, seqs('chosen'), 4), replyLogprobs(model, seqs('rejected'), 4)];
  const [nc, nr] = [seqs('chosen').map(replyTokenCount), seqs('rejected').map(replyTokenCount)];
  assert.deepEqual([...nc, ...nr].sort(), [1, 2, 4, 7].sort());
  const want = batch.idx.reduce((acc, i, j) => {
    const h = (sc[j]! / nc[j]! - sr[j]! / nr[j]!) - (refC[i]! / nc[j]! - refR[i]! / nr[j]!);
    return acc + (h - 1 / (2 * beta)) ** 2 / batch.idx.length;
  }, 0);
  assert.ok(Math.abs(loss - want) <= 1e-4 * Math.max(1, want), `IPO loss ${loss}, by hand ${want}`);
  const summed = batch.idx.reduce((acc, i, j) => acc + ((sc[j]! - sr[j]!) - (refC[i]! - refR[i]!) - 1 / (2 * beta)) ** 2 / batch.idx.length, 0);
  assert.ok(Math.abs(loss - summed) > 1e-2, 'the loss is not the summed-log-probability one');
  assert.throws(() => lm.tidy(() => dpoLoss(lm.tensor([1]), lm.tensor([0]), lm.tensor([0]), lm.tensor([0]), { beta, lossType: 'ipo', labelSmoothing: 0 })), /replyTokens/);
  model.dispose();
});
