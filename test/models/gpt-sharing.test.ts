// Parameter sharing (share_layers) and factorized embeddings (embedding_dim), ALBERT style: the analytic counts of
// models/gpt-cost.ts equal the built model's (stored and effective), a shared weight is one entry of the state dict
// and one optimizer parameter, its gradient is the sum over the layers that use it, the factorized shapes and tied
// head hold, and every option (with reversible blocks too) is causal and decodes through the KV cache exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as lm from '../../src/core/index.js';
import { GPT, type GPTConfig } from '../../src/models/gpt.js';
import { gptCost } from '../../src/models/gpt-cost.js';
import { loadGPT, saveGPT } from '../../src/models/gpt-io.js';
import { stateDict } from '../../src/nn/state.js';
import { estimateFlopsPerToken } from '../../src/train/metrics.js';
import { assertClose } from '../core/harness.js';

const V = 13;
const SEQ = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8];
const base: Partial<GPTConfig> = { vocab_size: V, block_size: 16, n_layer: 3, n_head: 2, n_embd: 8 };

const VARIANTS: [string, Partial<GPTConfig>][] = [
  ['unshared', {}],
  ['share all', { share_layers: 'all' }],
  ['share attention', { share_layers: 'attention' }],
  ['share ffn', { share_layers: 'ffn', mlp: 'swiglu', norm: 'rmsnorm' }],
  ['factorized E=4', { embedding_dim: 4 }],
  ['factorized, untied, no bias', { embedding_dim: 4, tie_embeddings: false, bias: false }],
  ['share all + factorized + RoPE', { share_layers: 'all', embedding_dim: 3, position: 'rope' }],
  ['reversible', { reversible: true }],
  ['reversible + share all', { reversible: true, share_layers: 'all', dropout: 0.1 }],
];

test('sharing: stored and effective parameter counts equal gpt-cost.ts and the built model', () => {
  for (const [label, extra] of VARIANTS) {
    const m = new GPT({ ...base, ...extra });
    const cost = gptCost(m.config);
    assert.equal(m.numParameters(), cost.stored, `${label}: stored`);
    assert.equal(m.numParametersEffective(), cost.effective, `${label}: effective`);
    assert.equal(cost.active, cost.effective, `${label}: dense models run every parameter`);
    m.dispose();
  }
  // A plain tied GPT: FLOPs per token equal nanoGPT's estimate (6N + 12·L·C·T, N counting the tied wte once).
  const g = new GPT({ vocab_size: 65, n_layer: 4, n_embd: 128, block_size: 64 });
  assert.equal(gptCost(g.config).flopsPerToken, estimateFlopsPerToken({ nParams: g.numParametersNonEmbedding(), nLayer: 4, nEmbd: 128, blockSize: 64 }));
  g.dispose();
  const shared = gptCost({ ...new GPT(base).config, share_layers: 'all' });
  const plain = gptCost(new GPT(base).config);
  assert.equal(shared.effective, plain.stored, 'sharing all leaves the effective size of the unshared model');
  assert.ok(shared.stored < plain.stored / 2, 'and stores about one layer of the three');
  // MoE keys (another family's): 4 experts, top-2, on layer 1 → stored/effective grow by 3 MLPs + router, active by 1 + router.
  const moe = gptCost({ ...new GPT(base).config, moe_experts: 4, moe_top_k: 2, moe_layers: '1', moe_expert_hidden: 0 } as GPTConfig);
  const mlp = 8 * 32 + 32 + 32 * 8 + 8;
  assert.equal(moe.effective - plain.effective, 3 * mlp + 8 * 4);
  assert.equal(moe.active - plain.active, mlp + 8 * 4);
});

test('sharing: one copy in the state dict and the optimizer; save/load round-trips', () => {
  const m = new GPT({ ...base, share_layers: 'ffn' });
  const names = [...stateDict(m).keys()];
  assert.ok(names.includes('transformer.h.0.mlp.c_fc.weight') && names.includes('transformer.h.2.attn.c_attn.weight'));
  assert.ok(!names.some((n) => /^transformer\.h\.[12]\.(mlp|ln_2)\./.test(n)), `no per-layer MLP copies: ${names.join(' ')}`);
  const trainable = m.namedTrainableParameters().map(([, p]) => p);
  assert.equal(new Set(trainable).size, trainable.length);
  assert.equal(trainable.reduce((n, p) => n + p.size, 0), m.numParameters());
  assert.equal(m.transformer.h.items[2]!.mlp, m.transformer.h.items[0]!.mlp);
  assert.notEqual(m.transformer.h.items[2]!.attn, m.transformer.h.items[0]!.attn, 'each layer keeps its own attention (cache slot)');
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-share-'));
  try {
    saveGPT(dir, m);
    const back = loadGPT(dir);
    assert.equal(back.config.share_layers, 'ffn');
    const idx = lm.tensor(SEQ.slice(0, 6), [1, 6], 'int32');
    lm.tidy(() => lm.noGrad(() => assertClose(back.eval().forward(idx).logits.toArray(), m.eval().forward(idx).logits.toArray(), 0, 0, 'logits after load')));
    back.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  m.dispose();
});

test('sharing: a shared weight gets the sum of the gradients of every layer that uses it', () => {
  const shared = new GPT({ ...base, share_layers: 'all' }, 7);
  const plain = new GPT(base, 7);
  // Give the unshared twin the shared model's weights in every layer.
  const weights = new Map(shared.namedParameters().map(([n, p]) => [n, p.toArray()]));
  for (const [n, p] of plain.namedParameters()) {
    const src = weights.get(n.replace(/^transformer\.h\.\d+\./, 'transformer.h.0.'))!;
    p.data.set(src, p.offset);
  }
  const grads = (m: GPT): Map<string, number[]> =>
    lm.tidy(() => {
      const idx = lm.tensor(SEQ.slice(0, 8), [1, 8], 'int32');
      lm.backward(m.forward(idx, lm.tensor(SEQ.slice(1, 9), [1, 8], 'int32')).loss!);
      return new Map(m.namedParameters().map(([n, p]) => [n, p.grad!.toArray()]));
    });
  const gs = grads(shared);
  const gp = grads(plain);
  for (const [n, g] of gs) {
    if (!n.startsWith('transformer.h.0.')) {
      assertClose(g, gp.get(n)!, 1e-5, 1e-6, n);
      continue;
    }
    const sum = g.map((_, i) => [0, 1, 2].reduce((s, l) => s + gp.get(n.replace('h.0.', `h.${l}.`))![i]!, 0));
    assertClose(g, sum, 1e-5, 1e-6, `${n} = Σ over layers`);
  }
  shared.dispose();
  plain.dispose();
});

test('factorized embedding: wte (V, E), projections E→C and C→E, head tied to wte; untied keeps lm_head (V, C)', () => {
  const m = new GPT({ ...base, embedding_dim: 4 });
  const shapes = new Map(m.namedParameters().map(([n, p]) => [n, [...p.shape]]));
  assert.deepEqual(shapes.get('transformer.wte.weight'), [V, 4]);
  assert.deepEqual(shapes.get('transformer.wte_proj.weight'), [4, 8]);
  assert.deepEqual(shapes.get('transformer.head_proj.weight'), [8, 4]);
  assert.equal(m.lmHead, null);
  lm.tidy(() => {
    const idx = lm.tensor(SEQ.slice(0, 5), [1, 5], 'int32');
    const out = m.forward(idx, idx);
    assert.deepEqual(out.logits.shape, [1, 5, V]);
    lm.backward(out.loss!);
    assert.ok(m.transformer.wte.weight.grad!.toArray().some((g) => g !== 0), 'wte learns through the input and the tied head');
  });
  const u = new GPT({ ...base, embedding_dim: 4, tie_embeddings: false });
  assert.equal(u.transformer.head_proj, null);
  assert.deepEqual(u.lmHead!.shape, [V, 8]);
  assert.throws(() => new GPT({ ...base, embedding_dim: 9 }), /embedding_dim = 9, expected an integer in \[0, n_embd = 8\]/);
  m.dispose();
  u.dispose();
});

for (const [label, extra] of VARIANTS) {
  test(`causality and KV-cache decoding (${label})`, () => {
    const m = new GPT({ ...base, ...extra }, 11).eval();
    lm.tidy(() =>
      lm.noGrad(() => {
        const full = m.forward(lm.tensor(SEQ, [1, SEQ.length], 'int32')).logits.toArray();
        const changed = [...SEQ];
        changed[6] = (changed[6]! + 5) % V;
        const after = m.forward(lm.tensor(changed, [1, SEQ.length], 'int32')).logits.toArray();
        assertClose(after.slice(0, 6 * V), full.slice(0, 6 * V), 0, 0, 'positions before the change');
        assert.ok(after.slice(6 * V).some((v, i) => v !== full[6 * V + i]), 'the change is seen from its position on');
        const cache = m.newCache(1);
        let t = 0;
        for (const n of [4, 1, 3]) {
          const got = m.forwardCachedLast(lm.tensor(SEQ.slice(t, t + n), [1, n], 'int32'), cache, n).toArray();
          assertClose(got, full.slice(t * V, (t + n) * V), 1e-4, 1e-5, `cached positions ${t}..${t + n}`);
          t += n;
        }
        cache.dispose();
      }),
    );
    m.dispose();
  });
}
