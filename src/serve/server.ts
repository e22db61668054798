// The OpenAI-compatible HTTP server on node:http: /v1/models, /v1/completions and /v1/chat/completions (JSON or
// SSE streaming), /v1/feedback, /health and /metrics; an API key, body-size and max-token limits, a concurrency
// limit (rows decoding at once, the batcher's slots) with a queue behind it and 429 beyond both, a per-request
// timeout, CORS for the dashboard, and a graceful close (stop accepting, let in-flight requests finish within a
// grace period, cancel the rest). Generation runs on the worker thread (engine.ts): this thread only parses,
// tokenizes and writes, so it answers /v1/models at once while long generations run.
import { randomBytes, randomInt } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { arenaRatings, ratingsTable, type ArenaStore } from './arena.js';
import type { ChatFormat } from './chat-template.js';
import type { Generator } from './engine.js';
import type { FeedbackStore } from './feedback.js';
import {
  ApiError, chatChunk, chatCompletion, openAIFinish, parseChatRequest, parseCompletionRequest, textChunk, textCompletion, usage, usageChunk,
  type ChatRequest, type CommonRequest, type CompletionRequest, type OpenAIFinish, type ResponseHead,
} from './openai.js';
import type { SamplingParams, SequenceDelta } from './protocol.js';

/** One model the server answers for: its id, its generation worker and its text handling. */
export interface ServedModel {
  /** The id /v1/models lists and requests name in `model`. */
  name: string;
  generator: Generator;
  /** Conversation → prompt ids, and what ends a reply (serve/chat-template.ts). */
  chat: ChatFormat;
  /** Prompt text → ids (throws on text the tokenizer cannot encode). */
  encode: (text: string) => number[];
  decode: (ids: readonly number[]) => string;
}

interface Slot extends ServedModel {
  /** Sequences of this model generating or queued now. */
  rows: number;
}

export interface ServerOptions {
  /** Bearer key every /v1 request must carry (none = open). */
  apiKey?: string;
  /** Sequences decoding at once per model (each worker's batch slots). */
  maxConcurrency: number;
  /** Sequences per model waiting for a slot beyond those; more get 429. */
  maxQueue: number;
  /** Largest max_tokens a request may ask for, and the default when it asks for none. */
  maxTokens: number;
  maxBodyBytes: number;
  /** A request still generating after this long is cancelled (504, or an error event on a stream). */
  timeoutMs: number;
  feedback?: FeedbackStore;
  /** Where arena votes go (the arena routes need two models or more). */
  arena?: ArenaStore;
  /** Called once the server has closed (to release stores). */
  onClose?: () => void;
  /** Access-Control-Allow-Origin (default '*'). */
  corsOrigin?: string;
}

/** Latency samples kept for /metrics (the most recent ones). */
const SAMPLES = 4096;

class Window {
  private readonly values: number[] = [];
  add(v: number): void {
    this.values.push(v);
    if (this.values.length > SAMPLES) this.values.shift();
  }
  quantile(q: number): number | null {
    if (this.values.length === 0) return null;
    const s = [...this.values].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  }
}

interface Served {
  model: string;
  prompt: string;
  completion: string;
}

/** A battle waiting for its vote: the two models in the order shown and their answers. */
interface Battle {
  models: [string, string];
  prompt: string;
  texts: [string, string];
}

export class OpenAIServer {
  private readonly http: Server;
  private readonly models: Slot[];
  private readonly battles = new Map<string, Battle>();
  private draining = false;
  private readonly active = new Set<() => void>();
  private readonly recent = new Map<string, Served>();
  private readonly ttft = new Window();
  private readonly itl = new Window();
  private requests = 0;
  private tokens = 0;
  private rejected = 0;
  private readonly created = Math.floor(Date.now() / 1000);

  constructor(models: readonly ServedModel[], private readonly options: ServerOptions) {
    if (models.length === 0) throw new RangeError('OpenAIServer: no model to serve');
    if (new Set(models.map((m) => m.name)).size !== models.length) throw new RangeError(`OpenAIServer: model names must differ (${models.map((m) => m.name).join(', ')})`);
    this.models = models.map((m) => ({ ...m, rows: 0 }));
    this.http = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${(e as Error).message}`);
        if (!(e instanceof ApiError)) process.stderr.write(`serve: ${(e as Error).stack ?? String(e)}\n`);
        if (!res.headersSent) this.json(res, err.status, err.body());
        else res.end();
      });
    });
    this.http.keepAliveTimeout = 5000;
  }

  /** Starts listening; resolves with the bound address (port 0 = an ephemeral port). */
  listen(port: number, host: string): Promise<{ host: string; port: number; url: string }> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        const a = this.http.address() as AddressInfo;
        const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
        resolve({ host: a.address, port: a.port, url: `http://${h}:${a.port}` });
      });
    });
  }

  /**
   * Stops accepting, lets in-flight requests finish for up to graceMs, cancels what still runs (a stream gets an
   * error event), closes the worker and the connections.
   */
  async close(graceMs = 10_000): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeIdleConnections();
    const deadline = Date.now() + graceMs;
    while (this.active.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const cancel of [...this.active]) cancel();
    while (this.active.size > 0) await new Promise((r) => setTimeout(r, 10));
    await Promise.all(this.models.map((m) => m.generator.close()));
    this.http.closeAllConnections();
    await closed;
    this.options.onClose?.();
  }

  /** Where /v1/feedback records go ('' when it is off). */
  get feedbackLocation(): string {
    return this.options.feedback?.location ?? '';
  }

  /** What /metrics reports. */
  stats(): object {
    const q = (w: Window, p: number): number | null => w.quantile(p);
    return {
      models: this.models.map((m) => m.name), requests: this.requests, rejected_429: this.rejected, generated_tokens: this.tokens,
      rows_in_flight: Object.fromEntries(this.models.map((m) => [m.name, m.rows])), max_concurrency: this.options.maxConcurrency, max_queue: this.options.maxQueue,
      ttft_ms: { p50: q(this.ttft, 0.5), p95: q(this.ttft, 0.95) }, inter_token_ms: { p50: q(this.itl, 0.5), p95: q(this.itl, 0.95) },
    };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('Access-Control-Allow-Origin', this.options.corsOrigin ?? '*');
    res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type, OpenAI-Organization, OpenAI-Project, X-Stainless-Lang, X-Stainless-Package-Version, X-Stainless-OS, X-Stainless-Arch, X-Stainless-Runtime, X-Stainless-Runtime-Version, X-Stainless-Retry-Count, X-Stainless-Timeout');
    res.setHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { 'Access-Control-Max-Age': '600' }).end();
      return;
    }
    if (path === '/health') return this.json(res, 200, { status: this.draining ? 'draining' : 'ok' });
    if (path === '/metrics') return this.json(res, 200, this.stats());
    if (!path.startsWith('/v1/')) throw new ApiError(404, `no route ${req.method} ${path} (try /v1/models)`, null, 'not_found');
    this.authorize(req);
    if (path === '/v1/models' && req.method === 'GET') {
      return this.json(res, 200, { object: 'list', data: this.models.map((m) => this.modelObject(m)) });
    }
    if (path.startsWith('/v1/models/') && req.method === 'GET') {
      return this.json(res, 200, this.modelObject(this.pick(decodeURIComponent(path.slice('/v1/models/'.length)))));
    }
    if (path === '/v1/arena/ratings' && req.method === 'GET') return this.arenaRatings(res);
    const routes: Record<string, (body: unknown, res: ServerResponse) => Promise<void> | void> = {
      '/v1/completions': (b, r) => this.completions(b, r),
      '/v1/chat/completions': (b, r) => this.chat(b, r),
      '/v1/feedback': (b, r) => this.feedback(b, r),
      '/v1/arena/battles': (b, r) => this.battle(b, r),
      '/v1/arena/votes': (b, r) => this.vote(b, r),
    };
    const route = routes[path];
    if (!route) throw new ApiError(404, `no route ${req.method} ${path}`, null, 'not_found');
    if (req.method !== 'POST') throw new ApiError(405, `${path} takes POST, got ${req.method}`, null, 'method_not_allowed');
    const body = await this.readBody(req);
    await route(body, res);
  }

  private modelObject(m: Slot): object {
    return { id: m.name, object: 'model', created: this.created, owned_by: 'lmforge', max_model_len: m.generator.info.blockSize };
  }

  private authorize(req: IncomingMessage): void {
    const key = this.options.apiKey;
    if (!key) return;
    const header = req.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (given !== key) throw new ApiError(401, given ? 'Incorrect API key provided.' : 'Missing API key: send the header "Authorization: Bearer <key>".', null, 'invalid_api_key');
  }

  /** The JSON body, refused past maxBodyBytes (413) or when it is not JSON (400). */
  private async readBody(req: IncomingMessage): Promise<unknown> {
    const limit = this.options.maxBodyBytes;
    const declared = Number(req.headers['content-length'] ?? NaN);
    const tooLarge = (): ApiError => new ApiError(413, `request body larger than the server's limit of ${limit} bytes`, null, 'request_too_large');
    if (declared > limit) {
      req.resume();
      throw tooLarge();
    }
    const parts: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) {
        req.resume();
        throw tooLarge();
      }
      parts.push(chunk);
    }
    const text = Buffer.concat(parts).toString('utf8');
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new ApiError(400, `the request body is not valid JSON (${(e as Error).message})`, null, 'invalid_json');
    }
  }

  /** The model a request names (the first served model when it names none); 404 for an unknown one. */
  private pick(name: string | undefined): Slot {
    if (name === undefined) return this.models[0]!;
    const m = this.models.find((x) => x.name === name);
    if (!m) throw new ApiError(404, `The model ${JSON.stringify(name)} does not exist on this server (it serves ${this.models.map((x) => JSON.stringify(x.name)).join(', ')}).`, 'model', 'model_not_found');
    return m;
  }

  private encode(m: Slot, text: string, param: string): number[] {
    let ids: number[];
    try {
      ids = m.encode(text);
    } catch (e) {
      throw new ApiError(400, `${param}: the model's tokenizer cannot encode it (${(e as Error).message})`, param, 'invalid_value');
    }
    return ids;
  }

  private async completions(body: unknown, res: ServerResponse): Promise<void> {
    const r = parseCompletionRequest(body);
    const m = this.pick(r.model);
    const prompts = r.prompts.map((p, i) => {
      const param = r.prompts.length > 1 ? `prompt[${i}]` : 'prompt';
      if (typeof p === 'string') return { ids: this.encode(m, p, param), text: p, param };
      if (p.some((t) => t >= m.generator.info.vocabSize)) throw new ApiError(400, `${param}: token ids must be below the vocabulary size ${m.generator.info.vocabSize}`, param);
      return { ids: p, text: m.decode(p), param };
    });
    const rows = prompts.flatMap((p) => Array.from({ length: r.n }, () => p));
    const head = this.head('cmpl', m);
    await this.run(m, res, r, rows, head, {
      chunk: (i, text, finish) => textChunk(head, i, text, finish),
      whole: (choices, u) => textCompletion(head, choices, u),
      usageObject: 'text_completion',
      prefix: (i) => (r.echo ? rows[i]!.text : ''),
    });
  }

  private async chat(body: unknown, res: ServerResponse): Promise<void> {
    const r = parseChatRequest(body);
    const m = this.pick(r.model);
    const { ids, text } = this.renderChat(m, r.messages);
    const stop = [...new Set([...m.chat.stop, ...r.stop])];
    const rows = Array.from({ length: r.n }, () => ({ ids, text, param: 'messages' }));
    const head = this.head('chatcmpl', m);
    await this.run(m, res, { ...r, stop, stopTokens: m.chat.stopTokens }, rows, head, {
      chunk: (i, content, finish) => chatChunk(head, i, finish ? {} : { content }, finish),
      first: (i) => chatChunk(head, i, { role: 'assistant', content: '' }, null),
      whole: (choices, u) => chatCompletion(head, choices, u),
      usageObject: 'chat.completion.chunk',
      prefix: () => '',
    });
  }

  /** A conversation in the model's chat format (400 naming messages when its tokenizer cannot encode it). */
  private renderChat(m: Slot, messages: ChatRequest['messages']): { ids: number[]; text: string } {
    try {
      return m.chat.render(messages);
    } catch (e) {
      throw new ApiError(400, `messages: the model's tokenizer cannot encode them (${(e as Error).message})`, 'messages', 'invalid_value');
    }
  }

  private head(prefix: string, m: Slot): ResponseHead {
    return { id: `${prefix}-${randomBytes(12).toString('hex')}`, created: Math.floor(Date.now() / 1000), model: m.name };
  }

  /**
   * Generates every row (choice) of a request and answers: one JSON object, or SSE chunks as the worker's deltas
   * arrive (each choice's text, then its finish, then the usage chunk if asked, then [DONE]).
   */
  private run(
    m: Slot, res: ServerResponse, r: CommonRequest & { stopTokens?: number[] }, rows: { ids: number[]; text: string; param: string }[], head: ResponseHead,
    shape: {
      chunk: (index: number, text: string, finish: OpenAIFinish | null) => object;
      first?: (index: number) => object;
      whole: (choices: { text: string; finish: OpenAIFinish }[], u: ReturnType<typeof usage>) => object;
      usageObject: 'chat.completion.chunk' | 'text_completion';
      prefix: (index: number) => string;
    },
  ): Promise<void> {
    const o = this.options;
    if (this.draining) throw new ApiError(503, 'the server is shutting down', null, 'server_shutting_down', 'server_error');
    const maxTokens = r.maxTokens ?? o.maxTokens;
    if (maxTokens > o.maxTokens) throw new ApiError(400, `max_tokens: ${maxTokens} is more than this server's limit of ${o.maxTokens}`, r.maxTokens === undefined ? null : 'max_tokens', 'invalid_value');
    rows.forEach((row) => {
      if (row.ids.length === 0) throw new ApiError(400, `${row.param}: encodes to no tokens; give at least one character`, row.param, 'invalid_value');
    });
    if (m.rows + rows.length > o.maxConcurrency + o.maxQueue) {
      this.rejected++;
      res.setHeader('Retry-After', '1');
      throw new ApiError(429, `the server is at its limit of ${o.maxConcurrency} running and ${o.maxQueue} queued sequences; retry later`, null, 'rate_limit_exceeded');
    }
    this.requests++;
    const t0 = performance.now();
    const seed = r.seed ?? randomInt(0, 2 ** 31);
    const texts = rows.map((_, i) => shape.prefix(i));
    const finishes: (OpenAIFinish | null)[] = rows.map(() => null);
    const counts = rows.map(() => 0);
    let pending = rows.length;
    let timedOut = false;
    let gone = false;
    if (r.stream) {
      res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
      res.flushHeaders(); // a client sees the 200 at once, not with the first token
      rows.forEach((_, i) => {
        if (shape.first) this.send(res, shape.first(i));
        if (texts[i]) this.send(res, shape.chunk(i, texts[i]!, null));
      });
    }
    m.rows += rows.length;
    return new Promise<void>((resolve) => {
      const last = rows.map(() => t0);
      const handles: { cancel(): void }[] = [];
      const cancelAll = (): void => handles.forEach((h) => h.cancel());
      const timer = setTimeout(() => {
        timedOut = true;
        cancelAll();
      }, o.timeoutMs);
      this.active.add(cancelAll);
      res.on('close', () => { if (pending > 0) { gone = true; cancelAll(); } }); // the client went away mid-generation
      const done = (): void => {
        clearTimeout(timer);
        this.active.delete(cancelAll);
        m.rows -= rows.length;
        const prompt = rows.reduce((s, row, i) => s + (i % r.n === 0 ? row.ids.length : 0), 0); // each prompt once (rows are prompt-major, n each), as OpenAI counts
        const u = usage(prompt, counts.reduce((a, b) => a + b, 0));
        const complete = finishes.every((f) => f !== null) && !timedOut && !gone;
        if (complete) this.recent.set(head.id, { model: m.name, prompt: rows[0]!.text, completion: texts[0]! });
        if (this.recent.size > 1000) this.recent.delete(this.recent.keys().next().value!);
        if (gone) {
          res.end();
        } else if (r.stream) {
          if (!complete) this.send(res, new ApiError(timedOut ? 504 : 503, timedOut ? `generation took longer than the server's timeout of ${o.timeoutMs} ms` : 'generation was cancelled before it finished (the server is shutting down, or its generation worker failed)', null, timedOut ? 'timeout' : 'server_shutting_down').body());
          else if (r.includeUsage) this.send(res, usageChunk(head, shape.usageObject, u));
          res.end('data: [DONE]\n\n');
        } else if (!complete) {
          const e = new ApiError(timedOut ? 504 : 503, timedOut ? `generation took longer than the server's timeout of ${o.timeoutMs} ms` : 'generation was cancelled before it finished (the server is shutting down, or its generation worker failed)', null, timedOut ? 'timeout' : 'server_shutting_down');
          this.json(res, e.status, e.body());
        } else {
          this.json(res, 200, shape.whole(texts.map((text, i) => ({ text, finish: finishes[i]! })), u));
        }
        resolve();
      };
      rows.forEach((row, i) => {
        const onDelta = (d: SequenceDelta): void => {
          const now = performance.now();
          if (d.tokens > 0) {
            if (counts[i] === 0) this.ttft.add(now - t0);
            else this.itl.add((now - last[i]!) / d.tokens);
            last[i] = now;
            counts[i]! += d.tokens;
            this.tokens += d.tokens;
          }
          texts[i] += d.text;
          if (d.finish && d.finish !== 'cancelled') finishes[i] = openAIFinish(d.finish);
          if (r.stream && !gone && !timedOut) {
            if (d.text) this.send(res, shape.chunk(i, d.text, null));
            if (finishes[i] && d.finish) this.send(res, shape.chunk(i, '', finishes[i]!));
          }
          if (d.finish && --pending === 0) done();
        };
        const params = { maxTokens, temperature: r.temperature, topP: r.topP, topK: Math.max(0, r.topK), seed: seed + i, stop: r.stop, stopTokens: r.stopTokens ?? [], frequencyPenalty: r.frequencyPenalty, presencePenalty: r.presencePenalty };
        try {
          handles.push(m.generator.start(row.ids, params, onDelta));
        } catch {
          setImmediate(() => onDelta({ id: '', text: '', tokens: 0, finish: 'cancelled' })); // the worker is gone: this row ends unfinished (503)
        }
      });
    });
  }

  private async feedback(body: unknown, res: ServerResponse): Promise<void> {
    const store = this.options.feedback;
    if (!store) throw new ApiError(404, 'feedback is not enabled on this server', null, 'not_found');
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'the request body must be a JSON object');
    const b = body as Record<string, unknown>;
    if (typeof b.response_id !== 'string' || b.response_id === '') throw new ApiError(400, 'response_id: expected the id of a completion (chatcmpl-… or cmpl-…)', 'response_id', 'missing_required_parameter');
    const rating = b.rating === 1 || b.rating === 'up' || b.rating === 'thumbs_up' ? 'up' : b.rating === -1 || b.rating === 'down' || b.rating === 'thumbs_down' ? 'down' : null;
    if (!rating) throw new ApiError(400, `rating: expected "up" or "down" (or 1 / -1), got ${JSON.stringify(b.rating)}`, 'rating', 'invalid_value');
    if (b.comment !== undefined && b.comment !== null && typeof b.comment !== 'string') throw new ApiError(400, 'comment: expected a string', 'comment');
    const served = this.recent.get(b.response_id);
    const record = {
      id: `fb-${randomBytes(8).toString('hex')}`, response_id: b.response_id, rating, comment: (b.comment as string | undefined) ?? '',
      model: served?.model ?? (typeof b.model === 'string' ? b.model : this.models[0]!.name), created: new Date().toISOString(),
      ...(served ? { prompt: served.prompt, completion: served.completion } : {}),
    } as const;
    store.add(record);
    this.json(res, 200, { ...record, object: 'feedback', known_response: served !== undefined });
  }

  /** Generates one whole answer off the HTTP path (arena battles); a cancelled or timed-out one rejects (504/503). */
  private collect(m: Slot, ids: number[], params: SamplingParams): Promise<string> {
    m.rows++;
    return new Promise((resolve, reject) => {
      let text = '';
      let handle: { cancel(): void } | null = null;
      let timedOut = false;
      const cancel = (): void => handle?.cancel();
      const timer = setTimeout(() => { timedOut = true; cancel(); }, this.options.timeoutMs);
      this.active.add(cancel);
      const onDelta = (d: SequenceDelta): void => {
        text += d.text;
        this.tokens += d.tokens;
        if (!d.finish) return;
        clearTimeout(timer);
        this.active.delete(cancel);
        m.rows--;
        if (d.finish !== 'cancelled') resolve(text);
        else reject(timedOut ? new ApiError(504, `generation took longer than the server's timeout of ${this.options.timeoutMs} ms`, null, 'timeout') : new ApiError(503, 'generation was cancelled before it finished', null, 'server_shutting_down', 'server_error'));
      };
      try {
        handle = m.generator.start(ids, params, onDelta);
      } catch {
        setImmediate(() => onDelta({ id: '', text: '', tokens: 0, finish: 'cancelled' }));
      }
    });
  }

  /**
   * POST /v1/arena/battles {messages | prompt, models?: [a, b], max_tokens, temperature, top_p, seed}: two models
   * answer the same prompt; the answers come back in a shuffled order without the models' names, which the vote
   * reveals.
   */
  private async battle(body: unknown, res: ServerResponse): Promise<void> {
    const store = this.options.arena;
    if (!store || this.models.length < 2) throw new ApiError(404, 'the arena needs two models or more: start the server with --run A --run B', null, 'not_found');
    if (this.draining) throw new ApiError(503, 'the server is shutting down', null, 'server_shutting_down', 'server_error');
    const chat = typeof body === 'object' && body !== null && 'messages' in body;
    const r: ChatRequest | CompletionRequest = chat ? parseChatRequest(body) : parseCompletionRequest(body);
    if (!chat && ((r as CompletionRequest).prompts.length !== 1 || typeof (r as CompletionRequest).prompts[0] !== 'string')) throw new ApiError(400, 'prompt: a battle takes one prompt string (or messages)', 'prompt');
    const names = (body as { models?: unknown }).models;
    if (names !== undefined && !(Array.isArray(names) && names.length === 2 && names.every((n) => typeof n === 'string') && names[0] !== names[1])) {
      throw new ApiError(400, 'models: expected two different served model ids', 'models');
    }
    const pair = (names as string[] | undefined)?.map((n) => this.pick(n)) ?? [this.models[0]!, this.models[1]!];
    if (randomInt(2) === 1) pair.reverse(); // the order shown is random, so position does not give a model away
    const maxTokens = r.maxTokens ?? this.options.maxTokens;
    if (maxTokens > this.options.maxTokens) throw new ApiError(400, `max_tokens: ${maxTokens} is more than this server's limit of ${this.options.maxTokens}`, 'max_tokens', 'invalid_value');
    const prompt = chat ? (r as ChatRequest).messages.map((x) => `${x.role}: ${x.content}`).join('\n') : ((r as CompletionRequest).prompts[0] as string);
    const jobs = pair.map((m) => {
      const ids = chat ? this.renderChat(m, (r as ChatRequest).messages).ids : this.encode(m, prompt, 'prompt');
      if (ids.length === 0) throw new ApiError(400, `${chat ? 'messages' : 'prompt'}: encodes to no tokens`, chat ? 'messages' : 'prompt');
      return { m, ids, stop: chat ? [...new Set([...m.chat.stop, ...r.stop])] : r.stop, stopTokens: chat ? m.chat.stopTokens : [] };
    });
    for (const j of jobs) {
      if (j.m.rows + 1 > this.options.maxConcurrency + this.options.maxQueue) {
        this.rejected++;
        res.setHeader('Retry-After', '1');
        throw new ApiError(429, `model ${j.m.name} is at its limit of ${this.options.maxConcurrency} running and ${this.options.maxQueue} queued sequences; retry later`, null, 'rate_limit_exceeded');
      }
    }
    const seed = r.seed ?? randomInt(0, 2 ** 31);
    const texts = await Promise.all(jobs.map((j) => this.collect(j.m, j.ids, { maxTokens, temperature: r.temperature, topP: r.topP, topK: Math.max(0, r.topK), seed, stop: j.stop, stopTokens: j.stopTokens, frequencyPenalty: r.frequencyPenalty, presencePenalty: r.presencePenalty })));
    const id = `battle-${randomBytes(12).toString('hex')}`;
    this.battles.set(id, { models: [pair[0]!.name, pair[1]!.name], prompt, texts: [texts[0]!, texts[1]!] });
    if (this.battles.size > 1000) this.battles.delete(this.battles.keys().next().value!);
    this.json(res, 200, { id, object: 'arena.battle', created: Math.floor(Date.now() / 1000), responses: texts.map((text, index) => ({ index, text })) });
  }

  /** POST /v1/arena/votes {battle_id, winner: 1 | 2 | "tie"}: stores the vote, reveals the two models. */
  private vote(body: unknown, res: ServerResponse): void {
    const store = this.options.arena;
    if (!store) throw new ApiError(404, 'the arena is not enabled on this server', null, 'not_found');
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'the request body must be a JSON object');
    const b = body as Record<string, unknown>;
    const battle = typeof b.battle_id === 'string' ? this.battles.get(b.battle_id) : undefined;
    if (!battle) throw new ApiError(404, `battle_id: no open battle ${JSON.stringify(b.battle_id)} (each battle takes one vote)`, 'battle_id', 'not_found');
    const winner = b.winner === 1 ? 'a' : b.winner === 2 ? 'b' : b.winner === 'tie' ? 'tie' : null;
    if (!winner) throw new ApiError(400, `winner: expected 1 (the first response), 2 (the second) or "tie", got ${JSON.stringify(b.winner)}`, 'winner', 'invalid_value');
    this.battles.delete(b.battle_id as string);
    store.add({ a: battle.models[0], b: battle.models[1], winner, prompt: battle.prompt, response_a: battle.texts[0], response_b: battle.texts[1], created: new Date().toISOString() });
    this.json(res, 200, { object: 'arena.vote', battle_id: b.battle_id, winner, models: battle.models });
  }

  /** GET /v1/arena/ratings: Bradley–Terry and Elo with 95% bootstrap intervals over every stored vote. */
  private arenaRatings(res: ServerResponse): void {
    const store = this.options.arena;
    if (!store) throw new ApiError(404, 'the arena is not enabled on this server', null, 'not_found');
    const votes = store.read();
    const rounds = 200;
    const rows = arenaRatings(votes, { rounds, seed: 0 });
    this.json(res, 200, { object: 'arena.ratings', votes: votes.length, bootstrap_rounds: rounds, data: rows, table: votes.length ? ratingsTable(rows, votes.length, rounds) : '' });
  }

  private send(res: ServerResponse, obj: object): void {
    res.write(`data: ${JSON.stringify(obj)}\n\n`);
  }

  private json(res: ServerResponse, status: number, obj: object): void {
    const text = JSON.stringify(obj);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }
}
