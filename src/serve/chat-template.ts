// Chat messages → the prompt of a served model, and how its reply ends (ChatFormat). In order of precedence: a
// chat_template.json beside the run's weights (a text template, below); the chat tokens of a model made by
// `lmforge align sft` (<|user|>, <|assistant|>, <|end|>: rendered token by token as SFT trained on them, the reply
// ending at <|end|>, tokenizers/chat-template.ts); otherwise the documented plain-text template, which any text
// model can continue:
//
//   System: {system}\n\n          (only when a system message is given)
//   User: {user}\n
//   Assistant: {assistant}\n      (earlier turns)
//   Assistant:                    (the generation prompt; the reply continues after it)
//
// with stop strings "\nUser:" and "\nSystem:" so a model that goes on to write the next turn is cut there. Not a
// Jinja renderer: Hugging Face's tokenizer_config.json templates are not read.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chatIds, hasChatTokens, renderChat as renderChatIds } from '../tokenizers/chat-template.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { UserError } from '../util/errors.js';

export const CHAT_TEMPLATE_FILE = 'chat_template.json';

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** Each role's turn as a pattern with `{content}`, the text that opens the reply, and stop strings. */
export interface ChatTemplate {
  system: string;
  user: string;
  assistant: string;
  /** Appended after the last message: the reply is generated from here. */
  generation_prompt: string;
  stop: string[];
  /** Text before everything (a BOS marker, say). */
  prefix?: string;
}

export const PLAIN_CHAT_TEMPLATE: ChatTemplate = {
  system: 'System: {content}\n\n',
  user: 'User: {content}\n',
  assistant: 'Assistant: {content}\n',
  generation_prompt: 'Assistant:',
  stop: ['\nUser:', '\nSystem:'],
};

/** The run's chat_template.json if it has one (checked field by field), else the plain template. */
export function loadChatTemplate(runDir: string): { template: ChatTemplate; source: string } {
  const path = join(runDir, CHAT_TEMPLATE_FILE);
  if (!existsSync(path)) return { template: PLAIN_CHAT_TEMPLATE, source: 'plain (built in)' };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${path}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  const out: Partial<ChatTemplate> = {};
  for (const key of ['system', 'user', 'assistant'] as const) {
    const v = o[key] ?? PLAIN_CHAT_TEMPLATE[key];
    if (typeof v !== 'string' || !v.includes('{content}')) throw new UserError(`${path}: field ${key} must be a string containing {content}`);
    out[key] = v;
  }
  const gp = o.generation_prompt ?? PLAIN_CHAT_TEMPLATE.generation_prompt;
  if (typeof gp !== 'string') throw new UserError(`${path}: field generation_prompt must be a string`);
  const stop = o.stop ?? PLAIN_CHAT_TEMPLATE.stop;
  if (!Array.isArray(stop) || !stop.every((s) => typeof s === 'string')) throw new UserError(`${path}: field stop must be an array of strings`);
  if (o.prefix !== undefined && typeof o.prefix !== 'string') throw new UserError(`${path}: field prefix must be a string`);
  const known = new Set(['system', 'user', 'assistant', 'generation_prompt', 'stop', 'prefix']);
  const unknown = Object.keys(o).filter((k) => !known.has(k));
  if (unknown.length) throw new UserError(`${path}: unknown field ${unknown[0]} (expected ${[...known].join(', ')})`);
  return { template: { ...(out as Pick<ChatTemplate, ChatRole>), generation_prompt: gp, stop: stop as string[], ...(o.prefix !== undefined ? { prefix: o.prefix as string } : {}) }, source: path };
}

/** The prompt for a conversation: each message through its role's pattern, then the generation prompt. */
export function renderChat(template: ChatTemplate, messages: readonly ChatMessage[]): string {
  let text = template.prefix ?? '';
  for (const m of messages) text += template[m.role].split('{content}').join(m.content);
  return text + template.generation_prompt;
}

/** How a served model turns a conversation into its prompt, and what ends its reply. */
export interface ChatFormat {
  /** Where the format came from (a file, the tokenizer's chat tokens, or the built-in plain template). */
  source: string;
  /** The prompt ids of a conversation, ending where the reply starts, and their text. */
  render(messages: readonly ChatMessage[]): { ids: number[]; text: string };
  /** Stop strings added to a request's own (cut from the reply). */
  stop: string[];
  /** Tokens that end the reply (the end-of-turn token; not part of the reply's text). */
  stopTokens: number[];
}

/** A text template's format: the rendered string, encoded as ordinary text. */
export function textChatFormat(template: ChatTemplate, source: string, encode: (text: string) => number[]): ChatFormat {
  return {
    source, stop: [...template.stop], stopTokens: [],
    render: (messages) => {
      const text = renderChat(template, messages);
      return { ids: encode(text), text };
    },
  };
}

/** The format SFT trained (`<|role|>\n{content}<|end|>\n` per turn, then `<|assistant|>\n`), stopping at <|end|>. */
export function tokenChatFormat(tok: Tokenizer, source: string): ChatFormat {
  const ids = chatIds(tok, source);
  return {
    source: `${source} (chat tokens of \`lmforge align sft\`)`, stop: [], stopTokens: [ids.end],
    render: (messages) => {
      const r = renderChatIds(tok, ids, messages, { generationPrompt: true });
      return { ids: r.ids, text: tok.decode(r.ids) };
    },
  };
}

/**
 * A run's chat format: its chat_template.json if it has one; else, when its tokenizer carries the chat tokens
 * (an `lmforge align` model), the template they were trained with; else the plain template.
 */
export function loadChatFormat(runDir: string, tok: Tokenizer | null, encode: (text: string) => number[]): ChatFormat {
  const { template, source } = loadChatTemplate(runDir);
  if (template !== PLAIN_CHAT_TEMPLATE || tok === null || !hasChatTokens(tok)) return textChatFormat(template, source, encode);
  return tokenChatFormat(tok, runDir);
}
