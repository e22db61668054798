// Open-book against closed-book QA on held-out XQuAD questions, with the same reader model: `lmforge reader-train`
// (a GPT trained on cloze questions from the training paragraphs and BoolQ passages plus the training questions;
// paragraphs 3–4 of every article are never read), then `lmforge eval --tasks xquad_heldout` without passages
// (closed book) and with the top-k BM25 passages of an index of all 240 XQuAD paragraphs cut into sentence windows
// of ≤ 50 words, answers marginalised by RAG-Sequence (open book), decoded freely and as passage spans
// (--open-book-extractive). configs/rag/README.md has the staged recipe of the reader reported in the README. The issue's bar: open-book F1 − closed-book F1 ≥ 20 points. Ends with a RESULT line.
// Args: --reader=DIR (default runs/reader-xquad; trained here with the recipe below when missing, ~40 min on busy
// cores), --k=N passages (3), --limit=N held-out questions (all 434), --temperature=T of p(z|x) over BM25 scores (1),
// --span-words=N (4; 0 = off): also score every span of ≤ N words of each window under the reader.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { intFlag, stringFlag } from './_args.js';
import { lmforge, root } from './_char_base.js';
import { cpuName } from './_cpu.js';

const dataDir = process.env.LMFORGE_DATA ?? resolve(root, '..', 'shared', 'data');
const XQUAD = join(dataDir, 'xquad-en', 'xquad.en.json.gz');
const BOOLQ = join(dataDir, 'boolq', 'boolq.jsonl.gz');
const WORK = join(root, 'runs', 'bench-rag');

/** Passages are sentence windows of at most this many words, in the index and in training. */
const WINDOW = 50;

/** The reader recipe of the study: 3 layers × 128, BPE 2048, block 160, 1000 steps of 16 rows. */
export const READER_RECIPE = ['--layers=3', '--width=128', '--heads=4', '--block=160', '--vocab=2048', '--steps=1000', '--batch=16', '--lr=3e-3', '--cloze=4', '--question-repeats=4', '--closed-share=0.25', '--text-weight=1', `--window=${WINDOW}`, '--seed=1'];

interface Scores {
  f1: number;
  em: number;
  n: number;
  seconds: number;
}

function scoresOf(report: string): Scores {
  const r = (JSON.parse(readFileSync(report, 'utf8')) as { results: { n: number; seconds: number; metrics: Record<string, { value: number }> }[] }).results[0]!;
  return { f1: 100 * r.metrics.f1!.value, em: 100 * r.metrics.exact_match!.value, n: r.n, seconds: r.seconds };
}

export async function run(args: string[]): Promise<void> {
  const reader = resolve(stringFlag(args, 'reader') ?? join(root, 'runs', 'reader-xquad'));
  const k = intFlag('rag', args, 'k', 3);
  const limit = stringFlag(args, 'limit') !== undefined ? intFlag('rag', args, 'limit', 1) : undefined;
  const temperature = Number(stringFlag(args, 'temperature') ?? '1');
  const spanWords = stringFlag(args, 'span-words') === '0' ? 0 : intFlag('rag', args, 'span-words', 4);
  if (!(temperature > 0)) throw new Error(`bench/rag: --temperature expects a number > 0, got ${stringFlag(args, 'temperature')}`);
  mkdirSync(WORK, { recursive: true });
  if (!existsSync(join(reader, 'model.safetensors'))) {
    console.log(`reader: training ${reader} (${READER_RECIPE.join(' ')})`);
    lmforge(['reader-train', '--squad', XQUAD, '--passages', BOOLQ, '--out', reader, ...READER_RECIPE], { echo: true });
  } else {
    console.log(`reader: reusing ${reader} (delete it to retrain)`);
  }
  const index = join(WORK, `xquad-w${WINDOW}`);
  lmforge(['index', '--input', XQUAD, '--format', 'xquad', '--window', String(WINDOW), '--out', index, '--overwrite']);
  const common = ['eval', '--model', reader, '--tasks', 'xquad_heldout', '--data-dir', dataDir, '--no-register', ...(limit ? ['--limit', String(limit)] : [])];
  const closedReport = join(WORK, 'closed.json');
  const openReport = join(WORK, 'open.json');
  lmforge([...common, '--output', closedReport, '--log-samples']);
  const closed = scoresOf(closedReport);
  const loadClosed = loadavg()[0]!;
  const openArgs = [...common, '--open-book', index, '--open-book-k', String(k), '--open-book-mode', 'rag-sequence', '--open-book-temperature', String(temperature)];
  lmforge([...openArgs, '--output', openReport, '--log-samples']);
  const open = scoresOf(openReport);
  const extractiveReport = join(WORK, 'open-extractive.json');
  lmforge([...openArgs, '--open-book-extractive', '--output', extractiveReport, '--log-samples']);
  const extractive = scoresOf(extractiveReport);
  // Span scoring: every span of ≤ spanWords words of each retrieved window scored under the reader (not only its
  // greedy span), ranked by the RAG-Sequence marginal (retrieval/rag.ts).
  const spansReport = join(WORK, 'open-spans.json');
  if (spanWords > 0) lmforge([...openArgs, '--open-book-extractive', '--open-book-span-words', String(spanWords), '--output', spansReport, '--log-samples']);
  const spans = spanWords > 0 ? scoresOf(spansReport) : undefined;
  const load = loadavg()[0]!;
  const delta = open.f1 - closed.f1;
  const deltaX = extractive.f1 - closed.f1;
  const deltaS = spans ? spans.f1 - closed.f1 : -Infinity;
  const best = Math.max(delta, deltaX, deltaS);
  console.log(`held-out XQuAD questions (paragraphs 3–4 of each article, never trained on): ${open.n}; reader ${reader}`);
  console.log('| setting | F1 | EM | seconds |\n|---|---:|---:|---:|');
  console.log(`| closed book (question only) | ${closed.f1.toFixed(2)} | ${closed.em.toFixed(2)} | ${closed.seconds.toFixed(0)} |`);
  console.log(`| open book: BM25 top-${k} windows, RAG-Sequence | ${open.f1.toFixed(2)} | ${open.em.toFixed(2)} | ${open.seconds.toFixed(0)} |`);
  console.log(`| open book: the same, answers decoded as passage spans | ${extractive.f1.toFixed(2)} | ${extractive.em.toFixed(2)} | ${extractive.seconds.toFixed(0)} |`);
  if (spans) console.log(`| open book: the same, every span of ≤ ${spanWords} words scored | ${spans.f1.toFixed(2)} | ${spans.em.toFixed(2)} | ${spans.seconds.toFixed(0)} |`);
  console.log(`open − closed: ${delta.toFixed(2)} F1 free, ${deltaX.toFixed(2)} F1 extractive${spans ? `, ${deltaS.toFixed(2)} F1 span-scored` : ''} (bar ≥ 20: ${best >= 20 ? 'met' : 'not met'}); load average ${load.toFixed(2)} on ${cpuName()}`);
  console.log(`RESULT ${JSON.stringify({
    closed_f1: +closed.f1.toFixed(2), closed_em: +closed.em.toFixed(2), open_f1: +open.f1.toFixed(2), open_em: +open.em.toFixed(2), delta_f1: +delta.toFixed(2),
    open_extractive_f1: +extractive.f1.toFixed(2), open_extractive_em: +extractive.em.toFixed(2), delta_f1_extractive: +deltaX.toFixed(2),
    ...(spans ? { span_words: spanWords, open_spans_f1: +spans.f1.toFixed(2), open_spans_em: +spans.em.toFixed(2), delta_f1_spans: +deltaS.toFixed(2) } : {}),
    bar_met: best >= 20, k, retriever: `bm25 over ${WINDOW}-word sentence windows of the 240 XQuAD paragraphs`, marginalisation: 'rag-sequence', temperature, n: open.n, reader,
    cpu: cpuName(), load_average: +load.toFixed(2), load_average_closed: +loadClosed.toFixed(2),
  })}`);
}
