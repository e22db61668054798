// End-to-end exact resume through train() with the new optimizers on a tiny model and real text: a run split at
// step 15 and resumed reproduces the uninterrupted 30-step run's losses and final weights bit for bit (Shampoo's
// roots were refreshed at step 11 and must come back from the checkpoint), and a resume with another kind is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { prepareCharData } from '../../src/data/prepare.js';
import { findLatestComplete, loadCheckpoint } from '../../src/train/checkpoint.js';
import { readMetrics } from '../../src/train/metrics.js';
import { TRAIN_ALIASES, trainSpec, type TrainConfig } from '../../src/train/train-config.js';
import { train } from '../../src/train/trainer.js';
import { objectLayer, resolveConfigWithAliases } from '../../src/util/config.js';
import { UserError } from '../../src/util/errors.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
loadNativeBackend();

const dir = mkdtempSync(join(tmpdir(), 'lmforge-optim-resume-'));
writeFileSync(join(dir, 'input.txt'), readFileSync(join(root, '../shared/data/tinyshakespeare/input.txt'), 'utf8').slice(0, 40000));
prepareCharData({ input: join(dir, 'input.txt'), outDir: join(dir, 'data'), valFraction: 0.1 });

function config(out: string, optim: Record<string, unknown>, maxIters: number): TrainConfig {
  return resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, objectLayer({
    data_dir: join(dir, 'data'), out_dir: join(dir, out), n_layer: 1, n_head: 2, n_embd: 16, block_size: 16, batch_size: 4,
    eval_interval: 10, eval_iters: 2, log_interval: 1, checkpoint_interval: 5, dropout: 0.1, max_iters: maxIters,
    optim: { warmup_iters: 3, lr_decay_iters: 30, ...optim },
  }, 'test'));
}

const curve = (run: string): unknown[] => readMetrics(join(dir, run, 'metrics.jsonl')).map((r) => [r.step, r.loss ?? null, r.val_loss ?? null]);
const quiet = { log: (): void => {} };

const cases: [string, Record<string, unknown>, RegExp][] = [
  ['shampoo', { name: 'shampoo', lr: 0.01, shampoo_block_size: 16, shampoo_update_freq: 10, shampoo_graft: 'adamw' }, /\.(L|R_inv_root)_0_1$/],
  ['muon', { name: 'muon', lr: 0.02, muon_adamw_lr: 3e-3 }, /attn\.c_attn\.weight\.momentum_buffer$/],
  ['adafactor', { name: 'adafactor', adafactor_beta1: 0.9 }, /\.exp_avg_sq_col$/],
  ['lion', { name: 'lion', lr: 3e-4 }, /\.exp_avg$/],
];

for (const [name, optim, slot] of cases) {
  test(`${name}: a run resumed at step 15 reproduces the 30-step run exactly; a resume as AdamW is refused`, () => {
    train(config(`${name}-straight`, optim, 30), quiet);
    train(config(`${name}-split`, optim, 15), quiet);
    const ck = loadCheckpoint(findLatestComplete(join(dir, `${name}-split`))!.dir);
    assert.equal(ck.optimizer.kind, name);
    assert.ok([...ck.optimizer.tensors.keys()].some((k) => slot.test(k)), `a ${slot} slot in the checkpoint`);
    train(config(`${name}-split`, optim, 30), { ...quiet, resume: true });
    assert.deepEqual(curve(`${name}-split`), curve(`${name}-straight`));
    assert.ok(readFileSync(join(dir, `${name}-split`, 'model.safetensors')).equals(readFileSync(join(dir, `${name}-straight`, 'model.safetensors'))));
    assert.throws(() => train(config(`${name}-split`, { name: 'adamw' }, 40), { ...quiet, resume: true }), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, new RegExp(`holds ${name} state but optim\\.name is adamw`));
      return true;
    });
  });
}
