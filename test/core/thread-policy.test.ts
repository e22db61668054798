// The thread policy (native/src/threads.h) may run any kernel on one thread while another process holds the cores:
// a model's loss and every gradient come out bit-identical whether the kernels run on the full team or in a solo
// spell (GEMM sums K blocks in order, row partials and attention's dQ partials follow the configured thread count).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import { loadAddon } from '../../src/core/native/addon.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { GPT } from '../../src/models/gpt.js';

function lossAndGrads(model: GPT, x: lm.Tensor, y: lm.Tensor): Float32Array[] {
  return lm.tidy(() => {
    const { loss } = model.forward(x, y, { seed: 3 });
    lm.backward(loss!);
    const out = [Float32Array.of(loss!.item()), ...model.parameters().map((p) => Float32Array.from(p.grad!.toTypedArray() as Float32Array))];
    for (const p of model.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
    return out;
  });
}

test('loss and gradients are bit-identical on the full team and in a one-thread spell', () => {
  loadNativeBackend();
  const addon = loadAddon();
  const rng = new lm.Rng(5);
  // Batch 8 × 64 × 128 wide: row partials (layernorm) and GEMMs run threaded; batch 1 with one head: attention's
  // few-heads backward (dQ partials per thread).
  for (const shape of [{ B: 8, T: 64, n_head: 4, n_embd: 128 }, { B: 1, T: 256, n_head: 1, n_embd: 64 }]) {
    const model = new GPT({ vocab_size: 97, block_size: shape.T, n_layer: 2, n_head: shape.n_head, n_embd: shape.n_embd, dropout: 0.1 }, 7);
    const ids = (): lm.Tensor => lm.keep(lm.tensor(Array.from({ length: shape.B * shape.T }, () => rng.int(97)), [shape.B, shape.T], 'int32'));
    const x = ids();
    const y = ids();
    // The full team for sure (adaptivity off), then a forced spell on one thread.
    const was = (addon.gemmAdaptiveThreads as (on: boolean) => boolean)(false);
    const team = lossAndGrads(model, x, y);
    (addon.gemmAdaptiveThreads as (on: boolean) => boolean)(true);
    addon.threadPolicySolo(60_000);
    try {
      assert.equal(addon.cpuInfo().soloNow, true);
      const solo = lossAndGrads(model, x, y);
      solo.forEach((g, i) => assert.deepEqual(g, team[i], `${JSON.stringify(shape)}: tensor ${i}`));
    } finally {
      addon.threadPolicySolo(0);
      (addon.gemmAdaptiveThreads as (on: boolean) => boolean)(was);
    }
    assert.equal(addon.cpuInfo().soloNow, false);
    x.dispose();
    y.dispose();
    model.dispose();
  }
});
