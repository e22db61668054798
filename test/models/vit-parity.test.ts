// ViT against golden fixtures from an independent PyTorch implementation in Hugging Face's layout
// (test/reference/vit_reference.py): the weights load through vit-io's HF-layout reader, then logits, loss and every
// gradient at step 0 (compared in HF's layout), and the losses of 5 AdamW steps; also the HF layout round trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { fromHFLayout, loadViT, saveViT, toHFLayout } from '../../src/models/vit-io.js';
import { VIT_DEFAULTS, ViTForImageClassification, type ViTConfig } from '../../src/models/vit.js';
import { loadStateDict, stateDict, type NamedArray } from '../../src/nn/state.js';
import { AdamW } from '../../src/optim/adamw.js';
import { assertClose } from '../core/harness.js';

interface Fixture {
  config: Partial<ViTConfig>;
  batch: number;
  images: number[];
  labels: number[];
  params: Record<string, { shape: number[]; data: number[] }>;
  logits: number[];
  loss: number;
  grads: Record<string, number[]>;
  adamw: { lr: number; betas: [number, number]; eps: number; weight_decay: number; steps: number };
  adamw_losses: number[];
}

const fixture = JSON.parse(readFileSync(fileURLToPath(new URL('../../../test/fixtures/vit-tiny.json', import.meta.url)), 'utf8')) as Fixture;
const config: ViTConfig = { ...VIT_DEFAULTS, ...fixture.config };
const LAYERS = 'vit.encoder.layer.';

function build(): ViTForImageClassification {
  const model = new ViTForImageClassification(config, 0);
  const entries = new Map<string, NamedArray>(Object.entries(fixture.params));
  loadStateDict(model, fromHFLayout(entries, LAYERS, config.n_embd, 'fixture'), 'fixture vit-tiny');
  return model;
}

function inputs(): { x: lm.Tensor; y: lm.Tensor } {
  const c = config;
  return { x: lm.tensor(fixture.images, [fixture.batch, c.num_channels, c.image_size, c.image_size]), y: lm.tensor(fixture.labels, [fixture.batch], 'int32') };
}

const backends: lm.BackendName[] = loadNativeBackend().loaded ? ['reference', 'native'] : ['reference'];

for (const backend of backends) {
  test(`ViT (${backend}): logits, loss and every gradient match PyTorch (HF layout) at step 0`, () => lm.withBackend(backend, () => {
    const model = build();
    lm.tidy(() => {
      const { x, y } = inputs();
      const { logits, loss } = model.forward(x, y);
      assertClose(logits.toArray(), fixture.logits, 1e-4, 1e-5, 'logits');
      assertClose([loss!.item()], [fixture.loss], 1e-5, 1e-6, 'loss');
      lm.backward(loss!);
    });
    // The gradients in HF's layout: the same mapping as the weights, applied to a module whose values are the grads.
    const grads = new ViTForImageClassification(config, 0);
    const gradEntries = new Map<string, NamedArray>(model.namedParameters().map(([n, p]) => [n, { shape: p.shape, data: p.grad!.toArray() }]));
    loadStateDict(grads, gradEntries, 'grads');
    const hf = new Map(toHFLayout(grads, LAYERS, 'vit.embeddings.patch_embeddings.', config.n_embd));
    assert.deepEqual([...hf.keys()].sort(), Object.keys(fixture.grads).sort());
    for (const [name, want] of Object.entries(fixture.grads)) assertClose([...hf.get(name)!.data], want, 2e-3, 2e-5, `grad ${name}`);
    grads.dispose();
    model.dispose();
  }));

  test(`ViT (${backend}): 5 AdamW steps follow PyTorch's losses`, () => lm.withBackend(backend, () => {
    const model = build();
    const o = fixture.adamw;
    const params = model.namedParameters();
    const opt = new AdamW(
      [{ params: params.filter(([, p]) => p.ndim >= 2), options: { weightDecay: o.weight_decay } }, { params: params.filter(([, p]) => p.ndim < 2), options: { weightDecay: 0 } }],
      { lr: o.lr, beta1: o.betas[0], beta2: o.betas[1], eps: o.eps },
    );
    const losses: number[] = [];
    for (let step = 0; step < o.steps; step++) {
      losses.push(lm.tidy(() => {
        const { x, y } = inputs();
        const { loss } = model.forward(x, y);
        lm.backward(loss!);
        return loss!.item();
      }));
      opt.step();
      opt.zeroGrad();
    }
    assertClose(losses, fixture.adamw_losses, 2e-4, 1e-5, 'AdamW losses');
    opt.dispose();
    model.dispose();
  }));
}

test('ViT: saveViT writes the HF layout that loadViT reads back exactly (weights, config, class names)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vit-io-'));
  try {
    const model = build();
    saveViT(dir, model, ['a', 'b', 'c'], { mean: [0.25, 0.5], std: [0.5, 0.25] });
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(cfg.model_type, 'vit');
    assert.equal(cfg.hidden_size, config.n_embd);
    const { model: back, classNames, normalization } = loadViT(dir);
    assert.deepEqual(classNames, ['a', 'b', 'c']);
    assert.deepEqual(normalization, { mean: [0.25, 0.5], std: [0.5, 0.25] });
    const a = stateDict(model), b = stateDict(back);
    for (const [n, t] of a) assert.deepEqual(Array.from(b.get(n)!.data), Array.from(t.data), n);
    model.dispose();
    back.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
