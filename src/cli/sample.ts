// `lmforge sample --run DIR`: generate text from a trained model with temperature, top-k, top-p and a seed,
// decoding incrementally through the KV cache.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { generate } from '../models/generate.js';
import { loadGPT } from '../models/gpt-io.js';
import { codecFromMeta } from '../tokenizers/codec.js';
import { UserError } from '../util/errors.js';

interface SampleOptions {
  run: string;
  prompt: string;
  maxNewTokens: string;
  temperature: string;
  topK: string;
  topP: string;
  seed: string;
  numSamples: string;
}

function number(flag: string, v: string, check: (x: number) => boolean, want: string): number {
  const x = Number(v);
  if (!check(x)) throw new UserError(`--${flag}: expected ${want}, got ${JSON.stringify(v)}`);
  return x;
}

export function register(program: Command): void {
  program
    .command('sample')
    .description('generate text from a trained model (KV-cache decoding)')
    .requiredOption('--run <dir>', 'run directory written by `lmforge train` (model.safetensors, config.json, meta.json)')
    .option('--prompt <text>', 'text to continue', '\n')
    .option('--max-new-tokens <n>', 'tokens to generate', '500')
    .option('--temperature <t>', '0 = greedy; < 1 sharper, > 1 more random', '0.8')
    .option('--top-k <k>', 'sample among the k most likely tokens (0 = all)', '200')
    .option('--top-p <p>', 'nucleus sampling threshold (1 = off)', '1')
    .option('--seed <n>', 'random seed', '1337')
    .option('--num-samples <n>', 'independent samples to draw', '1')
    .action((o: SampleOptions) => {
      useNativeBackendOrWarn();
      const metaPath = join(o.run, 'meta.json');
      if (!existsSync(metaPath)) throw new UserError(`${metaPath}: not found (is ${o.run} a run directory of \`lmforge train\`?)`);
      const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as { tokenizer?: unknown };
      const tok = codecFromMeta(meta.tokenizer, o.run, metaPath);
      const model = loadGPT(o.run);
      let prompt: number[];
      try {
        prompt = tok.encode(o.prompt);
      } catch (e) {
        throw new UserError(`--prompt: ${(e as Error).message}`);
      }
      const opts = {
        maxNewTokens: number('max-new-tokens', o.maxNewTokens, (x) => Number.isInteger(x) && x >= 0, 'an integer ≥ 0'),
        temperature: number('temperature', o.temperature, (x) => x >= 0, 'a number ≥ 0'),
        topK: number('top-k', o.topK, (x) => Number.isInteger(x) && x >= 0, 'an integer ≥ 0'),
        topP: number('top-p', o.topP, (x) => x > 0 && x <= 1, 'a number in (0, 1]'),
      };
      const seed = number('seed', o.seed, Number.isInteger, 'an integer');
      const n = number('num-samples', o.numSamples, (x) => Number.isInteger(x) && x >= 1, 'an integer ≥ 1');
      for (let i = 0; i < n; i++) {
        process.stdout.write(o.prompt);
        // Decode the whole continuation each time and print what is new: a subword token can end mid-character.
        const ids: number[] = [];
        let shown = '';
        const show = (final: boolean): void => {
          const text = tok.decode(ids);
          if (!final && text.endsWith('\uFFFD')) return;
          process.stdout.write(text.slice(shown.length));
          shown = text;
        };
        generate(model, prompt, { ...opts, seed: seed + i, onToken: (t) => { ids.push(t); show(false); } });
        show(true);
        process.stdout.write(n > 1 ? '\n---------------\n' : '\n');
      }
      model.dispose();
    });
}
