// The training-process switches of issue 14 (train/packing.ts, curriculum.ts, tasks/curriculum.ts): packed rows
// cover every token once per epoch with no padding, a packed stream restored from its state continues identically,
// difficulty order and buckets, the sequence-length ramp at constant tokens, temperature shares, document masking
// inside a GPT, and a run with every switch on resumed mid-curriculum that logs the uninterrupted run's losses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import { Rng } from '../../src/core/random.js';
import { GPT } from '../../src/models/gpt.js';
import { mixPlan, parseWeights, seqLenAt } from '../../src/train/curriculum.js';
import { documentsOf, epochOrder, PackedStream, readScores } from '../../src/train/packing.js';
import { readMetrics } from '../../src/train/metrics.js';
import type { TokenFile } from '../../src/train/token-reader.js';
import { TRAIN_ALIASES, trainSpec } from '../../src/train/train-config.js';
import { train } from '../../src/train/trainer.js';
import { objectLayer, resolveConfigWithAliases } from '../../src/util/config.js';
import { writeTokenFile } from '../../src/tokenizers/token-file.js';
import { prepareCharData } from '../../src/data/prepare.js';
import { openTokenFile } from '../../src/train/token-reader.js';

const EOT = 0;

function memFile(ids: number[]): TokenFile {
  return { path: 'mem.bin', dtype: 'uint16', count: ids.length, ids: Uint16Array.from(ids), mode: 'read' };
}

/** Documents of lengths lens (ids 1.. then EOT), token values unique per (doc, position). */
function corpus(lens: number[]): number[] {
  const out: number[] = [];
  lens.forEach((n, d) => {
    for (let i = 0; i < n - 1; i++) out.push(100 * (d + 1) + i);
    out.push(EOT);
  });
  return out;
}

test('packed chunks: no padding, every token a target exactly once per epoch, documents whole, chunks shuffled', () => {
  const lens = [5, 9, 3, 14, 7, 2, 11, 6];
  const file = memFile(corpus(lens));
  const docs = documentsOf(file, EOT);
  assert.equal(docs.count, lens.length);
  const C = 8;
  const stream = new PackedStream(file, docs, { order: 'random', scores: null, buckets: 0 }, C, 0, 3);
  const n = Math.floor((file.count - 1) / C);
  const chunks: number[][] = [];
  for (let c = 0; c < n; c++) {
    const buf = new Int32Array(C + 1);
    stream.nextChunk(buf);
    chunks.push([...buf]);
  }
  assert.equal(stream.epoch, 0);
  // Every target (a chunk's last C tokens) is a distinct token: each once per epoch, nothing padded.
  const targets = chunks.flatMap((c) => c.slice(1)).filter((t) => t !== EOT);
  assert.equal(new Set(targets).size, targets.length, 'a token was a target twice within one epoch');
  assert.ok(targets.length >= file.count - lens.length - C, 'at most the last partial chunk is left out');
  // Inside a chunk, documents continue in their own order.
  for (const c of chunks) for (let i = 0; i + 1 < c.length; i++) if (c[i] !== EOT && c[i + 1] !== EOT) assert.equal(c[i + 1], c[i]! + 1);
  // Chunks are not read in stream order (so a batch mixes documents).
  const firsts = chunks.map((c) => c[0]!);
  assert.notDeepEqual(firsts, [...firsts].sort((a, b) => a - b));
});

test('a packed stream rebuilt from its state continues with the same chunks, across epochs', () => {
  const file = memFile(corpus([4, 11, 6, 3, 8]));
  const docs = documentsOf(file, EOT);
  const o = { order: 'random' as const, scores: null, buckets: 0 };
  const a = new PackedStream(file, docs, o, 5, 0, 9);
  const buf = new Int32Array(6);
  for (let i = 0; i < 7; i++) a.nextChunk(buf);
  const saved = JSON.parse(JSON.stringify(a.state())) as ReturnType<PackedStream['state']>;
  const b = new PackedStream(file, docs, o, 5, 0, saved);
  for (let i = 0; i < 20; i++) {
    const ca = new Int32Array(6), cb = new Int32Array(6);
    a.nextChunk(ca);
    b.nextChunk(cb);
    assert.deepEqual([...cb], [...ca], `chunk ${i} after the restore`);
  }
  assert.ok(a.epoch >= 2);
});

test('an ascending order with a shuffle window reads easy documents first, window by window', () => {
  const lens = [30, 4, 18, 6, 24, 9, 12, 40];
  const file = memFile(corpus(lens));
  const docs = documentsOf(file, EOT);
  const scores = Float64Array.from(lens);
  const stream = new PackedStream(file, docs, { order: 'ascending', scores, buckets: 0 }, 4, 3, 1);
  const docOf = (t: number): number => Math.floor(t / 100) - 1;
  const seen: number[] = [];
  const buf = new Int32Array(5);
  for (let i = 0; i < 12; i++) {
    stream.nextChunk(buf);
    seen.push(...[...buf].filter((t) => t !== EOT).map(docOf));
  }
  // The first 12 chunks (48 tokens) come from the shortest documents only: 4 + 6 + 9 + 12 + part of 18.
  assert.ok(seen.every((d) => [1, 3, 5, 6, 2].includes(d)), `saw documents ${[...new Set(seen)].join(',')}`);
});

test('difficulty order: ascending / descending by score, buckets shuffled inside, scores read from JSONL with line errors', () => {
  const scores = Float64Array.from([5, 1, 4, 2, 3, 0]);
  const asc = epochOrder(6, { order: 'ascending', scores, buckets: 0 }, new Rng(1));
  assert.deepEqual([...asc], [5, 1, 3, 4, 2, 0]);
  assert.deepEqual([...epochOrder(6, { order: 'descending', scores, buckets: 0 }, new Rng(1))], [0, 2, 4, 3, 1, 5]);
  const bucketed = [...epochOrder(6, { order: 'ascending', scores, buckets: 2 }, new Rng(2))];
  assert.deepEqual(bucketed.slice(0, 3).sort(), [1, 3, 5]);
  assert.deepEqual(bucketed.slice(3).sort(), [0, 2, 4]);
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-curric-'));
  const docs = documentsOf(memFile(corpus([3, 4, 2])), EOT);
  writeFileSync(join(dir, 's.jsonl'), '{"ppl": 3}\n{"ppl": 1.5}\n{"ppl": 2}\n');
  assert.deepEqual([...readScores(join(dir, 's.jsonl'), 'ppl', docs, 'x')], [3, 1.5, 2]);
  writeFileSync(join(dir, 'bad.jsonl'), '{"ppl": 3}\n{"q": 1}\n{"ppl": 2}\n');
  assert.throws(() => readScores(join(dir, 'bad.jsonl'), 'ppl', docs, 'x'), /bad\.jsonl:2: field "ppl"/);
  assert.throws(() => readScores(join(dir, 's.jsonl'), 'ppl', documentsOf(memFile(corpus([3, 4])), EOT), 'x'), /3 lines, but x holds 2 documents/);
  assert.deepEqual([...readScores(null, 'tokens', docs, 'x')], [3, 4, 2]);
});

test('sequence-length warmup: a ramp of divisors of the micro-batch tokens, block_size at the end', () => {
  const w = { start: 16, steps: 100 };
  const lens = Array.from({ length: 120 }, (_, s) => seqLenAt(s, w, 256, 12 * 256));
  assert.equal(lens[0], 16);
  assert.equal(lens[100], 256);
  assert.equal(lens[119], 256);
  for (let s = 1; s < lens.length; s++) assert.ok(lens[s]! >= lens[s - 1]!);
  for (const T of lens) assert.equal((12 * 256) % T, 0, `T = ${T} does not divide the micro-batch's tokens`);
  assert.ok(new Set(lens).size >= 5);
  assert.equal(seqLenAt(0, { start: 0, steps: 0 }, 64, 768), 64);
});

test('temperature mixing: p ∝ n^(1/T) with quality weights, capped by epochs', () => {
  const plan = (t: number, w: Record<string, number> = {}): Record<string, number> => Object.fromEntries(mixPlan({ a: 900, b: 100 }, w, t, 1000, 100).map((r) => [r.source, r.share]));
  assert.ok(Math.abs(plan(1).a! - 0.9) < 1e-12);
  assert.ok(Math.abs(plan(2).a! - 30 / 40) < 1e-12); // √900 : √100 = 30 : 10
  assert.ok(Math.abs(plan(1, { b: 9 }).b! - 0.5) < 1e-12);
  const capped = Object.fromEntries(mixPlan({ a: 900, b: 100 }, {}, 1e9, 1000, 2).map((r) => [r.source, r.share]));
  assert.ok(Math.abs(capped.b! - 0.2) < 1e-12); // uniform wants 500 of b's 100 tokens; 2 epochs cap it at 200
  assert.throws(() => parseWeights('a=1,c=2', ['a', 'b'], 'mix.weights'), /no source named "c"/);
});

test('document masking in a GPT: the second document of a row does not see the first; without the mask it does', () => {
  const model = new GPT({ vocab_size: 20, block_size: 12, n_layer: 2, n_head: 2, n_embd: 16 }, 3);
  lm.noGrad(() => {
    const run = (ids: number[], segments?: Int32Array): number[] => lm.tidy(() => (model.forward(lm.tensor(Int32Array.from(ids), [1, 12]), undefined, { segments }).logits.toArray() as number[]).slice(4 * 20));
    const masked = Int32Array.from([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
    const a = [3, 4, 5, 1, 7, 8, 9, 10, 11, 12, 13, 14];
    const c = [9, 2, 9, 1, 7, 8, 9, 10, 11, 12, 13, 14]; // the same second document after another first one
    const [ma, mc] = [run(a, masked), run(c, masked)];
    ma.forEach((v, i) => assert.ok(Math.abs(v - mc[i]!) < 1e-5, `masked: the second document's logit ${i} moved when the first changed`));
    const [oa, oc] = [run(a), run(c)];
    assert.ok(oa.some((v, i) => Math.abs(v - oc[i]!) > 1e-3), 'unmasked, the second document sees the first');
  });
  model.dispose();
});

test('every switch on: a run resumed mid-curriculum logs the uninterrupted run\'s losses bit for bit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-curric-'));
  const text = readFileSync(fileURLToPath(new URL('../../../../shared/data/tinyshakespeare/input.txt', import.meta.url)), 'utf8');
  writeFileSync(join(dir, 'input.txt'), text.slice(0, 60000));
  const a = join(dir, 'first');
  prepareCharData({ input: join(dir, 'input.txt'), outDir: a, valFraction: 0.1 });
  // A second source with the same vocabulary: the first's training ids from a third of the way on.
  const b = join(dir, 'second');
  mkdirSync(b);
  const ids = openTokenFile(join(a, 'train.bin')).ids;
  writeTokenFile(join(b, 'train.bin'), ids.subarray(Math.floor(ids.length / 3)), 'uint16');
  copyFileSync(join(a, 'val.bin'), join(b, 'val.bin'));
  copyFileSync(join(a, 'meta.json'), join(b, 'meta.json'));
  // Documents are lines here: '\n' (id 0 of the char vocabulary) ends each.
  const run = (out: string, extra: Record<string, unknown>, resume = false): void => {
    const config = resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, objectLayer({
      out_dir: out, data_dir: a, n_layer: 1, n_head: 2, n_embd: 16, block_size: 32, batch_size: 4, max_iters: 16, eval_interval: 8, eval_iters: 1,
      log_interval: 1, checkpoint_interval: 6, keep_checkpoints: 5, warmup_iters: 2, lr_decay_iters: 16, dropout: 0.1, peak_flops: 0, threads: 1,
      batching: { mode: 'packed', doc_mask: true, batch_tokens: 256, eot_id: 0 }, curriculum: { seq_warmup_start: 8, seq_warmup_steps: 10, order: 'ascending', score_field: 'tokens', score_buckets: 3 },
      mix: { sources: b, temperature: 2 }, loss: { z_loss: 1e-3, label_smoothing: 0.1 }, ...extra,
    }, 'test'));
    train(config, { resume, log: () => {} });
  };
  const losses = (out: string): string[] => readMetrics(join(out, 'metrics.jsonl')).map((r) => JSON.stringify([r.step, r.loss ?? null, r.val_loss ?? null, r.seq_len ?? null, r.z_loss ?? null]));
  run(join(dir, 'straight'), {});
  const want = losses(join(dir, 'straight'));
  assert.equal(want.filter((l) => JSON.parse(l)[1] !== null).length, 16);
  const out = join(dir, 'resumed');
  run(out, {});
  rmSync(join(out, 'ckpt-16'), { recursive: true });
  rmSync(join(out, 'ckpt-12'), { recursive: true }); // resume from step 6: mid-ramp (seq_len < block_size), mid-epoch
  run(out, {}, true);
  assert.deepEqual(losses(out), want);
  // The switches did something: the ramp and the mix are in the log.
  const recs = readMetrics(join(out, 'metrics.jsonl'));
  assert.equal(recs.find((r) => r.step === 0 && r.loss !== undefined)!.seq_len, 8);
  assert.equal(recs.find((r) => r.step === 0 && r.loss !== undefined)!.batch_rows, 16); // 4 chunks of 32 → 16 rows of 8
  assert.ok(recs.some((r) => r['mix_real_second'] !== undefined));
});

test('bad switch combinations are refused naming the key, before anything trains', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-curric-'));
  const text = readFileSync(fileURLToPath(new URL('../../../../shared/data/tinyshakespeare/input.txt', import.meta.url)), 'utf8');
  writeFileSync(join(dir, 'input.txt'), text.slice(0, 20000));
  const data = join(dir, 'data');
  prepareCharData({ input: join(dir, 'input.txt'), outDir: data, valFraction: 0.1 });
  const attempt = (extra: Record<string, unknown>): void => {
    const config = resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, objectLayer({
      out_dir: join(dir, 'run'), data_dir: data, n_layer: 1, n_head: 2, n_embd: 16, block_size: 32, batch_size: 4, max_iters: 2, peak_flops: 0, ...extra,
    }, 'test'));
    train(config, { log: () => {}, overwrite: true });
  };
  assert.throws(() => attempt({ batching: { batch_tokens: 1000 } }), /batching\.batch_tokens: 1000 is not a multiple of the 128 tokens/);
  assert.throws(() => attempt({ batching: { batch_tokens: 512 }, gradient_accumulation_steps: 3 }), /4 micro-batches per step, but gradient_accumulation_steps is 3/);
  assert.throws(() => attempt({ curriculum: { order: 'ascending', score_field: 'tokens' } }), /curriculum\.order: ascending orders whole documents; set batching\.mode=packed/);
  assert.throws(() => attempt({ batching: { mode: 'packed' } }), /has no <\|endoftext\|>; set batching\.eot_id/);
  assert.throws(() => attempt({ curriculum: { seq_warmup_start: 32, seq_warmup_steps: 5 } }), /curriculum\.seq_warmup_start: 32 must be below model\.block_size \(32\)/);
  assert.throws(() => attempt({ mix: { sources: join(dir, 'nowhere') } }), /nowhere/);
  assert.throws(() => attempt({ batching: { mode: 'packed', eot_id: 0 }, curriculum: { order: 'ascending', score_file: join(dir, 'missing.jsonl') } }), /curriculum\.score_file: cannot read/);
});

test('plain pretraining takes the loss terms too: z_loss and label_smoothing are logged, the loss stays plain', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-curric-'));
  const text = readFileSync(fileURLToPath(new URL('../../../../shared/data/tinyshakespeare/input.txt', import.meta.url)), 'utf8');
  writeFileSync(join(dir, 'input.txt'), text.slice(0, 20000));
  const data = join(dir, 'data');
  prepareCharData({ input: join(dir, 'input.txt'), outDir: data, valFraction: 0.1 });
  const run = (out: string, loss: Record<string, number>): ReturnType<typeof readMetrics> => {
    train(resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, objectLayer({
      out_dir: join(dir, out), data_dir: data, n_layer: 1, n_head: 2, n_embd: 16, block_size: 16, batch_size: 4, max_iters: 6, eval_interval: 100, eval_iters: 1, log_interval: 1, peak_flops: 0, warmup_iters: 0, learning_rate: 0.01, loss,
    }, 'test')), { log: () => {} });
    return readMetrics(join(dir, out, 'metrics.jsonl')).filter((r) => r.loss !== undefined);
  };
  const plain = run('plain', {});
  const terms = run('terms', { z_loss: 1e-4, label_smoothing: 0.3 });
  assert.equal(plain[0]!.z_loss, undefined);
  assert.ok((terms[0]!.z_loss as number) > 0 && typeof terms[0]!.label_smoothing === 'number');
  assert.equal(terms[0]!.loss, plain[0]!.loss); // same first batch and weights: the reported loss is the plain cross-entropy
  assert.notEqual(terms[5]!.loss, plain[5]!.loss); // but the objective, and so the updates, differ
});
