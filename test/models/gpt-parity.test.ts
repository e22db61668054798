// GPT against golden fixtures from an independent PyTorch implementation (test/reference/gpt_reference.py):
// logits, loss and every parameter gradient at step 0, then the losses of 10 AdamW steps with clipping.
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import { GPT, type GPTConfig } from '../../src/models/gpt.js';
import { loadStateDict, type NamedArray } from '../../src/nn/state.js';
import { AdamW } from '../../src/optim/adamw.js';
import { clipGradNorm } from '../../src/optim/clip.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { assertClose } from '../core/harness.js';

interface Fixture {
  config: GPTConfig;
  params: Record<string, { shape: number[]; data: number[] }>;
  batches: { idx: number[]; targets: number[]; shape: [number, number] }[];
  logits: number[];
  loss: number;
  grads: Record<string, number[]>;
  adamw: { lr: number; betas: [number, number]; eps: number; weight_decay: number; clip: number; steps: number };
  adamw_losses: number[];
}

function load(name: string): Fixture {
  const path = fileURLToPath(new URL(`../../../test/fixtures/gpt-${name}.json`, import.meta.url));
  return JSON.parse(readFileSync(path, 'utf8')) as Fixture;
}

function build(f: Fixture): GPT {
  const model = new GPT(f.config);
  loadStateDict(model, new Map<string, NamedArray>(Object.entries(f.params)), `fixture gpt ${JSON.stringify(f.config)}`);
  return model;
}

const backends: lm.BackendName[] = loadNativeBackend().loaded ? ['reference', 'native'] : ['reference'];

for (const backend of backends) for (const name of ['gpt2', 'gpt2-tanh', 'modern']) {
  test(`GPT ${name} (${backend}): logits, loss and all gradients match PyTorch at step 0`, () => lm.withBackend(backend, () => {
    const f = load(name);
    const model = build(f);
    lm.tidy(() => {
      const b = f.batches[0]!;
      const { logits, loss } = model.forward(lm.tensor(b.idx, b.shape, 'int32'), lm.tensor(b.targets, b.shape, 'int32'));
      assertClose(logits.toArray(), f.logits, 1e-4, 1e-5, `${name} logits`);
      assertClose([loss!.item()], [f.loss], 1e-5, 1e-6, `${name} loss`);
      lm.backward(loss!);
      for (const [pname, p] of model.namedParameters()) {
        const want = f.grads[pname];
        if (!want) throw new Error(`fixture has no gradient for ${pname}`);
        assertClose(p.grad!.toArray(), want, 2e-3, 2e-5, `${name} grad ${pname}`);
      }
    });
    model.dispose();
  }));

  test(`GPT ${name} (${backend}): 10 AdamW steps follow PyTorch's losses`, () => lm.withBackend(backend, () => {
    const f = load(name);
    const model = build(f);
    const o = f.adamw;
    const params = model.namedParameters();
    const opt = new AdamW(
      [{ params: params.filter(([, p]) => p.ndim >= 2), options: { weightDecay: o.weight_decay } }, { params: params.filter(([, p]) => p.ndim < 2), options: { weightDecay: 0 } }],
      { lr: o.lr, beta1: o.betas[0], beta2: o.betas[1], eps: o.eps },
    );
    const losses: number[] = [];
    for (let step = 0; step < o.steps; step++) {
      const b = f.batches[step % f.batches.length]!;
      losses.push(lm.tidy(() => {
        const { loss } = model.forward(lm.tensor(b.idx, b.shape, 'int32'), lm.tensor(b.targets, b.shape, 'int32'));
        lm.backward(loss!);
        return loss!.item();
      }));
      opt.step(clipGradNorm(opt.params, o.clip).scale);
      opt.zeroGrad();
    }
    assertClose(losses, f.adamw_losses, 2e-4, 1e-5, `${name} AdamW losses`);
    opt.dispose();
    model.dispose();
  }));
}
