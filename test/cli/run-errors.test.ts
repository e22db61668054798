// Faulty runs, models and data reach the user as one line naming the file and what was expected, with exit 1, no
// stack trace and nothing written: a test per class of fault (model files, train configs and run folders, token
// files).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors, writeSafetensors, type TensorData } from '../../src/core/safetensors.js';
import { prepareCharData } from '../../src/data/prepare.js';
import { writeTokenFile } from '../../src/tokenizers/token-file.js';
import { lmforge, refused } from './run-cli.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));


/** A finished tiny run on real text, to damage in copies. */
function tinyRun(): { dir: string; run: string; data: string } {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-run-errors-'));
  writeFileSync(join(dir, 'input.txt'), readFileSync(join(root, '../shared/data/tinyshakespeare/input.txt'), 'utf8').slice(0, 20000));
  prepareCharData({ input: join(dir, 'input.txt'), outDir: join(dir, 'data'), valFraction: 0.1 });
  const run = join(dir, 'run');
  const r = lmforge('train', `--data_dir=${join(dir, 'data')}`, `--out_dir=${run}`, '--n_layer=1', '--n_head=2', '--n_embd=16', '--block_size=16',
    '--batch_size=2', '--max_iters=2', '--eval_interval=10', '--eval_iters=1', '--checkpoint_interval=0');
  assert.equal(r.code, 0, r.stderr);
  return { dir, run, data: join(dir, 'data') };
}

function rewriteWeights(path: string, change: (name: string, t: TensorData) => TensorData | null): void {
  const f = readSafetensors(path);
  const out: [string, TensorData][] = [];
  for (const [name, t] of f.tensors) {
    const c = change(name, { shape: t.shape, data: Float32Array.from(t.data as Float32Array) });
    if (c) out.push([name, c]);
  }
  writeSafetensors(path, out, f.metadata);
}

test('model files: non-finite weights, weights that do not fit config.json, a bad config and a foreign vocabulary are refused by sample, eval and inspect', () => {
  const { dir, run } = tinyRun();
  const copy = (name: string): string => {
    const p = join(dir, name);
    cpSync(run, p, { recursive: true });
    return p;
  };
  const nan = copy('nan');
  rewriteWeights(join(nan, 'model.safetensors'), (name, t) => (name === 'transformer.h.0.mlp.c_fc.weight' ? { ...t, data: (t.data as Float32Array).map((v, i) => (i === 5 ? NaN : v)) } : t));
  for (const args of [['sample', '--run', nan, '--max-new-tokens', '3'], ['inspect', nan], ['eval', '--model', nan, '--tasks', 'tinyshakespeare_ppl', '--limit', '1']]) {
    refused(lmforge(...args), /model\.safetensors: tensor transformer\.h\.0\.mlp\.c_fc\.weight holds NaN at element 5: the weights are not finite/);
  }
  const shape = copy('shape');
  rewriteWeights(join(shape, 'model.safetensors'), (name, t) => (name === 'transformer.wpe.weight' ? { shape: [8, 16], data: new Float32Array(128) } : t));
  refused(lmforge('sample', '--run', shape), /model\.safetensors: weights do not match the model: transformer\.wpe\.weight has shape \[8,16\], the model expects \[16,16\]/);
  const missing = copy('missing');
  rewriteWeights(join(missing, 'model.safetensors'), (name, t) => (name === 'transformer.ln_f.weight' ? null : t));
  refused(lmforge('inspect', missing), /missing transformer\.ln_f\.weight/);
  const heads = copy('heads');
  const cfg = JSON.parse(readFileSync(join(heads, 'config.json'), 'utf8')) as { lmforge: Record<string, unknown> };
  cfg.lmforge.n_head = 3;
  writeFileSync(join(heads, 'config.json'), JSON.stringify(cfg));
  refused(lmforge('sample', '--run', heads), /config\.json: GPT config: n_embd = 16, expected a multiple of n_head \(3\)/);
  const vocab = copy('vocab');
  const meta = JSON.parse(readFileSync(join(vocab, 'meta.json'), 'utf8')) as { vocab_size: number };
  meta.vocab_size = 1000;
  writeFileSync(join(vocab, 'meta.json'), JSON.stringify(meta));
  refused(lmforge('sample', '--run', vocab), /meta\.json: vocab_size 1000 is larger than the model's .*the tokenizer does not belong to this model/);
  // Outputs are checked before the evaluation, not after it.
  refused(lmforge('eval', '--model', run, '--tasks', 'tinyshakespeare_ppl', '--output', join(dir, 'no', 'such', 'r.json')), /--output .*r\.json: folder .*no\/such does not exist/);
  refused(lmforge('eval', '--model', run, '--tasks', 'tinyshakespeare_ppl', '--output', dir), /--output .*: is a directory, expected a file path/);
  // The intact run still samples.
  assert.equal(lmforge('sample', '--run', run, '--max-new-tokens', '5').code, 0);
});

test('train: a run folder is never written into without --resume or --overwrite; bad model keys and out_dir are refused before any work', () => {
  const { dir, run, data } = tinyRun();
  const before = readdirSync(run).sort();
  const metrics = readFileSync(join(run, 'metrics.jsonl'));
  const base = [`--data_dir=${data}`, '--n_layer=1', '--n_head=2', '--n_embd=16', '--block_size=16', '--batch_size=2', '--max_iters=2', '--eval_iters=1'];
  refused(lmforge('train', ...base, `--out_dir=${run}`), /out_dir .*run: already holds a run; pass --resume to continue it or --overwrite to replace it/);
  assert.deepEqual(readdirSync(run).sort(), before);
  assert.deepEqual(readFileSync(join(run, 'metrics.jsonl')), metrics);
  refused(lmforge('train', ...base, `--out_dir=${run}`, '--resume', '--overwrite'), /--resume and --overwrite exclude each other/);
  refused(lmforge('train', ...base, `--out_dir=${join(dir, 'x')}`, '--n_head=3'), /model\.n_embd = 16, expected a multiple of n_head \(3\)/);
  assert.equal(existsSync(join(dir, 'x')), false, 'nothing written');
  writeFileSync(join(dir, 'afile'), 'x');
  refused(lmforge('train', ...base, `--out_dir=${join(dir, 'afile')}`), /out_dir .*afile: exists and is not a directory/);
  refused(lmforge('train', ...base, `--out_dir=${join(dir, 'y')}`, '--model.n_layers=2'), /unknown key "model\.n_layers" in section model/);
  refused(lmforge('train', ...base, `--out_dir=${run}`, '--resume', '--n_layer=2'), /--resume: model\.n_layer is 2 but the checkpoint in .* was trained with 1/);
});

test('token files: an id outside the vocabulary is refused when the file is opened, naming the file and the position', () => {
  const { dir, data } = tinyRun();
  const meta = JSON.parse(readFileSync(join(data, 'meta.json'), 'utf8')) as { vocab_size: number };
  const ids = new Uint16Array(5000).map((_, i) => i % meta.vocab_size);
  ids[1234] = meta.vocab_size + 7;
  writeTokenFile(join(data, 'train.bin'), ids, 'uint16');
  refused(lmforge('train', `--data_dir=${data}`, `--out_dir=${join(dir, 'z')}`, '--n_layer=1', '--n_head=2', '--n_embd=16', '--block_size=16', '--max_iters=1'),
    new RegExp(`train\\.bin: token 1234 has id ${meta.vocab_size + 7}, but the vocabulary has ${meta.vocab_size} ids`));
  assert.equal(existsSync(join(dir, 'z')), false);
});
