// BM25: the Porter stemmer on the paper's examples; the analyzer; scores equal to the formula computed here
// independently; an index split into segments (incremental adds) ranks and scores exactly as one segment and as
// the merged index; bad files are one-line UserErrors naming the file; recall@5 ≥ 0.90 on XQuAD (the bar).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Analyzer } from '../../src/retrieval/analyzer.js';
import { addPassages, BM25Index, createIndex, mergeSegments, readManifest } from '../../src/retrieval/bm25.js';
import { readJsonlPassages, readSquadPassages, readSquadQuestions, readTextPassages } from '../../src/retrieval/corpus.js';
import { porterStem } from '../../src/retrieval/porter.js';
import { UserError } from '../../src/util/errors.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const XQUAD = `${root}../shared/data/xquad-en/xquad.en.json.gz`;

test('Porter stemmer: the examples of Porter (1980)', () => {
  const cases: Record<string, string> = {
    caresses: 'caress', ponies: 'poni', cats: 'cat', feed: 'feed', agreed: 'agre', plastered: 'plaster', motoring: 'motor',
    sing: 'sing', conflated: 'conflat', hopping: 'hop', falling: 'fall', filing: 'file', happy: 'happi', sky: 'sky',
    relational: 'relat', conditional: 'condit', generalization: 'gener', triplicate: 'triplic', hopeful: 'hope',
    goodness: 'good', allowance: 'allow', adjustment: 'adjust', adoption: 'adopt', cease: 'ceas', controll: 'control', roll: 'roll',
  };
  for (const [w, s] of Object.entries(cases)) assert.equal(porterStem(w), s, w);
  assert.equal(porterStem('naïve'), 'naïve'); // non a–z words are left alone
});

test('analyzer: NFKC, lowercase, letter/digit runs, stopwords, stems', () => {
  assert.deepEqual(new Analyzer().analyze('The Broncos founded the U.S. state-of-the-art ﬁrms in 1999!'), ['bronco', 'found', 'u', 's', 'state', 'art', 'firm', '1999']);
  assert.deepEqual(new Analyzer({ stopwords: false, stem: false }).analyze('The cats'), ['the', 'cats']);
});

const DOCS = [
  { id: 'a', text: 'the quick brown fox jumps over the lazy dog' },
  { id: 'b', text: 'a quick brown dog outpaces a quick fox' },
  { id: 'c', text: 'lazy afternoons are for sleeping dogs and cats' },
  { id: 'd', text: 'foxes and dogs are not friends' },
  { id: 'e', text: 'nothing relevant here at all', title: 'Quick title' },
];

/** BM25 computed from scratch on the analyzed texts (Lucene's idf, exact lengths). */
function expectedScores(query: string, k1: number, b: number): number[] {
  const an = new Analyzer();
  const docs = DOCS.map((d) => an.analyze(d.title ? `${d.title}\n${d.text}` : d.text));
  const avgdl = docs.reduce((s, d) => s + d.length, 0) / docs.length;
  return docs.map((d) => {
    let s = 0;
    for (const t of an.analyze(query)) {
      const df = docs.filter((x) => x.includes(t)).length;
      if (df === 0) continue;
      const tf = d.filter((x) => x === t).length;
      const idf = Math.log(1 + (docs.length - df + 0.5) / (df + 0.5));
      s += (idf * tf * (k1 + 1)) / (tf + k1 * (1 - b + (b * d.length) / avgdl));
    }
    return s;
  });
}

function withDir(f: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-bm25-'));
  try {
    f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('BM25 scores are the formula; segments (incremental adds) and merging change nothing', () => withDir((dir) => {
  createIndex(join(dir, 'one'));
  addPassages(join(dir, 'one'), DOCS);
  createIndex(join(dir, 'many'), { k1: 0.9, b: 0.4 });
  addPassages(join(dir, 'many'), DOCS.slice(0, 2));
  addPassages(join(dir, 'many'), DOCS.slice(2), { segmentDocs: 2 });
  assert.equal(readManifest(join(dir, 'many')).segments.length, 3);
  const one = new BM25Index(join(dir, 'one'));
  const many = new BM25Index(join(dir, 'many'));
  for (const q of ['quick fox', 'lazy dogs', 'dog dog cats', 'zebra', 'quick']) {
    const exp = expectedScores(q, 0.9, 0.4);
    const hits = one.search(q, { k: 10 });
    assert.equal(hits.length, exp.filter((s) => s > 0).length, q);
    for (const h of hits) assert.ok(Math.abs(h.score - exp[h.index]!) < 1e-9, `${q}: doc ${h.index} ${h.score} vs ${exp[h.index]}`);
    for (let i = 1; i < hits.length; i++) assert.ok(hits[i - 1]!.score >= hits[i]!.score);
    assert.deepEqual(many.search(q, { k: 10 }), hits, `segments: ${q}`);
  }
  const exp = expectedScores('lazy dog', 1.2, 0.75);
  for (const h of one.search('lazy dog', { k1: 1.2, b: 0.75 })) assert.ok(Math.abs(h.score - exp[h.index]!) < 1e-9);
  assert.deepEqual(one.passage(4), DOCS[4]);
  assert.deepEqual(many.passage(4), DOCS[4]);
  mergeSegments(join(dir, 'many'));
  const merged = new BM25Index(join(dir, 'many'));
  assert.equal(merged.segments.length, 1);
  for (const q of ['quick fox', 'lazy dogs']) assert.deepEqual(merged.search(q, { k: 10 }), one.search(q, { k: 10 }));
  assert.throws(() => addPassages(join(dir, 'many'), [DOCS[0]!]), (e: unknown) => e instanceof UserError && /already in the index/.test(e.message));
}));

test('bad index files are UserErrors naming the file', () => withDir((dir) => {
  assert.throws(() => new BM25Index(dir), (e: unknown) => e instanceof UserError && /no manifest\.json/.test(e.message));
  createIndex(dir);
  addPassages(dir, DOCS);
  const seg = join(dir, readManifest(dir).segments[0]!.file);
  const bytes = readFileSync(seg);
  bytes[8] = 99; // version
  writeFileSync(seg, bytes);
  assert.throws(() => new BM25Index(dir), (e: unknown) => e instanceof UserError && e.message.includes(seg) && /version 99/.test(e.message));
  writeFileSync(seg, bytes.subarray(0, 200));
  assert.throws(() => new BM25Index(dir), (e: unknown) => e instanceof UserError && e.message.includes(seg));
  writeFileSync(seg, 'not a segment at all, just some text long enough to pass the header length check...................................................');
  assert.throws(() => new BM25Index(dir), (e: unknown) => e instanceof UserError && /not an lmforge BM25 segment/.test(e.message));
  assert.throws(() => createIndex(dir), (e: unknown) => e instanceof UserError && /already holds an index/.test(e.message));
}));

test('passage readers: JSONL (text/contents), text blocks; errors name file and line', () => withDir((dir) => {
  writeFileSync(join(dir, 'p.jsonl'), '{"id":"x","text":"hello"}\n{"contents":"world","title":"T"}\n');
  assert.deepEqual(readJsonlPassages(join(dir, 'p.jsonl')), [{ id: 'x', text: 'hello' }, { id: `${join(dir, 'p.jsonl')}:2`, text: 'world', title: 'T' }]);
  writeFileSync(join(dir, 'bad.jsonl'), '{"id":"x","text":"hello"}\n{"id":"y"}\n');
  assert.throws(() => readJsonlPassages(join(dir, 'bad.jsonl')), (e: unknown) => e instanceof UserError && /bad\.jsonl:2: field 'text'/.test(e.message));
  writeFileSync(join(dir, 't.txt'), 'one\nline\n\n\ntwo\n');
  assert.deepEqual(readTextPassages(join(dir, 't.txt')).map((p) => p.text), ['one\nline', 'two']);
}));

test('XQuAD: BM25 recall@5 ≥ 0.90 of the 1,190 questions against the 240 paragraphs', () => withDir((dir) => {
  const passages = readSquadPassages(XQUAD);
  const questions = readSquadQuestions(XQUAD);
  assert.equal(passages.length, 240);
  assert.equal(questions.length, 1190);
  createIndex(dir);
  addPassages(dir, passages);
  const index = new BM25Index(dir);
  const id = (i: number): string => index.passage(i).id;
  const hit = questions.filter((q) => index.search(q.question, { k: 5 }).some((h) => id(h.index) === q.passageId)).length;
  assert.ok(hit / questions.length >= 0.9, `recall@5 = ${hit / questions.length}`);
}));
