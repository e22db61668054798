import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MINHASH, MinHasher, candidateProbability, estimatedJaccard, exactKey } from '../../src/data/dedup/minhash.js';
import { RecordReader, mergeSorted, writeRecords } from '../../src/data/dedup/records.js';
import { DEFAULT_DEDUP, bucketStage, clusterStage, dedupFilterStage, readClusterSummary, signatureStage } from '../../src/data/dedup/stages.js';
import { editWords, exactVariant, trueJaccard } from '../../src/data/dedup/planted.js';
import { mulberry32 } from '../../src/util/mulberry32.js';
import { JsonlGzWriter, documentRecord } from '../../src/data/writers.js';
import { readShard } from '../../src/data/readers.js';
import type { Document } from '../../src/data/document.js';

const rand = mulberry32(7);
const vocab = Array.from({ length: 5000 }, (_, i) => `w${i.toString(36)}x`);
const randomDoc = (n: number): string => Array.from({ length: n }, () => vocab[Math.floor(rand() * vocab.length)]!).join(' ');

test('MinHash: 112 64-bit hashes, estimate tracks the true 5-gram Jaccard, LSH curve at 14x8', () => {
  const h = new MinHasher(DEFAULT_MINHASH);
  assert.equal(h.numHashes, 112);
  const base = randomDoc(400);
  const sig = h.signature(base);
  assert.equal(sig.length, 224);
  assert.deepEqual(h.signature(base.toUpperCase().replace(/ /g, '  ')), sig);
  let errs = 0;
  for (const rate of [0.01, 0.03, 0.06, 0.1, 0.2]) {
    const other = editWords(base, rate, vocab, rand);
    const j = trueJaccard(h, base, other);
    const est = estimatedJaccard(sig, h.signature(other));
    // Standard error sqrt(J(1-J)/112) <= 0.048; allow 3.5 sigma.
    if (Math.abs(est - j) > 0.17) errs++;
  }
  assert.equal(errs, 0);
  assert.ok(Math.abs(candidateProbability(0.8) - 0.924) < 0.001);
  assert.ok(candidateProbability(0.5) < 0.06);
  assert.deepEqual(exactKey('Hello,  World!'), exactKey('hello world'));
  assert.notDeepEqual(exactKey('hello world'), exactKey('hello worlds'));
});

test('record files: sorted write, streamed read, k-way merge, bad magic named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-rec-'));
  const a = join(dir, 'a.bin');
  const b = join(dir, 'b.bin');
  writeRecords(a, Uint32Array.from([5, 0, 1, 0, 2, 0]), 2);
  writeRecords(b, Uint32Array.from([3, 9, 4, 9, 0xffffffff, 9]), 2);
  const seen: number[] = [];
  mergeSorted([new RecordReader(a, 1), new RecordReader(b, 2)], 1, (r) => seen.push(r[0]!));
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 0xffffffff]);
  writeFileSync(join(dir, 'bad.bin'), Buffer.alloc(40));
  assert.throws(() => new RecordReader(join(dir, 'bad.bin')), /bad\.bin: not a dedup record file/);
  rmSync(dir, { recursive: true });
});

test('dedup stages over 3 shards with 2 ranks: exact copies and near duplicates removed, distinct kept, re-run skips', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-dedup-'));
  const h = new MinHasher(DEFAULT_MINHASH);
  const bases = Array.from({ length: 40 }, () => randomDoc(300));
  const docs: Document[] = bases.map((t, i) => ({ id: `base${i}`, text: t, metadata: { source: 's' } }));
  const planted: { id: string; of: string; kind: 'exact' | 'near' | 'far'; j: number }[] = [];
  for (let i = 0; i < 10; i++) {
    docs.push({ id: `exact${i}`, text: exactVariant(bases[i]!, rand), metadata: { source: 's' } });
    planted.push({ id: `exact${i}`, of: `base${i}`, kind: 'exact', j: 1 });
    const near = editWords(bases[10 + i]!, 0.01, vocab, rand);
    docs.push({ id: `near${i}`, text: near, metadata: { source: 's' } });
    planted.push({ id: `near${i}`, of: `base${10 + i}`, kind: 'near', j: trueJaccard(h, bases[10 + i]!, near) });
    const far = editWords(bases[20 + i]!, 0.3, vocab, rand);
    docs.push({ id: `far${i}`, text: far, metadata: { source: 's' } });
    planted.push({ id: `far${i}`, of: `base${20 + i}`, kind: 'far', j: trueJaccard(h, bases[20 + i]!, far) });
  }
  docs.push({ id: 'empty1', text: '', metadata: {} }, { id: 'empty2', text: '...', metadata: {} });
  // Shuffle so copies land in other shards than their originals.
  for (let i = docs.length - 1; i > 0; i--) {
    const k = Math.floor(rand() * (i + 1));
    [docs[i], docs[k]] = [docs[k]!, docs[i]!];
  }
  const inputs = [0, 1, 2].map((s) => join(dir, 'in', `${s}.jsonl.gz`));
  for (let s = 0; s < 3; s++) {
    const w = new JsonlGzWriter(inputs[s]!);
    for (let k = s; k < docs.length; k += 3) await w.write(documentRecord(docs[k]!));
    await w.close();
  }
  const work = join(dir, 'work');
  const cfg = { ...DEFAULT_DEDUP, verifyThreshold: 0.7 };
  const outPath = (i: number): string => join(dir, 'out', `${i}.jsonl.gz`);
  const exPath = (i: number): string => join(dir, 'excluded', `${i}.jsonl.gz`);
  await assert.rejects(dedupFilterStage(inputs, work, outPath, exPath, { rank: 0, worldSize: 2 }), /dedup cluster stage is not finished/);
  // Rank 0 writes its band records in sorted runs of 7 documents (as a huge shard would), rank 1 in one run.
  const sig0 = await signatureStage(cfg, inputs, work, { rank: 0, worldSize: 2 }, 7);
  assert.ok(sig0.every((r) => (r.extra.sorted_runs ?? 0) > 1));
  await signatureStage(cfg, inputs, work, { rank: 1, worldSize: 2 });
  assert.throws(() => clusterStage(cfg, 3, work, { rank: 0, worldSize: 2 }), /dedup bucket exact is not finished/);
  const b0 = bucketStage(cfg, 3, work, { rank: 0, worldSize: 2 });
  const b1 = bucketStage(cfg, 3, work, { rank: 1, worldSize: 2 });
  assert.equal(b0.length + b1.length, 15);
  assert.equal(clusterStage(cfg, 3, work, { rank: 1, worldSize: 2 }), undefined);
  const summary = clusterStage(cfg, 3, work, { rank: 0, worldSize: 2 })!;
  for (const rank of [0, 1]) await dedupFilterStage(inputs, work, outPath, exPath, { rank, worldSize: 2 });
  const kept = new Set<string>();
  const removed = new Map<string, string>();
  for (let s = 0; s < 3; s++) {
    for await (const d of readShard(outPath(s))) kept.add(d.id);
    for await (const d of readShard(exPath(s))) removed.set(d.id, (d.metadata.excluded_by as { reason: string }).reason);
  }
  for (const p of planted) {
    const pair = [p.id, p.of].map((x) => kept.has(x));
    if (p.kind === 'far') assert.deepEqual(pair, [true, true], `far pair ${p.id} (J=${p.j.toFixed(2)}) must both survive`);
    else assert.equal(pair.filter((x) => x).length, 1, `${p.kind} pair ${p.id} (J=${p.j.toFixed(2)}) must keep exactly one`);
  }
  for (let i = 0; i < 10; i++) {
    const r = removed.get(`exact${i}`) ?? removed.get(`base${i}`);
    assert.equal(r, 'dedup_exact');
  }
  // The two word-less texts normalise to the same empty string: one survives.
  assert.equal(Number(kept.has('empty1')) + Number(kept.has('empty2')), 1);
  assert.equal(summary.removedExact, 11); // ten planted copies + one of the two word-less texts
  assert.equal(summary.removedNear, 10);
  assert.deepEqual(readClusterSummary(work)?.removedNear, 10);
  // Re-running finds every marker and does nothing.
  assert.equal((await signatureStage(cfg, inputs, work, { rank: 0, worldSize: 1 })).length, 0);
  assert.equal(bucketStage(cfg, 3, work, { rank: 0, worldSize: 1 }).length, 0);
  assert.equal((await dedupFilterStage(inputs, work, outPath, exPath, { rank: 0, worldSize: 1 })).length, 0);
  assert.ok(readdirSync(join(dir, 'out')).every((f) => !f.includes('.tmp-')));
  assert.ok(existsSync(join(work, 'remove', 'clusters.json')));
  // Without verification (datatrove's behaviour) every bucket collision counts: at least the same removals.
  rmSync(join(work, 'remove'), { recursive: true });
  const plain = clusterStage({ ...cfg, verifyThreshold: null }, 3, work, { rank: 0, worldSize: 1 })!;
  assert.equal(plain.rejectedByVerification, 0);
  assert.ok(plain.removedNear >= summary.removedNear);
  assert.ok(summary.rejectedByVerification >= 0);
  rmSync(dir, { recursive: true });
});
