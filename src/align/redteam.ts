// Red-team prompt suites: prompts meant to draw harmful help (by default the first human turns of the held-out part
// of HH-RLHF harmless-base, i.e. red-team attempts no alignment stage trained on), the model's replies, and two
// scores of them — the harmful-content filter (data/harmful.ts: a reply is flagged when it contains a listed term)
// and a reward model's score (align reward) — summarised as a harmful rate with its Wilson 95% interval and a mean
// score with its normal 95% interval. Any model: chat models reply under the chat template, plain language models
// continue a "\n\nHuman: …\n\nAssistant:" transcript. Not the CLI (cli/redteam.ts).
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { HarmfulContentFilter } from '../data/harmful.js';
import { readPreferences, splitPairs } from '../data/chat.js';
import type { GPT } from '../models/gpt.js';
import type { ScalarModel } from '../models/heads.js';
import { generate, type GenerateOptions } from '../serve/generate.js';
import { samplingProcessors } from '../serve/logits.js';
import { hasChatTokens, renderChat, renderReply, chatIds, type ChatIds } from '../tokenizers/chat-template.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { UserError } from '../util/errors.js';
import { meanStd, scoreSequences, type SampleOptions } from './evaluate.js';
import { wilson } from '../util/intervals.js';

export interface RedTeamPrompt {
  /** "file:line" or "file#record". */
  where: string;
  prompt: string;
}

/**
 * Red-team prompts from a file: an HH-RLHF preference JSONL(.gz) (fields chosen/rejected: the first human turn of
 * each held-out record), a JSONL of {"prompt": …}, or plain text with one prompt per line.
 */
export function readRedTeamPrompts(path: string, limit = 0): RedTeamPrompt[] {
  if (!existsSync(path)) throw new UserError(`${path}: prompt file not found`);
  let out: RedTeamPrompt[];
  if (/\.jsonl(\.gz)?$/.test(path)) {
    const text = path.endsWith('.gz') ? gunzipSync(readFileSync(path)).toString('utf8') : readFileSync(path, 'utf8');
    const first = text.split('\n').find((l) => l.trim() !== '');
    if (first === undefined) throw new UserError(`${path}: no prompts`);
    let probe: unknown;
    try {
      probe = JSON.parse(first);
    } catch (e) {
      throw new UserError(`${path}:1: invalid JSON (${(e as Error).message})`);
    }
    if (typeof probe === 'object' && probe !== null && 'chosen' in probe) {
      out = splitPairs(readPreferences(path).map((p, i) => ({ p, i })), 'heldout')
        .map(({ p, i }) => ({ where: `${path}#${i}`, prompt: p.prompt.find((m) => m.role === 'user')?.content ?? '' }))
        .filter((r) => r.prompt !== '');
    } else {
      out = [];
      text.split('\n').forEach((line, i) => {
        if (line.trim() === '') return;
        let v: unknown;
        try {
          v = JSON.parse(line);
        } catch (e) {
          throw new UserError(`${path}:${i + 1}: invalid JSON (${(e as Error).message})`);
        }
        const prompt = (v as { prompt?: unknown } | null)?.prompt;
        if (typeof prompt !== 'string' || prompt.trim() === '') throw new UserError(`${path}:${i + 1}: expected {"prompt": "non-empty text"}`);
        out.push({ where: `${path}:${i + 1}`, prompt: prompt.trim() });
      });
    }
  } else {
    out = readFileSync(path, 'utf8').split('\n').map((l, i) => ({ where: `${path}:${i + 1}`, prompt: l.trim() })).filter((r) => r.prompt !== '');
  }
  if (out.length === 0) throw new UserError(`${path}: no prompts`);
  return limit > 0 ? out.slice(0, limit) : out;
}

export interface RedTeamSummary {
  n: number;
  flagged: number;
  harmful_rate: number;
  harmful_rate_ci95: [number, number];
  /** Mean reward-model score and its 95% interval (mean ± 1.96 sd/√n); null without a reward model. */
  reward: { mean: number; sd: number; ci95: [number, number] } | null;
}

export function summarizeRedTeam(flags: readonly boolean[], scores: readonly number[] | null): RedTeamSummary {
  const n = flags.length;
  const flagged = flags.filter((f) => f).length;
  let reward: RedTeamSummary['reward'] = null;
  if (scores) {
    if (scores.length !== n) throw new Error(`summarizeRedTeam: ${scores.length} scores for ${n} replies`);
    const { mean, std } = meanStd(scores);
    const half = n > 1 ? (1.959964 * std) / Math.sqrt(n) : Infinity;
    reward = { mean, sd: std, ci95: [mean - half, mean + half] };
  }
  return { n, flagged, harmful_rate: n === 0 ? 0 : flagged / n, harmful_rate_ci95: wilson(flagged, n), reward };
}

/** How a model is prompted: under its chat template, or as a plain HH-style transcript. */
export interface Replier {
  kind: 'chat' | 'transcript';
  replies(prompts: readonly string[], o: SampleOptions): string[];
}

const TRANSCRIPT_STOP = '\n\nHuman:';

export function replierFor(model: GPT, tok: Tokenizer, source: string): Replier {
  const T = model.config.block_size;
  const run = (prompts: number[][], o: SampleOptions, stop: Pick<GenerateOptions, 'stopTokens' | 'stopStrings'>): number[][] => {
    const room = Math.max(1, T - o.maxNewTokens);
    const cut = prompts.map((p) => p.slice(Math.max(0, p.length - room)));
    const out: number[][] = [];
    for (let i = 0; i < cut.length; i += 16) {
      const gens = generate(model, cut.slice(i, i + 16), { maxNewTokens: o.maxNewTokens, greedy: o.temperature === 0, processors: samplingProcessors({ temperature: o.temperature, topK: o.topK }), seed: o.seed + i, ...stop, onFull: 'stop' });
      out.push(...gens.map((g) => g.tokens));
    }
    return out;
  };
  if (hasChatTokens(tok)) {
    const ids = chatIds(tok, source);
    return {
      kind: 'chat',
      replies: (prompts, o) => run(prompts.map((p) => renderChat(tok, ids, [{ role: 'user', content: p }], { generationPrompt: true }).ids), o, { stopTokens: [ids.end] }).map((r) => tok.decode(r.filter((t) => t !== ids.end)).trim()),
    };
  }
  return {
    kind: 'transcript',
    replies: (prompts, o) => run(prompts.map((p) => tok.encode(`\n\nHuman: ${p}\n\nAssistant:`)), o, { stopStrings: { strings: [TRANSCRIPT_STOP], decode: (t) => tok.decode(t) } }).map((r) => {
      const text = tok.decode(r);
      const stop = text.indexOf(TRANSCRIPT_STOP);
      return (stop >= 0 ? text.slice(0, stop) : text).trim();
    }),
  };
}

/** A reward model's scores of (prompt, reply) under its own tokenizer and chat template, cut from the left to its block. */
export function rewardScores(rm: ScalarModel, tok: Tokenizer, ids: ChatIds, prompts: readonly string[], replies: readonly string[]): number[] {
  const T = rm.body.config.block_size;
  const seqs = prompts.map((p, i) => {
    const prompt = renderChat(tok, ids, [{ role: 'user', content: p }], { generationPrompt: true }).ids;
    const reply = renderReply(tok, ids, replies[i]!).slice(0, Math.max(1, T - 1));
    const all = [...prompt, ...reply];
    const drop = Math.max(0, all.length - T);
    return { ids: all.slice(drop), replyStart: Math.max(0, prompt.length - drop) };
  });
  return scoreSequences(rm, seqs, 16);
}

export interface RedTeamRecord {
  where: string;
  prompt: string;
  reply: string;
  flagged: boolean;
  matches: number;
  reward?: number;
}

/** Replies to every prompt, each flagged by the filter and (with a reward model) scored. */
export function runRedTeam(replier: Replier, prompts: readonly RedTeamPrompt[], filter: HarmfulContentFilter, sample: SampleOptions, scorer?: { rm: ScalarModel; tok: Tokenizer; ids: ChatIds }): { records: RedTeamRecord[]; summary: RedTeamSummary } {
  const texts = prompts.map((p) => p.prompt);
  const replies = replier.replies(texts, sample);
  const scores = scorer ? rewardScores(scorer.rm, scorer.tok, scorer.ids, texts, replies) : null;
  const records = prompts.map((p, i): RedTeamRecord => {
    const matches = filter.count(replies[i]!).matches;
    return { where: p.where, prompt: p.prompt, reply: replies[i]!, flagged: matches > 0, matches, ...(scores ? { reward: scores[i]! } : {}) };
  });
  return { records, summary: summarizeRedTeam(records.map((r) => r.flagged), scores) };
}
