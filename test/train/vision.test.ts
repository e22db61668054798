// The image tasks end to end on a small synthetic IDX directory: `lmforge train`'s classification run resumed from
// its checkpoint reproduces the uninterrupted run's losses exactly; CLIP and caption runs train, save and evaluate
// through `lmforge eval`'s functions; a ViT classifier feeds the decoder's frozen image tower.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Rng } from '../../src/core/random.js';
import { loadCLIP } from '../../src/models/clip-io.js';
import { loadViT } from '../../src/models/vit-io.js';
import { stateDict } from '../../src/nn/state.js';
import { readMetrics } from '../../src/train/metrics.js';
import { visionTrainSpec, type VisionTrainConfig } from '../../src/train/vision-config.js';
import { evaluateImageTask } from '../../src/train/vision-eval.js';
import { trainVision } from '../../src/train/vision-trainer.js';
import { defaultsOf } from '../../src/util/config.js';

/** An IDX directory of n train and m test 8×8 images whose label is which quadrant is bright (learnable). */
function writeData(dir: string, n: number, m: number): void {
  const rng = new Rng(11);
  const write = (prefix: string, count: number): void => {
    const head = Buffer.alloc(16);
    head.writeUInt32BE(0x803, 0);
    [count, 8, 8].forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
    const px = Buffer.alloc(count * 64);
    const labels = Buffer.alloc(count);
    for (let i = 0; i < count; i++) {
      const q = rng.int(4);
      labels[i] = q;
      for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) {
        const inside = (y < 4) === (q < 2) && (x < 4) === (q % 2 === 0);
        px[i * 64 + y * 8 + x] = inside ? 150 + rng.int(100) : rng.int(40);
      }
    }
    const lh = Buffer.alloc(8);
    lh.writeUInt32BE(0x801, 0);
    lh.writeUInt32BE(count, 4);
    writeFileSync(join(dir, `${prefix}-images-idx3-ubyte.gz`), gzipSync(Buffer.concat([head, px])));
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte`), Buffer.concat([lh, labels]));
  };
  write('train', n);
  write('t10k', m);
}

function config(data: string, out: string, over: Partial<VisionTrainConfig> = {}): VisionTrainConfig {
  const d = defaultsOf(visionTrainSpec);
  return {
    ...d, out_dir: out, max_iters: 6, eval_interval: 3, log_interval: 1, checkpoint_interval: 3, ...over,
    data: { ...d.data, dir: data, batch_size: 8, val_size: 16, eval_images: 16, eval_batch_size: 16, ...over.data },
    model: { ...d.model, image_size: 8, patch_size: 4, n_layer: 1, n_head: 2, n_embd: 16, num_labels: 10, ...over.model },
    clip: { ...d.clip, embed_dim: 8, text_width: 16, text_layers: 1, text_heads: 2, context_length: 40, ...over.clip },
    decoder: { ...d.decoder, n_layer: 1, n_head: 2, n_embd: 16, ...over.decoder },
    optim: { ...d.optim, lr: 3e-3, warmup_iters: 1, lr_decay_iters: 6 },
  };
}

const quiet = { log: (): void => undefined };

test('vision train: a classification run resumed from its step-3 checkpoint reproduces the uninterrupted losses; eval reads the model', () => {
  const root = mkdtempSync(join(tmpdir(), 'vision-'));
  try {
    writeData(root, 64, 24);
    const full = trainVision(config(root, join(root, 'a')), quiet);
    assert.equal(full.steps, 6);
    assert.ok(full.eval.test_accuracy !== undefined);
    // What the run cost: this invocation's CPU seconds (it trained, so more than nothing) and the load average.
    assert.ok(full.usage.cpu_s > 0 && Number.isFinite(full.usage.load_average) && full.usage.cpu.length > 0, JSON.stringify(full.usage));
    trainVision(config(root, join(root, 'b'), { max_iters: 3 }), quiet);
    trainVision(config(root, join(root, 'b')), { ...quiet, resume: true });
    const losses = (dir: string): number[] => readMetrics(join(root, dir, 'metrics.jsonl')).filter((r) => typeof r.loss === 'number').map((r) => r.loss as number);
    assert.deepEqual(losses('b'), losses('a'));
    assert.ok(existsSync(join(root, 'a', 'preprocessor_config.json')));
    const r = evaluateImageTask('image-accuracy', join(root, 'a'), root);
    assert.equal(r.n, 24);
    assert.equal(r.metrics.accuracy, full.eval.test_accuracy);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('vision train: CLIP and both decoder variants (from the ViT run, frozen) train, save and evaluate', () => {
  const root = mkdtempSync(join(tmpdir(), 'vision-'));
  try {
    writeData(root, 48, 16);
    const clip = trainVision(config(root, join(root, 'clip'), { max_iters: 2, task: { kind: 'clip' } }), quiet);
    assert.ok(clip.eval.test_zero_shot !== undefined && clip.eval.test_linear_probe !== undefined);
    assert.ok(evaluateImageTask('zero-shot', join(root, 'clip'), root).metrics.zero_shot_accuracy! >= 0);
    trainVision(config(root, join(root, 'vit'), { max_iters: 2 }), quiet);
    for (const variant of ['cross', 'prefix'] as const) {
      const out = join(root, variant);
      const r = trainVision(config(root, out, { max_iters: 2, task: { kind: 'caption' }, decoder: { ...defaultsOf(visionTrainSpec).decoder, n_layer: 1, n_head: 2, n_embd: 16, variant, vision_from: join(root, 'vit') } }), quiet);
      assert.ok(r.eval.test_caption_accuracy !== undefined && r.eval.test_what_accuracy !== undefined);
      const e = evaluateImageTask('vqa', out, root, { limit: 8 });
      assert.deepEqual(Object.keys(e.metrics).sort(), ['size_accuracy', 'tone_accuracy', 'what_accuracy']);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('vision train: CLIP over a ViT run with clip.lock_image (LiT) keeps the tower bit for bit and trains the rest; bad settings are named', () => {
  const root = mkdtempSync(join(tmpdir(), 'vision-'));
  try {
    writeData(root, 48, 16);
    trainVision(config(root, join(root, 'vit'), { max_iters: 2 }), quiet);
    const clipOf = (over: Partial<VisionTrainConfig['clip']>): Partial<VisionTrainConfig> => ({ max_iters: 3, task: { kind: 'clip' }, clip: { ...defaultsOf(visionTrainSpec).clip, ...over } });
    trainVision(config(root, join(root, 'lit'), clipOf({ image_init: join(root, 'vit'), lock_image: true })), quiet);
    trainVision(config(root, join(root, 'scratch'), clipOf({})), quiet);
    const vit = loadViT(join(root, 'vit')).model;
    const lit = loadCLIP(join(root, 'lit')).model;
    const scratch = loadCLIP(join(root, 'scratch')).model;
    const tower = new Map([...stateDict(vit)].filter(([n]) => n.startsWith('vit.')).map(([n, a]) => [n.slice(4), Array.from(a.data)]));
    const litState = new Map([...stateDict(lit)].map(([n, a]) => [n, Array.from(a.data)]));
    const scratchState = new Map([...stateDict(scratch)].map(([n, a]) => [n, Array.from(a.data)]));
    assert.ok(tower.size > 0);
    for (const [n, w] of tower) assert.deepEqual(litState.get(`vision_model.${n}`), w, `vision_model.${n} moved under lock_image`);
    // The text tower and projections trained (they differ from a same-seed run's only through training).
    assert.notDeepEqual(litState.get('text_projection.weight'), scratchState.get('text_projection.weight'));
    assert.notDeepEqual(litState.get('logit_scale'), [Math.log(1 / 0.07)]);
    for (const m of [vit, lit, scratch]) m.dispose();
    assert.throws(() => trainVision(config(root, join(root, 'x'), clipOf({ lock_image: true })), quiet), /clip.lock_image: true needs clip.image_init/);
    assert.throws(() => trainVision(config(root, join(root, 'y'), { ...clipOf({ image_init: join(root, 'vit') }), model: { ...defaultsOf(visionTrainSpec).model, image_size: 8, patch_size: 4, n_layer: 2, n_head: 2, n_embd: 16, num_labels: 10 } }), quiet), /clip.image_init .*vit: its model.n_layer is 1 but the model section says 2/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
