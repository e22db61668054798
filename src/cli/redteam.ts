// `lmforge redteam --model DIR [--reward-model DIR]`: a red-team prompt suite (default: held-out HH-RLHF
// harmless-base human turns) put to any model; replies flagged by the harmful-content filter and scored by a reward
// model; prints the harmful rate and mean reward with 95% intervals, writes per-prompt JSONL on request.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg } from 'node:os';
import type { Command } from 'commander';
import { loadModelAndTokenizer, loadScalarModel } from '../align/io.js';
import { readRedTeamPrompts, replierFor, runRedTeam } from '../align/redteam.js';
import { setThreads } from '../core/index.js';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { HarmfulContentFilter } from '../data/harmful.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { intFlag, numberFlag } from './flags.js';

interface RedTeamOptions {
  model: string;
  tokenizer?: string;
  rewardModel?: string;
  prompts?: string;
  harmfulTerms: string;
  limit: number;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  seed: number;
  threads?: number;
  output?: string;
  dataDir: string;
}

/** configs/align/harmful-terms.txt of the installed package (from dist/src/cli or src/cli). */
function defaultTerms(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ['../../../configs/align/harmful-terms.txt', '../../configs/align/harmful-terms.txt']) if (existsSync(resolve(here, up))) return resolve(here, up);
  return 'configs/align/harmful-terms.txt';
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

export function register(program: Command): void {
  program
    .command('redteam')
    .description('put a red-team prompt suite to a model: harmful-content filter rate and reward-model score of its replies, with 95% intervals')
    .requiredOption('--model <dir>', 'model directory (chat models reply under the chat template; plain models continue "Human: …\\n\\nAssistant:")')
    .option('--tokenizer <path>', 'tokenizer for a model directory without meta.json')
    .option('--reward-model <dir>', 'reward model directory (`lmforge align reward`) that scores each reply')
    .option('--prompts <file>', 'HH-RLHF preference JSONL(.gz) (first human turn of each held-out record), JSONL of {"prompt"}, or one prompt per line (default: DATA_DIR/hh-rlhf/harmless-base_test_0-1811.jsonl.gz)')
    .option('--data-dir <dir>', 'root of the shared datasets', process.env.LMFORGE_DATA ?? '../shared/data')
    .option('--harmful-terms <file>', 'word list of the harmful-content filter (one term per line)', defaultTerms())
    .option('--limit <n>', 'prompts used (0 = all)', intFlag('--limit', 0), 100)
    .option('--max-new-tokens <n>', 'reply length cap', intFlag('--max-new-tokens', 1), 48)
    .option('--temperature <t>', 'sampling temperature (0 = greedy)', numberFlag('--temperature', 0, Infinity), 0.7)
    .option('--top-k <k>', 'sample among the k most likely tokens (0 = all)', intFlag('--top-k', 0), 50)
    .option('--seed <n>', 'sampling seed', intFlag('--seed', 0), 1)
    .option('--threads <n>', 'native kernel threads (0 = all cores)', intFlag('--threads', 0, 1024))
    .option('--output <file>', 'write every prompt, reply, flag and score as JSONL here')
    .action((o: RedTeamOptions) => {
      const promptsFile = o.prompts ?? resolve(o.dataDir, 'hh-rlhf/harmless-base_test_0-1811.jsonl.gz');
      if (!existsSync(o.harmfulTerms)) throw new UserError(`--harmful-terms ${o.harmfulTerms}: file not found`);
      if (o.output && !existsSync(dirname(resolve(o.output)))) throw new UserError(`--output ${o.output}: folder ${dirname(resolve(o.output))} does not exist`);
      const prompts = readRedTeamPrompts(promptsFile, o.limit);
      const filter = new HarmfulContentFilter({ terms: [], termsFile: o.harmfulTerms, minMatches: 1, maxMatchRatio: null });
      useNativeBackendOrWarn();
      if (o.threads !== undefined) setThreads(o.threads);
      const started = performance.now();
      const policy = loadModelAndTokenizer(o.model, o.tokenizer ?? null);
      const rm = o.rewardModel ? loadScalarModel(o.rewardModel) : undefined;
      try {
        const replier = replierFor(policy.model, policy.tok, o.model);
        process.stderr.write(`redteam: ${prompts.length} prompts from ${promptsFile}; ${o.model} replies as a ${replier.kind === 'chat' ? 'chat model' : 'plain LM (Human:/Assistant: transcript)'}\n`);
        const sample = { maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, seed: o.seed };
        const { records, summary } = runRedTeam(replier, prompts, filter, sample, rm ? { rm: rm.scorer, tok: rm.tok, ids: rm.ids } : undefined);
        const seconds = (performance.now() - started) / 1000;
        console.log(`| model | prompts | harmful rate (filter) | 95% CI | mean reward | 95% CI |\n|---|---:|---:|---:|---:|---:|`);
        const r = summary.reward;
        console.log(`| ${o.model} | ${summary.n} | ${pct(summary.harmful_rate)} (${summary.flagged}) | [${pct(summary.harmful_rate_ci95[0])}, ${pct(summary.harmful_rate_ci95[1])}] | ${r ? r.mean.toFixed(3) : 'n/a (no --reward-model)'} | ${r ? `[${r.ci95[0].toFixed(3)}, ${r.ci95[1].toFixed(3)}]` : ''} |`);
        if (o.output) {
          writeFileAtomic(o.output, records.map((x) => JSON.stringify(x)).join('\n') + '\n');
          process.stderr.write(`redteam: ${records.length} replies written to ${o.output}\n`);
        }
        console.log('RESULT ' + JSON.stringify({
          model: resolve(o.model), reward_model: o.rewardModel ? resolve(o.rewardModel) : null, prompts: resolve(promptsFile), harmful_terms: resolve(o.harmfulTerms), ...summary,
          sampling: sample, seconds: Number(seconds.toFixed(1)), cpu: cpus()[0]?.model ?? 'unknown', load_average: Number(loadavg()[0]!.toFixed(2)),
        }));
      } finally {
        policy.model.dispose();
        rm?.scorer.dispose();
      }
    });
}
