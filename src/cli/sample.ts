// `lmforge sample --run DIR`: generate text from a trained model with temperature, top-k, top-p, repetition
// penalty, stop strings and a seed, decoding through the batched KV-cache generator (several samples decode
// together, each with its own seed).
import type { Command } from 'commander';
import { loadChatModel } from '../align/io.js';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { renderChat } from '../tokenizers/chat-template.js';
import { generate } from '../serve/generate.js';
import { samplingProcessors } from '../serve/logits.js';
import { RunDir } from '../train/run-dir.js';
import { UserError } from '../util/errors.js';
import { intFlag, numberFlag } from './flags.js';

interface SampleOptions {
  run: string;
  prompt: string;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  stop?: string[];
  seed: number;
  numSamples: number;
  chat?: boolean;
}

export function register(program: Command): void {
  program
    .command('sample')
    .description('generate text from a trained model (batched KV-cache decoding)')
    .requiredOption('--run <dir>', 'run directory written by `lmforge train` (model.safetensors, config.json, meta.json); a LoRA run (adapter_config.json) loads its base with the adapter merged in')
    .option('--prompt <text>', 'text to continue', '\n')
    .option('--max-new-tokens <n>', 'tokens to generate', intFlag('--max-new-tokens', 0), 500)
    .option('--temperature <t>', '0 = greedy; < 1 sharper, > 1 more random', numberFlag('--temperature', 0, Infinity), 0.8)
    .option('--top-k <k>', 'sample among the k most likely tokens (0 = all)', intFlag('--top-k', 0), 200)
    .option('--top-p <p>', 'nucleus sampling threshold (1 = off)', numberFlag('--top-p', 0, 1, true), 1)
    .option('--repetition-penalty <θ>', 'CTRL repetition penalty (1 = off)', numberFlag('--repetition-penalty', 0, Infinity, true), 1)
    .option('--stop <strings...>', 'end a sample at the first of these strings (not printed)')
    .option('--seed <n>', 'random seed (sample i uses seed + i)', intFlag('--seed', -(2 ** 31), 2 ** 31 - 1), 1337)
    .option('--chat', 'a chat model of `lmforge align`: --prompt is a user message in the chat template; a reply ends at <|end|>')
    .option('--num-samples <n>', 'independent samples to draw (decoded together as one batch)', intFlag('--num-samples', 1, 256, 'they decode as one batch'), 1)
    .action((o: SampleOptions) => {
      const opts = { maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, topP: o.topP, repetitionPenalty: o.repetitionPenalty };
      const seed = o.seed;
      const n = o.numSamples;
      useNativeBackendOrWarn();
      const run = RunDir.open(o.run);
      const chat = o.chat ? loadChatModel(o.run) : null;
      const tok = chat ? { encode: (t: string) => chat.tok.encode(t), decode: (ids: ArrayLike<number>) => chat.tok.decode(ids) } : run.codec();
      const model = chat ? chat.model : run.loadModel();
      let prompt: number[];
      try {
        prompt = chat ? renderChat(chat.tok, chat.ids, [{ role: 'user', content: o.prompt }], { generationPrompt: true }).ids : tok.encode(o.prompt);
      } catch (e) {
        throw new UserError(`--prompt: ${(e as Error).message}`);
      }
      if (prompt.length === 0) throw new UserError('--prompt: encodes to no tokens; give at least one character');
      const stop = o.stop ?? [];
      const cut = (text: string): string => {
        const at = Math.min(...stop.map((s) => text.indexOf(s)).filter((k) => k >= 0), text.length);
        return text.slice(0, at);
      };
      // One sample streams as it decodes (a subword token can end mid-character: print only whole text); several
      // samples decode together and print when done.
      const ids: number[] = [];
      let shown = '';
      // Text that may be the start of a stop string is held back until the next token says whether it is.
      const hold = stop.length ? Math.max(...stop.map((s) => s.length)) - 1 : 0;
      const show = (final: boolean): void => {
        const text = cut(tok.decode(ids));
        if (!final && text.endsWith('\uFFFD')) return;
        const upto = final ? text.length : Math.max(shown.length, text.length - hold);
        process.stdout.write(text.slice(shown.length, upto));
        shown = text.slice(0, upto);
      };
      const shownPrompt = chat ? '' : o.prompt;
      if (n === 1) process.stdout.write(shownPrompt);
      const results = generate(model, Array.from({ length: n }, () => prompt), {
        maxNewTokens: opts.maxNewTokens, greedy: opts.temperature === 0, processors: samplingProcessors(opts), seed, ...(chat ? { stopTokens: [chat.ids.end] } : {}),
        ...(stop.length ? { stopStrings: { strings: stop, decode: (t: readonly number[]) => tok.decode(t) } } : {}),
        onToken: n === 1 ? (_row, t) => { if (t !== chat?.ids.end) ids.push(t); show(false); } : undefined,
      });
      if (n === 1) {
        show(true);
        process.stdout.write('\n');
      } else {
        for (const r of results) process.stdout.write(shownPrompt + cut(tok.decode(chat ? r.tokens.filter((t) => t !== chat.ids.end) : r.tokens)) + '\n---------------\n');
      }
      model.dispose();
    });
}
