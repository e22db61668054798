// `lmforge cda --input FILE --output FILE`: counterfactual data augmentation of a text file (data/cda.ts): every
// gendered word swapped for its counterpart, either added as a copy (duplicate) or in place (replace, with a
// probability), per line, per paragraph or for the whole file as one document; seeded. Prints what it changed.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CounterfactualAugmenter, type CdaMode } from '../data/cda.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { intFlag, numberFlag } from './flags.js';
import { runIfMain } from './standalone.js';

interface CdaOptions {
  input: string;
  output: string;
  mode: string;
  probability: number;
  seed: number;
  unit: string;
  pairs?: string;
}

const UNITS = { line: '\n', paragraph: '\n\n', file: null } as const;

export function register(program: Command): void {
  program
    .command('cda')
    .description('counterfactual data augmentation: swap gendered words (he/she, his/her, man/woman, king/queen, …) in a text file')
    .requiredOption('--input <file>', 'UTF-8 text file')
    .requiredOption('--output <file>', 'where the augmented text is written (atomically)')
    .option('--mode <mode>', 'duplicate (keep each unit and add its swapped copy after it) or replace (swap the unit)', 'duplicate')
    .option('--probability <p>', 'chance that a unit is augmented', numberFlag('--probability', 0, 1), 1)
    .option('--seed <n>', 'seed of the per-unit draws', intFlag('--seed', 0), 1234)
    .option('--unit <unit>', 'what one document is: line, paragraph (blank-line separated) or file (a duplicate is appended after the whole text)', 'line')
    .option('--pairs <file>', 'swap list: "male female" word pairs, one per line (default: the built-in list)')
    .action((o: CdaOptions) => {
      if (o.mode !== 'duplicate' && o.mode !== 'replace') throw new UserError(`--mode: expected duplicate or replace, got ${JSON.stringify(o.mode)}`);
      if (!(o.unit in UNITS)) throw new UserError(`--unit: expected line, paragraph or file, got ${JSON.stringify(o.unit)}`);
      let text: string;
      try {
        text = readFileSync(o.input, 'utf8');
      } catch (e) {
        throw new UserError(`--input ${o.input}: ${(e as Error).message}`);
      }
      const a = new CounterfactualAugmenter({ mode: o.mode as CdaMode, probability: o.probability, seed: o.seed, pairsFile: o.pairs ?? null });
      const sep = UNITS[o.unit as keyof typeof UNITS];
      const units = sep === null ? [text] : text.split(sep);
      const out = units.flatMap((u, i) => a.augment({ id: String(i + 1), text: u, metadata: {} }).map((d) => d.text));
      writeFileAtomic(o.output, out.join(sep ?? (text.endsWith('\n') ? '' : '\n')));
      console.log(`cda: ${a.counts.docs} ${o.unit}s, ${a.counts.augmented} augmented (${o.mode}), ${a.counts.swaps} words swapped -> ${o.output}`);
    });
}

runIfMain(import.meta.url, register);
