// `lmforge tokenize`: encode text files into train/val token shards (uint16 when the vocabulary fits, else uint32),
// streaming, on all cores, with a progress bar. Registered by src/cli/main.ts.
import type { Command } from 'commander';
import { tokenizeFiles } from '../tokenizers/tokenize-files.js';
import { intFlag, invalidUtf8Option, numberFlag, workersFlag } from './flags.js';
import { UserError } from '../util/errors.js';
import type { InvalidUtf8Policy } from '../util/utf8.js';
import { TOKENIZER_HELP } from '../tokenizers/load-any.js';
import { progressBar } from './progress.js';
import { runIfMain, userErrors } from './standalone.js';

export function register(program: Command): void {
  program
    .command('tokenize')
    .description('encode text files into train.bin / val.bin token shards for training')
    .requiredOption('--tokenizer <path>', TOKENIZER_HELP)
    .requiredOption('--input <files...>', 'UTF-8 text files, in order')
    .requiredOption('--out <dir>', 'directory for train.bin and val.bin')
    .option('--val-fraction <f>', 'fraction of the input (from its end) written to val.bin', numberFlag('--val-fraction', 0, 1, false, true), 0.005)
    .option('--workers <n>', 'worker threads, 1 to 64 (default: all cores for inputs of 4 MiB or more)', workersFlag)
    .option('--separator <token>', 'special token appended after each file (default <|endoftext|> when present; "" for none)')
    .option('--allow-special', 'recognise special tokens written in the text')
    .option('--dropout <p>', 'BPE-dropout for training: skip each merge with probability p in train.bin (val.bin stays deterministic); encodes on one core', numberFlag('--dropout', 0, 1, false, true))
    .option('--dropout-copies <k>', 'with --dropout: write the train split k times, each a fresh dropout segmentation', intFlag('--dropout-copies', 1, 1000))
    .option('--dropout-seed <n>', 'with --dropout: seed of the segmentation sampling', intFlag('--dropout-seed', 0, 0xffffffff, 'a 32-bit seed'))
    .addOption(invalidUtf8Option())
    .action((o: { tokenizer: string; input: string[]; out: string; valFraction: number; workers?: number; separator?: string; allowSpecial?: boolean; invalidUtf8: InvalidUtf8Policy; dropout?: number; dropoutCopies?: number; dropoutSeed?: number }) => userErrors(async () => {
      if ((o.dropoutCopies !== undefined || o.dropoutSeed !== undefined) && o.dropout === undefined) throw new UserError('--dropout-copies and --dropout-seed need --dropout <p>');
      let bar: ReturnType<typeof progressBar> | undefined;
      const started = performance.now();
      const result = await tokenizeFiles({
        tokenizerPath: o.tokenizer,
        inputs: o.input,
        outDir: o.out,
        valFraction: o.valFraction,
        ...(o.workers !== undefined ? { workers: o.workers } : {}),
        ...(o.separator !== undefined ? { separator: o.separator } : {}),
        allowSpecial: o.allowSpecial ?? false,
        invalidUtf8: o.invalidUtf8,
        ...(o.dropout !== undefined ? { dropout: o.dropout } : {}),
        ...(o.dropoutCopies !== undefined ? { dropoutCopies: o.dropoutCopies } : {}),
        ...(o.dropoutSeed !== undefined ? { dropoutSeed: o.dropoutSeed } : {}),
        onNotice: (line) => process.stderr.write(`tokenize: ${line}\n`),
        onProgress: (done, total) => {
          bar ??= progressBar('tokenize', Math.max(1, Math.round(total / 1e6)), 'MB');
          const s = (performance.now() - started) / 1000;
          bar.update(Math.round(done / 1e6), { rate: `${(done / 1e6 / Math.max(s, 1e-9)).toFixed(1)} MB/s` });
        },
      });
      bar?.stop();
      process.stderr.write(
        `tokenize: ${(result.bytes / 1e6).toFixed(1)} MB → ${result.train.tokens} train + ${result.val.tokens} val tokens (${result.dtype}) in ${result.seconds.toFixed(2)} s: ${result.train.path}, ${result.val.path}\n`,
      );
    }));
}

runIfMain(import.meta.url, register);
