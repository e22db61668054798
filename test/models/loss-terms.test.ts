// The training loss terms of models/head-loss.ts: z-loss and label smoothing against torch's cross_entropy
// (label_smoothing=ε) and PaLM's λ·log²Z (test/fixtures/loss-terms.json, test/reference/loss_terms_reference.py), their
// gradients against central finite differences in float64, and GPT.forwardLoss carrying them as named aux losses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import type { Tensor } from '../../src/core/index.js';
import { Rng } from '../../src/core/random.js';
import { checkLossTerms, lossTermsAux, type LossTerms } from '../../src/models/head-loss.js';
import { GPT } from '../../src/models/gpt.js';

interface Case { N: number; V: number; label_smoothing: number; z_loss: number; logits: number[]; targets: number[]; ce: number; smoothed: number; z: number; total: number; grad: number[] }
const fixture = JSON.parse(readFileSync(fileURLToPath(new URL('../../../test/fixtures/loss-terms.json', import.meta.url)), 'utf8')) as { cases: Case[] };

/** CE + every aux term over float64 logits (N, V): the objective the loop differentiates. */
function objective(logits: Tensor, targets: Tensor, terms: LossTerms): { total: Tensor; aux: Record<string, Tensor>; ce: Tensor } {
  const ce = lm.crossEntropy(logits, targets, { ignoreIndex: -1 });
  const aux = lossTermsAux(logits, targets, terms, -1);
  let total = ce;
  for (const t of Object.values(aux)) total = lm.add(total, t);
  return { total, aux, ce };
}

test('z-loss and label smoothing match PyTorch (loss and gradient, float64)', () => {
  lm.withBackend('reference', () => {
    for (const c of fixture.cases) {
      lm.tidy(() => {
        const logits = lm.requireGrad(lm.tensor(Float64Array.from(c.logits), [c.N, c.V]));
        const targets = lm.tensor(Int32Array.from(c.targets), [c.N]);
        const { total, aux, ce } = objective(logits, targets, { zLoss: c.z_loss, labelSmoothing: c.label_smoothing });
        assert.ok(Math.abs(ce.item() - c.ce) < 1e-12, `CE ${ce.item()} vs torch ${c.ce}`);
        if (c.label_smoothing > 0) assert.ok(Math.abs(ce.item() + aux.label_smoothing!.item() - c.smoothed) < 1e-12, `smoothed ${ce.item() + aux.label_smoothing!.item()} vs torch ${c.smoothed}`);
        else assert.equal(aux.label_smoothing, undefined);
        assert.ok(Math.abs(aux.z_loss!.item() - c.z) < 1e-14 + 1e-12 * c.z, `z-loss ${aux.z_loss!.item()} vs ${c.z}`);
        assert.ok(Math.abs(total.item() - c.total) < 1e-12);
        lm.backward(total);
        const g = logits.grad!.toArray() as number[];
        g.forEach((v, i) => assert.ok(Math.abs(v - c.grad[i]!) < 1e-12, `grad[${i}] ${v} vs torch ${c.grad[i]}`));
      });
    }
  });
});

test('the terms\' gradients match central finite differences (float64)', () => {
  lm.withBackend('reference', () => {
    const rng = new Rng(3);
    const N = 5, V = 7;
    const x = Float64Array.from({ length: N * V }, () => 2 * rng.normal());
    const targets = lm.tensor(Int32Array.from([1, -1, 6, 0, 3]), [N]);
    for (const terms of [{ zLoss: 0.2, labelSmoothing: 0 }, { zLoss: 0, labelSmoothing: 0.25 }, { zLoss: 1e-4, labelSmoothing: 0.1 }]) {
      const f = (v: Float64Array): number => lm.tidy(() => objective(lm.tensor(v, [N, V]), targets, terms).total.item());
      const analytic = lm.tidy(() => {
        const logits = lm.requireGrad(lm.tensor(Float64Array.from(x), [N, V]));
        lm.backward(objective(logits, targets, terms).total);
        return logits.grad!.toArray() as number[];
      });
      const h = 1e-6;
      for (let i = 0; i < x.length; i++) {
        const p = Float64Array.from(x), m = Float64Array.from(x);
        p[i]! += h;
        m[i]! -= h;
        const numeric = (f(p) - f(m)) / (2 * h);
        assert.ok(Math.abs(numeric - analytic[i]!) < 1e-7, `${JSON.stringify(terms)} grad[${i}]: autograd ${analytic[i]} vs finite difference ${numeric}`);
      }
      // An ignored row gets no gradient from any term.
      for (let v = 0; v < V; v++) assert.equal(analytic[1 * V + v], 0);
    }
  });
});

test('GPT.forwardLoss adds z_loss and label_smoothing as aux in training (frozen head too), none at λ = ε = 0', () => {
  const model = new GPT({ vocab_size: 11, block_size: 8, n_layer: 1, n_head: 2, n_embd: 8 }, 5);
  lm.tidy(() => {
    const idx = lm.tensor(Int32Array.from({ length: 16 }, (_, i) => (i * 7) % 11), [2, 8]);
    const tgt = lm.tensor(Int32Array.from({ length: 16 }, (_, i) => (i * 3 + 1) % 11), [2, 8]);
    const plain = model.forwardLoss(idx, tgt);
    assert.deepEqual(Object.keys(plain.aux), []);
    const off = model.forwardLoss(idx, tgt, { terms: { zLoss: 0, labelSmoothing: 0 } });
    assert.deepEqual(Object.keys(off.aux), []);
    const on = model.forwardLoss(idx, tgt, { terms: { zLoss: 1e-4, labelSmoothing: 0.1 } });
    assert.deepEqual(Object.keys(on.aux).sort(), ['label_smoothing', 'z_loss']);
    assert.equal(on.loss.item(), plain.loss.item()); // the reported loss stays the plain cross-entropy
    assert.ok(on.aux.z_loss!.item() > 0);
    // A frozen head (LoRA-style) still gets the terms.
    for (const p of model.parameters()) p.requiresGrad = false;
    model.transformer.ln_f.parameters().forEach((p) => (p.requiresGrad = true));
    const frozen = model.forwardLoss(idx, tgt, { terms: { zLoss: 1e-4, labelSmoothing: 0.1 } });
    assert.ok(Math.abs(frozen.aux.label_smoothing!.item() - on.aux.label_smoothing!.item()) < 1e-6);
  });
  model.dispose();
});

test('bad loss terms are refused naming the key', () => {
  assert.throws(() => checkLossTerms({ zLoss: -1, labelSmoothing: 0 }), /loss\.z_loss/);
  assert.throws(() => checkLossTerms({ zLoss: 0, labelSmoothing: 1 }), /loss\.label_smoothing/);
});
