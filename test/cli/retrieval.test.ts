// `lmforge index` / `retrieve` / `dense-train` / `dense-encode` end to end on small JSONL files: build, append,
// search (BM25, dense, hybrid), re-encode after an append; bad input is one line naming what is wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lmforge, refused } from './run-cli.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

test('lmforge index, retrieve, dense-train, dense-encode', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-cli-retrieval-'));
  try {
    const a = join(dir, 'a.jsonl');
    const b = join(dir, 'b.jsonl');
    writeFileSync(a, ['{"id":"fox","text":"The quick brown fox jumps over the lazy dog."}', '{"id":"bowl","text":"The Denver Broncos won Super Bowl 50 in Santa Clara."}'].join('\n') + '\n');
    writeFileSync(b, '{"id":"river","text":"The Nile river flows north into the Mediterranean Sea."}\n');
    const idx = join(dir, 'idx');
    let r = lmforge('index', '--input', a, '--out', idx);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /2 passages/);
    r = lmforge('index', '--input', b, '--out', idx, '--append');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /3 passages in 2 segment/);
    r = lmforge('retrieve', '--index', idx, '--query', 'which river flows north', 'who won the super bowl', '-k', '1', '--json');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { hits: { id: string }[] });
    assert.deepEqual(lines.map((l) => l.hits[0]!.id), ['river', 'bowl']);
    refused(lmforge('index', '--input', a, '--out', idx), /already holds an index/);
    refused(lmforge('retrieve', '--index', join(dir, 'none'), '--query', 'x'), /not a BM25 index/);
    refused(lmforge('retrieve', '--index', idx, '--query', 'x', '--mode', 'dense'), /needs --dense/);
    // A dense encoder trained on a question file over the same passages (SQuAD layout), then re-encoded after an append.
    const squad = join(dir, 'q.json');
    const paras = ['The quick brown fox jumps over the lazy dog. The dog sleeps all afternoon in the warm sun by the barn.', 'The Denver Broncos won Super Bowl 50 in Santa Clara. The game was played at Levi\'s Stadium in February 2016.'];
    writeFileSync(squad, JSON.stringify({ data: [{ title: 'T', paragraphs: paras.map((context, j) => ({ context, qas: [{ id: `q${j}a`, question: j ? 'Who won Super Bowl 50?' : 'What jumps over the dog?', answers: [] }, { id: `q${j}b`, question: j ? 'Where was Super Bowl 50?' : 'Which animal is lazy?', answers: [] }] })) }] }));
    const sidx = join(dir, 'sidx');
    assert.equal(lmforge('index', '--input', squad, '--out', sidx).code, 0);
    const dense = join(dir, 'dense');
    r = lmforge('dense-train', '--index', sidx, '--questions', squad, '--tokenizer', `${root}test/fixtures/eval/tokenizer-bpe512.json`, '--out', dense, '--dim', '16', '--steps', '5', '--batch', '2', '--held-out', '0.5', '--refresh', '2');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^RESULT \{/m);
    // The terms encoder (stemmed terms, bigrams, character trigrams, pivoted length normalisation) from the CLI.
    const denseTerms = join(dir, 'dense-terms');
    r = lmforge('dense-train', '--index', sidx, '--questions', squad, '--tokenizer', `${root}test/fixtures/eval/tokenizer-bpe512.json`, '--out', denseTerms, '--dim', '16', '--steps', '3', '--batch', '2', '--units', 'terms', '--bigrams', '--char-grams', '3', '--gram-weight', '0.7', '--length-norm', '0.7', '--lr-weights', '1e-2');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^RESULT \{/m);
    refused(lmforge('dense-train', '--index', sidx, '--questions', squad, '--tokenizer', `${root}test/fixtures/eval/tokenizer-bpe512.json`, '--out', denseTerms, '--char-grams', '3'), /need --units terms/);
    refused(lmforge('eval', '--model', dense, '--tasks', 'xquad_heldout', '--open-book', sidx, '--open-book-span-words', '3'), /--open-book-span-words needs --open-book-extractive/);
    r = lmforge('retrieve', '--index', sidx, '--dense', dense, '--mode', 'rrf', '--query', 'Super Bowl winner', '-k', '2', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { hits: unknown[] }).hits.length, 2);
    assert.equal(lmforge('index', '--input', b, '--out', sidx, '--append').code, 0);
    refused(lmforge('retrieve', '--index', sidx, '--dense', dense, '--query', 'x'), /dense-encode/);
    assert.equal(lmforge('dense-encode', '--index', sidx, '--dense', dense).code, 0);
    assert.equal(lmforge('retrieve', '--index', sidx, '--dense', dense, '--mode', 'dense', '--query', 'river').code, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lmforge index --window indexes sentence windows; reader-train refuses bad input with one line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-cli-window-'));
  try {
    const a = join(dir, 'a.jsonl');
    writeFileSync(a, '{"id":"p","text":"The Denver Broncos won Super Bowl 50. The game was played in Santa Clara. The Nile flows north."}\n');
    const idx = join(dir, 'idx');
    let r = lmforge('index', '--input', a, '--out', idx, '--window', '8');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /3 passages/);
    r = lmforge('retrieve', '--index', idx, '--query', 'where was the game played', '-k', '1', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { hits: { id: string; text: string }[] }).hits.map((h) => [h.id, h.text]), [['p#1', 'The game was played in Santa Clara.']]);
    refused(lmforge('reader-train', '--squad', join(dir, 'none.json'), '--out', join(dir, 'r')), /cannot read/);
    refused(lmforge('reader-train', '--squad', a, '--out', join(dir, 'r'), '--width', '100', '--heads', '3'), /multiple of --heads/);
    refused(lmforge('eval', '--model', dir, '--tasks', 'xquad_heldout', '--open-book', idx, '--open-book-mode', 'token'), /--open-book-mode: expected concat or rag-sequence/);
    refused(lmforge('reader-train', '--squad', a, '--out', join(dir, 'r'), '--dropout', '1'), /--dropout: expected a number in \[0, 0\.99\)/);
    refused(lmforge('reader-eval', '--reader', dir, '--squad', a, '--index', idx, '--held-out-from', '3', '--held-out-to', '3'), /--held-out-to 3 must be above --held-out-from 3/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
