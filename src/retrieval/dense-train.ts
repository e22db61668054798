// The dense retriever's training run (what `lmforge dense-train` and the retrieval bench's recall report call): split
// the questions, build question + ICT pairs with BM25 hard negatives, train with InfoNCE, encode the index's passages
// into vectors.f32, and measure recall@1/5/20 of BM25, dense and both hybrids on the held-out questions.
// Not the model (dense.ts) nor the CLI (src/cli/retrieval.ts).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { writeFileAtomic } from '../util/atomic.js';
import { BM25Index } from './bm25.js';
import { passageText, readSquadQuestions, type Passage } from './corpus.js';
import { DenseEncoder, trainDense, DEFAULT_DENSE, DEFAULT_TRAIN, type DenseConfig, type TrainOptions } from './dense.js';
import { saveEncoder, writeVectors, DenseIndex } from './dense-index.js';
import { buildPairs, DEFAULT_PAIRS, FUSION_DEPTH, goldNumbers, hybridLists, passageNumbers, recallTable, splitQuestions, type PairOptions, type RecallRow } from './experiment.js';

export interface DenseTrainRequest {
  indexDir: string;
  questionsPath: string;
  tokenizer: Tokenizer;
  outDir: string;
  model?: Partial<DenseConfig>;
  train?: Partial<TrainOptions>;
  pairs?: Partial<PairOptions>;
  heldOutFraction?: number;
  splitSeed?: number;
  log?: (line: string) => void;
}

export interface DenseTrainReport {
  trainQuestions: number;
  heldOutQuestions: number;
  ictPairs: number;
  vocab: number;
  finalLoss: number;
  trainSeconds: number;
  recall: RecallRow[];
}

/** Encodes every passage of the BM25 index into <dir>/vectors.f32 (row i = passage i): the "index refresh". */
export function encodeIndex(enc: DenseEncoder, index: BM25Index, dir: string): number {
  const passages: Passage[] = [];
  for (let i = 0; i < index.docs; i++) passages.push(index.passage(i));
  const vectors = enc.encodeMany(passages.map(passageText), 'passage');
  writeVectors(join(dir, 'vectors.f32'), vectors, passages.length, enc.dim);
  return passages.length;
}

/** Held-out recall of BM25, dense and hybrids (RRF; interpolation with α = 0.5) for an index + dense index. */
export function heldOutRecall(index: BM25Index, dense: DenseIndex, questions: string[], gold: number[]): RecallRow[] {
  const bm = questions.map((q) => index.search(q, { k: FUSION_DEPTH }));
  const dn = dense.searchMany(questions, FUSION_DEPTH);
  const h = hybridLists(bm, dn);
  return recallTable({ bm25: bm, dense: dn, 'hybrid-rrf': h.rrf, 'hybrid-interp(0.5)': h.interp }, gold);
}

export function runDenseTraining(r: DenseTrainRequest): DenseTrainReport {
  const log = r.log ?? (() => {});
  const index = new BM25Index(r.indexDir);
  const passages: Passage[] = [];
  for (let i = 0; i < index.docs; i++) passages.push(index.passage(i));
  const questions = readSquadQuestions(r.questionsPath);
  const { train, test } = splitQuestions(questions, r.heldOutFraction ?? 0.5, r.splitSeed ?? 17);
  const numbers = passageNumbers(index);
  const trainGold = goldNumbers(train, numbers, r.questionsPath);
  const testGold = goldNumbers(test, numbers, r.questionsPath);
  const config: DenseConfig = { ...DEFAULT_DENSE, ...r.model };
  const options: TrainOptions = { ...DEFAULT_TRAIN, ...r.train };
  const enc = DenseEncoder.init(r.tokenizer, passages.map(passageText), train.map((q) => q.question), config, options.seed);
  const sets = buildPairs(enc, index, passages, train, trainGold, { ...DEFAULT_PAIRS, ...r.pairs, seed: options.seed });
  log(`${train.length} training questions, ${test.length} held out (never trained on), ${sets.ictSentences} ICT sentences, ${passages.length} passages, ${enc.vocabSize} pieces, D = ${config.dim}`);
  const t0 = performance.now();
  const every = Math.max(1, Math.floor(options.steps / 10));
  const finalLoss = trainDense(enc, sets.pairsFor, sets.passageFeatures, {
    ...options,
    onRefresh: () => {
      sets.refresh();
      log(`hard negatives re-mined with the current encoder`);
    },
    onStep: (step, loss) => {
      if (step % every === 0 || step === options.steps) log(`step ${step}/${options.steps} loss ${loss.toFixed(4)} ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    },
  });
  const trainSeconds = (performance.now() - t0) / 1000;
  mkdirSync(r.outDir, { recursive: true });
  saveEncoder(r.outDir, enc, r.tokenizer, { questions: r.questionsPath, index: r.indexDir });
  encodeIndex(enc, index, r.outDir);
  writeFileAtomic(join(r.outDir, 'split.json'), JSON.stringify({ train: train.map((q) => q.id), heldOut: test.map((q) => q.id) }) + '\n');
  const dense = new DenseIndex(r.outDir);
  const recall = heldOutRecall(index, dense, test.map((q) => q.question), testGold);
  return { trainQuestions: train.length, heldOutQuestions: test.length, ictPairs: sets.ictSentences, vocab: enc.vocabSize, finalLoss, trainSeconds, recall };
}
