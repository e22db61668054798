// Reads a train config's batching, curriculum, mix and loss sections into what CurriculumTask takes: the sources
// (data.dir first, then mix.sources) with their documents, difficulty order and planned shares, the end-of-text id,
// the gradient accumulation a batch_tokens target implies, and the loss terms. Checks come here, named by key.
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { checkLossTerms, type LossTerms } from '../models/head-loss.js';
import { formatPlan } from '../data/mix.js';
import { loadAnyTokenizer } from '../tokenizers/load-any.js';
import { UserError } from '../util/errors.js';
import { checkSeqWarmup, mixPlan, parseWeights } from './curriculum.js';
import { documentsOf, readScores, type DocumentOrder } from './packing.js';
import { readMeta, type DataMeta } from './run-dir.js';
import type { CurriculumOptions, CurriculumSource } from './tasks/curriculum.js';
import { openTokenFile, type TokenFile } from './token-reader.js';
import type { TrainConfig } from './train-config.js';

/** Largest document mask of a micro-batch (the kernels take it dense: 4·rows·T² bytes). */
export const MAX_MASK_BYTES = 256 * 2 ** 20;

export function lossTermsOf(c: TrainConfig): LossTerms {
  try {
    return checkLossTerms({ zLoss: c.loss.z_loss, labelSmoothing: c.loss.label_smoothing });
  } catch (e) {
    throw new UserError((e as Error).message);
  }
}

/** Whether any switch needs CurriculumTask (all off: plain NextTokenTask, bit for bit as before). */
export function curriculumWanted(c: TrainConfig): boolean {
  return c.batching.mode === 'packed' || c.batching.doc_mask || c.curriculum.seq_warmup_start > 0 || c.mix.sources.trim() !== '' || c.curriculum.order !== 'random';
}

/** Micro-batches per step: batch_tokens / tokensPerMicro when set (it must divide), else gradient_accumulation_steps. */
export function gradientAccumulationOf(c: TrainConfig, tokensPerMicro: number): number {
  const want = c.batching.batch_tokens;
  if (want === 0) return c.gradient_accumulation_steps;
  if (want % tokensPerMicro !== 0) throw new UserError(`batching.batch_tokens: ${want} is not a multiple of the ${tokensPerMicro} tokens of a micro-batch (batch_size × block_size${tokensPerMicro !== c.data.batch_size * c.model.block_size ? ' × ranks' : ''}); try ${Math.max(1, Math.round(want / tokensPerMicro)) * tokensPerMicro}`);
  const accum = want / tokensPerMicro;
  if (c.gradient_accumulation_steps !== 1 && c.gradient_accumulation_steps !== accum) throw new UserError(`batching.batch_tokens: ${want} tokens means ${accum} micro-batches per step, but gradient_accumulation_steps is ${c.gradient_accumulation_steps}; set one of them`);
  return accum;
}

/** The tokenizer of a data directory as comparable text (its meta entry and its file's content). */
function tokenizerIdentity(meta: DataMeta, dir: string): string {
  const t = meta.tokenizer as { file?: unknown };
  return JSON.stringify(meta.tokenizer) + (typeof t.file === 'string' ? readFileSync(join(dir, t.file), 'utf8') : '');
}

/** The end-of-text id: batching.eot_id, else the data tokenizer's <|endoftext|>. */
function eotOf(c: TrainConfig, meta: DataMeta): number {
  if (c.batching.eot_id !== null) return c.batching.eot_id;
  const t = meta.tokenizer as { type?: unknown; file?: unknown };
  const id = t.type === 'file' && typeof t.file === 'string' ? loadAnyTokenizer(join(c.data.dir, t.file)).specialTokens.get('<|endoftext|>') : undefined;
  if (id === undefined) throw new UserError(`batching: packed rows and doc_mask need documents, but ${join(c.data.dir, 'meta.json')}'s tokenizer has no <|endoftext|>; set batching.eot_id to the id that ends each document`);
  return id;
}

export function curriculumSetup(c: TrainConfig, meta: DataMeta, vocabSize: number, trainFile: TokenFile, valFile: TokenFile, accumulation: number, terms: LossTerms, log: (line: string) => void): [CurriculumSource[], CurriculumOptions] {
  checkSeqWarmup({ start: c.curriculum.seq_warmup_start, steps: c.curriculum.seq_warmup_steps }, c.model.block_size);
  const packed = c.batching.mode === 'packed';
  if (c.curriculum.order !== 'random' && !packed) throw new UserError(`curriculum.order: ${c.curriculum.order} orders whole documents; set batching.mode=packed`);
  const needDocs = packed || c.batching.doc_mask;
  // Document masking goes through the fused kernel's additive mask, a dense (rows, T, T) float32 per micro-batch.
  const maskBytes = 4 * c.data.batch_size * c.model.block_size ** 2;
  if (c.batching.doc_mask && maskBytes > MAX_MASK_BYTES) throw new UserError(`batching.doc_mask: the attention mask of batch_size ${c.data.batch_size} × block_size² ${c.model.block_size}² would take ${(maskBytes / 2 ** 20).toFixed(0)} MiB (at most ${MAX_MASK_BYTES / 2 ** 20} MiB); use a smaller batch_size with gradient accumulation (batching.batch_tokens)`);
  const eot = needDocs ? eotOf(c, meta) : null;
  const files = [{ dir: c.data.dir, train: trainFile, val: valFile }];
  const identity = tokenizerIdentity(meta, c.data.dir);
  for (const dir of c.mix.sources.split(',').map((s) => s.trim()).filter((s) => s !== '' && s !== c.data.dir)) {
    const m = readMeta(dir);
    if (tokenizerIdentity(m, dir) !== identity) throw new UserError(`mix.sources: ${dir} is tokenized differently from data.dir ${c.data.dir} (${join(dir, 'meta.json')}); every source needs the same tokenizer`);
    files.push({ dir, train: openTokenFile(join(dir, 'train.bin'), { vocabSize }), val: openTokenFile(join(dir, 'val.bin'), { vocabSize }) });
  }
  const names = files.map((f) => basename(f.dir.replace(/\/+$/, '')));
  if (new Set(names).size !== names.length) throw new UserError(`mix.sources: two sources share a directory name (${names.join(', ')}); names must differ`);
  let shares = [1];
  if (files.length > 1) {
    const weights = parseWeights(c.mix.weights, names, 'mix.weights');
    const budget = c.max_iters * accumulation * c.data.batch_size * c.model.block_size;
    const plan = mixPlan(Object.fromEntries(files.map((f, i) => [names[i]!, f.train.count])), weights, c.mix.temperature, budget, c.mix.max_epochs);
    shares = names.map((n) => plan.find((r) => r.source === n)?.share ?? 0);
    log(formatPlan(plan, 'tokens', c.mix.temperature));
  } else if (c.mix.weights.trim() !== '') {
    parseWeights(c.mix.weights, names, 'mix.weights');
  }
  const sources: CurriculumSource[] = files.map((f, i) => {
    const docs = needDocs ? documentsOf(f.train, eot!) : null;
    let order: DocumentOrder = { order: 'random', scores: null, buckets: 0 };
    if (packed && c.curriculum.order !== 'random') {
      if (i > 0 && c.curriculum.score_file !== null) throw new UserError('curriculum.score_file: scores data.dir\'s documents; with mix.sources order by score_field=tokens or leave curriculum.order random');
      order = { order: c.curriculum.order, scores: readScores(c.curriculum.score_file, c.curriculum.score_field, docs!, join(f.dir, 'train.bin')), buckets: c.curriculum.score_buckets };
    }
    return { name: names[i]!, train: f.train, val: f.val, docs, order, share: shares[i]! };
  });
  // A whole-epoch shuffle of the chunks would undo a difficulty order: ordered runs shuffle 64 batches' chunks at a time.
  const shuffleWindow = c.batching.shuffle_window > 0 || c.curriculum.order === 'random' ? c.batching.shuffle_window : 64 * c.data.batch_size;
  if (packed) log(`batching: packed rows of whole documents (${sources.map((s) => `${s.name}: ${s.docs!.count} documents`).join(', ')}), order ${c.curriculum.order}, chunks shuffled ${shuffleWindow === 0 ? 'over the whole epoch' : `within windows of ${shuffleWindow}`}${c.batching.doc_mask ? ', attention stopped at document boundaries' : ''}`);
  else if (c.batching.doc_mask) log('batching: random windows, attention stopped at document boundaries');
  if (c.curriculum.seq_warmup_start > 0) log(`curriculum: sequence length ${c.curriculum.seq_warmup_start} → ${c.model.block_size} over ${c.curriculum.seq_warmup_steps} steps, rows scaled to keep ${c.data.batch_size * c.model.block_size} tokens per micro-batch`);
  return [sources, {
    batchSize: c.data.batch_size, evalIters: c.eval_iters, seed: c.seed, fullVal: c.full_val, accumulation, packed, shuffleWindow,
    docMaskEot: c.batching.doc_mask ? eot : null, warmup: { start: c.curriculum.seq_warmup_start, steps: c.curriculum.seq_warmup_steps }, terms,
  }];
}

