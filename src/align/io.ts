// Loading and saving what the alignment stages pass along: a chat model directory (GPT weights + config.json, the
// tokenizer with its chat tokens, meta.json — a plain run directory, so `lmforge sample` and eval read it) and a
// reward/value model (that, plus the scalar head in score.safetensors).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../core/safetensors.js';
import { saveGPT } from '../models/gpt-io.js';
import type { GPT } from '../models/gpt.js';
import { ScalarModel } from '../models/heads.js';
import { chatIds, hasChatTokens, type ChatIds } from '../tokenizers/chat-template.js';
import { saveTokenizer, loadTokenizer } from '../tokenizers/format.js';
import { loadAnyTokenizer } from '../tokenizers/load-any.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { RunDir } from '../train/run-dir.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';

export const CHAT_TOKENIZER_FILE = 'tokenizer.lmf.json';
export const SCORE_FILE = 'score.safetensors';

/** A model and its tokenizer. */
export interface Loaded {
  model: GPT;
  tok: Tokenizer;
}

/** A model directory's GPT and tokenizer (its meta.json's, or `tokenizer` for a directory without one, e.g. Hugging Face's). */
export function loadModelAndTokenizer(dir: string, tokenizer: string | null): Loaded {
  const run = RunDir.open(dir);
  let tok: Tokenizer;
  if (tokenizer !== null) tok = loadAnyTokenizer(tokenizer);
  else if (existsSync(run.metaPath)) {
    const t = run.meta().tokenizer as { type?: unknown; file?: unknown };
    if (t.type !== 'file' || typeof t.file !== 'string') throw new UserError(`${run.metaPath}: alignment needs a tokenizer file (BPE), not a ${String(t.type)} vocabulary`);
    tok = loadTokenizer(join(dir, t.file));
  } else if (existsSync(join(dir, 'tokenizer.json')) || existsSync(join(dir, 'vocab.json'))) tok = loadAnyTokenizer(dir);
  else throw new UserError(`${dir}: no meta.json or tokenizer files; set tokenizer to its tokenizer file`);
  const model = run.loadModel();
  if (tok.vocabSize > model.config.vocab_size) {
    model.dispose();
    throw new UserError(`${dir}: the tokenizer has ${tok.vocabSize} ids but the model only ${model.config.vocab_size}`);
  }
  return { model, tok };
}

/** A chat model (its tokenizer must carry the chat tokens) with the template's ids. */
export function loadChatModel(dir: string): Loaded & { ids: ChatIds } {
  const l = loadModelAndTokenizer(dir, null);
  if (!hasChatTokens(l.tok)) {
    l.model.dispose();
    throw new UserError(`${dir}: not a chat model (its tokenizer has no <|user|>/<|assistant|> tokens); run \`lmforge align sft\` on it first`);
  }
  return { ...l, ids: chatIds(l.tok, dir) };
}

/** Writes model.safetensors + config.json, the tokenizer and a meta.json naming it. */
export function saveChatModel(dir: string, model: GPT, tok: Tokenizer, metadata: Record<string, string> = {}): void {
  saveGPT(dir, model, metadata);
  saveTokenizer(tok, join(dir, CHAT_TOKENIZER_FILE));
  writeFileAtomic(join(dir, 'meta.json'), JSON.stringify({ vocab_size: model.config.vocab_size, tokenizer: { type: 'file', file: CHAT_TOKENIZER_FILE } }, null, 2) + '\n');
}

export function saveScalarModel(dir: string, m: ScalarModel, tok: Tokenizer, metadata: Record<string, string> = {}): void {
  saveChatModel(dir, m.body, tok, metadata);
  const s = m.head.score;
  writeSafetensors(join(dir, SCORE_FILE), [
    ['score.weight', { shape: [...s.weight.shape], data: s.weight.toTypedArray() as Float32Array }],
    ['score.bias', { shape: [...s.bias!.shape], data: s.bias!.toTypedArray() as Float32Array }],
  ], { format: 'pt', ...metadata });
}

/** A reward model directory (`lmforge align reward`): the chat model with its scalar head. */
export function loadScalarModel(dir: string): Loaded & { ids: ChatIds; scorer: ScalarModel } {
  const path = join(dir, SCORE_FILE);
  if (!existsSync(path)) throw new UserError(`${dir}: no ${SCORE_FILE} (expected a reward model run of \`lmforge align reward\`)`);
  const l = loadChatModel(dir);
  const scorer = new ScalarModel(l.model);
  const f = readSafetensors(path);
  const C = l.model.config.n_embd;
  for (const [name, target, shape] of [['score.weight', scorer.head.score.weight, [C, 1]], ['score.bias', scorer.head.score.bias!, [1]]] as const) {
    const t = f.tensors.get(name);
    if (!t || t.shape.join(',') !== shape.join(',')) throw new UserError(`${path}: expected ${name} of shape [${shape.join(', ')}]`);
    (target.data as Float32Array).set(Array.from(t.data as Float32Array), target.offset);
  }
  return { ...l, scorer };
}
