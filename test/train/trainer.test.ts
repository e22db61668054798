// The training loop end to end on real text: a run killed with SIGKILL resumes from its last complete checkpoint
// and continues with exactly the losses of an uninterrupted run; a diverging run stops naming the step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareCharData } from '../../src/data/prepare.js';
import { readMetrics } from '../../src/train/metrics.js';
import { resolveConfigWithAliases, objectLayer } from '../../src/util/config.js';
import { TRAIN_ALIASES, trainSpec } from '../../src/train/train-config.js';
import { fullSplitLoss, train } from '../../src/train/trainer.js';
import { openTokenFile } from '../../src/train/token-reader.js';
import { GPT } from '../../src/models/gpt.js';
import * as lm from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const shakespeare = join(root, '../shared/data/tinyshakespeare/input.txt');

function makeData(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-train-'));
  const text = readFileSync(shakespeare, 'utf8').slice(0, 60000);
  writeFileSync(join(dir, 'input.txt'), text);
  prepareCharData({ input: join(dir, 'input.txt'), outDir: join(dir, 'data'), valFraction: 0.1 });
  return dir;
}

const tiny = ['--n_layer=2', '--n_head=2', '--n_embd=32', '--block_size=32', '--batch_size=4', '--max_iters=40',
  '--eval_interval=20', '--eval_iters=2', '--log_interval=1', '--checkpoint_interval=4', '--warmup_iters=5', '--lr_decay_iters=40', '--dropout=0.1'];

function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function losses(runDir: string): string[] {
  return readMetrics(join(runDir, 'metrics.jsonl')).map((r) => JSON.stringify([r.step, r.loss ?? null, r.val_loss ?? null]));
}

test('a run killed with SIGKILL resumes and continues exactly like an uninterrupted run', async () => {
  const dir = makeData();
  const data = `--data_dir=${join(dir, 'data')}`;
  const straight = runCli(['train', data, `--out_dir=${join(dir, 'a')}`, ...tiny]);
  assert.equal(straight.status, 0, straight.stderr);
  const want = losses(join(dir, 'a'));
  assert.equal(want.filter((l) => JSON.parse(l)[1] !== null).length, 40);

  // Kill the second run as soon as it has written a few checkpoints (possibly in the middle of writing one).
  const out = join(dir, 'b');
  await new Promise<void>((resolve) => {
    const child = spawn(process.execPath, [cli, 'train', data, `--out_dir=${out}`, ...tiny], { stdio: ['ignore', 'pipe', 'pipe'] });
    let seen = '';
    child.stdout.on('data', (b: Buffer) => {
      seen += b.toString();
      if (seen.includes('step 13/40')) child.kill('SIGKILL');
    });
    child.on('exit', () => resolve());
  });
  // The kill lands at step 13 or, on a loaded machine where the output arrives late, a little after it.
  assert.ok(readdirSync(out).some((f) => /^ckpt-\d+$/.test(f)), 'expected checkpoints before the kill');
  const resumed = runCli(['train', data, `--out_dir=${out}`, ...tiny, '--resume']);
  assert.equal(resumed.status, 0, resumed.stderr);
  const at = /resumed from .*ckpt-(\d+) at step (\d+)/.exec(resumed.stdout);
  assert.ok(at && at[1] === at[2] && Number(at[1]) >= 8 && Number(at[1]) < 40, resumed.stdout.slice(0, 300));
  assert.deepEqual(losses(out), want);
});

test('a diverging run stops at the NaN step with a clear error and keeps its checkpoints', () => {
  loadNativeBackend();
  const dir = makeData();
  const config = resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, objectLayer({
    data_dir: join(dir, 'data'), out_dir: join(dir, 'run'), n_layer: 1, n_head: 2, n_embd: 16, block_size: 16, batch_size: 2,
    max_iters: 50, eval_interval: 100, eval_iters: 1, log_interval: 100, checkpoint_interval: 2, learning_rate: 1e6, warmup_iters: 0,
    grad_clip: 0, decay_lr: false,
  }, 'test'));
  assert.throws(() => train(config, { log: () => {} }), /step \d+: loss is (NaN|Infinity); stopping/);
  assert.ok(existsSync(join(dir, 'run', 'ckpt-2')));
});

test('the whole-split val loss is the mean over consecutive windows, whatever the batch size', () => {
  loadNativeBackend();
  const dir = makeData();
  const file = openTokenFile(join(dir, 'data', 'val.bin'));
  const T = 32;
  const model = new GPT({ vocab_size: 80, block_size: T, n_layer: 1, n_head: 2, n_embd: 16 }, 3);
  const windows = Math.floor((file.count - 1) / T);
  let sum = 0;
  lm.noGrad(() => {
    for (let w = 0; w < windows; w++) {
      const x = Int32Array.from(file.ids.subarray(w * T, w * T + T));
      const y = Int32Array.from(file.ids.subarray(w * T + 1, w * T + T + 1));
      sum += lm.tidy(() => model.forward(lm.fromArray(x, [1, T]), lm.fromArray(y, [1, T])).loss!.item());
    }
  });
  const want = sum / windows;
  for (const B of [1, 7, windows + 5]) assert.ok(Math.abs(fullSplitLoss(model, file, B, T) - want) < 1e-5, `batch ${B}`);
  assert.throws(() => fullSplitLoss(model, file, 4, file.count), /too few for one window of block_size/);
  model.dispose();
});

test('full_val logs the whole-split val loss at the end of a run', () => {
  const dir = makeData();
  const run = join(dir, 'run');
  const r = runCli(['train', `--data_dir=${join(dir, 'data')}`, `--out_dir=${run}`, ...tiny, '--max_iters=4', '--checkpoint_interval=0', '--full_val=true']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /step 4: val loss over the whole val split \d+\.\d{4} \(187 windows\)/);
  const rec = readMetrics(join(run, 'metrics.jsonl')).find((m) => m.val_loss_full !== undefined);
  assert.equal(rec?.step, 4);
  assert.equal(typeof rec?.val_loss_full, 'number');
});

test('train reports a missing data directory naming the file', () => {
  const r = runCli(['train', '--data_dir=/nonexistent/dir', '--max_iters=1']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /\/nonexistent\/dir\/meta\.json: not found/);
});

test('prepare → train → sample from the command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-cli-'));
  const text = join(dir, 'input.txt');
  writeFileSync(text, readFileSync(shakespeare, 'utf8').slice(0, 30000));
  const prep = runCli(['prepare', '--input', text, '--out', join(dir, 'data')]);
  assert.equal(prep.status, 0, prep.stderr);
  assert.match(prep.stdout, /vocab size \d+; train 27,000 tokens, val 3,000 tokens/);
  const run = join(dir, 'run');
  const tr = runCli(['train', `--data_dir=${join(dir, 'data')}`, `--out_dir=${run}`, ...tiny, '--max_iters=10', '--checkpoint_interval=0']);
  assert.equal(tr.status, 0, tr.stderr);
  for (const f of ['model.safetensors', 'config.json', 'meta.json', 'metrics.jsonl', 'train-config.json', 'ckpt-10']) assert.ok(existsSync(join(run, f)), f);
  const args = ['sample', '--run', run, '--prompt', 'ROMEO:', '--max-new-tokens', '40', '--seed', '7'];
  const a = runCli(args);
  const b = runCli(args);
  assert.equal(a.status, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  assert.ok(a.stdout.startsWith('ROMEO:') && a.stdout.length >= 40);
  const bad = runCli(['sample', '--run', run, '--prompt', '€']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--prompt: character "€" at position 0 is not in the \d+-character vocabulary/);
});

test('tokenize (GPT-2 BPE) → train → sample: subword shards carry their tokenizer into the run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-bpe-'));
  const text = join(dir, 'input.txt');
  writeFileSync(text, readFileSync(shakespeare, 'utf8').slice(0, 40000));
  const tok = runCli(['tokenize', '--tokenizer', join(root, '../shared/data/gpt2-tokenizer'), '--input', text, '--out', join(dir, 'data'), '--val-fraction', '0.1']);
  assert.equal(tok.status, 0, tok.stderr);
  const meta = JSON.parse(readFileSync(join(dir, 'data', 'meta.json'), 'utf8')) as { vocab_size: number; tokenizer: { type: string } };
  assert.equal(meta.vocab_size, 50257);
  assert.equal(meta.tokenizer.type, 'file');
  const run = join(dir, 'run');
  const tr = runCli(['train', `--data_dir=${join(dir, 'data')}`, `--out_dir=${run}`, '--n_layer=1', '--n_head=2', '--n_embd=16', '--block_size=16',
    '--batch_size=2', '--max_iters=3', '--eval_interval=3', '--eval_iters=1', '--log_interval=1', '--checkpoint_interval=0', '--warmup_iters=1', '--lr_decay_iters=3']);
  assert.equal(tr.status, 0, tr.stderr);
  const s = runCli(['sample', '--run', run, '--prompt', 'ROMEO: ', '--max-new-tokens', '8', '--seed', '3']);
  assert.equal(s.status, 0, s.stderr);
  assert.ok(s.stdout.startsWith('ROMEO: ') && s.stdout.length > 'ROMEO: '.length);
});
