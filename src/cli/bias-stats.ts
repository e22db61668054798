// `lmforge bias-stats --input FILES --probe configs/bias/gender-occupation.json`: the data side of a bias probe, as a
// curation report — per sentence co-occurrence of the probe's group words (he/his/him, she/her) with its attribute
// terms (occupations): counts, conditional rates, PMI and the corpus's stereotype lean (data/bias-stats.ts). Reads
// text, JSONL (also curated .jsonl.gz shards), CSV or Parquet like `lmforge curate`. Not the model probe (eval).
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { CooccurrenceCounter, formatCooccurrence } from '../data/bias-stats.js';
import { BadRecordLog, expandPaths, formatFromPath, readDocuments } from '../data/readers.js';
import { loadBiasProbe } from '../eval/bias-probe.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { runIfMain, userErrors } from './standalone.js';

interface BiasStatsOptions {
  input: string[];
  probe: string;
  textField: string;
  output?: string;
}

export function register(program: Command): void {
  program
    .command('bias-stats')
    .description("co-occurrence of a bias probe's group words with its attribute terms over a corpus (counts, P(group | term), PMI)")
    .requiredOption('--input <paths...>', 'text (.txt), .jsonl(.gz), .csv or .parquet files, or directories of them')
    .option('--probe <file>', 'bias probe whose groups and attributes are counted', 'configs/bias/gender-occupation.json')
    .option('--text-field <name>', 'field holding the text in JSONL / CSV / Parquet records', 'text')
    .option('--output <file>', 'also write the report as JSON')
    .action((o: BiasStatsOptions) => userErrors(async () => {
      const probe = loadBiasProbe(o.probe);
      if (Object.keys(probe.attributes).length === 0) throw new UserError(`${o.probe}: the probe has no attributes (templates' attribute terms) to count`);
      const groups = Object.fromEntries(probe.groups.map((g) => [g, [...new Set(Object.values(probe.groupSlots[g]!).map((w) => w.toLowerCase()))]]));
      const counter = new CooccurrenceCounter({ groups, attributes: probe.attributes, stereotype: probe.stereotype });
      const files = expandPaths(o.input);
      if (files.length === 0) throw new UserError(`--input: no files under ${o.input.join(', ')}`);
      const log = new BadRecordLog();
      let docs = 0;
      for (const path of files) {
        for await (const d of readDocuments({ path, format: formatFromPath(path), source: 'input', textField: o.textField, split: 'file', onBadRecord: 'fail' }, log)) {
          counter.add(d.text);
          docs++;
        }
      }
      const report = counter.report();
      console.log(`bias-stats: ${files.length} file(s), ${docs} document(s); groups ${probe.groups.map((g) => `${g} = {${groups[g]!.join(', ')}}`).join(', ')}`);
      console.log(formatCooccurrence(report));
      if (o.output) {
        writeFileAtomic(resolve(o.output), JSON.stringify({ probe: resolve(o.probe), inputs: files, documents: docs, ...report }, null, 2) + '\n');
        console.log(`bias-stats: report written to ${o.output}`);
      }
    }));
}

runIfMain(import.meta.url, register);
