// Trains the extractive reader of open-book QA: a small byte-level BPE on the training text, then a GPT (src/models)
// fine-tuned on "passage + question → answer" with the loss on the answer tokens only — synthetic cloze questions from
// the training passages (to learn to find and copy a span) mixed with the real training questions of the XQuAD split
// (and a share of them closed-book, so the question-only layout is in distribution too). The held-out paragraphs'
// text and questions are never read. Writes a model directory `lmforge eval --model` loads (model.safetensors,
// config.json, meta.json, tokenizer.json) plus reader.json (what trained it). Not the evaluation (reader-eval.ts).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as lm from '../core/index.js';
import { GPT, type GPTConfig } from '../models/gpt.js';
import { loadGPT, saveGPT } from '../models/gpt-io.js';
import { countPreTokens, trainBpe } from '../tokenizers/bpe-trainer.js';
import { BpeTokenizer } from '../tokenizers/bpe.js';
import { loadTokenizer, saveTokenizer } from '../tokenizers/format.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { Module } from '../nn/module.js';
import { ensureDir } from '../util/fs.js';
import { mulberry32 } from '../util/mulberry32.js';
import { readPassages, type Passage } from './corpus.js';
import { findAnswer, loadMatchEmbedding, loadSpanHead, MATCH_FILE, MatchEmbedding, questionMatches, SpanHead, tokenByteStarts, tokensCovering, utf8Length } from './reader-span.js';
import { clozeRows, HELD_OUT_FROM, questionLeads, questionRows, questionsOnWindows, rowSegments, splitSquad, whRows, windowPassages, type ReaderLayout, type ReaderRow } from './reader-data.js';

/**
 * The update rule, given by the caller (retrieval sits below optim in the layers; the CLI passes AdamW with gradient
 * clipping): one step at a learning rate from the gradients backward left, then the gradients cleared.
 */
export interface ReaderUpdater {
  update(lr: number): void;
  dispose(): void;
}

/** Linear warmup then cosine from lr to lr/10 at the last step (nanoGPT's schedule). */
export function readerLearningRate(lr: number, step: number, steps: number): number {
  const warmup = Math.min(100, Math.floor(steps / 10));
  if (step < warmup) return (lr * (step + 1)) / (warmup + 1);
  const progress = Math.min(1, (step - warmup) / Math.max(1, steps - warmup));
  return lr / 10 + 0.5 * (1 + Math.cos(Math.PI * progress)) * (lr - lr / 10);
}

export interface ReaderTrainOptions {
  /** SQuAD v1.1 JSON (XQuAD-en); split by paragraph, paragraphs ≥ heldOutFrom of each article never read. */
  squad: string;
  /** More passage files (BoolQ, JSONL, text) whose sentences become cloze questions. */
  extraPassages: readonly string[];
  out: string;
  vocabSize: number;
  /** dropout: on embeddings, residual branches and attention while training a new reader (a continued one keeps its own). */
  model: Pick<GPTConfig, 'n_layer' | 'n_head' | 'n_embd' | 'block_size'> & { dropout?: number };
  steps: number;
  batch: number;
  lr: number;
  /** Cloze questions per passage (per pass over the data). */
  clozePerPassage: number;
  /** How many times each real training question appears per cloze set (they are rarer and closer to the task). */
  questionRepeats: number;
  /** Share of the real training questions also given without their passage (closed-book layout). */
  closedShare: number;
  /**
   * Weight of next-token loss on the passage and question tokens beside the answer loss (0 = answers only). A cloze
   * question repeats a passage sentence, so predicting it is itself a copy task: it teaches the attention that finds
   * where a phrase sits in the passage and copies what follows, which answering needs.
   */
  textWeight: number;
  /** Cut passages into windows of at most this many words (as `lmforge index --window`; 0 = whole passages). */
  windowWords: number;
  /**
   * Row layout (reader-data.ts ReaderLayout; default passage-first). Question-first rows hold one question each and
   * their synthetic questions are wh-questions (whRows), a clozeShare of them in-place cloze.
   */
  layout?: ReaderLayout;
  clozeShare?: number;
  /**
   * Weight of an extractive span head's loss (reader-span.ts: start/end cross-entropy over the passage tokens, from the
   * same hidden states as the LM head); 0 = no span head. Needs the question-first layout (the passage tokens must
   * have seen the question).
   */
  spanWeight?: number;
  /** DrQA's exact-match input feature (reader-span.ts MatchEmbedding); kept when the reader continued has one. */
  matchFeature?: boolean;
  /** Matmul precision of training ('bf16': bf16 operands, fp32 accumulation). */
  precision?: 'fp32' | 'bf16';
  /** Continue from this reader directory (its tokenizer and weights; model shape options are then ignored). */
  init?: string;
  /** With init: lengthen its context to this many tokens (a RoPE reader; e.g. for the longer question-echo rows). */
  initBlock?: number;
  /** Write the model directory every this many steps too (0 = only at the end), so it can be evaluated mid-run. */
  saveEvery: number;
  seed: number;
  heldOutFrom?: number;
  log: (line: string) => void;
}

/** One encoded row: ids, and per id 1 when it is an answer token (the loss covers those). */
export interface EncodedRow {
  ids: number[];
  mask: number[];
  /** The passage's tokens [lo, hi) and the first answer's first and last token within them (span head targets). */
  passage?: [lo: number, hi: number];
  span?: [start: number, end: number];
  /** Per id 1 when it is a passage token whose word occurs in the question (the exact-match feature), else 0. */
  match?: number[];
}

/** Where the first answer sits among the head's tokens: the passage's token range and the answer's first/last token. */
function spanTargets(tok: BpeTokenizer, row: ReaderRow, head: string, headIds: readonly number[]): Pick<EncodedRow, 'passage' | 'span'> {
  if (!row.passage || row.qas.length === 0) return {};
  const block = `${row.passage.title ? `${row.passage.title}\n${row.passage.text}` : row.passage.text}`;
  const from = head.lastIndexOf(block);
  if (from < 0) return {};
  const starts = tokenByteStarts(tok, headIds);
  const passage = tokensCovering(starts, utf8Length(head.slice(0, from)), utf8Length(head.slice(0, from + block.length)));
  if (!passage) return {};
  const answer = row.qas[0]!.answer.trim();
  // The answer inside the text, not the title (the title is no answer to a question about the passage).
  const at = findAnswer(head, answer, from + block.length - row.passage.text.length);
  const span = at < 0 ? null : tokensCovering(starts, utf8Length(head.slice(0, at)), utf8Length(head.slice(0, at + answer.length)));
  return { passage: [passage[0], passage[1] + 1], ...(span ? { span } : {}) };
}

/**
 * A row as ids within block + 1 tokens (inputs and shifted targets): questions that do not fit are dropped; when even
 * the first does not, the passage loses its start (as the harness truncates long contexts). null when nothing fits.
 * Segments are encoded one by one; they meet at pre-token boundaries, so this equals encoding the whole text.
 */
export function encodeRow(tok: BpeTokenizer, row: ReaderRow, block: number, layout: ReaderLayout = 'passage-first', matchFeature = false): EncodedRow | null {
  const { head, pairs } = rowSegments(row, layout);
  const ids: number[] = head ? tok.encode(head) : [];
  const mask: number[] = ids.map(() => 0);
  const targets = questionLeads(layout) ? spanTargets(tok, row, head, ids) : {};
  const question = row.qas[0]?.question;
  const headMatch = matchFeature && targets.passage && question !== undefined ? questionMatches(tok, ids, targets.passage[0], targets.passage[1], question) : null;
  const headLength = ids.length;
  let cutTotal = 0;
  let answers = 0;
  for (const [prompt, completion] of pairs) {
    const p = tok.encode(prompt);
    const c = tok.encode(completion);
    if (ids.length + p.length + c.length > block + 1) {
      if (answers > 0) break;
      const cut = ids.length + p.length + c.length - (block + 1);
      if (cut > ids.length || p.length + c.length > block / 2) return null;
      ids.splice(0, cut);
      mask.splice(0, cut);
      cutTotal = cut;
    }
    ids.push(...p, ...c);
    mask.push(...p.map(() => 0), ...c.map(() => 1));
    answers++;
  }
  if (answers === 0) return null;
  // A cut start shifts the targets: the passage keeps what is left of it, a span that was cut off trains none.
  const p0 = targets.passage;
  const passage: [number, number] | undefined = p0 && p0[1] - cutTotal > 0 ? [Math.max(0, p0[0] - cutTotal), p0[1] - cutTotal] : undefined;
  const s0 = targets.span;
  const span: [number, number] | undefined = passage && s0 && s0[0] - cutTotal >= passage[0] ? [s0[0] - cutTotal, s0[1] - cutTotal] : undefined;
  // The head's flags lose the same cut start; the question and answer after it match nothing.
  const match = headMatch ? [...headMatch.slice(cutTotal), ...new Array<number>(ids.length - (headLength - cutTotal)).fill(0)] : undefined;
  return { ids, mask, ...(passage ? { passage } : {}), ...(span ? { span } : {}), ...(match ? { match } : {}) };
}

/**
 * A batch of rows padded to the longest: inputs x, answer targets y (−1 elsewhere) and the other targets yText (the
 * passage and question tokens, −1 on answers and padding), each (B, T).
 */
export function batchOf(rows: readonly EncodedRow[]): { x: Int32Array; y: Int32Array; yText: Int32Array; B: number; T: number; spanStart: Int32Array; spanEnd: Int32Array; outside: Float32Array; match: Int32Array } {
  const B = rows.length;
  const T = Math.max(...rows.map((e) => e.ids.length - 1));
  const x = new Int32Array(B * T);
  const y = new Int32Array(B * T).fill(-1);
  const yText = new Int32Array(B * T).fill(-1);
  // Span head targets: the gold first/last token per row (−1: none), and −1e9 added to logits outside the passage.
  const spanStart = new Int32Array(B).fill(-1);
  const spanEnd = new Int32Array(B).fill(-1);
  const outside = new Float32Array(B * T).fill(-1e9);
  const match = new Int32Array(B * T);
  rows.forEach((e, b) => {
    if (e.match) for (let t = 0; t < e.ids.length - 1; t++) match[b * T + t] = e.match[t]!;
    if (e.passage && e.span && e.span[1] < T) {
      spanStart[b] = e.span[0];
      spanEnd[b] = e.span[1];
      for (let t = e.passage[0]; t < Math.min(T, e.passage[1]); t++) outside[b * T + t] = 0;
    }
    for (let t = 0; t < e.ids.length - 1; t++) {
      x[b * T + t] = e.ids[t]!;
      // Position t predicts token t+1: an answer target when t+1 is an answer token, else a text target.
      if (e.mask[t + 1]) y[b * T + t] = e.ids[t + 1]!;
      else yText[b * T + t] = e.ids[t + 1]!;
    }
  });
  return { x, y, yText, B, T, spanStart, spanEnd, outside, match };
}

export interface ReaderTrainReport {
  rows: Record<ReaderRow['kind'], number>;
  answers: number;
  trainQuestions: number;
  trainPassages: number;
  extraPassages: number;
  steps: number;
  seconds: number;
  tokensPerSecond: number;
  lossFirst: number;
  lossLast: number;
  /** The span head's loss (ema) at the end, when it has one. */
  spanLossLast?: number;
  parameters: number;
}

/** The model directory `lmforge eval --model` loads: weights, config, tokenizer and the meta.json naming it. */
function save(dir: string, model: GPT, tok: BpeTokenizer, span: SpanHead | null, match: MatchEmbedding | null): void {
  ensureDir(dir, '--out');
  saveGPT(dir, model, { stage: 'reader' });
  span?.save(dir);
  match?.save(dir);
  saveTokenizer(tok, join(dir, 'tokenizer.json'));
  writeFileAtomic(join(dir, 'meta.json'), JSON.stringify({ vocab_size: tok.vocabSize, tokenizer: { type: 'file', file: 'tokenizer.json' } }, null, 2) + '\n');
}

/** The GPT, its span head and its exact-match embedding as one module, so one optimizer updates them together. */
class ReaderNet extends Module {
  constructor(body: GPT, span: SpanHead | null, match: MatchEmbedding | null) {
    super();
    this.child('body', body);
    if (span) this.child('span', span);
    if (match) this.child('match', match);
  }
}

/** A byte-level BPE over the training text only: the training paragraphs, the extra passages and the training questions. */
function trainTokenizer(passages: readonly Passage[], questions: readonly { question: string; answers: string[] }[], vocabSize: number): BpeTokenizer {
  const counts = new Map<string, number>();
  for (const p of passages) countPreTokens(p.title ? `${p.title}\n${p.text}` : p.text, counts);
  for (const q of questions) countPreTokens(`Question: ${q.question}\nAnswer: ${q.answers[0] ?? ''}\n`, counts);
  return trainBpe(counts, { vocabSize });
}

function blockSizeOf(dir: string): number {
  const m = loadGPT(dir);
  const T = m.config.block_size;
  m.dispose();
  return T;
}

/** The context of a continued reader: its own, or a longer one asked for (never shorter: its rows were made to fit). */
function initBlockSize(dir: string, asked: number | undefined): number {
  const own = blockSizeOf(dir);
  if (asked !== undefined && asked < own) throw new UserError(`--block ${asked} with --init ${dir}: the reader's context is ${own} tokens; it can grow, not shrink`);
  return asked ?? own;
}

function loadReaderTokenizer(dir: string): BpeTokenizer {
  const tok = loadTokenizer(join(dir, 'tokenizer.json'));
  if (!(tok instanceof BpeTokenizer)) throw new UserError(`${join(dir, 'tokenizer.json')}: expected the BPE tokenizer of \`lmforge reader-train\``);
  return tok;
}

/** Trains the reader and writes its model directory; returns what trained it. */
export function trainReader(o: ReaderTrainOptions, makeUpdater: (model: Module) => ReaderUpdater): ReaderTrainReport {
  const split = splitSquad(o.squad, o.heldOutFrom ?? HELD_OUT_FROM);
  const extra: Passage[] = o.extraPassages.flatMap((f) => readPassages(f));
  const window = (ps: Passage[]): Passage[] => (o.windowWords > 0 ? windowPassages(ps, o.windowWords) : ps);
  const trainPassages = window(split.trainPassages);
  const trainQuestions = o.windowWords > 0 ? questionsOnWindows(split.train, trainPassages) : split.train;
  const passages = [...trainPassages, ...window(extra)];
  o.log(`data: ${split.trainPassages.length} training paragraphs (${split.train.length} questions), ${split.heldOutPassages.length} held-out paragraphs (${split.heldOut.length} questions, never read), ${extra.length} extra passages`);

  // The tokenizer sees only training text: the training paragraphs, the extra passages and the training questions.
  const tok = o.init ? loadReaderTokenizer(o.init) : trainTokenizer(passages, split.train, o.vocabSize);
  o.log(`tokenizer: byte-level BPE, ${tok.vocabSize} tokens${o.init ? ` (of ${o.init})` : ''}`);
  const block = o.init ? initBlockSize(o.init, o.initBlock) : o.model.block_size;

  const layout = o.layout ?? 'passage-first';
  const qFirst = questionLeads(layout);
  const rows: ReaderRow[] = qFirst ? whRows(passages, o.clozePerPassage, o.clozeShare ?? 0.25, o.seed) : [...clozeRows(passages, o.clozePerPassage, o.seed)];
  for (let r = 0; r < o.questionRepeats; r++) rows.push(...questionRows(trainQuestions, trainPassages, o.closedShare, 8, o.seed + 1 + r, qFirst));
  // The exact-match feature: asked for, or kept from the reader it continues.
  const matchOn = o.matchFeature === true || (o.init !== undefined && existsSync(join(o.init, MATCH_FILE)));
  if (matchOn && !qFirst) throw new UserError('the exact-match feature (--match-feature) needs --layout question-first or question-echo');
  const kinds = { cloze: 0, question: 0, closed: 0 };
  const encoded: EncodedRow[] = [];
  let answers = 0;
  let tokenCount = 0;
  for (const row of rows) {
    const e = encodeRow(tok, row, block, layout, matchOn);
    if (!e) continue;
    encoded.push(e);
    kinds[row.kind]++;
    answers += e.mask.reduce((n, m, i) => n + (m && !e.mask[i - 1] ? 1 : 0), 0);
    tokenCount += e.ids.length;
  }
  if (encoded.length === 0) throw new UserError(`no training row fits block_size ${block}`);
  o.log(`rows (${layout}): ${kinds.cloze} ${qFirst ? 'synthetic' : 'cloze'}, ${kinds.question} open-book question rows (${o.questionRepeats} orders), ${kinds.closed} closed-book rows; ${answers} answers, mean ${(tokenCount / encoded.length).toFixed(0)} tokens a row`);

  const model = o.init ? loadGPT(o.init, { blockSize: block }) : new GPT({ ...o.model, vocab_size: tok.vocabSize, position: 'rope', bias: false, dropout: o.model.dropout ?? 0 }, o.seed);
  if (o.init && model.config.vocab_size !== tok.vocabSize) throw new UserError(`--init ${o.init}: model vocabulary ${model.config.vocab_size} differs from its tokenizer's ${tok.vocabSize}`);
  const parameters = model.numParameters();
  const mc = model.config;
  o.log(`model: GPT ${mc.n_layer} layers × ${mc.n_embd} (${mc.n_head} heads, ${mc.position}, dropout ${mc.dropout}), block ${block}, ${(parameters / 1e6).toFixed(2)}M parameters${o.init ? `, continued from ${o.init}` : ''}`);
  const spanWeight = o.spanWeight ?? 0;
  if (spanWeight > 0 && !qFirst) throw new UserError('a span head (--span-weight) needs --layout question-first or question-echo: with the passage first its tokens never see the question');
  // One network, two heads: the span head reads the GPT's hidden states; the optimizer updates both together.
  const span = spanWeight > 0 ? (o.init ? loadSpanHead(o.init, mc.n_embd) : null) ?? new SpanHead(mc.n_embd, o.seed + 11) : null;
  // A new exact-match embedding starts at zero, so it changes nothing until training moves it.
  const matchEmb = matchOn ? (o.init ? loadMatchEmbedding(o.init, mc.n_embd) : null) ?? new MatchEmbedding(mc.n_embd) : null;
  if (matchEmb) o.log('exact-match feature: passage words that occur in the question get a learned embedding');
  const net = new ReaderNet(model, span, matchEmb);
  const withSpan = encoded.filter((e) => e.span).length;
  if (span) o.log(`span head: ${withSpan} of ${encoded.length} rows have a gold span in their passage, loss weight ${spanWeight}`);
  const updater = makeUpdater(net);
  const random = mulberry32(o.seed + 7);
  const t0 = performance.now();
  let tokens = 0;
  let lossFirst = NaN;
  let ema = NaN;
  let spanEma = NaN;
  try {
    model.train();
    for (let step = 0; step < o.steps; step++) {
      const picked = Array.from({ length: o.batch }, () => encoded[Math.floor(random() * encoded.length)]!);
      const { x, y, yText, B, T, spanStart, spanEnd, outside, match } = batchOf(picked);
      const [loss, textLoss, spanLoss] = lm.withMatmulPrecision(o.precision ?? 'fp32', () => lm.tidy(() => {
        const { logits, hidden } = model.forward(lm.fromArray(x, [B, T]), undefined, { seed: o.seed * 1_000_003 + step, ...(matchEmb ? { inputFeatures: matchEmb.features(match, B, T) } : {}) }); // (B, T, V), (B, T, C); fresh dropout masks each step
        const answer = lm.crossEntropy(logits, lm.fromArray(y, [B, T]), { ignoreIndex: -1 });
        const text = lm.crossEntropy(logits, lm.fromArray(yText, [B, T]), { ignoreIndex: -1 });
        let total = o.textWeight > 0 ? lm.add(answer, lm.mul(text, o.textWeight)) : answer;
        let spanValue = NaN;
        if (span && spanStart.some((v) => v >= 0)) {
          // Start and end each a softmax over the passage's positions (−1e9 elsewhere), cross-entropy on the gold token.
          const mask = lm.fromArray(outside, [B, T]);
          const [s, e] = span.logits(hidden);
          const ls = lm.crossEntropy(lm.add(s, mask), lm.fromArray(spanStart, [B]), { ignoreIndex: -1 });
          const le = lm.crossEntropy(lm.add(e, mask), lm.fromArray(spanEnd, [B]), { ignoreIndex: -1 });
          const sl = lm.mul(lm.add(ls, le), 0.5);
          spanValue = sl.item();
          total = lm.add(total, lm.mul(sl, spanWeight));
        }
        lm.backward(total);
        return [answer.item(), text.item(), spanValue];
      }));
      if (!Number.isFinite(loss)) throw new UserError(`step ${step}: loss is ${loss}; lower --lr`);
      updater.update(readerLearningRate(o.lr, step, o.steps));
      tokens += B * T;
      if (step === 0) lossFirst = loss;
      ema = Number.isNaN(ema) ? loss : 0.95 * ema + 0.05 * loss;
      if (!Number.isNaN(spanLoss)) spanEma = Number.isNaN(spanEma) ? spanLoss : 0.95 * spanEma + 0.05 * spanLoss;
      if (o.saveEvery > 0 && step > 0 && step % o.saveEvery === 0) {
        save(o.out, model, tok, span, matchEmb);
        // What trained it so far (the layout the evaluation must use), replaced by the full record at the end.
        writeFileAtomic(join(o.out, 'reader.json'), JSON.stringify({ split: { squad: o.squad }, options: { ...o, log: undefined }, saved_at_step: step }, null, 2) + '\n');
        o.log(`step ${step}: model written to ${o.out}`);
      }
      if (step % 50 === 0 || step === o.steps - 1) {
        const s = (performance.now() - t0) / 1000;
        o.log(`step ${step}/${o.steps}: answer loss ${loss.toFixed(3)} (ema ${ema.toFixed(3)}), text loss ${textLoss.toFixed(3)}${span ? `, span loss ${Number.isNaN(spanLoss) ? '-' : spanLoss.toFixed(3)} (ema ${spanEma.toFixed(3)})` : ''}, ${(tokens / s).toFixed(0)} tokens/s, ${s.toFixed(0)} s`);
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    model.eval();
    save(o.out, model, tok, span, matchEmb);
    const report: ReaderTrainReport = {
      rows: kinds, answers, trainQuestions: split.train.length, trainPassages: split.trainPassages.length, extraPassages: extra.length,
      steps: o.steps, seconds, tokensPerSecond: tokens / seconds, lossFirst, lossLast: ema, parameters, ...(span ? { spanLossLast: spanEma } : {}),
    };
    writeFileAtomic(join(o.out, 'reader.json'), JSON.stringify({
      split: { squad: o.squad, rule: `paragraphs >= ${o.heldOutFrom ?? HELD_OUT_FROM} of every article held out (never read)`, held_out_questions: split.heldOut.length },
      options: { ...o, log: undefined }, report,
    }, null, 2) + '\n');
    return report;
  } finally {
    updater.dispose();
    model.dispose();
  }
}
