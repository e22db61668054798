// What QLoRA's memory cuts must not change: the blocked head cross-entropy (models/head-loss.ts) gives the loss and
// hidden-state gradient of crossEntropy over the whole logits (float and quantized heads, ignored targets, ragged last
// block); GPT.forwardLoss gives forward's loss and every adapter gradient, training and in evaluation; and LoRA's
// in-place update y + s·d·Bᵀ gives the gradients of the plain composition (float and 4-bit bases).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import type { Tensor } from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { GPT } from '../../src/models/gpt.js';
import { blockedHeadCrossEntropy, headBlockRows } from '../../src/models/head-loss.js';
import { quantizeRTN } from '../../src/models/quantize.js';
import { Linear } from '../../src/nn/layers.js';
import { applyLoRA, LoRALinear } from '../../src/nn/lora.js';
import { QuantizedLinear } from '../../src/nn/quantized.js';

loadNativeBackend();

function close(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: lengths`);
  let err = 0, norm = 0;
  for (let i = 0; i < want.length; i++) { err = Math.max(err, Math.abs(got[i]! - want[i]!)); norm = Math.max(norm, Math.abs(want[i]!)); }
  assert.ok(err <= tol * Math.max(norm, 1e-30), `${what}: max error ${err} of ${norm}`);
}

test('headBlockRows splits rows evenly into blocks of at most ~4 M logits, and at least 128 rows', () => {
  assert.equal(headBlockRows(256, 50304), 128); // 83 rows by the logits cap, 128 by the floor → 2 blocks
  assert.equal(headBlockRows(300, 50304), 100); // 3 even blocks
  assert.equal(headBlockRows(7, 50304), 7);
  assert.equal(headBlockRows(1000, 1000), 1000); // a small vocabulary: up to 4194 rows a block
  assert.equal(headBlockRows(10000, 1000), 3334);
});

test('blocked head cross-entropy: loss and dh equal crossEntropy over the whole logits (float and 4-bit heads, ignored targets)', () => {
  const rng = new lm.Rng(3);
  const [B, T, C, V] = [2, 7, 64, 37];
  const wv = Array.from({ length: V * C }, () => rng.normal() * 0.3);
  const W = lm.tensor(wv, [V, C]);
  const qw = quantizeRTN(wv, V, C, 4, 32);
  const heads: [string, (h: Tensor) => Tensor][] = [['float', (h) => lm.matmul(h, lm.transpose(W))], ['4-bit', (h) => lm.quantLinear(h, qw, null)]];
  const tv = Array.from({ length: B * T }, (_, i) => (i % 5 === 3 ? -1 : rng.int(V)));
  for (const [name, head] of heads) {
    for (const blockRows of [1, 3, 5, 100]) {
      const hv = Array.from({ length: B * T * C }, () => rng.normal());
      const run = (blocked: boolean): { loss: number; dh: Float32Array } => lm.tidy(() => {
        const h = lm.requireGrad(lm.tensor(hv, [B, T, C]));
        const t = lm.tensor(tv, [B, T], 'int32');
        const loss = blocked ? blockedHeadCrossEntropy(head, h, t, { V, ignoreIndex: -1, blockRows }) : lm.crossEntropy(head(h), t, { ignoreIndex: -1 });
        lm.backward(lm.mul(loss, 2.5)); // an upstream factor, as gradient accumulation applies
        const out = { loss: loss.item(), dh: Float32Array.from(h.grad!.toTypedArray() as Float32Array) };
        h.grad!.dispose();
        return out;
      });
      const want = run(false);
      const got = run(true);
      assert.ok(Math.abs(got.loss - want.loss) <= 1e-6 * want.loss, `${name} head, blocks of ${blockRows}: loss ${got.loss} vs ${want.loss}`);
      close(got.dh, want.dh, 1e-5, `${name} head, blocks of ${blockRows}: dh`);
      // Without gradients the loss alone, the same.
      const evalLoss = lm.tidy(() => lm.noGrad(() => blockedHeadCrossEntropy(head, lm.tensor(hv, [B, T, C]), lm.tensor(tv, [B, T], 'int32'), { V, ignoreIndex: -1, blockRows }).item()));
      assert.ok(Math.abs(evalLoss - want.loss) <= 1e-6 * want.loss);
    }
  }
  W.dispose();
});

test('GPT.forwardLoss with LoRA (frozen head): the loss and every adapter gradient of forward; evaluation the same; a trainable head takes forward\'s path', () => {
  const shape = { vocab_size: 50, block_size: 8, n_layer: 2, n_head: 2, n_embd: 32, bias: true };
  const model = new GPT(shape, 5);
  applyLoRA(model, { r: 4, alpha: 8, dropout: 0, targetModules: ['c_attn', 'c_proj', 'c_fc'], seed: 2 });
  // Non-zero B, so that the adapters move the logits and get gradients through every path.
  for (const [name, p] of model.namedParameters()) if (name.endsWith('lora_B.weight')) p.data.set(Array.from({ length: p.size }, (_, i) => Math.sin(i + name.length) * 0.1));
  const rng = new lm.Rng(9);
  const x = lm.tensor(Array.from({ length: 16 }, () => rng.int(50)), [2, 8], 'int32');
  const y = lm.tensor(Array.from({ length: 16 }, (_, i) => (i === 4 ? -1 : rng.int(50))), [2, 8], 'int32');
  const grads = (useLoss: boolean): { loss: number; g: Map<string, Float32Array> } => {
    const loss = lm.tidy(() => {
      const l = useLoss ? model.forwardLoss(x, y).loss : model.forward(x, y).loss!;
      lm.backward(l);
      return l.item();
    });
    const g = new Map<string, Float32Array>();
    for (const [name, p] of model.namedTrainableParameters()) {
      g.set(name, Float32Array.from(p.grad!.toTypedArray() as Float32Array));
      p.grad!.dispose();
      p.grad = null;
    }
    return { loss, g };
  };
  const want = grads(false);
  const got = grads(true);
  assert.ok(Math.abs(got.loss - want.loss) <= 1e-6 * want.loss, `loss ${got.loss} vs ${want.loss}`);
  assert.equal(got.g.size, 16); // 2 layers × (c_attn, attn.c_proj, c_fc, mlp.c_proj) × (A, B)
  for (const [name, w] of want.g) close(got.g.get(name)!, w, 1e-4, name);
  model.eval();
  const ev = lm.tidy(() => lm.noGrad(() => [model.forwardLoss(x, y).loss.item(), model.forward(x, y).loss!.item()]));
  assert.ok(Math.abs(ev[0]! - ev[1]!) <= 1e-6 * ev[1]!);
  // A full fine-tune trains the tied table: forwardLoss then is forward's loss, gradients included.
  const full = new GPT(shape, 5);
  lm.tidy(() => lm.backward(full.forwardLoss(x, y).loss));
  assert.ok(full.transformer.wte.weight.grad !== null, 'the tied head gets its gradient');
  model.dispose();
  full.dispose();
});

test('LoRA\'s in-place update gives the gradients of base(x) + s·(x·Aᵀ)·Bᵀ (float and 4-bit bases)', () => {
  const rng = new lm.Rng(4);
  const [M, K, N] = [6, 64, 24];
  const wv = Array.from({ length: K * N }, () => rng.normal() * 0.2);
  const bases: [string, () => Linear | QuantizedLinear][] = [
    ['float', () => { const l = new Linear(K, N, { bias: true, rng, std: 0.02 }); l.weight.data.set(wv); return l; }],
    ['4-bit', () => new QuantizedLinear(quantizeRTN(wv, N, K, 4, 32), lm.tensor(Array.from({ length: N }, (_, i) => i / N), [N]))],
  ];
  for (const [name, make] of bases) {
    const layer = new LoRALinear(make(), { r: 3, alpha: 6, dropout: 0 }, new lm.Rng(1), 'l');
    layer.loraB.data.set(Array.from({ length: N * 3 }, (_, i) => Math.cos(i) * 0.3));
    const xv = Array.from({ length: 2 * M * K }, () => rng.normal());
    const gv = lm.tensor(Array.from({ length: 2 * M * N }, () => rng.normal()), [2, M, N]);
    const run = (plain: boolean): Float32Array[] => lm.tidy(() => {
      const xx = lm.requireGrad(lm.tensor(xv, [2, M, K]));
      const out = plain
        ? lm.add(layer.base_layer.forward(xx), lm.mul(lm.matmul(lm.matmul(xx, lm.transpose(layer.loraA)), lm.transpose(layer.loraB)), layer.scaling))
        : layer.forward(xx);
      lm.backward(out, gv);
      const r = [Float32Array.from(out.toTypedArray() as Float32Array), ...[xx, layer.loraA, layer.loraB].map((t) => Float32Array.from(t.grad!.toTypedArray() as Float32Array))];
      for (const t of [xx, layer.loraA, layer.loraB]) { t.grad!.dispose(); t.grad = null; }
      return r;
    });
    const want = run(true);
    const got = run(false);
    ['y', 'dx', 'dA', 'dB'].forEach((what, i) => close(got[i]!, want[i]!, 1e-5, `${name} base: ${what}`));
    layer.dispose();
    gv.dispose();
  }
});
