// The chat template: special tokens that mark each turn (<|system|>, <|user|>, <|assistant|>, <|end|>) added to a
// trained tokenizer, and the rendering of a conversation to token ids with, for each id, whether it is a reply the
// model is trained to produce (assistant content and its <|end|>). Message text is always encoded as ordinary text,
// so a special token written inside a message cannot forge a turn. Not the conversation readers (data/chat.ts) and
// not the model's embedding growth (models/grow-vocab.ts).
import { UserError } from '../util/errors.js';
import { BpeTokenizer } from './bpe.js';
import type { Tokenizer } from './tokenizer.js';

export type Role = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: Role;
  content: string;
}

export const CHAT_TOKENS = ['<|system|>', '<|user|>', '<|assistant|>', '<|end|>'] as const;

/** The ids of the template's special tokens in one tokenizer. */
export interface ChatIds {
  system: number;
  user: number;
  assistant: number;
  end: number;
  newline: number[];
}

/** Whether a tokenizer already carries the chat tokens. */
export function hasChatTokens(tok: Tokenizer): boolean {
  return CHAT_TOKENS.every((t) => tok.specialTokens.has(t));
}

/**
 * The tokenizer with the chat tokens appended after its last id (those it has already keep their ids). Only
 * byte-level BPE tokenizers (lmforge's own, GPT-2's) are extended; the vocabulary grows by the number added.
 */
export function addChatTokens(tok: Tokenizer, source: string): BpeTokenizer {
  if (!(tok instanceof BpeTokenizer)) throw new UserError(`${source}: chat tokens can be added to a byte-level BPE tokenizer only (this one is unigram)`);
  const specials = new Map(tok.specialTokens);
  let next = tok.vocabSize;
  for (const t of CHAT_TOKENS) if (!specials.has(t)) specials.set(t, next++);
  return new BpeTokenizer({ pattern: tok.pattern, tokens: tok.tokens, merges: tok.merges, specialTokens: specials, ignoreMerges: tok.ignoreMerges });
}

export function chatIds(tok: Tokenizer, source: string): ChatIds {
  const id = (t: string): number => {
    const v = tok.specialTokens.get(t);
    if (v === undefined) throw new UserError(`${source}: the tokenizer has no chat token ${t} (make the SFT base with \`lmforge align sft\`, which adds them)`);
    return v;
  };
  return { system: id('<|system|>'), user: id('<|user|>'), assistant: id('<|assistant|>'), end: id('<|end|>'), newline: tok.encode('\n') };
}

/** A rendered conversation: ids, and 1 where the id is a trained reply token (assistant content or its <|end|>). */
export interface Rendered {
  ids: number[];
  mask: number[];
}

/**
 * Renders `<|role|>\n{content}<|end|>\n` per message. With generationPrompt, ends with `<|assistant|>\n` for the
 * model to continue. Masks: assistant content and its <|end|> are 1 (trained on), all else 0.
 */
export function renderChat(tok: Tokenizer, ids: ChatIds, messages: readonly ChatMessage[], options: { generationPrompt?: boolean } = {}): Rendered {
  const out: Rendered = { ids: [], mask: [] };
  const push = (xs: readonly number[], m: number): void => {
    for (const x of xs) {
      out.ids.push(x);
      out.mask.push(m);
    }
  };
  for (const msg of messages) {
    const train = msg.role === 'assistant' ? 1 : 0;
    push([ids[msg.role], ...ids.newline], 0);
    push(tok.encode(msg.content), train);
    push([ids.end], train);
    push(ids.newline, 0);
  }
  if (options.generationPrompt) push([ids.assistant, ...ids.newline], 0);
  return out;
}

/** The ids of a reply as the template trains it: its content and <|end|>. */
export function renderReply(tok: Tokenizer, ids: ChatIds, content: string): number[] {
  return [...tok.encode(content), ids.end];
}
