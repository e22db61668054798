// The OpenAI API's request checks and response shapes for /v1/completions and /v1/chat/completions: parsing a
// JSON body into what the generator needs (each bad field named in OpenAI's error body {error: {message, type,
// param, code}}), and the response objects, chunks and errors exactly as the `openai` client reads them.
// Not the HTTP plumbing (server.ts).
import type { ChatMessage, ChatRole } from './chat-template.js';
import type { FinishReason } from './scheduler.js';

/** A 4xx/5xx answer with OpenAI's error body. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly param: string | null = null, readonly code: string | null = null, readonly type = errorType(status)) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_exceeded';
  if (status === 408 || status === 504) return 'timeout';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** The sampling fields shared by both endpoints, checked. */
export interface CommonRequest {
  model: string | undefined;
  maxTokens: number | undefined;
  temperature: number;
  topP: number;
  topK: number;
  n: number;
  stop: string[];
  seed: number | undefined;
  stream: boolean;
  includeUsage: boolean;
  frequencyPenalty: number;
  presencePenalty: number;
}

export interface CompletionRequest extends CommonRequest {
  /** One prompt per entry (text or token ids); each gets n choices. */
  prompts: (string | number[])[];
  echo: boolean;
}

export interface ChatRequest extends CommonRequest {
  messages: ChatMessage[];
}

/** The most choices one request may ask for. */
export const MAX_N = 16;

type Json = Record<string, unknown>;

function optNumber(o: Json, key: string, lo: number, hi: number, fallback: number): number {
  const v = o[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) throw new ApiError(400, `${key}: expected a number from ${lo} to ${hi}, got ${JSON.stringify(v)}`, key, 'invalid_value');
  return v;
}

function optInt(o: Json, key: string, lo: number, hi: number): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new ApiError(400, `${key}: expected an integer from ${lo} to ${hi}, got ${JSON.stringify(v)}`, key, 'invalid_value');
  return v;
}

/** Checks a parsed body is an object and reads the shared fields. */
function common(body: unknown): { o: Json; c: CommonRequest } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'the request body must be a JSON object');
  const o = body as Json;
  for (const key of ['tools', 'functions', 'tool_choice', 'function_call'] as const) {
    if (o[key] !== undefined && o[key] !== null) throw new ApiError(400, `${key}: tool calling is not supported by this server`, key, 'unsupported_parameter');
  }
  if (o.logprobs !== undefined && o.logprobs !== null && o.logprobs !== false) throw new ApiError(400, 'logprobs: not supported by this server', 'logprobs', 'unsupported_parameter');
  if (o.model !== undefined && typeof o.model !== 'string') throw new ApiError(400, 'model: expected a string', 'model');
  let stop: string[] = [];
  if (typeof o.stop === 'string') stop = [o.stop];
  else if (Array.isArray(o.stop)) {
    if (o.stop.length > 4 || !o.stop.every((s) => typeof s === 'string')) throw new ApiError(400, 'stop: expected a string or up to 4 strings', 'stop');
    stop = o.stop as string[];
  } else if (o.stop !== undefined && o.stop !== null) throw new ApiError(400, 'stop: expected a string or an array of strings', 'stop');
  if (o.stream !== undefined && o.stream !== null && typeof o.stream !== 'boolean') throw new ApiError(400, 'stream: expected a boolean', 'stream');
  const so = o.stream_options;
  if (so !== undefined && so !== null && (typeof so !== 'object' || Array.isArray(so))) throw new ApiError(400, 'stream_options: expected an object', 'stream_options');
  const maxTokens = optInt(o, 'max_completion_tokens', 0, Number.MAX_SAFE_INTEGER) ?? optInt(o, 'max_tokens', 0, Number.MAX_SAFE_INTEGER);
  return {
    o,
    c: {
      model: o.model as string | undefined,
      maxTokens,
      temperature: optNumber(o, 'temperature', 0, 2, 1),
      topP: optNumber(o, 'top_p', 0, 1, 1) || 1e-9, // top_p 0 = the single most likely token
      topK: optInt(o, 'top_k', -1, Number.MAX_SAFE_INTEGER) ?? 0,
      n: optInt(o, 'n', 1, MAX_N) ?? 1,
      stop,
      seed: optInt(o, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
      stream: o.stream === true,
      includeUsage: (so as Json | undefined)?.include_usage === true,
      frequencyPenalty: optNumber(o, 'frequency_penalty', -2, 2, 0),
      presencePenalty: optNumber(o, 'presence_penalty', -2, 2, 0),
    },
  };
}

export function parseCompletionRequest(body: unknown): CompletionRequest {
  const { o, c } = common(body);
  const p = o.prompt;
  let prompts: (string | number[])[];
  const isIds = (x: unknown): x is number[] => Array.isArray(x) && x.length > 0 && x.every((t) => typeof t === 'number' && Number.isInteger(t) && t >= 0);
  if (typeof p === 'string') prompts = [p];
  else if (isIds(p)) prompts = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string' || isIds(x))) prompts = p as (string | number[])[];
  else throw new ApiError(400, 'prompt: expected a string, an array of strings, or an array of token ids', 'prompt', p === undefined ? 'missing_required_parameter' : 'invalid_value');
  if (o.echo !== undefined && o.echo !== null && typeof o.echo !== 'boolean') throw new ApiError(400, 'echo: expected a boolean', 'echo');
  if (o.suffix !== undefined && o.suffix !== null) throw new ApiError(400, 'suffix: not supported by this server', 'suffix', 'unsupported_parameter');
  if (o.best_of !== undefined && o.best_of !== null && o.best_of !== 1) throw new ApiError(400, 'best_of: only 1 is supported', 'best_of', 'unsupported_parameter');
  if (prompts.length * c.n > MAX_N) throw new ApiError(400, `prompt × n: at most ${MAX_N} choices per request, asked for ${prompts.length * c.n}`, 'n');
  return { ...c, prompts, echo: o.echo === true };
}

const ROLES = new Set<string>(['system', 'developer', 'user', 'assistant']);

export function parseChatRequest(body: unknown): ChatRequest {
  const { o, c } = common(body);
  const ms = o.messages;
  if (!Array.isArray(ms) || ms.length === 0) throw new ApiError(400, 'messages: expected a non-empty array of {role, content}', 'messages', ms === undefined ? 'missing_required_parameter' : 'invalid_value');
  const messages = ms.map((m: unknown, i): ChatMessage => {
    const at = `messages[${i}]`;
    if (typeof m !== 'object' || m === null) throw new ApiError(400, `${at}: expected an object {role, content}`, at);
    const { role, content } = m as Json;
    if (typeof role !== 'string' || !ROLES.has(role)) throw new ApiError(400, `${at}.role: expected one of system, developer, user, assistant, got ${JSON.stringify(role)}`, `${at}.role`);
    let text: string;
    if (typeof content === 'string') text = content;
    else if (Array.isArray(content) && content.every((part) => typeof part === 'object' && part !== null && (part as Json).type === 'text' && typeof (part as Json).text === 'string')) {
      text = content.map((part) => (part as { text: string }).text).join('');
    } else throw new ApiError(400, `${at}.content: expected a string or an array of {type: "text", text} parts`, `${at}.content`);
    return { role: (role === 'developer' ? 'system' : role) as ChatRole, content: text };
  });
  return { ...c, messages };
}

export type OpenAIFinish = 'stop' | 'length';

/** The scheduler's reasons in OpenAI's terms: a full context is a length limit. */
export function openAIFinish(reason: FinishReason): OpenAIFinish {
  return reason === 'stop' ? 'stop' : 'length';
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usage(prompt: number, completion: number): Usage {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

export interface ResponseHead {
  id: string;
  created: number;
  model: string;
}

export function chatCompletion(h: ResponseHead, choices: { text: string; finish: OpenAIFinish }[], u: Usage): object {
  return {
    id: h.id, object: 'chat.completion', created: h.created, model: h.model, system_fingerprint: null,
    choices: choices.map((c, index) => ({ index, message: { role: 'assistant', content: c.text, refusal: null }, logprobs: null, finish_reason: c.finish })),
    usage: u,
  };
}

export function chatChunk(h: ResponseHead, index: number, delta: { role?: 'assistant'; content?: string }, finish: OpenAIFinish | null): object {
  return { id: h.id, object: 'chat.completion.chunk', created: h.created, model: h.model, system_fingerprint: null, choices: [{ index, delta, logprobs: null, finish_reason: finish }] };
}

export function textCompletion(h: ResponseHead, choices: { text: string; finish: OpenAIFinish }[], u: Usage): object {
  return {
    id: h.id, object: 'text_completion', created: h.created, model: h.model, system_fingerprint: null,
    choices: choices.map((c, index) => ({ index, text: c.text, logprobs: null, finish_reason: c.finish })),
    usage: u,
  };
}

export function textChunk(h: ResponseHead, index: number, text: string, finish: OpenAIFinish | null): object {
  return { id: h.id, object: 'text_completion', created: h.created, model: h.model, system_fingerprint: null, choices: [{ index, text, logprobs: null, finish_reason: finish }] };
}

/** The last chunk of a stream with stream_options.include_usage: no choices, the usage. */
export function usageChunk(h: ResponseHead, object: 'chat.completion.chunk' | 'text_completion', u: Usage): object {
  return { id: h.id, object, created: h.created, model: h.model, system_fingerprint: null, choices: [], usage: u };
}
