// `lmforge serve --run DIR`: the OpenAI-compatible HTTP server (serve/server.ts) over a trained run, generation
// on a worker thread with continuous batching. Prints the URL, then one line per shutdown step; SIGINT/SIGTERM
// close it gracefully (in-flight requests get --grace-ms to finish, then are cancelled).
import { basename, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadChatFormat, type ChatFormat } from '../serve/chat-template.js';
import { WorkerGenerator } from '../serve/engine.js';
import { FEEDBACK_FILE, JsonlFeedbackStore, type FeedbackRecord, type FeedbackStore } from '../serve/feedback.js';
import { Registry, registryPath } from '../registry/registry.js';
import { OpenAIServer, type ServedModel } from '../serve/server.js';
import { ARENA_FILE, JsonlArenaStore } from '../serve/arena.js';
import { loadTokenizer } from '../tokenizers/format.js';
import type { TextCodec } from '../tokenizers/codec.js';
import { RunDir } from '../train/run-dir.js';
import { UserError } from '../util/errors.js';
import { intFlag } from './flags.js';
import type { ServeWorkerData } from './serve-worker.js';

export interface ServeOptions {
  /** One run directory, or several (each its own model and worker; the first answers requests that name none). */
  run: string | string[];
  port: number;
  host: string;
  apiKey?: string;
  /** Model ids by position of the runs (default: each run directory's name). */
  modelName?: string | string[];
  maxConcurrency: number;
  maxQueue: number;
  maxTokens: number;
  maxBodyBytes: number;
  timeoutMs: number;
  graceMs: number;
  stateDir: string;
  corsOrigin: string;
  /** Kernel threads of the generation worker (0 = all cores). */
  threads?: number;
  /** A registry database to record feedback in (else <stateDir>/feedback.jsonl). */
  registry?: string;
}

/** Feedback into the registry (its database and the run's feedback.jsonl), about the run that served the answer. */
class RegistryFeedbackStore implements FeedbackStore {
  constructor(private readonly registry: Registry, private readonly runs: ReadonlyMap<string, string>) {}

  get location(): string {
    return this.registry.path;
  }

  add(r: FeedbackRecord): void {
    this.registry.addFeedback({
      target: this.runs.get(r.model) ?? r.model, rating: r.rating, comment: r.comment || null, prompt: r.prompt ?? null, response: r.completion ?? null,
      meta: { response_id: r.response_id, feedback_id: r.id, served_as: r.model, created: r.created },
    });
  }

  close(): void {
    this.registry.close();
  }
}

/** The registry's feedback store when the database opens, else the JSONL file in the state directory (with a warning). */
function feedbackStore(o: ServeOptions, runs: ReadonlyMap<string, string>): FeedbackStore & { close?(): void } {
  const jsonl = (): FeedbackStore => new JsonlFeedbackStore(join(o.stateDir, FEEDBACK_FILE));
  if (o.registry === undefined) return jsonl();
  try {
    return new RegistryFeedbackStore(Registry.open(o.registry), runs);
  } catch (e) {
    process.stderr.write(`warning: registry ${o.registry} unusable (${(e as Error).message}); feedback goes to ${join(o.stateDir, FEEDBACK_FILE)}\n`);
    return jsonl();
  }
}

/** The state directory's default: $LMFORGE_STATE_DIR, else ./.lmforge (feedback.jsonl, arena votes). */
export function defaultStateDir(): string {
  return process.env.LMFORGE_STATE_DIR ?? '.lmforge';
}

/** A run's chat format (serve/chat-template.ts), given its tokenizer file when it has one (char runs do not). */
export function runChatFormat(run: RunDir, codec: TextCodec): ChatFormat {
  const t = run.meta().tokenizer as { type?: unknown; file?: unknown };
  return loadChatFormat(run.path, t.type === 'file' && typeof t.file === 'string' ? loadTokenizer(join(run.path, t.file)) : null, (text) => codec.encode(text));
}

/** Loads one run for serving: its tokenizer and chat format here, its model on a new worker thread. */
async function loadServed(path: string, name: string, o: ServeOptions): Promise<ServedModel & { generator: WorkerGenerator }> {
  const run = RunDir.open(path);
  const codec = run.codec(); // this thread tokenizes prompts; the worker decodes
  const chat = runChatFormat(run, codec);
  const data: ServeWorkerData = { run: path, slots: o.maxConcurrency, name, threads: o.threads ?? 0 };
  let generator: WorkerGenerator;
  try {
    generator = await WorkerGenerator.start(new URL('./serve-worker.js', import.meta.url), data);
  } catch (e) {
    throw new UserError(`${path}: the generation worker could not load the model (${(e as Error).message})`);
  }
  return { name, generator, chat, encode: (t) => codec.encode(t), decode: (ids) => codec.decode(ids) };
}

/** Loads the runs and starts a server on them (the CLI action, the tests and the bench share this). */
export async function startServer(o: ServeOptions): Promise<{ server: OpenAIServer; url: string; generator: WorkerGenerator; models: ServedModel[] }> {
  const runs = Array.isArray(o.run) ? o.run : [o.run];
  const given = o.modelName === undefined ? [] : Array.isArray(o.modelName) ? o.modelName : [o.modelName];
  if (given.length > runs.length) throw new UserError(`--model-name: ${given.length} names for ${runs.length} run(s)`);
  const names = runs.map((r, i) => given[i] ?? basename(resolve(r)));
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new UserError(`--run: two runs would both be served as ${JSON.stringify(dup)}; name them with --model-name`);
  const models: (ServedModel & { generator: WorkerGenerator })[] = [];
  try {
    for (let i = 0; i < runs.length; i++) models.push(await loadServed(runs[i]!, names[i]!, o));
  } catch (e) {
    await Promise.all(models.map((m) => m.generator.close()));
    throw e;
  }
  const feedback = feedbackStore(o, new Map(runs.map((r, i) => [names[i]!, resolve(r)])));
  const server = new OpenAIServer(models, {
    ...(o.apiKey ? { apiKey: o.apiKey } : {}), maxConcurrency: o.maxConcurrency, maxQueue: o.maxQueue,
    maxTokens: o.maxTokens, maxBodyBytes: o.maxBodyBytes, timeoutMs: o.timeoutMs, corsOrigin: o.corsOrigin,
    feedback, onClose: () => feedback.close?.(), arena: new JsonlArenaStore(join(o.stateDir, ARENA_FILE)),
  });
  let url: string;
  try {
    ({ url } = await server.listen(o.port, o.host));
  } catch (e) {
    await Promise.all(models.map((m) => m.generator.close()));
    throw new UserError(`--host ${o.host} --port ${o.port}: cannot listen (${(e as Error).message})`);
  }
  return { server, url, generator: models[0]!.generator, models };
}

export function register(program: Command): void {
  program
    .command('serve')
    .description('OpenAI-compatible HTTP server (/v1/models, /v1/completions, /v1/chat/completions with SSE streaming, /v1/feedback) with continuous batching on a worker thread')
    .requiredOption('--run <dirs...>', 'run directory of `lmforge train` or `lmforge align` (chat uses a chat_template.json beside the weights, else an align model\'s own chat tokens stopping at <|end|>, else a plain User:/Assistant: template); several = several models, each on its own worker, and the /v1/arena routes')
    .option('--port <n>', 'TCP port (0 = any free port)', intFlag('--port', 0, 65535), 8000)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--api-key <key>', 'require "Authorization: Bearer <key>" on /v1 (default: $LMFORGE_API_KEY; none = open)')
    .option('--model-name <ids...>', 'model ids listed by /v1/models, by position of --run (default: the run directory names)')
    .option('--max-concurrency <n>', 'sequences decoded together per model (the continuous batch)', intFlag('--max-concurrency', 1, 256), 16)
    .option('--max-queue <n>', 'sequences waiting beyond those; more get 429', intFlag('--max-queue', 0), 64)
    .option('--max-tokens <n>', 'largest max_tokens a request may ask for (and the default)', intFlag('--max-tokens', 1), 512)
    .option('--max-body-bytes <n>', 'largest request body (413 beyond)', intFlag('--max-body-bytes', 1), 1 << 20)
    .option('--timeout-ms <n>', 'cancel a request still generating after this long', intFlag('--timeout-ms', 1), 120_000)
    .option('--grace-ms <n>', 'on SIGINT/SIGTERM, how long in-flight requests may finish before they are cancelled', intFlag('--grace-ms', 0), 10_000)
    .option('--registry <file>', 'record /v1/feedback in this registry database, with the run that answered (default: $LMFORGE_REGISTRY or runs/registry.sqlite)')
    .option('--no-registry', 'keep feedback in <state-dir>/feedback.jsonl instead')
    .option('--state-dir <dir>', 'where arena.jsonl (and feedback.jsonl with --no-registry) are appended (default: $LMFORGE_STATE_DIR or ./.lmforge)')
    .option('--threads <n>', 'kernel threads of the generation worker (0 = all cores; 1 leaves a core to HTTP for small models on busy machines)', intFlag('--threads', 0, 1024), 0)
    .option('--cors-origin <origin>', 'Access-Control-Allow-Origin for browser clients', '*')
    .action(async (o: Omit<ServeOptions, 'stateDir' | 'registry'> & { stateDir?: string; registry?: string | false }) => {
      const { registry, ...rest } = o;
      const options: ServeOptions = {
        ...rest, apiKey: o.apiKey ?? process.env.LMFORGE_API_KEY, stateDir: o.stateDir ?? defaultStateDir(),
        ...(registry === false ? {} : { registry: registryPath(registry) }),
      };
      const { server, url, models } = await startServer(options);
      for (const m of models) {
        const i = m.generator.info;
        process.stderr.write(`serving ${i.model} (${(i.parameters / 1e6).toFixed(2)}M parameters, context ${i.blockSize}; chat format: ${m.chat.source})\n`);
      }
      process.stderr.write(`at ${url}/v1 — ${options.maxConcurrency} concurrent and ${options.maxQueue} queued per model${options.apiKey ? ', API key required' : ''}${models.length > 1 ? '; arena at /v1/arena/battles' : ''}; feedback to ${server.feedbackLocation}\n`);
      await new Promise<void>((done) => {
        let stopping = false;
        const stop = (signal: string): void => {
          if (stopping) return;
          stopping = true;
          process.stderr.write(`${signal}: finishing in-flight requests (up to ${options.graceMs} ms), then closing\n`);
          void server.close(options.graceMs).then(() => {
            process.stderr.write('closed\n');
            done();
          });
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
    });
}
