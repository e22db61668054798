// `lmforge arena`: pairwise comparison of two model versions by people. `arena battle` has both runs answer the
// same prompts (sides shuffled, names hidden), reads a vote per prompt from stdin (1, 2, t for a tie, s to skip,
// q to stop; a pipe works as well as a terminal) and appends it to <state-dir>/arena.jsonl; `arena ratings` turns
// the votes into Bradley–Terry and Elo ratings with bootstrap intervals (serve/arena.ts) as a Markdown table.
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { Rng } from '../core/index.js';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { ARENA_FILE, arenaRatings, JsonlArenaStore, ratingsTable, readVotes, type ArenaRecord, type Vote } from '../serve/arena.js';
import { generate } from '../serve/generate.js';
import { samplingProcessors } from '../serve/logits.js';
import { TextStream } from '../serve/text-stream.js';
import { RunDir } from '../train/run-dir.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { intFlag, numberFlag } from './flags.js';
import { defaultStateDir, runChatFormat } from './serve.js';

interface BattleOptions {
  a: string;
  b: string;
  prompts: string;
  votes?: string;
  stateDir?: string;
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  chat?: boolean;
}

/** One run's answer to each prompt (batched); when chatting, in its chat format, cut at its stop strings and tokens. */
function answers(runPath: string, prompts: readonly string[], o: BattleOptions, seed: number): string[] {
  const run = RunDir.open(runPath);
  const codec = run.codec();
  const model = run.loadModel();
  try {
    const chat = runChatFormat(run, codec);
    const ids = prompts.map((p, i) => {
      try {
        return o.chat ? chat.render([{ role: 'user', content: p }]).ids : codec.encode(p);
      } catch (e) {
        throw new UserError(`${o.prompts}: prompt ${i + 1} cannot be encoded by ${runPath}'s tokenizer (${(e as Error).message})`);
      }
    });
    const stop = o.chat ? chat.stop : [];
    const stopTokens = o.chat ? chat.stopTokens : [];
    const gens = generate(model, ids, {
      maxNewTokens: o.maxTokens, greedy: o.temperature === 0, processors: samplingProcessors({ temperature: o.temperature, topP: o.topP }), seed, stopTokens,
      ...(stop.length ? { stopStrings: { strings: stop, decode: (t: readonly number[]) => codec.decode(t) } } : {}),
    });
    return gens.map((g) => {
      const s = new TextStream((t) => codec.decode(t), stop, stopTokens);
      for (const t of g.tokens) s.push(t);
      return s.text;
    });
  } finally {
    model.dispose();
  }
}

function readPrompts(path: string): string[] {
  if (!existsSync(path)) throw new UserError(`--prompts ${path}: no such file (one prompt per line, or JSONL with a "prompt" field)`);
  const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '');
  const prompts = lines.map((l, i) => {
    if (!l.trimStart().startsWith('{')) return l.replace(/\\n/g, '\n');
    const p = (JSON.parse(l) as { prompt?: unknown }).prompt;
    if (typeof p !== 'string') throw new UserError(`${path}:${i + 1}: expected a "prompt" string`);
    return p;
  });
  if (prompts.length === 0) throw new UserError(`--prompts ${path}: no prompts in it`);
  return prompts;
}

async function battle(o: BattleOptions): Promise<void> {
  useNativeBackendOrWarn();
  const prompts = readPrompts(o.prompts);
  const votesPath = o.votes ?? join(o.stateDir ?? defaultStateDir(), ARENA_FILE);
  const nameA = basename(resolve(o.a));
  const nameB = basename(resolve(o.b));
  if (nameA === nameB) throw new UserError(`--a ${o.a} and --b ${o.b}: the runs need different directory names (votes record them by name)`);
  process.stderr.write(`generating ${prompts.length} answers from each of ${nameA} and ${nameB}…\n`);
  const ra = answers(o.a, prompts, o, o.seed);
  const rb = answers(o.b, prompts, o, o.seed);
  const store = new JsonlArenaStore(votesPath);
  const rng = new Rng(o.seed);
  const lines = createInterface({ input: process.stdin, terminal: false })[Symbol.asyncIterator]();
  let recorded = 0;
  for (let i = 0; i < prompts.length; i++) {
    const swap = rng.uniform() < 0.5; // sides shuffled so position does not give the model away
    const [first, second] = swap ? [rb[i]!, ra[i]!] : [ra[i]!, rb[i]!];
    process.stdout.write(`\n=== prompt ${i + 1}/${prompts.length} ===\n${prompts[i]}\n--- response 1 ---\n${first}\n--- response 2 ---\n${second}\n`);
    process.stdout.write('which is better? [1 / 2 / t = tie / s = skip / q = quit] ');
    let choice: string;
    for (;;) {
      const next = await lines.next();
      if (next.done) { choice = 'q'; break; }
      choice = String(next.value).trim().toLowerCase();
      if (['1', '2', 't', 's', 'q'].includes(choice)) break;
      process.stdout.write('please answer 1, 2, t, s or q: ');
    }
    if (choice === 'q') break;
    if (choice === 's') continue;
    const winner: Vote['winner'] = choice === 't' ? 'tie' : (choice === '1') !== swap ? 'a' : 'b';
    const record: ArenaRecord = { a: nameA, b: nameB, winner, prompt: prompts[i]!, response_a: ra[i]!, response_b: rb[i]!, created: new Date().toISOString() };
    store.add(record);
    recorded++;
  }
  process.stdout.write(`\n${recorded} vote(s) appended to ${votesPath}; rate with \`lmforge arena ratings --votes ${votesPath}\`\n`);
  process.stdin.pause();
}

export function register(program: Command): void {
  const cmd = program.command('arena').description('pairwise human comparison of two runs: battles → votes → Bradley–Terry / Elo ratings with intervals');
  cmd
    .command('battle')
    .description('both runs answer each prompt; vote 1/2/tie per prompt on stdin; votes are appended as JSONL')
    .requiredOption('--a <dir>', 'first run directory')
    .requiredOption('--b <dir>', 'second run directory')
    .requiredOption('--prompts <file>', 'one prompt per line (\\n for a newline), or JSONL with a "prompt" field')
    .option('--votes <file>', 'votes file to append to (default: <state-dir>/arena.jsonl)')
    .option('--state-dir <dir>', 'default: $LMFORGE_STATE_DIR or ./.lmforge')
    .option('--max-tokens <n>', 'tokens per answer', intFlag('--max-tokens', 1), 64)
    .option('--temperature <t>', '0 = greedy', numberFlag('--temperature', 0, 2), 0.8)
    .option('--top-p <p>', 'nucleus sampling threshold', numberFlag('--top-p', 0, 1, true), 0.95)
    .option('--seed <n>', 'seed of the answers and of the side shuffle', intFlag('--seed', 0), 0)
    .option('--chat', "wrap each prompt as a user message in the run's chat template")
    .action((o: BattleOptions) => battle(o));
  cmd
    .command('ratings')
    .description('Bradley–Terry (MM) and Elo ratings with 95% bootstrap intervals from votes files, as a Markdown table')
    .requiredOption('--votes <files...>', 'votes JSONL files (arena battle writes them)')
    .option('--rounds <n>', 'bootstrap resamples', intFlag('--rounds', 1, 100_000), 1000)
    .option('--seed <n>', 'bootstrap seed', intFlag('--seed', 0), 0)
    .option('--out <file>', 'also write the table here (Markdown)')
    .action((o: { votes: string[]; rounds: number; seed: number; out?: string }) => {
      const votes = readVotes(o.votes);
      if (votes.length === 0) throw new UserError(`${o.votes.join(', ')}: no votes yet`);
      const table = ratingsTable(arenaRatings(votes, { rounds: o.rounds, seed: o.seed }), votes.length, o.rounds);
      process.stdout.write(table);
      if (o.out) writeFileAtomic(o.out, table);
    });
}
