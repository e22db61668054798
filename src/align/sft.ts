// `lmforge align sft`: supervised fine-tuning of a pretrained model on conversations. The base's tokenizer gets
// the chat tokens (tokenizers/chat-template.ts) and the model's embedding grows to match (new rows = the mean
// embedding, models/grow-vocab.ts); conversations are rendered by the template, packed, and trained with the loss on
// assistant tokens only (train/tasks/sft.ts) through the one training loop. Writes a chat model directory.
import { readConversations, type Message } from '../data/chat.js';
import { growVocab } from '../models/grow-vocab.js';
import type { GPT } from '../models/gpt.js';
import { addChatTokens, CHAT_TOKENS, chatIds, hasChatTokens, renderChat, type ChatIds } from '../tokenizers/chat-template.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { SftTask, type MaskedExample } from '../train/tasks/sft.js';
import { UserError } from '../util/errors.js';
import { mulberry32 } from '../util/mulberry32.js';
import type { AlignConfig } from './config.js';
import { loadModelAndTokenizer, saveChatModel } from './io.js';
import { finishReport, fmt, logOf, maybeLoRA, mergeLoRA, prepareRun, trainTask, type StageOptions } from './run.js';

/** A base model made ready for chat: the tokenizer with the chat tokens and the model grown to its vocabulary. */
export function chatReady(model: GPT, tok: Tokenizer, source: string): { model: GPT; tok: Tokenizer; ids: ChatIds; added: number } {
  if (hasChatTokens(tok) && tok.vocabSize <= model.config.vocab_size) return { model, tok, ids: chatIds(tok, source), added: 0 };
  const chat = addChatTokens(tok, source);
  const fresh = CHAT_TOKENS.filter((t) => !tok.specialTokens.has(t)).map((t) => chat.specialTokens.get(t)!);
  const grown = growVocab(model, chat.vocabSize, fresh, tok.vocabSize);
  model.dispose();
  return { model: grown, tok: chat, ids: chatIds(chat, source), added: fresh.length };
}

/** Conversations of comma-separated files, rendered and shuffled (seeded); returns train and validation parts. */
export function renderedConversations(files: string, tok: Tokenizer, ids: ChatIds, seed: number, valFraction: number): { train: MaskedExample[]; val: MaskedExample[]; conversations: number } {
  const list = files.split(',').map((f) => f.trim()).filter((f) => f !== '');
  if (list.length === 0) throw new UserError('data.conversations: name at least one conversation file (comma-separated)');
  const convs: Message[][] = list.flatMap((f) => readConversations(f, 'train'));
  const rand = mulberry32(seed);
  for (let i = convs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [convs[i], convs[j]] = [convs[j]!, convs[i]!];
  }
  const rendered = convs.map((c) => renderChat(tok, ids, c));
  const nVal = Math.round(rendered.length * valFraction);
  return { val: rendered.slice(0, nVal), train: rendered.slice(nVal), conversations: convs.length };
}

export function runSft(c: AlignConfig, o: StageOptions = {}): Record<string, unknown> {
  const log = logOf(o);
  if (c.init_from === null) throw new UserError('init_from: name the pretrained model (run or model directory) to fine-tune');
  const base = loadModelAndTokenizer(c.init_from, c.tokenizer);
  const { model, tok, ids, added } = chatReady(base.model, base.tok, c.init_from);
  try {
    model.config.dropout = 0;
    const data = renderedConversations(c.data.conversations, tok, ids, c.seed, c.data.val_fraction);
    const task = new SftTask(model, data.train, data.val, { batchSize: c.data.batch_size, packing: c.data.packing, seed: c.seed, evalRows: 64 });
    const run = prepareRun(c, o, 'sft');
    const trained = task.rows.reduce((n, r) => n + r.y.reduce((k, v) => k + (v !== -1 ? 1 : 0), 0), 0);
    log(`sft: ${data.conversations} conversations → ${task.rows.length} ${c.data.packing ? 'packed ' : ''}rows of ${model.config.block_size} (${(100 * trained / (task.rows.length * model.config.block_size)).toFixed(1)}% assistant tokens), ${task.valRows.length} val rows; ${added} chat tokens added (vocab ${model.config.vocab_size})`);
    const valBefore = task.valRows.length ? task.maskedLoss(task.valRows) : NaN;
    const lora = maybeLoRA(model, c, log, added > 0);
    const r = trainTask(task, model, c, o);
    mergeLoRA(model, lora);
    saveChatModel(run.path, model, tok, { stage: 'sft', step: String(c.max_iters) });
    const valAfter = task.valRows.length ? task.maskedLoss(task.valRows) : NaN;
    return finishReport(run.path, 'sft', [
      `sft: val loss on assistant tokens ${fmt(valBefore)} → ${fmt(valAfter)} after ${r.steps} steps; ${Math.round(r.tokensPerSecond)} tokens/s; chat model in ${run.path}`,
    ], { steps: r.steps, val_loss_before: valBefore, val_loss_after: valAfter, tokens_per_s: r.tokensPerSecond, rows: task.rows.length, conversations: data.conversations, chat_tokens_added: added }, log);
  } finally {
    model.dispose();
  }
}
