// `lmforge tokenizer train|encode|decode|export`: train a BPE or unigram tokenizer from text files, encode and
// decode with any supported tokenizer file, convert between formats. Registered by src/cli/main.ts.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { checkOutputsAreNotInputs, ensureParentDir, fsErrorReason, inputFileSize } from '../util/fs.js';
import { UserError } from '../util/errors.js';
import { countPreTokens, trainBpe } from '../tokenizers/bpe-trainer.js';
import { BpeTokenizer, seededRandom } from '../tokenizers/bpe.js';
import { saveTokenizer, vocabListing, writeFileAtomic } from '../tokenizers/format.js';
import { exportHfTokenizer } from '../tokenizers/hf.js';
import { TOKENIZER_HELP, loadAnyTokenizer } from '../tokenizers/load-any.js';
import { readChunks } from '../tokenizers/tokenize-files.js';
import { TOKEN_FILE_MAGIC_BYTES, readTokenFile } from '../tokenizers/token-file.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { UnigramTokenizer } from '../tokenizers/unigram.js';
import { countUnigramWords, trainUnigram } from '../tokenizers/unigram-trainer.js';
import { intFlag, invalidUtf8Option, numberFlag } from './flags.js';
import { decodeUtf8 } from '../util/utf8.js';
import type { InvalidUtf8Policy } from '../util/utf8.js';
import { progressBar } from './progress.js';
import { runIfMain, userErrors } from './standalone.js';

const positiveInt = (name: string): ((v: string) => number) => intFlag(name, 1);

interface TrainOptions {
  type: string;
  vocabSize: number;
  input: string[];
  out: string;
  minFrequency: number;
  special?: string[];
  pattern: string;
  hfOut?: string;
  vocabOut?: string;
  invalidUtf8?: InvalidUtf8Policy;
}

export function trainFromFiles(o: TrainOptions, log: (line: string) => void = () => undefined): Tokenizer {
  const started = performance.now();
  if (o.type !== 'bpe' && o.type !== 'unigram') throw new Error(`--type: expected "bpe" or "unigram", got ${JSON.stringify(o.type)}`);
  // Every output is checked before the (long) training starts.
  for (const out of [o.out, o.hfOut, o.vocabOut]) if (out !== undefined) ensureParentDir(out);
  checkOutputsAreNotInputs([o.out, o.hfOut, o.vocabOut].filter((p): p is string => p !== undefined), o.input);
  const counts = new Map<string, number>();
  let bytes = 0;
  // Streamed in chunks cut where no pre-token or line spans the cut, so memory stays bounded by the counts.
  for (const file of o.input) {
    bytes += inputFileSize(file);
    for (const { text } of readChunks(file, 1 << 22, o.invalidUtf8 ?? 'error', log)) {
      if (o.type === 'bpe') countPreTokens(text, counts, o.pattern);
      else countUnigramWords(text, counts);
    }
  }
  log(`read ${o.input.length} file(s), ${(bytes / 1e6).toFixed(1)} MB, ${counts.size} distinct ${o.type === 'bpe' ? 'pre-tokens' : 'words'}`);
  let tok: Tokenizer;
  if (o.type === 'bpe') {
    const bar = progressBar('merges', Math.max(1, o.vocabSize - 256 - (o.special?.length ?? 0)), 'merges');
    tok = trainBpe(counts, { vocabSize: o.vocabSize, minFrequency: o.minFrequency, specialTokens: o.special ?? [], pattern: o.pattern, onProgress: (d) => bar.update(d) });
    bar.stop();
  } else if (o.type === 'unigram') {
    tok = trainUnigram(counts, { vocabSize: o.vocabSize, specialTokens: o.special ?? [], onProgress: (n, t) => log(`unigram: ${n} pieces (target ${t})`) });
  } else throw new Error(`--type: expected "bpe" or "unigram", got ${JSON.stringify(o.type)}`);
  saveTokenizer(tok, o.out);
  if (o.hfOut) writeFileAtomic(o.hfOut, JSON.stringify(exportHfTokenizer(tok)));
  if (o.vocabOut) writeFileAtomic(o.vocabOut, vocabListing(tok));
  log(`${o.type} tokenizer with ${tok.vocabSize} tokens written to ${o.out} in ${((performance.now() - started) / 1000).toFixed(2)} s`);
  return tok;
}

function readInput(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UserError(`${path}: cannot read the input: ${fsErrorReason(e)}`, { cause: e });
  }
}

function readIds(input: string): number[] {
  const raw = readInput(input);
  if (raw.length >= 8 && TOKEN_FILE_MAGIC_BYTES.every((b, i) => raw[i] === b)) return Array.from(readTokenFile(input));
  return parseIdList(raw.toString('utf8'), input);
}

function parseIdList(text: string, where: string): number[] {
  const parts = text.split(/[\s,]+/).filter((s) => s !== '');
  return parts.map((s, i) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${where}: item ${i + 1}: expected a token id, found ${JSON.stringify(s)}`);
    return n;
  });
}

export function register(program: Command): void {
  const cmd = program.command('tokenizer').description('train, use and convert tokenizers (byte-level BPE, unigram LM)');

  cmd
    .command('train')
    .description('train a tokenizer from text files and write it in lmforge format')
    .requiredOption('--type <type>', 'bpe (byte-level BPE) or unigram (SentencePiece-style unigram LM)')
    .requiredOption('--vocab-size <n>', 'total vocabulary size, special and byte tokens included', positiveInt('--vocab-size'))
    .requiredOption('--input <files...>', 'training text files (UTF-8)')
    .requiredOption('--out <file>', 'tokenizer file to write (lmforge format)')
    .option('--min-frequency <n>', 'BPE: never merge pairs seen fewer times', positiveInt('--min-frequency'), 2)
    .option('--special <tokens...>', 'special tokens to reserve (e.g. "<|endoftext|>")')
    .option('--pattern <name>', 'BPE pre-tokenisation pattern: gpt2, cl100k, o200k or code (indentation runs, identifiers, operators)', 'gpt2')
    .option('--hf-out <file>', 'also write a Hugging Face tokenizer.json')
    .option('--vocab-out <file>', 'also write a human-readable vocabulary listing')
    .addOption(invalidUtf8Option())
    .action((o: TrainOptions) => userErrors(() => {
      trainFromFiles(o, (line) => process.stderr.write(line + '\n'));
    }));

  cmd
    .command('encode')
    .description('encode text to token ids (one line of space-separated ids on stdout)')
    .requiredOption('--tokenizer <path>', TOKENIZER_HELP)
    .option('--input <file>', 'read the text from this file instead of the arguments')
    .option('--allow-special', 'recognise special tokens written in the text')
    .option('--pieces', 'print token strings instead of ids')
    .addOption(invalidUtf8Option())
    .option('--dropout <p>', 'BPE-dropout probability (sampled segmentation)', numberFlag('--dropout', 0, 1))
    .option('--alpha <a>', 'unigram: sample a segmentation with probability ∝ P^alpha', numberFlag('--alpha', 0, Infinity, true))
    .option('--seed <n>', 'seed for --dropout / --alpha', intFlag('--seed', 0, 0xffffffff, 'a 32-bit seed'), 1)
    .argument('[text...]', 'text to encode')
    .action((words: string[], o: { tokenizer: string; input?: string; allowSpecial?: boolean; pieces?: boolean; dropout?: number; alpha?: number; seed: number; invalidUtf8: InvalidUtf8Policy }) => userErrors(() => {
      const tok = loadAnyTokenizer(o.tokenizer);
      let text = words.join(' ');
      if (o.input) {
        const decoded = decodeUtf8(readInput(o.input), o.input, o.invalidUtf8);
        if (decoded.notice !== '') process.stderr.write(`tokenizer encode: ${decoded.notice}\n`);
        text = decoded.text;
      }
      const random = seededRandom(o.seed);
      let ids: number[];
      if (tok instanceof BpeTokenizer) ids = tok.encode(text, { allowedSpecial: o.allowSpecial ? 'all' : 'none', dropout: o.dropout ?? 0, random });
      else ids = tok.encode(text, { allowSpecial: o.allowSpecial ?? false, ...(o.alpha !== undefined ? { sample: { alpha: o.alpha, random } } : {}) });
      if (!o.pieces) {
        process.stdout.write(ids.join(' ') + '\n');
        return;
      }
      const show = (id: number): string =>
        tok instanceof UnigramTokenizer ? (tok.pieces[id]?.piece ?? '?') : JSON.stringify(new TextDecoder().decode(tok.tokenBytes(id)));
      process.stdout.write(ids.map(show).join(' ') + '\n');
    }));

  cmd
    .command('decode')
    .description('decode token ids to text on stdout')
    .requiredOption('--tokenizer <path>', TOKENIZER_HELP)
    .option('--input <file>', 'read ids from this file: a token shard (.bin) or whitespace-separated ids')
    .argument('[ids...]', 'token ids')
    .action((ids: string[], o: { tokenizer: string; input?: string }) => userErrors(() => {
      const tok = loadAnyTokenizer(o.tokenizer);
      const list = o.input ? readIds(o.input) : parseIdList(ids.join(' '), 'ids');
      if (tok instanceof BpeTokenizer) process.stdout.write(tok.decodeBytes(list));
      else process.stdout.write(tok.decode(list));
    }));

  cmd
    .command('export')
    .description('convert a tokenizer: lmforge file, Hugging Face tokenizer.json, vocabulary listing')
    .requiredOption('--tokenizer <path>', TOKENIZER_HELP)
    .option('--out <file>', 'write an lmforge tokenizer file')
    .option('--hf-out <file>', 'write a Hugging Face tokenizer.json')
    .option('--vocab-out <file>', 'write a human-readable vocabulary listing')
    .action((o: { tokenizer: string; out?: string; hfOut?: string; vocabOut?: string }) => userErrors(() => {
      const tok = loadAnyTokenizer(o.tokenizer);
      if (!o.out && !o.hfOut && !o.vocabOut) throw new Error('tokenizer export: give at least one of --out, --hf-out, --vocab-out');
      for (const out of [o.out, o.hfOut, o.vocabOut]) if (out !== undefined) ensureParentDir(out);
      if (o.out) saveTokenizer(tok, o.out);
      if (o.hfOut) writeFileAtomic(o.hfOut, JSON.stringify(exportHfTokenizer(tok)));
      if (o.vocabOut) writeFileAtomic(o.vocabOut, vocabListing(tok));
    }));
}

runIfMain(import.meta.url, register);
