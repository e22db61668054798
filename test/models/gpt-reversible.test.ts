// Reversible GPT blocks (reversible: true): the recomputing backward gives the gradients of its stored-activation
// twin (same weights, same dropout masks), the activation memory a step keeps is flat in depth while the standard
// stack's grows, and every option stays causal. Not the coupling's math in isolation (src/nn/reversible.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import { GPT, type GPTConfig } from '../../src/models/gpt.js';

const V = 11;
const B = 2;
const T = 7;

function batch(): { idx: lm.Tensor; targets: lm.Tensor } {
  const rng = new lm.Rng(5);
  const ids = (): number[] => Array.from({ length: B * T }, () => Math.floor(rng.uniform() * V));
  return { idx: lm.tensor(ids(), [B, T], 'int32'), targets: lm.tensor(ids(), [B, T], 'int32') };
}

/** Loss and every parameter's gradient after one forward/backward. */
function gradients(m: GPT, storeActivations: boolean): { loss: number; grads: Map<string, number[]> } {
  for (const [, p] of m.namedParameters()) {
    p.grad?.dispose();
    p.grad = null;
  }
  return lm.tidy(() => {
    const { idx, targets } = batch();
    const out = m.forward(idx, targets, { seed: 42, storeActivations });
    lm.backward(out.loss!);
    const grads = new Map(m.namedParameters().map(([n, p]) => [n, p.grad ? p.grad.toArray() : []]));
    return { loss: out.loss!.item(), grads };
  });
}

for (const [label, extra] of [
  ['3 layers', {}],
  ['4 layers, dropout 0.2, RoPE, RMSNorm, SwiGLU', { n_layer: 4, dropout: 0.2, position: 'rope', norm: 'rmsnorm', mlp: 'swiglu' }],
  ['shared layers and a factorized embedding', { share_layers: 'all', embedding_dim: 4 }],
] as [string, Partial<GPTConfig>][]) {
  test(`reversible: recomputed gradients equal the stored twin's within 1e-5 (${label})`, () => {
    const m = new GPT({ vocab_size: V, block_size: 8, n_layer: 3, n_head: 2, n_embd: 8, reversible: true, ...extra }, 3);
    const twin = gradients(m, true);
    const rev = gradients(m, false);
    assert.equal(rev.loss, twin.loss);
    let worst = 0;
    for (const [name, g] of twin.grads) {
      const r = rev.grads.get(name)!;
      assert.equal(r.length, g.length, `${name} has a gradient in both`);
      assert.ok(g.length > 0, `${name} has a gradient`);
      for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(r[i]! - g[i]!));
    }
    assert.ok(worst < 1e-5, `largest gradient difference ${worst}`);
    m.dispose();
  });
}

/** Live bytes a training forward keeps for its backward (measured before backward). */
function activationBytes(nLayer: number, reversible: boolean): number {
  const m = new GPT({ vocab_size: V, block_size: 32, n_layer: nLayer, n_head: 2, n_embd: 32, reversible }, 1);
  const bytes = lm.tidy(() => {
    const rng = new lm.Rng(2);
    const ids = Array.from({ length: 4 * 32 }, () => Math.floor(rng.uniform() * V));
    const idx = lm.tensor(ids, [4, 32], 'int32');
    const before = lm.memory.liveBytes;
    const out = m.forward(idx, idx);
    const kept = lm.memory.liveBytes - before;
    lm.backward(out.loss!);
    return kept;
  });
  m.dispose();
  return bytes;
}

test('reversible: the activation memory of a training forward is flat in depth; the standard stack grows with it', () => {
  const std2 = activationBytes(2, false);
  const std8 = activationBytes(8, false);
  const rev2 = activationBytes(2, true);
  const rev8 = activationBytes(8, true);
  console.log(`activation bytes, 2 → 8 layers: standard ${std2} → ${std8}, reversible ${rev2} → ${rev8}`);
  assert.ok(std8 > 3 * std2 * 0.9, `standard grows with depth (${std2} → ${std8})`);
  assert.equal(rev8, rev2, `reversible stays flat (${rev2} → ${rev8})`);
  assert.ok(rev8 < std2, `reversible at 8 layers (${rev8}) keeps less than the standard stack at 2 (${std2})`);
});
