// Open-book evaluation: a generate_until task run with an OpenBook gets the retrieved passages in front of each
// prompt (retrieved with the row's own prompt), and SQuAD token F1 is scored beside exact match; closed book is
// unchanged. The model here is a fake that reads an answer out of its context, so the difference is the retrieval's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTask, type OpenBook } from '../../src/eval/harness.js';
import { tokenF1 } from '../../src/eval/metrics.js';
import type { LanguageModel } from '../../src/eval/model.js';
import { parseTaskSpec } from '../../src/eval/task-spec.js';
import { buildInstances, builtinTaskDir, loadTask, type GenInstance } from '../../src/eval/tasks.js';
import { fileURLToPath } from 'node:url';
import { addPassages, BM25Index, createIndex } from '../../src/retrieval/bm25.js';

/** Answers with the words after "answer:" in the last passage-like line that has them, else "no idea". */
const reader: LanguageModel = {
  maxLength: 1024,
  identity: () => ({ kind: 'fake-reader' }),
  loglikelihood: () => [],
  loglikelihoodRolling: () => [],
  generateUntil: (reqs) => reqs.map((r) => /answer: ([^.\n]+)/.exec(r.context)?.[1] ?? 'no idea'),
  sampleUntil: () => [],
};

test('tokenF1 is SQuAD F1 on normalised text', () => {
  assert.equal(tokenF1('denver broncos', 'denver broncos'), 1);
  assert.equal(tokenF1('the denver', 'denver broncos'), 0.5);
  assert.equal(tokenF1('carolina', 'denver broncos'), 0);
  assert.equal(tokenF1('', ''), 1);
});

test('open book puts retrieved passages before the prompt; F1 and exact match are scored', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-openbook-'));
  try {
    writeFileSync(join(dir, 'qa.jsonl'), ['{"question":"who won super bowl 50","answer":["Denver Broncos"]}', '{"question":"where does the nile flow","answer":["north into the sea"]}'].join('\n') + '\n');
    const spec = parseTaskSpec({
      task: 'qa', version: 1, type: 'generate_until', data: { path: 'qa.jsonl' }, prompt: 'Q: {{question}}?\nA:',
      generation: { stop: ['\n'], max_tokens: 16, answers: '{{answer}}', normalize: 'squad' }, metrics: ['exact_match', 'f1'],
    }, 'qa.json');
    createIndex(join(dir, 'idx'));
    addPassages(join(dir, 'idx'), [
      { id: 'sb', text: 'Super Bowl 50 was won by the Denver team, answer: Denver Broncos.' },
      { id: 'nile', text: 'The Nile flows north, answer: north into the Mediterranean.' },
      { id: 'x', text: 'An unrelated passage about cooking pasta.' },
    ]);
    const index = new BM25Index(join(dir, 'idx'));
    const queries: string[] = [];
    const openBook: OpenBook = { retrieve: (q) => { queries.push(q); return index.search(q, { k: 1 }).map((h) => index.passage(h.index)); } };
    const closed = runTask(spec, reader, { dataDir: dir, source: 'qa', logSamples: true });
    const open = runTask(spec, reader, { dataDir: dir, source: 'qa', logSamples: true, openBook });
    assert.equal(closed.metrics.exact_match!.value, 0);
    assert.equal(closed.metrics.f1!.value, 0);
    assert.equal(open.metrics.exact_match!.value, 0.5);
    // "north into the mediterranean" against "north into the sea": 2 common of 3 tokens each (articles dropped).
    assert.ok(Math.abs(open.metrics.f1!.value - (1 + 2 / 3) / 2) < 1e-12, String(open.metrics.f1!.value));
    assert.deepEqual(queries, ['Q: who won super bowl 50?\nA:', 'Q: where does the nile flow?\nA:']);
    assert.deepEqual(open.samples!.map((s) => s.passages), [['sb'], ['nile']]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('xquad task: one row per question from the SQuAD JSON, every accepted answer', () => {
  const dataDir = fileURLToPath(new URL('../../../../shared/data', import.meta.url));
  const spec = loadTask('xquad', [builtinTaskDir()]);
  const inst = buildInstances(spec, { dataDir, numFewshot: 0, source: 'xquad' }) as GenInstance[];
  assert.equal(inst.length, 1190);
  assert.match(inst[0]!.context, /^Question: .+\?\nAnswer:$/);
  assert.ok(inst[0]!.answers.length >= 1);
  assert.equal(inst[0]!.doc.fields.title, 'Super_Bowl_50');
});

test('open book rag-sequence: a prompt per passage, the answer with the largest Σ_z p(z|x) p(y|x,z)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-openbook-'));
  try {
    writeFileSync(join(dir, 'qa.jsonl'), '{"question":"who won super bowl 50","answer":["Denver Broncos"]}\n');
    const spec = parseTaskSpec({
      task: 'qa', version: 1, type: 'generate_until', data: { path: 'qa.jsonl' }, prompt: 'Q: {{question}}?\nA:',
      generation: { stop: ['\n'], max_tokens: 16, answers: '{{answer}}', normalize: 'squad' }, metrics: ['exact_match', 'f1'],
    }, 'qa.json');
    const passages = [
      { id: 'top', text: 'answer: Carolina Panthers', score: 2 },
      { id: 'second', text: 'answer: Denver Broncos', score: 1.5 },
      { id: 'third', text: 'answer: Denver Broncos', score: 1.5 },
    ];
    // p(y | passage) = 0.6 for the passage's own answer, 0.4 for any other: Denver's mass over two passages wins.
    const generated: string[] = [];
    const ragReader: LanguageModel = {
      ...reader,
      generateUntil: (reqs) => reqs.map((r) => {
        generated.push(r.context);
        return ` ${/answer: ([^\n]+)/.exec(r.context)![1]}`;
      }),
      loglikelihood: (reqs) => reqs.map((r) => ({ logprob: Math.log(r.context.includes(`answer:${r.continuation.trimEnd()}`) ? 0.6 : 0.4), isGreedy: false, tokens: 1 })),
    };
    const openBook: OpenBook = { retrieve: () => passages, mode: 'rag-sequence', temperature: 1 };
    const open = runTask(spec, ragReader, { dataDir: dir, source: 'qa', logSamples: true, openBook });
    assert.deepEqual(generated, passages.map((p) => `${p.text}\n\nQ: who won super bowl 50?\nA:`));
    assert.equal(open.metrics.exact_match!.value, 1);
    const cands = open.samples![0]!.rag_candidates as { text: string; logprob: number }[];
    assert.deepEqual(cands.map((c) => c.text), [' Carolina Panthers', ' Denver Broncos']);
    // With the top passage alone (a very low temperature makes p(z|x) one-hot), Carolina would win.
    const sharp = runTask(spec, ragReader, { dataDir: dir, source: 'qa', openBook: { ...openBook, temperature: 0.01 } });
    assert.equal(sharp.metrics.exact_match!.value, 0);
    // Extractive: each passage's generation request carries that passage's text as the span source.
    const sources: (string | undefined)[] = [];
    runTask(spec, { ...ragReader, generateUntil: (reqs) => reqs.map((r) => (sources.push(r.extractFrom), ' x')) }, { dataDir: dir, source: 'qa', openBook: { ...openBook, extractive: true } });
    assert.deepEqual(sources, passages.map((p) => p.text));
    // Question first (readers trained with --layout question-first): the prompt less its answer cue leads each prompt.
    generated.length = 0;
    runTask(spec, ragReader, { dataDir: dir, source: 'qa', openBook: { ...openBook, questionFirst: true } });
    assert.deepEqual(generated, passages.map((p) => `Q: who won super bowl 50?\n\n${p.text}\n\nQ: who won super bowl 50?\nA:`));
    // Question first with echo (--layout question-echo): the passage twice between the two questions.
    generated.length = 0;
    runTask(spec, ragReader, { dataDir: dir, source: 'qa', openBook: { ...openBook, questionFirst: true, echo: true } });
    assert.deepEqual(generated, passages.map((p) => `Q: who won super bowl 50?\n\n${p.text}\n\n${p.text}\n\nQ: who won super bowl 50?\nA:`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('xquad_heldout: the questions of paragraphs 3–4 of every article; bad paragraph ranges are refused', () => {
  const dataDir = fileURLToPath(new URL('../../../../shared/data', import.meta.url));
  const spec = loadTask('xquad_heldout', [builtinTaskDir()]);
  const inst = buildInstances(spec, { dataDir, numFewshot: 0, source: 'xquad_heldout' }) as GenInstance[];
  assert.equal(inst.length, 434);
  assert.ok(inst.every((i) => /paragraphs\[[34]\]/.test(i.doc.where)), inst[0]!.doc.where);
  const base = { task: 't', version: 1, type: 'generate_until', prompt: 'Q', generation: { stop: ['\n'], max_tokens: 4, answers: '{{answers}}', normalize: 'squad' }, metrics: ['f1'] };
  assert.throws(() => parseTaskSpec({ ...base, data: { path: 'x.json.gz', format: 'squad', paragraphs: [3, 3] } }, 't.json'), /t\.json.*data\.paragraphs/);
  assert.throws(() => parseTaskSpec({ ...base, data: { path: 'x.jsonl', paragraphs: [0, 2] } }, 't.json'), /data\.paragraphs.*squad/);
});
