// `lmforge train --precision=bf16` end to end on real text: the run says in one line which kernel runs its
// matmuls (or that they fall back to fp32), trains, records precision in its resolved config, and leaves the
// process's matmul precision as it was; a bad value is refused naming the flag. Op-level checks: core/matmul-bf16.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { prepareCharData } from '../../src/data/prepare.js';
import { TRAIN_CONFIG_FILE } from '../../src/train/run-dir.js';
import { TRAIN_ALIASES, trainSpec } from '../../src/train/train-config.js';
import { train } from '../../src/train/trainer.js';
import { objectLayer, resolveConfigWithAliases } from '../../src/util/config.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');

function makeData(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-precision-'));
  writeFileSync(join(dir, 'input.txt'), readFileSync(join(root, '../shared/data/tinyshakespeare/input.txt'), 'utf8').slice(0, 20000));
  prepareCharData({ input: join(dir, 'input.txt'), outDir: join(dir, 'data'), valFraction: 0.1 });
  return dir;
}

test('train with precision bf16: one precision line, a finite loss, precision in the saved config, the switch restored', () => {
  loadNativeBackend();
  const dir = makeData();
  const lines: string[] = [];
  const config = resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, objectLayer({
    precision: 'bf16', out_dir: join(dir, 'run'), data_dir: join(dir, 'data'), n_layer: 1, n_head: 2, n_embd: 32, block_size: 16,
    batch_size: 4, max_iters: 6, eval_interval: 6, eval_iters: 1, log_interval: 3, checkpoint_interval: 0, peak_flops: 0,
  }, 'test'));
  const r = train(config, { log: (l) => lines.push(l) });
  assert.equal(lines.filter((l) => l.startsWith('precision bf16:')).length, 1, lines.join('\n'));
  assert.ok(r.valLoss !== null && Number.isFinite(r.valLoss));
  assert.equal((JSON.parse(readFileSync(join(dir, 'run', TRAIN_CONFIG_FILE), 'utf8')) as { precision?: string }).precision, 'bf16');
  assert.equal(lm.getMatmulPrecision(), 'fp32');
});

test('lmforge train --precision=fp16 is refused naming the flag and the choices', () => {
  const r = spawnSync(process.execPath, [cli, 'train', '--precision=fp16'], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--precision=fp16: precision: expected one of fp32\|bf16/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});
