// Trains the extractive reader of open-book QA: a small byte-level BPE on the training text, then a GPT (src/models)
// fine-tuned on "passage + question → answer" with the loss on the answer tokens only — synthetic cloze questions from
// the training passages (to learn to find and copy a span) mixed with the real training questions of the XQuAD split
// (and a share of them closed-book, so the question-only layout is in distribution too). The held-out paragraphs'
// text and questions are never read. Writes a model directory `lmforge eval --model` loads (model.safetensors,
// config.json, meta.json, tokenizer.json) plus reader.json (what trained it). Not the evaluation (reader-eval.ts).
import { join } from 'node:path';
import * as lm from '../core/index.js';
import { GPT, type GPTConfig } from '../models/gpt.js';
import { loadGPT, saveGPT } from '../models/gpt-io.js';
import { countPreTokens, trainBpe } from '../tokenizers/bpe-trainer.js';
import { BpeTokenizer } from '../tokenizers/bpe.js';
import { loadTokenizer, saveTokenizer } from '../tokenizers/format.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { ensureDir } from '../util/fs.js';
import { mulberry32 } from '../util/mulberry32.js';
import { readPassages, type Passage } from './corpus.js';
import { clozeRows, HELD_OUT_FROM, questionRows, questionsOnWindows, rowSegments, splitSquad, windowPassages, type ReaderRow } from './reader-data.js';

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
  model: Pick<GPTConfig, 'n_layer' | 'n_head' | 'n_embd' | 'block_size'>;
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
  /** Continue from this reader directory (its tokenizer and weights; model shape options are then ignored). */
  init?: string;
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
}

/**
 * A row as ids within block + 1 tokens (inputs and shifted targets): questions that do not fit are dropped; when even
 * the first does not, the passage loses its start (as the harness truncates long contexts). null when nothing fits.
 * Segments are encoded one by one; they meet at pre-token boundaries, so this equals encoding the whole text.
 */
export function encodeRow(tok: BpeTokenizer, row: ReaderRow, block: number): EncodedRow | null {
  const { head, pairs } = rowSegments(row);
  const ids: number[] = head ? tok.encode(head) : [];
  const mask: number[] = ids.map(() => 0);
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
    }
    ids.push(...p, ...c);
    mask.push(...p.map(() => 0), ...c.map(() => 1));
    answers++;
  }
  return answers > 0 ? { ids, mask } : null;
}

/**
 * A batch of rows padded to the longest: inputs x, answer targets y (−1 elsewhere) and the other targets yText (the
 * passage and question tokens, −1 on answers and padding), each (B, T).
 */
export function batchOf(rows: readonly EncodedRow[]): { x: Int32Array; y: Int32Array; yText: Int32Array; B: number; T: number } {
  const B = rows.length;
  const T = Math.max(...rows.map((e) => e.ids.length - 1));
  const x = new Int32Array(B * T);
  const y = new Int32Array(B * T).fill(-1);
  const yText = new Int32Array(B * T).fill(-1);
  rows.forEach((e, b) => {
    for (let t = 0; t < e.ids.length - 1; t++) {
      x[b * T + t] = e.ids[t]!;
      // Position t predicts token t+1: an answer target when t+1 is an answer token, else a text target.
      if (e.mask[t + 1]) y[b * T + t] = e.ids[t + 1]!;
      else yText[b * T + t] = e.ids[t + 1]!;
    }
  });
  return { x, y, yText, B, T };
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
  parameters: number;
}

/** The model directory `lmforge eval --model` loads: weights, config, tokenizer and the meta.json naming it. */
function save(dir: string, model: GPT, tok: BpeTokenizer): void {
  ensureDir(dir, '--out');
  saveGPT(dir, model, { stage: 'reader' });
  saveTokenizer(tok, join(dir, 'tokenizer.json'));
  writeFileAtomic(join(dir, 'meta.json'), JSON.stringify({ vocab_size: tok.vocabSize, tokenizer: { type: 'file', file: 'tokenizer.json' } }, null, 2) + '\n');
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

function loadReaderTokenizer(dir: string): BpeTokenizer {
  const tok = loadTokenizer(join(dir, 'tokenizer.json'));
  if (!(tok instanceof BpeTokenizer)) throw new UserError(`${join(dir, 'tokenizer.json')}: expected the BPE tokenizer of \`lmforge reader-train\``);
  return tok;
}

/** Trains the reader and writes its model directory; returns what trained it. */
export function trainReader(o: ReaderTrainOptions, makeUpdater: (model: GPT) => ReaderUpdater): ReaderTrainReport {
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
  const block = o.init ? blockSizeOf(o.init) : o.model.block_size;

  const rows: ReaderRow[] = [...clozeRows(passages, o.clozePerPassage, o.seed)];
  for (let r = 0; r < o.questionRepeats; r++) rows.push(...questionRows(trainQuestions, trainPassages, o.closedShare, 8, o.seed + 1 + r));
  const kinds = { cloze: 0, question: 0, closed: 0 };
  const encoded: EncodedRow[] = [];
  let answers = 0;
  let tokenCount = 0;
  for (const row of rows) {
    const e = encodeRow(tok, row, block);
    if (!e) continue;
    encoded.push(e);
    kinds[row.kind]++;
    answers += e.mask.reduce((n, m, i) => n + (m && !e.mask[i - 1] ? 1 : 0), 0);
    tokenCount += e.ids.length;
  }
  if (encoded.length === 0) throw new UserError(`no training row fits block_size ${block}`);
  o.log(`rows: ${kinds.cloze} cloze, ${kinds.question} open-book question rows (${o.questionRepeats} orders), ${kinds.closed} closed-book rows; ${answers} answers, mean ${(tokenCount / encoded.length).toFixed(0)} tokens a row`);

  const model = o.init ? loadGPT(o.init) : new GPT({ ...o.model, vocab_size: tok.vocabSize, position: 'rope', bias: false, dropout: 0 }, o.seed);
  if (o.init && model.config.vocab_size !== tok.vocabSize) throw new UserError(`--init ${o.init}: model vocabulary ${model.config.vocab_size} differs from its tokenizer's ${tok.vocabSize}`);
  const parameters = model.numParameters();
  const mc = model.config;
  o.log(`model: GPT ${mc.n_layer} layers × ${mc.n_embd} (${mc.n_head} heads, ${mc.position}), block ${block}, ${(parameters / 1e6).toFixed(2)}M parameters${o.init ? `, continued from ${o.init}` : ''}`);
  const updater = makeUpdater(model);
  const random = mulberry32(o.seed + 7);
  const t0 = performance.now();
  let tokens = 0;
  let lossFirst = NaN;
  let ema = NaN;
  try {
    model.train();
    for (let step = 0; step < o.steps; step++) {
      const picked = Array.from({ length: o.batch }, () => encoded[Math.floor(random() * encoded.length)]!);
      const { x, y, yText, B, T } = batchOf(picked);
      const [loss, textLoss] = lm.tidy(() => {
        const logits = model.forward(lm.fromArray(x, [B, T])).logits; // (B, T, V)
        const answer = lm.crossEntropy(logits, lm.fromArray(y, [B, T]), { ignoreIndex: -1 });
        const text = lm.crossEntropy(logits, lm.fromArray(yText, [B, T]), { ignoreIndex: -1 });
        lm.backward(o.textWeight > 0 ? lm.add(answer, lm.mul(text, o.textWeight)) : answer);
        return [answer.item(), text.item()];
      });
      if (!Number.isFinite(loss)) throw new UserError(`step ${step}: loss is ${loss}; lower --lr`);
      updater.update(readerLearningRate(o.lr, step, o.steps));
      tokens += B * T;
      if (step === 0) lossFirst = loss;
      ema = Number.isNaN(ema) ? loss : 0.95 * ema + 0.05 * loss;
      if (o.saveEvery > 0 && step > 0 && step % o.saveEvery === 0) {
        save(o.out, model, tok);
        o.log(`step ${step}: model written to ${o.out}`);
      }
      if (step % 50 === 0 || step === o.steps - 1) {
        const s = (performance.now() - t0) / 1000;
        o.log(`step ${step}/${o.steps}: answer loss ${loss.toFixed(3)} (ema ${ema.toFixed(3)}), text loss ${textLoss.toFixed(3)}, ${(tokens / s).toFixed(0)} tokens/s, ${s.toFixed(0)} s`);
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    model.eval();
    save(o.out, model, tok);
    const report: ReaderTrainReport = {
      rows: kinds, answers, trainQuestions: split.train.length, trainPassages: split.trainPassages.length, extraPassages: extra.length,
      steps: o.steps, seconds, tokensPerSecond: tokens / seconds, lossFirst, lossLast: ema, parameters,
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
