// RAG marginalisation: RAG-Sequence and RAG-Token log-likelihoods equal the sums written out in probability space,
// both reduce to the plain LM with one passage, and the two decoders pick what brute force over a toy LM picks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import { loadGPT } from '../../src/models/gpt-io.js';
import { GPT } from '../../src/models/gpt.js';
import { gptReader, marginalLikelihoodLoss, passagePrior, ragSequenceGenerate, readerAnswerLogprobs, ragSequenceLogprob, ragTokenGenerate, ragTokenLogprob, tokenLogprobs, type ReaderLM } from '../../src/retrieval/rag.js';
import { mulberry32 } from '../../src/util/mulberry32.js';

const V = 6;
/** A toy LM: next-token distribution from a hash of (first token = passage marker, last token). */
function toyLM(seed: number): ReaderLM {
  const table = new Map<string, Float32Array>();
  return {
    nextLogprobs(prefix) {
      const key = `${prefix[0]}:${prefix[prefix.length - 1]}:${prefix.length % 2}`;
      let lp = table.get(key);
      if (!lp) {
        const r = mulberry32(seed + key.split('').reduce((h, c) => h * 31 + c.charCodeAt(0), 7));
        const logits = Array.from({ length: V }, () => 3 * r());
        const lse = Math.log(logits.reduce((s, x) => s + Math.exp(x), 0));
        lp = Float32Array.from(logits, (x) => x - lse);
        table.set(key, lp);
      }
      return lp;
    },
  };
}

test('RAG-Sequence and RAG-Token log-likelihoods are the marginals written out', () => {
  const lm = toyLM(3);
  const prompts = [[0, 5, 1], [1, 2], [2, 4, 4, 3]];
  const logPz = passagePrior([2.0, 0.5, 1.0], 0.7);
  assert.ok(Math.abs(logPz.reduce((s, x) => s + Math.exp(x), 0) - 1) < 1e-12);
  const y = [3, 1, 4];
  const per = prompts.map((p) => tokenLogprobs(lm, p, y));
  const pz = logPz.map(Math.exp);
  const seq = Math.log(pz.reduce((s, w, z) => s + w * Math.exp(per[z]!.reduce((a, b) => a + b, 0)), 0));
  let tok = 0;
  for (let t = 0; t < y.length; t++) tok += Math.log(pz.reduce((s, w, z) => s + w * Math.exp(per[z]![t]!), 0));
  assert.ok(Math.abs(ragSequenceLogprob(logPz, per) - seq) < 1e-9);
  assert.ok(Math.abs(ragTokenLogprob(logPz, per) - tok) < 1e-9);
  // One passage: both are the LM's own log-likelihood.
  const one = [tokenLogprobs(lm, prompts[0]!, y)];
  const plain = one[0]!.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(ragSequenceLogprob([0], one) - plain) < 1e-9);
  assert.ok(Math.abs(ragTokenLogprob([0], one) - plain) < 1e-9);
});

test('RAG decoders match brute force on a toy LM', () => {
  const lm = toyLM(11);
  const prompts = [[0, 1], [1, 3], [2, 2]];
  const logPz = passagePrior([1.0, 2.0, 0.0]);
  const o = { maxTokens: 4, stop: [5] };
  // RAG-Token: the argmax of the mixture at each step.
  const out: number[] = [];
  for (let t = 0; t < o.maxTokens; t++) {
    let best = -1;
    let bestP = -1;
    for (let v = 0; v < V; v++) {
      const p = prompts.reduce((s, pr, z) => s + Math.exp(logPz[z]!) * Math.exp(lm.nextLogprobs([...pr, ...out])[v]!), 0);
      if (p > bestP) [best, bestP] = [v, p];
    }
    if (best === 5) break;
    out.push(best);
  }
  assert.deepEqual(ragTokenGenerate(lm, prompts, logPz, o), out);
  // RAG-Sequence: the candidate (greedy under some passage) with the largest marginal.
  const r = ragSequenceGenerate(lm, prompts, logPz, o);
  assert.ok(Number.isFinite(r.logprob));
  const again = ragSequenceLogprob(logPz, prompts.map((p) => tokenLogprobs(lm, p, r.tokens)));
  assert.ok(Math.abs(again - r.logprob) < 1e-9);
  for (const p of prompts) {
    const cand: number[] = [];
    for (let t = 0; t < o.maxTokens; t++) {
      const d = lm.nextLogprobs([...p, ...cand]);
      const y = d.indexOf(Math.max(...d));
      if (y === 5) break;
      cand.push(y);
    }
    assert.ok(ragSequenceLogprob(logPz, prompts.map((q) => tokenLogprobs(lm, q, cand))) <= r.logprob + 1e-12);
  }
});

test('gptReader: next-token log-probabilities of a GPT (the eval fixture model) from a full forward pass', () => {
  const model = loadGPT(fileURLToPath(new URL('../../../test/fixtures/eval/model', import.meta.url)));
  const reader = gptReader(model);
  const ids = [5, 17, 42, 8, 99, 3];
  const full = lm.tidy(() => model.forward(lm.tensor(ids, [1, ids.length], 'int32')).logits.toArray()); // (1, T, V)
  const V = full.length / ids.length;
  for (const t of [1, 3, 6]) {
    const got = reader.nextLogprobs(ids.slice(0, t));
    const row = full.slice((t - 1) * V, t * V);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
    for (const v of [0, 7, V - 1]) assert.ok(Math.abs(got[v]! - (row[v]! - lse)) < 1e-4, `t=${t} v=${v}`);
    assert.ok(Math.abs(got.reduce((s, x) => s + Math.exp(x), 0) - 1) < 1e-4);
  }
});

test('REALM marginal likelihood: the loss is −log Σ_z p(z|x) p(y|x,z); gradients reach the retriever scores and the reader', () => {
  const model = new GPT({ vocab_size: 11, n_layer: 1, n_head: 2, n_embd: 8, block_size: 16, position: 'rope' }, 7);
  const rows = [[1, 2, 3, 9, 4], [5, 6, 9, 4], [7, 8, 8, 2, 9, 4]];
  const starts = [3, 2, 4];
  const answers = rows.map((r, z) => r.slice(starts[z]));
  // The per-passage answer log-probabilities equal token-by-token scoring with the one-position reader.
  const reader = gptReader(model);
  const expected = rows.map((r, z) => tokenLogprobs(reader, r.slice(0, starts[z]), answers[z]!).reduce((a, b) => a + b, 0));
  const got = lm.tidy(() => readerAnswerLogprobs(model, rows, starts).toArray());
  got.forEach((g, z) => assert.ok(Math.abs(g - expected[z]!) < 1e-4, `${g} vs ${expected[z]}`));

  const tau = 0.5;
  const s0 = [0.3, -0.2, 0.9];
  const scores = lm.keep(lm.requireGrad(lm.tensor(s0, [3])));
  const { loss, gScores, gReader } = lm.tidy(() => {
    const l = marginalLikelihoodLoss(scores, readerAnswerLogprobs(model, rows, starts), tau);
    lm.backward(l);
    const w = model.namedTrainableParameters().find(([n]) => n.endsWith('attn.c_attn.weight'))![1];
    return { loss: l.item(), gScores: scores.grad!.toArray(), gReader: w.grad!.toArray().reduce((a, b) => a + Math.abs(b), 0) };
  });
  const prior = passagePrior(s0, tau).map(Math.exp);
  const joint = prior.map((p, z) => p * Math.exp(expected[z]!));
  const py = joint.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(loss + Math.log(py)) < 1e-4, `${loss} vs ${-Math.log(py)}`);
  // ∂loss/∂s_z = (p(z|x) − p(z|x,y)) / τ.
  gScores.forEach((g, z) => assert.ok(Math.abs(g - (prior[z]! - joint[z]! / py) / tau) < 1e-4, `${g}`));
  assert.ok(gReader > 0, 'the reader gets a gradient');
  assert.throws(() => marginalLikelihoodLoss(scores, lm.tensor([0, 0], [2])), /two \(K\) tensors/);
  scores.dispose();
  model.dispose();
});

test('REALM marginal likelihood: a few gradient steps on retriever scores and reader raise p(y|x)', () => {
  const model = new GPT({ vocab_size: 11, n_layer: 1, n_head: 2, n_embd: 8, block_size: 16 }, 3);
  const rows = [[1, 2, 3, 9, 4], [5, 6, 9, 4]];
  const starts = [3, 2];
  const scores = lm.keep(lm.requireGrad(lm.tensor([0, 0], [2])));
  const params = [scores, ...model.namedTrainableParameters().map(([, p]) => p)];
  const losses: number[] = [];
  for (let step = 0; step < 8; step++) {
    losses.push(lm.tidy(() => {
      const l = marginalLikelihoodLoss(scores, readerAnswerLogprobs(model, rows, starts));
      lm.backward(l);
      return l.item();
    }));
    lm.noGrad(() => {
      for (const p of params) {
        const d = p.data as Float32Array;
        const g = p.grad!.toArray();
        for (let i = 0; i < d.length; i++) d[i] = d[i]! - 0.5 * g[i]!;
        p.grad!.dispose();
        p.grad = null;
      }
    });
  }
  assert.ok(losses[losses.length - 1]! < losses[0]! - 0.5, losses.join(', '));
  scores.dispose();
  model.dispose();
});
