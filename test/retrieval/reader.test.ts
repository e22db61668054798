// The open-book reader's data and training: the SQuAD split by paragraph keeps held-out paragraphs out of training,
// cloze questions remove an answer span that sits in the sentence, rows put the loss on answer tokens only and fit
// the block, RAG-Sequence over a text reader picks the answer with the largest marginal, and a tiny training run
// writes a model directory the evaluation can load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGPT } from '../../src/models/gpt-io.js';
import { holdsSpan, passagePrior, ragSequenceAnswerText, wordSpans, type TextReader } from '../../src/retrieval/rag.js';
import { candidateSpans, clozeOf, clozeRows, questionRows, questionsOnWindows, rowSegments, splitSquad, windowPassages, type ReaderRow } from '../../src/retrieval/reader-data.js';
import { adamwUpdater } from '../../src/cli/retrieval.js';
import { spanConstraint } from '../../src/retrieval/reader-extract.js';
import { batchOf, encodeRow, readerLearningRate, trainReader } from '../../src/retrieval/reader-train.js';
import { countPreTokens, trainBpe } from '../../src/tokenizers/bpe-trainer.js';
import { loadTokenizer } from '../../src/tokenizers/format.js';
import { mulberry32 } from '../../src/util/mulberry32.js';

const PARAGRAPHS = [
  'The Broncos defeated the Carolina Panthers in 2016 to win Super Bowl 50. The game was played at Levi\'s Stadium in Santa Clara. Peyton Manning threw for 141 yards.',
  'The Panthers finished the season with 15 wins, the Panthers said. Cam Newton was named the Most Valuable Player. The defense gave up 308 points.',
  'Held-out paragraph: the halftime show featured Coldplay. Coldplay played in February. Coldplay and Lady Gaga sang the national anthem.',
];

function squadFixture(dir: string): string {
  const path = join(dir, 'squad.json');
  const para = (context: string, q: string, a: string): object => ({ context, qas: [{ id: q, question: q, answers: [{ answer_start: context.indexOf(a), text: a }] }] });
  writeFileSync(path, JSON.stringify({
    version: '1.1',
    data: [
      { title: 'Super_Bowl_50', paragraphs: [para(PARAGRAPHS[0]!, 'Who won Super Bowl 50?', 'The Broncos'), para(PARAGRAPHS[1]!, 'How many points did the defense give up?', '308'), para(PARAGRAPHS[2]!, 'Who sang the anthem?', 'Lady Gaga')] },
    ],
  }));
  return path;
}

test('splitSquad holds out paragraphs ≥ from of every article, text and questions', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-reader-'));
  try {
    const s = splitSquad(squadFixture(dir), 2);
    assert.deepEqual(s.trainPassages.map((p) => p.id), ['0-0', '0-1']);
    assert.deepEqual(s.heldOutPassages.map((p) => p.id), ['0-2']);
    assert.deepEqual(s.train.map((q) => q.question), ['Who won Super Bowl 50?', 'How many points did the defense give up?']);
    assert.deepEqual(s.heldOut.map((q) => q.answers[0]), ['Lady Gaga']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cloze questions replace an answer-like span by its wh-word; the answer is that span', () => {
  const words = 'The Broncos defeated the Carolina Panthers in 2016 to win Super Bowl 50.'.split(' ');
  const spans = candidateSpans(words);
  const texts = spans.map((s) => `${s.wh}:${words.slice(s.start, s.end).join(' ')}`);
  assert.ok(texts.includes('when:2016'), texts.join('|'));
  assert.ok(texts.includes('what:Carolina Panthers'), texts.join('|'));
  assert.ok(!texts.some((t) => t.endsWith(':The')), 'the sentence-initial capital is not a name');
  const random = mulberry32(5);
  for (let i = 0; i < 20; i++) {
    const c = clozeOf(words.join(' '), random)!;
    assert.ok(words.join(' ').includes(c.answer), c.answer);
    assert.ok(!c.question.includes(c.answer) || c.answer === '50', `${c.question} → ${c.answer}`);
    assert.match(c.question, /(when|how many|what)/);
    assert.match(c.question, /\?$/);
  }
  assert.equal(clozeOf('Too short.', random), null);
});

test('rows: the loss covers answer tokens only, the first question reads as an evaluation prompt, rows fit the block', () => {
  const counts = new Map<string, number>();
  for (const p of PARAGRAPHS) countPreTokens(p, counts);
  const tok = trainBpe(counts, { vocabSize: 300 });
  const row: ReaderRow = { passage: { title: 'SB', text: PARAGRAPHS[0]! }, qas: [{ question: 'Who won?', answer: 'The Broncos' }, { question: 'When?', answer: '2016' }], kind: 'question' };
  const seg = rowSegments(row);
  assert.equal(seg.head + seg.pairs[0]![0], `SB\n${PARAGRAPHS[0]}\n\nQuestion: Who won?\nAnswer:`);
  const e = encodeRow(tok, row, 512)!;
  assert.equal(tok.decode(e.ids), `${seg.head}Question: Who won?\nAnswer: The Broncos\n\nQuestion: When?\nAnswer: 2016\n`);
  assert.equal(tok.decode(e.ids.filter((_, i) => e.mask[i] === 1)), ' The Broncos\n 2016\n');
  const { x, y, yText, B, T } = batchOf([e, encodeRow(tok, { passage: null, qas: [{ question: 'Who?', answer: 'Cam Newton' }], kind: 'closed' }, 512)!]);
  assert.equal(B, 2);
  assert.equal(T, e.ids.length - 1);
  for (let i = 0; i < B * T; i++) assert.ok(y[i] === -1 || yText[i] === -1, 'a target is an answer or text target, not both');
  assert.deepEqual([...y.subarray(0, T)].filter((v) => v !== -1), e.ids.filter((_, i) => i > 0 && e.mask[i] === 1));
  assert.equal(x[0], e.ids[0]);
  // A short block keeps the first question and drops the second; a tiny one cuts the passage's start.
  const firstLen = tok.encode(`${seg.head}Question: Who won?\nAnswer: The Broncos\n`).length;
  const cut = encodeRow(tok, row, firstLen + 2)!;
  assert.equal(tok.decode(cut.ids.filter((_, i) => cut.mask[i] === 1)), ' The Broncos\n');
  const tight = encodeRow(tok, row, 80)!;
  assert.ok(tight.ids.length <= 81 && tight.ids.length < e.ids.length);
  assert.match(tok.decode(tight.ids), /Question: Who won\?\nAnswer: The Broncos\n$/);
});

test('clozeRows and questionRows: one row per passage, closed-book rows without a passage', () => {
  const passages = PARAGRAPHS.map((text, i) => ({ id: `0-${i}`, text }));
  const rows = clozeRows(passages, 2, 1);
  assert.equal(rows.length, 3);
  for (const r of rows) for (const qa of r.qas) assert.ok(r.passage!.text.includes(qa.answer), qa.answer);
  const qs = [{ id: 'a', question: 'Who?', answers: ['Broncos'], passageId: '0-0' }, { id: 'b', question: 'When?', answers: ['2016'], passageId: '0-0' }];
  const qr = questionRows(qs, passages, 1, 8, 3);
  assert.equal(qr.filter((r) => r.kind === 'question').length, 1);
  assert.equal(qr.find((r) => r.kind === 'question')!.qas.length, 2);
  assert.deepEqual(qr.filter((r) => r.kind === 'closed').map((r) => [r.passage, r.qas.length]), [[null, 2]]);
});

test('RAG-Sequence over a text reader: candidates scored under every passage, the largest marginal wins', () => {
  // Passage A says "x", B and C say "y": p(z|x) favours A alone, but y's mass over B and C is larger.
  const says: Record<string, string> = { A: ' x', B: ' y', C: ' y' };
  const like: Record<string, Record<string, number>> = { A: { ' x\n': Math.log(0.9), ' y\n': Math.log(0.05) }, B: { ' x\n': Math.log(0.1), ' y\n': Math.log(0.8) }, C: { ' x\n': Math.log(0.1), ' y\n': Math.log(0.8) } };
  const seen: string[] = [];
  const reader: TextReader = {
    generateUntil: (rs) => rs.map((r) => says[r.context]!),
    loglikelihood: (rs) => rs.map((r) => {
      seen.push(`${r.context}|${r.continuation}`);
      return { logprob: like[r.context]![r.continuation]! };
    }),
  };
  const logPz = passagePrior([1.0, 0.6, 0.6]);
  const r = ragSequenceAnswerText(reader, ['A', 'B', 'C'], logPz, { stop: ['\n'], maxTokens: 8 });
  const pz = logPz.map(Math.exp);
  const py = pz[0]! * 0.05 + pz[1]! * 0.8 + pz[2]! * 0.8;
  const px = pz[0]! * 0.9 + pz[1]! * 0.1 + pz[2]! * 0.1;
  assert.equal(r.answer, py > px ? ' y' : ' x');
  assert.ok(py > px);
  assert.ok(Math.abs(r.logprob - Math.log(py)) < 1e-9);
  assert.ok(Math.abs(r.candidates.find((c) => c.text === ' x')!.logprob - Math.log(px)) < 1e-9);
  // Grouped by prompt (a reader reuses each prompt's encoding), each distinct candidate once per prompt.
  assert.deepEqual(seen, ['A| x\n', 'A| y\n', 'B| x\n', 'B| y\n', 'C| x\n', 'C| y\n']);
  assert.throws(() => ragSequenceAnswerText(reader, ['A'], [0, 0], { stop: ['\n'], maxTokens: 8 }), /1 prompts but 2/);
  // Extractive: a candidate gets mass only from the passages that hold it, so " x" (in A alone) keeps only A's share.
  const ex = ragSequenceAnswerText(reader, ['A', 'B', 'C'], logPz, { stop: ['\n'], maxTokens: 8 }, ['say x', 'say y', 'y  again']);
  assert.ok(Math.abs(ex.candidates.find((c) => c.text === ' x')!.logprob - Math.log(pz[0]! * 0.9)) < 1e-9);
  assert.ok(Math.abs(ex.candidates.find((c) => c.text === ' y')!.logprob - Math.log(pz[1]! * 0.8 + pz[2]! * 0.8)) < 1e-9);
});

test('span candidates: word spans with trimmed punctuation, word-aligned support, question-aware (PMI) scoring', () => {
  assert.deepEqual(wordSpans('Lady Gaga, (2016).', 2), ['Lady', 'Lady Gaga', 'Gaga', 'Gaga, (2016', '2016']);
  assert.equal(holdsSpan('Lady Gaga sang', 'Gaga'), true);
  assert.equal(holdsSpan('Lady Gagas sang', 'Gaga'), false);
  assert.equal(holdsSpan('xGaga and Gaga.', 'Gaga'), true);
  // Passage "Bob met Ann": the reader likes " Bob" under any question (its prior), " Ann" only with the question.
  const ll: Record<string, Record<string, number>> = {
    Q: { ' Bob\n': Math.log(0.5), ' Ann\n': Math.log(0.3), ' met\n': Math.log(0.01), ' Bob met\n': Math.log(0.01), ' met Ann\n': Math.log(0.01) },
    N: { ' Bob\n': Math.log(0.9), ' Ann\n': Math.log(0.05), ' met\n': Math.log(0.01), ' Bob met\n': Math.log(0.01), ' met Ann\n': Math.log(0.01) },
  };
  const calls: string[] = [];
  const reader: TextReader = {
    generateUntil: (rs) => rs.map(() => ' Bob'),
    loglikelihood: (rs) => rs.map((r) => {
      calls.push(r.context);
      return { logprob: ll[r.context]![r.continuation]!, tokens: r.continuation.split(' ').length };
    }),
  };
  const o = { stop: ['\n'], maxTokens: 8, spanWords: 2 };
  const plain = ragSequenceAnswerText(reader, ['Q'], [0], o, ['Bob met Ann']);
  assert.equal(plain.answer, ' Bob');
  const nullCache = new Map<string, Map<string, number>>();
  const pmi = ragSequenceAnswerText(reader, ['Q'], [0], { ...o, pmi: 1, nullPrompts: ['N'], nullCache }, ['Bob met Ann']);
  assert.equal(pmi.answer, ' Ann');
  assert.ok(Math.abs(pmi.logprob - (Math.log(0.3) - Math.log(0.05))) < 1e-9);
  // The null scores are cached: a second question over the same passage scores only under its own prompt.
  calls.length = 0;
  ragSequenceAnswerText(reader, ['Q'], [0], { ...o, pmi: 1, nullPrompts: ['N'], nullCache }, ['Bob met Ann']);
  assert.ok(calls.every((c) => c === 'Q') && calls.length === 5);
});

test('windowPassages cuts whole sentences into windows of at most maxWords; questions move to the window of their answer', () => {
  const p = { id: '0-1', title: 'SB', text: PARAGRAPHS[1]! };
  const ws = windowPassages([p], 12);
  assert.deepEqual(ws.map((w) => w.id), ['0-1#0', '0-1#1', '0-1#2']);
  assert.ok(ws.every((w) => w.title === 'SB' && w.text.split(' ').length <= 12));
  assert.equal(ws.map((w) => w.text).join(' '), PARAGRAPHS[1]);
  // A sentence longer than the window is a window of its own; a wide window keeps the passage whole.
  assert.equal(windowPassages([p], 3).length, 3);
  assert.deepEqual(windowPassages([p], 1000).map((w) => w.text), [PARAGRAPHS[1]]);
  const qs = [{ id: 'a', question: 'How many?', answers: ['308'], passageId: '0-1' }, { id: 'b', question: 'Who?', answers: ['nobody'], passageId: '0-1' }];
  assert.deepEqual(questionsOnWindows(qs, ws).map((q) => [q.id, q.passageId]), [['a', '0-1#2']]);
});

test('readerLearningRate: warmup, then cosine from lr down to lr/10 at the last step', () => {
  assert.ok(readerLearningRate(1, 0, 1000) < 0.02);
  assert.ok(Math.abs(readerLearningRate(1, 100, 1000) - 1) < 1e-12);
  assert.ok(Math.abs(readerLearningRate(1, 550, 1000) - 0.55) < 1e-12);
  assert.ok(Math.abs(readerLearningRate(1, 1000, 1000) - 0.1) < 1e-12);
});

test('trainReader: a tiny run writes a model directory with its tokenizer; held-out text is not in the tokenizer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-reader-'));
  try {
    const out = join(dir, 'reader');
    const lines: string[] = [];
    const r = trainReader({
      squad: squadFixture(dir), extraPassages: [], out, vocabSize: 1000, heldOutFrom: 2,
      model: { n_layer: 1, n_head: 2, n_embd: 16, block_size: 96 }, steps: 3, batch: 2, lr: 1e-3,
      clozePerPassage: 2, questionRepeats: 1, closedShare: 1, textWeight: 0.5, windowWords: 0, saveEvery: 0, seed: 1, log: (l) => lines.push(l),
    }, adamwUpdater);
    assert.equal(r.trainPassages, 2);
    assert.equal(r.trainQuestions, 2);
    assert.ok(Number.isFinite(r.lossFirst) && Number.isFinite(r.lossLast));
    for (const f of ['model.safetensors', 'config.json', 'meta.json', 'tokenizer.json', 'reader.json']) assert.ok(existsSync(join(out, f)), f);
    const model = loadGPT(out);
    const tok = loadTokenizer(join(out, 'tokenizer.json'));
    assert.equal(model.config.vocab_size, tok.vocabSize);
    model.dispose();
    // Words seen 3 times become one token when counted: the training paragraphs' " Panthers" is, the held-out
    // paragraph's " Coldplay" (never read) is not.
    assert.equal(tok.encode(' Panthers').length, 1);
    assert.ok(tok.encode(' Coldplay').length > 1);
    assert.match(lines.join('\n'), /1 held-out paragraphs \(1 questions, never read\)/);
    assert.equal(JSON.parse(readFileSync(join(out, 'reader.json'), 'utf8')).split.held_out_questions, 1);
    // --init continues from the directory: its tokenizer (not a new one) and its weights' shape.
    const out2 = join(dir, 'reader2');
    trainReader({
      squad: squadFixture(dir), extraPassages: [], out: out2, vocabSize: 300, heldOutFrom: 2, init: out,
      model: { n_layer: 2, n_head: 2, n_embd: 32, block_size: 64 }, steps: 2, batch: 2, lr: 1e-3,
      clozePerPassage: 2, questionRepeats: 1, closedShare: 1, textWeight: 0.5, windowWords: 0, saveEvery: 0, seed: 2, log: () => {},
    }, adamwUpdater);
    assert.equal(readFileSync(join(out2, 'tokenizer.json'), 'utf8'), readFileSync(join(out, 'tokenizer.json'), 'utf8'));
    const continued = loadGPT(out2);
    assert.deepEqual([continued.config.n_layer, continued.config.n_embd, continued.config.block_size], [1, 16, 96]);
    continued.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('spanConstraint: only continuations of passage spans; the answer may end only at a word boundary', () => {
  // source: " Den" "ver" " Bron" "cos" " won" ; stop = 9; tokens 1 and 3 continue a word.
  const source = [0, 1, 2, 3, 4];
  const mid = (id: number): boolean => id === 1 || id === 3;
  const allowedAfter = (generated: number[]): number[] => {
    const logits = new Float32Array(10);
    spanConstraint(source, [9], mid)(logits, { tokens: [7, 7, ...generated], promptLength: 2 });
    return [...logits.keys()].filter((v) => logits[v] !== -Infinity);
  };
  assert.deepEqual(allowedAfter([]), [0, 1, 2, 3, 4]);
  assert.deepEqual(allowedAfter([0]), [1]); // " Den" must go on to "ver"
  assert.deepEqual(allowedAfter([0, 1]), [2, 9]); // " Denver" may end or continue
  assert.deepEqual(allowedAfter([2, 3, 4]), [9]); // the passage's end: only the stop
  assert.deepEqual(allowedAfter([4, 0]), [9]); // not a span: only the stop is left
});
