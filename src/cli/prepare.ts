// `lmforge prepare`: a text file (or instruction files) → character-level train/val token files and meta.json
// (nanoGPT's shakespeare_char/prepare.py), optionally in an existing model's vocabulary. For subword data use
// `lmforge tokenize` with a trained tokenizer.
import type { Command } from 'commander';
import { prepareCharData } from '../data/prepare.js';
import { invalidUtf8Option, numberFlag } from './flags.js';
import type { InvalidUtf8Policy } from '../util/utf8.js';

export function register(program: Command): void {
  program
    .command('prepare')
    .description('turn a text file into character-level train.bin / val.bin token files and meta.json')
    .requiredOption('--input <file>', 'UTF-8 text file (e.g. ../shared/data/tinyshakespeare/input.txt)')
    .requiredOption('--out <dir>', 'output directory (the data_dir of `lmforge train`)')
    .option('--val-fraction <x>', 'fraction of the characters held out for validation, in (0, 1)', numberFlag('--val-fraction', 0, 1, true, true), 0.1)
    .addOption(invalidUtf8Option())
    .option('--instructions', '--input is a comma-separated list of instruction files (.json arrays or .jsonl of {instruction, input, response|output}, or Self-Instruct seed tasks), formatted as Alpaca prompts')
    .option('--vocab-from <dir>', "use the char vocabulary of this data or run directory's meta.json (to fine-tune that model); other characters are dropped")
    .action((opts: { input: string; out: string; valFraction: number; invalidUtf8: InvalidUtf8Policy; instructions?: boolean; vocabFrom?: string }) => {
      const r = prepareCharData({
        input: opts.input,
        outDir: opts.out,
        valFraction: opts.valFraction,
        invalidUtf8: opts.invalidUtf8,
        instructions: opts.instructions ?? false,
        ...(opts.vocabFrom ? { vocabFrom: opts.vocabFrom } : {}),
        onNotice: (line) => process.stderr.write(`prepare: ${line}\n`),
      });
      if (r.dropped > 0) console.log(`dropped ${r.dropped.toLocaleString('en-US')} characters outside the vocabulary of ${opts.vocabFrom}`);
      console.log(`vocab size ${r.vocabSize}; train ${r.trainTokens.toLocaleString('en-US')} tokens, val ${r.valTokens.toLocaleString('en-US')} tokens → ${opts.out}`);
    });
}
