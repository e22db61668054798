// `lmforge index`, `lmforge retrieve`, `lmforge dense-train` and `lmforge dense-encode`: build and append to a BM25
// index, train the dense dual encoder and (re-)encode an index's passages, and search with BM25, dense or hybrid
// fusion. Registered by src/cli/main.ts; the work is in src/retrieval.
import type { Command } from 'commander';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { addPassages, BM25Index, createIndex, mergeSegments, readManifest } from '../retrieval/bm25.js';
import { CORPUS_FORMATS, readPassages, type CorpusFormat, type Passage } from '../retrieval/corpus.js';
import { DenseIndex, loadEncoder } from '../retrieval/dense-index.js';
import { encodeIndex, runDenseTraining } from '../retrieval/dense-train.js';
import { formatRecallTable } from '../retrieval/experiment.js';
import { FUSION_DEPTH } from '../retrieval/experiment.js';
import { interpolate, rrf } from '../retrieval/fusion.js';
import type { Module } from '../nn/module.js';
import { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import { READER_LAYOUTS, windowPassages, type ReaderLayout } from '../retrieval/reader-data.js';
import { trainReader, type ReaderUpdater } from '../retrieval/reader-train.js';
import { evaluateSpanReader } from '../eval/open-book-span.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { Hit } from '../retrieval/topk.js';
import { loadAnyTokenizer, TOKENIZER_HELP } from '../tokenizers/load-any.js';
import { cpuName } from '../util/cpu.js';
import { UserError } from '../util/errors.js';
import { intFlag, numberFlag } from './flags.js';
import { runIfMain, userErrors } from './standalone.js';

const MODES = ['bm25', 'dense', 'rrf', 'interp'] as const;
type Mode = (typeof MODES)[number];

function registerIndex(program: Command): void {
  program
    .command('index')
    .description('build (or append to) an on-disk BM25 index of passages')
    .requiredOption('--input <files...>', `passage files (${CORPUS_FORMATS.join(', ')}; .gz accepted)`)
    .requiredOption('--out <dir>', 'index directory (manifest.json + segment files)')
    .option('--format <f>', `input format: ${CORPUS_FORMATS.join(' | ')} (default: from the file name)`)
    .option('--append', 'add the passages to an existing index as a new segment')
    .option('--overwrite', 'replace an existing index')
    .option('--merge', 'merge all segments into one afterwards')
    .option('--no-stopwords', 'keep English stopwords (default: Lucene\'s 33 are dropped)')
    .option('--no-stem', 'do not Porter-stem terms')
    .option('--k1 <x>', 'BM25 k1 stored as the index default', numberFlag('--k1', 0, 100), 0.9)
    .option('--b <x>', 'BM25 b stored as the index default', numberFlag('--b', 0, 1), 0.4)
    .option('--segment-docs <n>', 'passages per segment file', intFlag('--segment-docs', 1), 100_000)
    .option('--window <words>', 'index windows of whole sentences of at most this many words instead of whole passages (ids "<passage id>#<i>"; 0 = whole passages)', intFlag('--window', 0), 0)
    .action((o: { init?: string; window: number; input: string[]; out: string; format?: string; append?: boolean; overwrite?: boolean; merge?: boolean; stopwords: boolean; stem: boolean; k1: number; b: number; segmentDocs: number }) => userErrors(() => {
      if (o.format !== undefined && !CORPUS_FORMATS.includes(o.format as CorpusFormat)) throw new UserError(`--format: expected one of ${CORPUS_FORMATS.join(', ')}, got ${JSON.stringify(o.format)}`);
      if (o.append && o.overwrite) throw new UserError('--append and --overwrite exclude each other');
      const t0 = performance.now();
      let bytes = 0;
      const passages: Passage[] = [];
      for (const f of o.input) {
        const read = readPassages(f, o.format as CorpusFormat | undefined);
        for (const p of o.window > 0 ? windowPassages(read, o.window) : read) {
          passages.push(p);
          bytes += Buffer.byteLength(p.text) + Buffer.byteLength(p.title ?? '');
        }
      }
      if (o.append) readManifest(o.out);
      else createIndex(o.out, { analyzer: { stopwords: o.stopwords, stem: o.stem }, k1: o.k1, b: o.b }, o.overwrite ?? false);
      let m = addPassages(o.out, passages, { segmentDocs: o.segmentDocs });
      if (o.merge) m = mergeSegments(o.out);
      const s = (performance.now() - t0) / 1000;
      const docs = m.segments.reduce((n, x) => n + x.docs, 0);
      process.stderr.write(`index: ${passages.length} passages (${(bytes / 1e6).toFixed(2)} MB of text) in ${s.toFixed(2)} s, ${(bytes / 1e6 / s).toFixed(2)} MB/s → ${o.out}: ${docs} passages in ${m.segments.length} segment(s)\n`);
    }));
}

function show(index: BM25Index, hits: Hit[], json: boolean, query: string): void {
  if (json) {
    process.stdout.write(JSON.stringify({ query, hits: hits.map((h) => ({ ...index.passage(h.index), score: h.score })) }) + '\n');
    return;
  }
  process.stdout.write(`query: ${query}\n`);
  hits.forEach((h, r) => {
    const p = index.passage(h.index);
    const text = p.text.length > 200 ? `${p.text.slice(0, 200)}…` : p.text;
    process.stdout.write(`${String(r + 1).padStart(3)}. ${h.score.toFixed(4)}  [${p.id}]${p.title ? ` ${p.title}:` : ''} ${text.replace(/\s+/g, ' ')}\n`);
  });
}

function registerRetrieve(program: Command): void {
  program
    .command('retrieve')
    .description('search an index with BM25, the dense encoder, or both fused')
    .requiredOption('--index <dir>', 'BM25 index directory (`lmforge index`)')
    .requiredOption('--query <text...>', 'one or more queries')
    .option('-k, --k <n>', 'passages per query', intFlag('-k', 1, 10_000), 5)
    .option('--dense <dir>', 'dense index directory (`lmforge dense-train`/`dense-encode`), needed by --mode dense|rrf|interp')
    .option('--mode <m>', `${MODES.join(' | ')} (default: bm25, or rrf when --dense is given)`)
    .option('--alpha <x>', 'weight of BM25 in --mode interp', numberFlag('--alpha', 0, 1), 0.5)
    .option('--k1 <x>', 'BM25 k1 (default: the index\'s)', numberFlag('--k1', 0, 100))
    .option('--b <x>', 'BM25 b (default: the index\'s)', numberFlag('--b', 0, 1))
    .option('--json', 'one JSON object per query on stdout')
    .action((o: { index: string; query: string[]; k: number; dense?: string; mode?: string; alpha: number; k1?: number; b?: number; json?: boolean }) => userErrors(() => {
      const mode = (o.mode ?? (o.dense ? 'rrf' : 'bm25')) as Mode;
      if (!MODES.includes(mode)) throw new UserError(`--mode: expected one of ${MODES.join(', ')}, got ${JSON.stringify(o.mode)}`);
      if (mode !== 'bm25' && !o.dense) throw new UserError(`--mode ${mode} needs --dense <dir>`);
      const index = new BM25Index(o.index);
      const dense = o.dense ? new DenseIndex(o.dense) : undefined;
      if (dense && dense.N !== index.docs) throw new UserError(`'${o.dense}' holds ${dense.N} vectors but '${o.index}' ${index.docs} passages; run \`lmforge dense-encode --index ${o.index} --dense ${o.dense}\``);
      const depth = mode === 'rrf' || mode === 'interp' ? Math.max(o.k, FUSION_DEPTH) : o.k;
      const bmOpts = { k: depth, ...(o.k1 !== undefined ? { k1: o.k1 } : {}), ...(o.b !== undefined ? { b: o.b } : {}) };
      const denseHits = dense && mode !== 'bm25' ? dense.searchMany(o.query, depth) : undefined;
      o.query.forEach((q, i) => {
        const bm = mode === 'dense' ? [] : index.search(q, bmOpts);
        const dn = denseHits?.[i] ?? [];
        const hits = mode === 'bm25' ? bm : mode === 'dense' ? dn : mode === 'rrf' ? rrf([bm, dn], o.k) : interpolate(bm, dn, o.alpha, o.k);
        show(index, hits.slice(0, o.k), o.json ?? false, q);
      });
    }));
}

function registerDenseTrain(program: Command): void {
  program
    .command('dense-train')
    .description('train the dense dual encoder (InfoNCE, in-batch + BM25 hard negatives) on SQuAD-format questions over a BM25 index, and report held-out recall')
    .requiredOption('--index <dir>', 'BM25 index of the passages the questions are about (`lmforge index --format xquad`)')
    .requiredOption('--questions <file>', 'SQuAD v1.1 JSON (e.g. ../shared/data/xquad-en/xquad.en.json.gz)')
    .requiredOption('--tokenizer <path>', TOKENIZER_HELP)
    .requiredOption('--out <dir>', 'dense index directory (encoder, tokenizer, passage vectors, split)')
    .option('--dim <n>', 'embedding width', intFlag('--dim', 8, 16384), 768)
    .option('--tau <x>', 'softmax temperature', numberFlag('--tau', 0, 10, true), 0.05)
    .option('--steps <n>', 'optimizer steps', intFlag('--steps', 1), 300)
    .option('--batch <n>', 'questions per batch', intFlag('--batch', 2), 64)
    .option('--hard <n>', 'BM25 hard negatives per question in a batch', intFlag('--hard', 0, 10), 3)
    .option('--lr <x>', 'Adam learning rate of the embeddings', numberFlag('--lr', 0, 1, true), 1e-3)
    .option('--held-out <f>', 'fraction of questions held out (never trained on)', numberFlag('--held-out', 0, 1, true, true), 0.5)
    .option('--no-ict', 'train on the questions only (no sentence → paragraph pairs)')
    .option('--spans <n>', 'span → paragraph pairs per paragraph and epoch (ICT-style, re-drawn each epoch)', intFlag('--spans', 0, 1000), 8)
    .option('--refresh <n>', 're-mine hard negatives with the current encoder every n steps (ANCE/REALM-style index refresh; default: BM25 negatives throughout)', intFlag('--refresh', 1))
    .option('--seed <n>', 'seed of initialisation, shuffling and ICT draws', intFlag('--seed', 0), 1)
    .option('--units <u>', "what a text is a bag of: 'bpe' (the tokenizer's pieces) or 'terms' (the BM25 analyzer's stemmed terms, hashed)", 'bpe')
    .option('--bigrams', "with --units terms: also adjacent-term pairs")
    .option('--char-grams <n>', 'with --units terms: also the character n-grams of each word (misspellings still match)', intFlag('--char-grams', 0, 8), 0)
    .option('--gram-weight <x>', 'factor on the character n-grams\' term-frequency coefficients', numberFlag('--gram-weight', 0, 10, true), 1)
    .option('--length-norm <e>', 'passage vectors v/‖v‖^e (1: cosine; < 1: long passages keep longer vectors)', numberFlag('--length-norm', 0, 1), 1)
    .option('--lr-weights <x>', 'Adam learning rate of the per-unit weights (default: --lr)', numberFlag('--lr-weights', 0, 1))
    .action((o: { index: string; questions: string; tokenizer: string; out: string; dim: number; tau: number; steps: number; batch: number; hard: number; lr: number; heldOut: number; ict: boolean; spans: number; seed: number; refresh?: number; units: string; bigrams?: boolean; charGrams: number; gramWeight: number; lengthNorm: number; lrWeights?: number }) => userErrors(() => {
      if (o.units !== 'bpe' && o.units !== 'terms') throw new UserError(`--units: expected bpe or terms, got ${JSON.stringify(o.units)}`);
      if ((o.bigrams || o.charGrams > 0) && o.units !== 'terms') throw new UserError('--bigrams and --char-grams need --units terms');
      const report = runDenseTraining({
        indexDir: o.index,
        questionsPath: o.questions,
        tokenizer: loadAnyTokenizer(o.tokenizer),
        outDir: o.out,
        model: { dim: o.dim, tau: o.tau, units: o.units, bigrams: o.bigrams ?? false, charGrams: o.charGrams, gramWeight: o.gramWeight, lengthNorm: o.lengthNorm },
        train: { steps: o.steps, batch: o.batch, hardPerQuery: o.hard, seed: o.seed, ...(o.refresh ? { refreshEvery: o.refresh } : {}), adam: { lr: o.lr, lrWeights: o.lrWeights ?? o.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8 } },
        pairs: { ict: o.ict, spans: o.spans },
        heldOutFraction: o.heldOut,
        log: (line) => process.stderr.write(`dense-train: ${line}\n`),
      });
      process.stdout.write(`held-out recall (${report.heldOutQuestions} questions never trained on; ${report.trainQuestions} trained + ${report.ictPairs} ICT sentences), ${cpuName()}:\n`);
      process.stdout.write(formatRecallTable(report.recall) + '\n');
      const r = Object.fromEntries(report.recall.map((x) => [x.method, x.recall]));
      process.stdout.write(`RESULT ${JSON.stringify({ heldOut: report.heldOutQuestions, trained: report.trainQuestions, ict: report.ictPairs, trainSeconds: +report.trainSeconds.toFixed(1), recall: r })}\n`);
    }));
}

function registerDenseEncode(program: Command): void {
  program
    .command('dense-encode')
    .description('(re-)encode every passage of a BM25 index with a trained dense encoder (after `lmforge index --append`)')
    .requiredOption('--index <dir>', 'BM25 index directory')
    .requiredOption('--dense <dir>', 'dense index directory holding encoder.safetensors')
    .action((o: { index: string; dense: string }) => userErrors(() => {
      const t0 = performance.now();
      const n = encodeIndex(loadEncoder(o.dense), new BM25Index(o.index), o.dense);
      process.stderr.write(`dense-encode: ${n} passages in ${((performance.now() - t0) / 1000).toFixed(2)} s → ${o.dense}/vectors.f32\n`);
    }));
}

/** The reader's update: AdamW (β2 0.99, weight decay 0.1 on matrices only) after clipping the gradient norm to 1. */
export function adamwUpdater(model: Module): ReaderUpdater {
  const params = model.namedTrainableParameters();
  const optimizer = new AdamW([
    { params: params.filter(([, p]) => p.shape.length >= 2), options: { weightDecay: 0.1 } },
    { params: params.filter(([, p]) => p.shape.length < 2), options: { weightDecay: 0 } },
  ], { lr: 0, beta2: 0.99 });
  return {
    update(lr) {
      optimizer.setLearningRate(lr);
      clipGradNorm(optimizer.params, 1);
      optimizer.step();
      optimizer.zeroGrad();
    },
    dispose: () => optimizer.dispose(),
  };
}

function registerReaderTrain(program: Command): void {
  program
    .command('reader-train')
    .description('train the open-book QA reader (a GPT: passage + question → answer, loss on the answer) on cloze questions from passages and the training split of a SQuAD file; held-out paragraphs are never read')
    .requiredOption('--squad <file>', 'SQuAD v1.1 JSON (e.g. ../shared/data/xquad-en/xquad.en.json.gz); paragraphs ≥ --held-out-from of each article are held out')
    .requiredOption('--out <dir>', 'model directory to write (model.safetensors, config.json, meta.json, tokenizer.json, reader.json)')
    .option('--passages <files...>', 'more passage files whose sentences become cloze questions (e.g. ../shared/data/boolq/boolq.jsonl.gz)', [])
    .option('--held-out-from <n>', 'first held-out paragraph index of every article', intFlag('--held-out-from', 1), 3)
    .option('--vocab <n>', 'BPE vocabulary size (trained on the training text)', intFlag('--vocab', 300, 65536), 2048)
    .option('--layers <n>', 'Transformer blocks', intFlag('--layers', 1, 64), 3)
    .option('--heads <n>', 'attention heads', intFlag('--heads', 1, 64), 4)
    .option('--width <n>', 'model width', intFlag('--width', 8, 4096), 128)
    .option('--dropout <p>', 'dropout on embeddings, residual branches and attention of a new reader (a continued one keeps its own)', numberFlag('--dropout', 0, 0.99, false, true), 0)
    .option('--block <n>', 'context length in tokens (longer prompts lose their start)', intFlag('--block', 16, 8192), 320)
    .option('--steps <n>', 'optimizer steps', intFlag('--steps', 1), 800)
    .option('--batch <n>', 'examples per step', intFlag('--batch', 1, 4096), 8)
    .option('--lr <x>', 'peak AdamW learning rate (cosine to a tenth)', numberFlag('--lr', 0, 1, true), 3e-3)
    .option('--cloze <n>', 'cloze questions per passage', intFlag('--cloze', 0, 1000), 4)
    .option('--question-repeats <n>', 'copies of each real training question among the examples', intFlag('--question-repeats', 0, 1000), 4)
    .option('--closed-share <x>', 'share of real training questions also given without their passage', numberFlag('--closed-share', 0, 1, false, true), 0.25)
    .option('--init <dir>', 'continue training this reader directory (its tokenizer and weights; --vocab/--layers/--heads/--width are then its own, and --block its own unless given: a RoPE reader can take a longer one)')
    .option('--window <words>', 'cut passages into windows of whole sentences of at most this many words, as `lmforge index --window` (0 = whole passages)', intFlag('--window', 0), 0)
    .option('--text-weight <x>', 'weight of next-token loss on passage and question tokens beside the answer loss (0 = answers only)', numberFlag('--text-weight', 0, 100), 0.5)
    .option('--save-every <n>', 'also write the model every n steps (0 = at the end only)', intFlag('--save-every', 0), 0)
    .option('--seed <n>', 'seed of the model, the cloze draws and the batches', intFlag('--seed', 0), 1)
    .option('--layout <l>', "row layout: 'passage-first' (passage, question, answer), 'question-first' (the question also before the passage, so passage tokens can attend to it; synthetic questions are then wh-questions; evaluate with `lmforge eval --open-book-question-first`) or 'question-echo' (question first and the passage twice, so the second copy's tokens see the whole passage; `--open-book-question-first --open-book-echo`)", 'passage-first')
    .option('--span-weight <x>', 'question-first: also train an extractive span head (start/end over the passage tokens, from the same hidden states) with this loss weight (0 = none); `lmforge reader-eval` scores it', numberFlag('--span-weight', 0, 100, false, true), 0)
    .option('--match-feature', "question-first: DrQA's exact-match input feature, a learned embedding added to every passage token whose word occurs in the question (kept when --init's reader has one); `lmforge reader-eval` uses it")
    .option('--precision <p>', "matmul precision of training: 'fp32' or 'bf16' (bf16 operands, fp32 accumulation)", 'fp32')
    .option('--cloze-share <x>', 'question-first: share of synthetic questions left as in-place cloze rather than wh-first questions', numberFlag('--cloze-share', 0, 1, false, true), 0.25)
    .action((o: { matchFeature?: boolean; dropout: number; spanWeight: number; precision: string; layout: string; clozeShare: number; init?: string; window: number; textWeight: number; saveEvery: number; squad: string; out: string; passages: string[]; heldOutFrom: number; vocab: number; layers: number; heads: number; width: number; block: number; steps: number; batch: number; lr: number; cloze: number; questionRepeats: number; closedShare: number; seed: number }, cmd: Command) => userErrors(() => {
      if (o.width % o.heads !== 0) throw new UserError(`--width ${o.width} must be a multiple of --heads ${o.heads}`);
      if (!(READER_LAYOUTS as readonly string[]).includes(o.layout)) throw new UserError(`--layout: expected ${READER_LAYOUTS.join(', ')}, got ${JSON.stringify(o.layout)}`);
      if (o.precision !== 'fp32' && o.precision !== 'bf16') throw new UserError(`--precision: expected fp32 or bf16, got ${JSON.stringify(o.precision)}`);
      useNativeBackendOrWarn();
      const r = trainReader({
        squad: o.squad, extraPassages: o.passages, out: o.out, vocabSize: o.vocab, heldOutFrom: o.heldOutFrom,
        model: { n_layer: o.layers, n_head: o.heads, n_embd: o.width, block_size: o.block, dropout: o.dropout },
        steps: o.steps, batch: o.batch, lr: o.lr, clozePerPassage: o.cloze, questionRepeats: o.questionRepeats, closedShare: o.closedShare, textWeight: o.textWeight, windowWords: o.window, saveEvery: o.saveEvery, layout: o.layout as ReaderLayout, clozeShare: o.clozeShare, spanWeight: o.spanWeight, matchFeature: o.matchFeature === true, precision: o.precision, ...(o.init ? { init: o.init } : {}), seed: o.seed,
        ...(o.init && cmd.getOptionValueSource('block') === 'cli' ? { initBlock: o.block } : {}),
        log: (line) => process.stderr.write(`reader-train: ${line}\n`),
      }, adamwUpdater);
      process.stdout.write(`reader in ${o.out}: ${r.steps} steps in ${r.seconds.toFixed(0)} s, answer loss ${r.lossFirst.toFixed(3)} → ${r.lossLast.toFixed(3)}\n`);
    }));
}

function registerReaderEval(program: Command): void {
  program
    .command('reader-eval')
    .description("open-book QA with a reader's span head (`reader-train --span-weight`) on the held-out questions of its SQuAD split: BM25 top-k passages, the best spans under each, RAG-Sequence over them; SQuAD exact match and F1")
    .requiredOption('--reader <dir>', 'reader directory holding span_head.safetensors')
    .requiredOption('--squad <file>', 'the SQuAD file the reader was trained on (its held-out paragraphs are evaluated)')
    .requiredOption('--index <dir>', 'BM25 index of the passages (`lmforge index`)')
    .option('--k <n>', 'passages per question', intFlag('--k', 1, 100), 3)
    .option('--temperature <t>', 'temperature of p(z|x) = softmax(BM25 score / t)', numberFlag('--temperature', 0, Infinity, true), 1)
    .option('--limit <n>', 'the first n held-out questions only', intFlag('--limit', 1))
    .option('--held-out-from <n>', 'first held-out paragraph index of every article (as in training)', intFlag('--held-out-from', 1), 3)
    .option('--held-out-to <n>', 'only held-out paragraphs below this index (a development split: a reader trained with --held-out-from 2 is tuned on paragraph 2 with --held-out-to 3, never on the test paragraphs)', intFlag('--held-out-to', 1))
    .option('--no-skip-question-words', 'keep spans all of whose words occur in the question (by default they are skipped: they only repeat it)')
    .option('--max-answer-tokens <n>', 'longest answer span in tokens', intFlag('--max-answer-tokens', 1, 256), 16)
    .option('--output <file>', 'write the figures and every sample as JSON')
    .action((o: { reader: string; squad: string; index: string; k: number; temperature: number; limit?: number; heldOutFrom: number; heldOutTo?: number; skipQuestionWords?: boolean; maxAnswerTokens: number; output?: string }) => userErrors(() => {
      if (o.heldOutTo !== undefined && o.heldOutTo <= o.heldOutFrom) throw new UserError(`--held-out-to ${o.heldOutTo} must be above --held-out-from ${o.heldOutFrom}`);
      useNativeBackendOrWarn();
      const r = evaluateSpanReader({ reader: o.reader, squad: o.squad, index: o.index, k: o.k, temperature: o.temperature, maxAnswerTokens: o.maxAnswerTokens, heldOutFrom: o.heldOutFrom, ...(o.heldOutTo ? { heldOutTo: o.heldOutTo } : {}), skipQuestionWords: o.skipQuestionWords !== false, ...(o.limit ? { limit: o.limit } : {}) });
      if (o.output) writeFileAtomic(o.output, JSON.stringify({ reader: o.reader, head: 'span', k: o.k, temperature: o.temperature, skip_question_words: o.skipQuestionWords !== false, n: r.n, f1: r.f1, exact_match: r.em, seconds: r.seconds, samples: r.samples }, null, 2) + '\n');
      process.stdout.write(`reader-eval (span head, BM25 top-${o.k}${o.skipQuestionWords === false ? ', spans repeating the question kept' : ''}): ${r.n} held-out questions, F1 ${(100 * r.f1).toFixed(2)}, EM ${(100 * r.em).toFixed(2)}, ${r.seconds.toFixed(0)} s\n`);
    }));
}

export function register(program: Command): void {
  registerIndex(program);
  registerReaderTrain(program);
  registerReaderEval(program);
  registerRetrieve(program);
  registerDenseTrain(program);
  registerDenseEncode(program);
}

runIfMain(import.meta.url, register);
