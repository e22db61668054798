// `lmforge prepare`: a text file → character-level train/val token files and meta.json (nanoGPT's
// shakespeare_char/prepare.py). For subword data use `lmforge tokenize` with a trained tokenizer.
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
    .action((opts: { input: string; out: string; valFraction: number; invalidUtf8: InvalidUtf8Policy }) => {
      const r = prepareCharData({
        input: opts.input,
        outDir: opts.out,
        valFraction: opts.valFraction,
        invalidUtf8: opts.invalidUtf8,
        onNotice: (line) => process.stderr.write(`prepare: ${line}\n`),
      });
      console.log(`vocab size ${r.vocabSize}; train ${r.trainTokens.toLocaleString('en-US')} tokens, val ${r.valTokens.toLocaleString('en-US')} tokens → ${opts.out}`);
    });
}
