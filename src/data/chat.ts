// Conversations and preference pairs for alignment, read from the formats TRL and torchtune users bring: `messages`
// JSON lines ({"messages": [{"role", "content"}, …]}), prompt/completion pairs (strings or message lists), preference
// records ({"prompt", "chosen", "rejected"}) and Anthropic HH-RLHF's dialogue strings ("\n\nHuman: …\n\nAssistant: …"),
// plus the shared instruction sets (Alpaca-style, Self-Instruct) and GSM8K as single-turn conversations. Files may be
// gzipped. Not the chat template (tokenizers/chat-template.ts) and not the loss masking (train/tasks/sft.ts).
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import type { ChatMessage, Role } from '../tokenizers/chat-template.js';
import { UserError } from '../util/errors.js';
import { formatInstruction, readInstructions, type InstructionExample } from './instructions.js';

export type { Role };
export type Message = ChatMessage;

/** A preference pair: a shared prompt (a conversation ending with a user turn) and two candidate assistant replies. */
export interface PreferencePair {
  prompt: Message[];
  chosen: string;
  rejected: string;
}

const ROLES: readonly Role[] = ['system', 'user', 'assistant'];

/** A file's text, gunzipped when it ends in .gz. */
export function readTextFile(path: string): string {
  if (!existsSync(path)) throw new UserError(`${path}: file not found`);
  const raw = readFileSync(path);
  return path.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
}

/** JSON lines of a file as [record, "file: line n"] (blank lines skipped). */
export function readJsonLines(path: string): [unknown, string][] {
  const out: [unknown, string][] = [];
  readTextFile(path).split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${path}: line ${i + 1}`;
    try {
      out.push([JSON.parse(line), where]);
    } catch (e) {
      throw new UserError(`${where}: invalid JSON (${(e as Error).message})`);
    }
  });
  return out;
}

function messagesOf(v: unknown, where: string): Message[] {
  if (typeof v === 'string') return [{ role: 'user', content: v }];
  if (!Array.isArray(v)) throw new UserError(`${where}: expected a list of {"role", "content"} messages`);
  return v.map((m: unknown, i) => {
    const o = m as { role?: unknown; content?: unknown } | null;
    if (typeof o?.role !== 'string' || !(ROLES as readonly string[]).includes(o.role)) throw new UserError(`${where}: message ${i}: role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(o?.role)}`);
    if (typeof o.content !== 'string') throw new UserError(`${where}: message ${i}: content must be a string`);
    return { role: o.role as Role, content: o.content };
  });
}

/**
 * An HH-RLHF dialogue string as messages: "\n\nHuman: " opens a user turn, "\n\nAssistant: " an assistant turn.
 * Text before the first marker is an error (the dataset always starts with one).
 */
export function parseHHDialogue(text: string, where: string): Message[] {
  const re = /\n\n(Human|Assistant):[ ]?/g;
  const marks = [...text.matchAll(re)];
  if (marks.length === 0 || marks[0]!.index !== 0) throw new UserError(`${where}: expected a dialogue starting with "\\n\\nHuman: "`);
  return marks.map((m, i) => {
    const end = i + 1 < marks.length ? marks[i + 1]!.index : text.length;
    return { role: m[1] === 'Human' ? 'user' : 'assistant', content: text.slice(m.index + m[0].length, end).trim() } as Message;
  });
}

/** An HH-RLHF record's pair: the shared turns before the last assistant reply, and the two final replies. */
export function hhPair(record: unknown, where: string): PreferencePair {
  const o = record as { chosen?: unknown; rejected?: unknown } | null;
  if (typeof o?.chosen !== 'string' || typeof o.rejected !== 'string') throw new UserError(`${where}: expected string fields chosen and rejected`);
  const c = parseHHDialogue(o.chosen, `${where}: chosen`);
  const r = parseHHDialogue(o.rejected, `${where}: rejected`);
  const lastC = c[c.length - 1]!;
  const lastR = r[r.length - 1]!;
  // A few records end without an assistant reply on one side: that side's reply is empty.
  const promptC = lastC.role === 'assistant' ? c.slice(0, -1) : c;
  return { prompt: promptC, chosen: lastC.role === 'assistant' ? lastC.content : '', rejected: lastR.role === 'assistant' ? lastR.content : '' };
}

/** A preference record of any supported form: TRL's {prompt, chosen, rejected} (strings or messages) or HH-RLHF's. */
export function preferenceOf(record: unknown, where: string): PreferencePair {
  const o = record as { prompt?: unknown; chosen?: unknown; rejected?: unknown } | null;
  if (o === null || typeof o !== 'object') throw new UserError(`${where}: expected an object`);
  if (o.prompt === undefined) return hhPair(o, where);
  const reply = (v: unknown, field: string): string => {
    if (typeof v === 'string') return v;
    const ms = messagesOf(v, `${where}: ${field}`);
    if (ms.length !== 1 || ms[0]!.role !== 'assistant') throw new UserError(`${where}: ${field} must be a string or one assistant message`);
    return ms[0]!.content;
  };
  return { prompt: messagesOf(o.prompt, `${where}: prompt`), chosen: reply(o.chosen, 'chosen'), rejected: reply(o.rejected, 'rejected') };
}

/** Preference pairs of a JSON-lines file (optionally .gz), in file order. */
export function readPreferences(path: string): PreferencePair[] {
  return readJsonLines(path).map(([r, where]) => preferenceOf(r, where));
}

/**
 * The held-out part of a preference file: every fifth record (index % 5 = 4), never trained on by any stage
 * (base pretraining, SFT, reward model, DPO, PPO prompts). Index-based so the split is the same in every tool.
 */
export function isHeldOut(index: number): boolean {
  return index % 5 === 4;
}

export function splitPairs<T>(items: readonly T[], part: 'train' | 'heldout' | 'all'): T[] {
  if (part === 'all') return [...items];
  return items.filter((_, i) => isHeldOut(i) === (part === 'heldout'));
}

/** A GSM8K record as a conversation: the question, then the worked answer ending in "#### n". */
function gsm8kOf(o: { question: string; answer: string }): Message[] {
  return [{ role: 'user', content: o.question.trim() }, { role: 'assistant', content: o.answer.trim() }];
}

function instructionConversation(e: InstructionExample): Message[] {
  const user = e.input.trim() === '' ? e.instruction.trim() : `${e.instruction.trim()}\n\n${e.input.trim()}`;
  return [{ role: 'user', content: user }, { role: 'assistant', content: e.response.trim() }];
}

/** One record of a conversation file: {"messages"}, {"prompt", "completion"}, GSM8K's {question, answer}, or HH-RLHF's chosen side. */
export function conversationOf(record: unknown, where: string): Message[] {
  const o = record as Record<string, unknown> | null;
  if (o === null || typeof o !== 'object') throw new UserError(`${where}: expected an object`);
  if (o.messages !== undefined) return messagesOf(o.messages, `${where}: messages`);
  if (o.prompt !== undefined && o.completion !== undefined) {
    const prompt = messagesOf(o.prompt, `${where}: prompt`);
    const completion = typeof o.completion === 'string' ? [{ role: 'assistant', content: o.completion } as Message] : messagesOf(o.completion, `${where}: completion`);
    return [...prompt, ...completion];
  }
  if (typeof o.question === 'string' && typeof o.answer === 'string') return gsm8kOf({ question: o.question, answer: o.answer });
  if (typeof o.chosen === 'string') return parseHHDialogue(o.chosen, `${where}: chosen`);
  throw new UserError(`${where}: expected {"messages": [...]}, {"prompt", "completion"}, {"question", "answer"} or an HH-RLHF {"chosen", "rejected"} record`);
}

/**
 * Conversations of one file. Instruction sets (.json arrays or Self-Instruct's `instances` lines) go through
 * data/instructions.ts; other JSON lines are read record by record (conversationOf). For an HH-RLHF file only
 * the part named is read (the chosen dialogues of its train part by default).
 */
export function readConversations(path: string, part: 'train' | 'heldout' | 'all' = 'train'): Message[][] {
  if (path.endsWith('.json')) return readInstructions(path).map(instructionConversation);
  const lines = readJsonLines(path);
  const first = lines[0]?.[0] as Record<string, unknown> | undefined;
  if (first && typeof first.instruction === 'string') return readInstructions(path).map(instructionConversation);
  if (first && typeof first.chosen === 'string' && typeof first.rejected === 'string') {
    return splitPairs(lines, part).map(([r, where]) => conversationOf(r, where));
  }
  return lines.map(([r, where]) => conversationOf(r, where));
}

/** A conversation as plain pretraining text in HH-RLHF's own layout ("\n\nHuman: …\n\nAssistant: …"), system turns first. */
export function plainDialogue(messages: readonly Message[]): string {
  return messages.map((m) => `\n\n${m.role === 'user' ? 'Human' : m.role === 'assistant' ? 'Assistant' : 'System'}: ${m.content}`).join('');
}

export { formatInstruction };
