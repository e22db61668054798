// The question-first reader: rows put the question before the passage (and keep the closed-book answer cue), the
// synthetic wh-questions move the wh-phrase to the front and leave the answer out, the span head's targets are the
// answer's own tokens, spans are read whole words only, and a tiny run with a span head writes span_head.safetensors
// that `reader-eval`'s evaluation (eval/open-book-span.ts) loads and scores on the held-out questions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adamwUpdater } from '../../src/cli/retrieval.js';
import { evaluateSpanReader, readerLayout, repeatsQuestion } from '../../src/eval/open-book-span.js';
import { addPassages, createIndex } from '../../src/retrieval/bm25.js';
import { questionLead, rowSegments, whQuestionOf, whRows, type ReaderRow } from '../../src/retrieval/reader-data.js';
import { bestSpans, findAnswer, loadMatchEmbedding, MATCH_FILE, questionMatches, tokensCovering, wordBoundaries } from '../../src/retrieval/reader-span.js';
import { encodeRow, trainReader } from '../../src/retrieval/reader-train.js';
import { countPreTokens, trainBpe } from '../../src/tokenizers/bpe-trainer.js';
import { mulberry32 } from '../../src/util/mulberry32.js';

const PARAGRAPHS = [
  'The Broncos defeated the Carolina Panthers in 2016 to win Super Bowl 50. The game was played at Levi\'s Stadium in Santa Clara. Peyton Manning threw for 141 yards.',
  'The Panthers finished the season with 15 wins, the Panthers said. Cam Newton was named the Most Valuable Player. The defense gave up 308 points.',
  'Held-out paragraph: the halftime show featured Coldplay. Coldplay played in February. Coldplay and Lady Gaga sang the national anthem.',
];

function squadFixture(dir: string): string {
  const path = join(dir, 'squad.json');
  const para = (context: string, q: string, a: string): object => ({ context, qas: [{ id: q, question: q, answers: [{ answer_start: context.indexOf(a), text: a }] }] });
  writeFileSync(path, JSON.stringify({ version: '1.1', data: [{ title: 'Super_Bowl_50', paragraphs: [para(PARAGRAPHS[0]!, 'Who won Super Bowl 50?', 'The Broncos'), para(PARAGRAPHS[1]!, 'How many points did the defense give up?', '308'), para(PARAGRAPHS[2]!, 'Who sang the anthem?', 'Lady Gaga')] }] }));
  return path;
}

test('whQuestionOf: the wh-phrase first, the answer left out of the question and found in the sentence', () => {
  const sentence = 'The Broncos defeated the Carolina Panthers in 2016 to win Super Bowl 50.';
  const random = mulberry32(3);
  const seen = new Set<string>();
  for (let i = 0; i < 40; i++) {
    const qa = whQuestionOf(sentence, random)!;
    assert.ok(findAnswer(sentence, qa.answer) >= 0, qa.answer);
    assert.match(qa.question, /^(When|In what year|What year|How many|How much|What number|What percentage|Where|In what place|Who|What|Which) /);
    assert.match(qa.question, /\?$/);
    assert.ok(!qa.question.slice(0, -1).split(' ').includes(qa.answer), `${qa.question} → ${qa.answer}`);
    seen.add(qa.answer);
  }
  assert.ok(seen.has('2016') && seen.has('Carolina Panthers'), [...seen].join('|'));
  assert.equal(whQuestionOf('Too short here.', random), null);
});

test('question-first rows: "Question: q" before the passage, the closed-book prompt after it, one question a row', () => {
  const row: ReaderRow = { passage: { title: 'T', text: 'Cam Newton was named MVP.' }, qas: [{ question: 'Who was named MVP?', answer: 'Cam Newton' }, { question: 'x?', answer: 'y' }], kind: 'question' };
  assert.deepEqual(rowSegments(row, 'question-first'), { head: 'Question: Who was named MVP?\n\nT\nCam Newton was named MVP.\n\n', pairs: [['Question: Who was named MVP?\nAnswer:', ' Cam Newton\n']] });
  assert.equal(rowSegments(row).head, 'T\nCam Newton was named MVP.\n\n');
  assert.equal(questionLead('Question: q\nAnswer:'), 'Question: q');
  assert.equal(questionLead('no newline'), 'no newline');
  const rows = whRows([{ id: 'p', text: PARAGRAPHS[0]! }], 3, 0, 1);
  assert.equal(rows.length, 3);
  assert.ok(rows.every((r) => r.qas.length === 1));
});

test('question-echo rows: the question, then the passage twice; the span targets lie in the second copy', () => {
  const row: ReaderRow = { passage: { title: 'T', text: 'Cam Newton was named MVP.' }, qas: [{ question: 'Who was named MVP?', answer: 'Cam Newton' }], kind: 'question' };
  assert.deepEqual(rowSegments(row, 'question-echo'), { head: 'Question: Who was named MVP?\n\nT\nCam Newton was named MVP.\n\nT\nCam Newton was named MVP.\n\n', pairs: [['Question: Who was named MVP?\nAnswer:', ' Cam Newton\n']] });
  const counts = new Map<string, number>();
  for (const p of PARAGRAPHS) countPreTokens(p, counts);
  const tok = trainBpe(counts, { vocabSize: 300 });
  const one = encodeRow(tok, row, 128, 'question-first')!;
  const two = encodeRow(tok, row, 128, 'question-echo')!;
  const copy = one.passage![1] - one.passage![0];
  assert.equal(two.passage![1] - two.passage![0], copy);
  // The second copy starts one passage (plus its blank line) later than the first, and holds the same tokens.
  assert.deepEqual(two.ids.slice(two.passage![0], two.passage![1]), one.ids.slice(one.passage![0], one.passage![1]));
  assert.ok(two.passage![0] >= one.passage![1], `${two.passage} after ${one.passage}`);
  assert.equal(tok.decode(two.ids.slice(two.span![0], two.span![1] + 1)).trim(), 'Cam Newton');
  assert.equal(two.span![0] - two.passage![0], one.span![0] - one.passage![0]);
});

test('encodeRow (question-first): the span targets are the answer tokens inside the passage, not the question', () => {
  const counts = new Map<string, number>();
  for (const p of PARAGRAPHS) countPreTokens(p, counts);
  const tok = trainBpe(counts, { vocabSize: 300 });
  // "Panthers" is also in the question: the target must be its occurrence in the passage text.
  const row: ReaderRow = { passage: { title: 'Panthers', text: 'The Panthers finished the season with 15 wins.' }, qas: [{ question: 'How many wins did the Panthers have?', answer: '15' }], kind: 'question' };
  const e = encodeRow(tok, row, 128, 'question-first')!;
  assert.ok(e.passage && e.span);
  assert.equal(tok.decode(e.ids.slice(e.span[0], e.span[1] + 1)).trim(), '15');
  assert.ok(tok.decode(e.ids.slice(e.passage[0], e.passage[1])).startsWith('Panthers\nThe Panthers'));
  const p2: ReaderRow = { ...row, qas: [{ question: 'Who?', answer: 'Panthers' }] };
  const e2 = encodeRow(tok, p2, 128, 'question-first')!;
  const at = tok.decode(e2.ids.slice(0, e2.span![0]));
  assert.ok(at.endsWith('Panthers\nThe'), JSON.stringify(at)); // in the text, after the title
  assert.equal(encodeRow(tok, row, 128)?.span, undefined); // passage-first rows train no span
});

test('span helpers: tokens covering bytes, word-aligned answers, best spans by start + end log-probability', () => {
  // tokens of 3, 2 and 4 bytes
  const starts = [0, 3, 5, 9];
  assert.deepEqual(tokensCovering(starts, 0, 3), [0, 0]);
  assert.deepEqual(tokensCovering(starts, 4, 6), [1, 2]);
  assert.equal(tokensCovering(starts, 5, 5), null);
  assert.equal(tokensCovering(starts, 8, 12), null);
  assert.equal(findAnswer('Grammys and Grammy', 'Grammy'), 12);
  assert.equal(findAnswer('Grammys', 'Grammy'), -1);
  const start = [9, 0, 5, 0];
  const end = [9, 0, 0, 5];
  const best = bestSpans(start, end, 1, 4, 2, 3);
  assert.deepEqual([best[0]!.start, best[0]!.end], [2, 3]); // position 0 is outside [1, 4)
  assert.ok(best.every((s) => s.end - s.start < 2 && s.start >= 1));
  const only = bestSpans(start, end, 1, 4, 3, 10, { start: [true, true, false, true], end: [true, true, true, false] });
  assert.ok(only.every((s) => s.start !== 2 && s.end !== 3));
  const counts = new Map<string, number>([[' Grammys', 1], [' won', 1]]);
  const tok = trainBpe(counts, { vocabSize: 262 }); // bytes plus a few merges: " Grammys" is several tokens
  const ids = tok.encode(' Grammys won');
  assert.ok(ids.length > 3);
  const wb = wordBoundaries(tok, ids);
  const readable = new Set<string>();
  for (let i = 0; i < ids.length; i++) for (let j = i; j < ids.length; j++) if (wb.start[i] && wb.end[j]) readable.add(tok.decode(ids.slice(i, j + 1)).trim());
  assert.ok(readable.has('Grammys') && readable.has('won') && readable.has('Grammys won'), [...readable].join('|'));
  assert.ok([...readable].every((t) => ['', 'Grammys', 'won', 'Grammys won'].includes(t)), [...readable].join('|'));
});

test('questionMatches: passage words that share a stemmed, non-stopword term with the question, whole words only', () => {
  const counts = new Map<string, number>();
  countPreTokens('Question: Who founded Warsaw?\n\nWarsaw was founded in 1300 by the dukes of Masovia. Warsawians founding', counts);
  const tok = trainBpe(counts, { vocabSize: 290 });
  const lead = 'Question: Who founded Warsaw?\n\n';
  const passage = 'Warsaw was founded in 1300 by the dukes. Warsawians found it.';
  const ids = tok.encode(lead + passage);
  const lo = tok.encode(lead).length;
  const flags = questionMatches(tok, ids, lo, ids.length, 'Who founded Warsaw?');
  const flagged = ids.map((id, i) => (flags[i] ? tok.decode([id]) : '')).join('|').replace(/\|+/g, '|');
  assert.equal(ids.slice(0, lo).some((_, i) => flags[i] === 1), false, 'the question itself is not flagged');
  // "Warsaw" and "founded" match (Porter: found ← founded, found); "was", "in", "by", "the" are stopwords or absent;
  // "Warsawians" is another word, not "Warsaw" plus a suffix.
  const words = tok.decode(ids.filter((_, i) => flags[i] === 1));
  assert.match(words, /^Warsaw founded found$/, flagged);
});

test('repeatsQuestion: a span of only the question\'s words (possessive or plural s aside) is no answer', () => {
  assert.equal(repeatsQuestion('Super Bowls', 'Who played in Super Bowl 50?'), true);
  assert.equal(repeatsQuestion("Manning's", 'Who took over from Manning?'), true);
  assert.equal(repeatsQuestion('the Broncos', 'Who is the General Manager for the Broncos?'), true);
  assert.equal(repeatsQuestion('Peyton Manning', 'Who took over from Manning?'), false);
  assert.equal(repeatsQuestion('six', 'How many Grammys has Lady Gaga won?'), false);
  assert.equal(repeatsQuestion('', 'Who won?'), false);
});

test('trainReader with a span head writes span_head.safetensors; evaluateSpanReader scores the held-out questions', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-reader-span-'));
  try {
    const squad = squadFixture(dir);
    const out = join(dir, 'reader');
    const lines: string[] = [];
    const r = trainReader({
      squad, extraPassages: [], out, vocabSize: 300, heldOutFrom: 2, layout: 'question-first', spanWeight: 1, precision: 'bf16',
      model: { n_layer: 1, n_head: 2, n_embd: 16, block_size: 128 }, steps: 3, batch: 2, lr: 1e-3,
      clozePerPassage: 2, questionRepeats: 1, closedShare: 0, textWeight: 0.5, windowWords: 0, saveEvery: 0, seed: 1, log: (l) => lines.push(l),
    }, adamwUpdater);
    assert.ok(Number.isFinite(r.spanLossLast), String(r.spanLossLast));
    assert.ok(existsSync(join(out, 'span_head.safetensors')));
    assert.match(lines.join('\n'), /span head: \d+ of \d+ rows have a gold span/);
    const index = join(dir, 'idx');
    createIndex(index);
    addPassages(index, PARAGRAPHS.map((text, i) => ({ id: `0-${i}`, text, title: 'Super_Bowl_50' })));
    const e = evaluateSpanReader({ reader: out, squad, index, k: 2, temperature: 1, maxAnswerTokens: 8, heldOutFrom: 2 });
    assert.equal(e.n, 1);
    assert.equal(e.samples[0]!.question, 'Who sang the anthem?');
    assert.ok(e.samples[0]!.prediction !== '' && PARAGRAPHS.some((p) => p.includes(e.samples[0]!.prediction)), e.samples[0]!.prediction);
    assert.ok(e.f1 >= 0 && e.f1 <= 1);
    // Spans that only repeat the question are skipped (the default of reader-eval); a development split evaluates
    // only the held-out paragraphs below --held-out-to.
    for (const s of evaluateSpanReader({ reader: out, squad, index, k: 3, temperature: 1, maxAnswerTokens: 8, heldOutFrom: 0, skipQuestionWords: true }).samples) {
      assert.equal(repeatsQuestion(s.prediction, s.question), false, `${s.question} → ${s.prediction}`);
    }
    const dev = evaluateSpanReader({ reader: out, squad, index, k: 2, temperature: 1, maxAnswerTokens: 8, heldOutFrom: 1, heldOutTo: 2 });
    assert.deepEqual(dev.samples.map((s) => s.question), ['How many points did the defense give up?']);
    // The exact-match feature: a zero embedding beside the GPT at first, trained with it and read back by the evaluation.
    const withMatch = join(dir, 'match');
    trainReader({
      squad, extraPassages: [], out: withMatch, vocabSize: 300, heldOutFrom: 2, layout: 'question-first', spanWeight: 1, matchFeature: true,
      model: { n_layer: 1, n_head: 2, n_embd: 16, block_size: 128 }, steps: 3, batch: 2, lr: 1e-2,
      clozePerPassage: 2, questionRepeats: 1, closedShare: 0, textWeight: 0.5, windowWords: 0, saveEvery: 0, seed: 1, log: () => {},
    }, adamwUpdater);
    assert.ok(existsSync(join(withMatch, MATCH_FILE)));
    const table = loadMatchEmbedding(withMatch, 16)!;
    assert.ok(table.table.weight.toArray().some((v) => v !== 0), 'the embedding trained');
    table.dispose();
    const m = evaluateSpanReader({ reader: withMatch, squad, index, k: 2, temperature: 1, maxAnswerTokens: 8, heldOutFrom: 2 });
    assert.equal(m.n, 1);
    assert.ok(m.samples[0]!.prediction !== '', 'a span');
    // A span head needs the question before the passage; a reader without one is refused by the evaluation.
    assert.throws(() => trainReader({
      squad, extraPassages: [], out: join(dir, 'bad'), vocabSize: 300, heldOutFrom: 2, spanWeight: 1,
      model: { n_layer: 1, n_head: 2, n_embd: 16, block_size: 128 }, steps: 1, batch: 2, lr: 1e-3,
      clozePerPassage: 1, questionRepeats: 1, closedShare: 0, textWeight: 0, windowWords: 0, saveEvery: 0, seed: 1, log: () => {},
    }, adamwUpdater), /needs --layout question-first/);
    // An echo reader continued from it with a longer context (RoPE: no learned positions), scored with its layout.
    const echo = join(dir, 'echo');
    trainReader({
      squad, extraPassages: [], out: echo, vocabSize: 300, heldOutFrom: 2, layout: 'question-echo', spanWeight: 1, init: out, initBlock: 160,
      model: { n_layer: 1, n_head: 2, n_embd: 16, block_size: 128 }, steps: 2, batch: 2, lr: 1e-3,
      clozePerPassage: 2, questionRepeats: 1, closedShare: 0, textWeight: 0.5, windowWords: 0, saveEvery: 0, seed: 2, log: () => {},
    }, adamwUpdater);
    assert.equal(JSON.parse(readFileSync(join(echo, 'config.json'), 'utf8')).lmforge.block_size, 160);
    assert.equal(readerLayout(echo), 'question-echo');
    const ee = evaluateSpanReader({ reader: echo, squad, index, k: 2, temperature: 1, maxAnswerTokens: 8, heldOutFrom: 2 });
    assert.ok(PARAGRAPHS.some((p) => p.includes(ee.samples[0]!.prediction)), ee.samples[0]!.prediction);
    assert.throws(() => trainReader({
      squad, extraPassages: [], out: join(dir, 'short'), vocabSize: 300, heldOutFrom: 2, layout: 'question-echo', spanWeight: 1, init: out, initBlock: 64,
      model: { n_layer: 1, n_head: 2, n_embd: 16, block_size: 128 }, steps: 1, batch: 2, lr: 1e-3,
      clozePerPassage: 1, questionRepeats: 1, closedShare: 0, textWeight: 0, windowWords: 0, saveEvery: 0, seed: 1, log: () => {},
    }, adamwUpdater), /can grow, not shrink/);
    rmSync(join(out, 'span_head.safetensors'));
    assert.throws(() => evaluateSpanReader({ reader: out, squad, index, k: 2, temperature: 1, maxAnswerTokens: 8, heldOutFrom: 2 }), /no span_head\.safetensors/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
