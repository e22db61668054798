// Streams text files through a tokenizer into train/val token shards, on all cores (worker_threads) for large
// inputs, in input order. Not the CLI (src/cli/tokenize.ts) and not the shard format (token-file.ts).
import { closeSync, openSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { loadAnyTokenizer } from './load-any.js';
import { EncoderPool, safeCut } from './parallel.js';
import { TokenFileWriter, dtypeForVocab } from './token-file.js';
import { BpeTokenizer, encodeText } from './tokenizer.js';
import { mulberry32 } from '../util/mulberry32.js';
import { saveTokenizer, writeFileAtomic } from './format.js';
import { checkOutputsAreNotInputs, ensureDir, inputFileSize } from '../util/fs.js';
import { UserError } from '../util/errors.js';
import { Utf8LineDecoder } from '../util/utf8.js';
import type { InvalidUtf8Policy } from '../util/utf8.js';

/** The tokenizer's file name inside a shard directory (and a run directory trained on it). */
export const TOKENIZER_COPY = 'tokenizer.lmf.json';

export interface TokenizeFilesOptions {
  tokenizerPath: string;
  inputs: readonly string[];
  outDir: string;
  /** Fraction of the input bytes (taken from the end) written to val.bin (default 0.005). */
  valFraction?: number;
  /** Worker threads (default: all cores; inputs under 4 MiB are encoded in-process). */
  workers?: number;
  /** Special token appended after each input file (default `<|endoftext|>` when the tokenizer has it; '' for none). */
  separator?: string;
  /** Recognise special tokens written in the text (default false: encoded as plain text). */
  allowSpecial?: boolean;
  chunkChars?: number;
  /** Invalid UTF-8 in the inputs: an error naming the file and byte offset (default), U+FFFD, or drop the line. */
  invalidUtf8?: InvalidUtf8Policy;
  /** Hears one line per input where invalid UTF-8 was replaced or skipped. */
  onNotice?: (line: string) => void;
  /**
   * BPE-dropout for training (Provilkov et al. 2020): the train split is written `dropoutCopies` times, each copy of
   * each chunk segmented with merges skipped at probability `dropout`, so training sees several segmentations of the
   * same text; val.bin stays deterministic. Default 0 (bit-identical to plain encoding). BPE tokenizers only.
   */
  dropout?: number;
  /** Segmentations of the train split written when dropout > 0 (default 1). */
  dropoutCopies?: number;
  /** Seed of the dropout's random stream (default 1). */
  dropoutSeed?: number;
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
}

export interface TokenizeFilesResult {
  train: { path: string; tokens: number };
  val: { path: string; tokens: number };
  bytes: number;
  dtype: 'uint16' | 'uint32';
  seconds: number;
}

/**
 * Yields text chunks of a file cut at safe points (see safeCut), decoding UTF-8 incrementally under the invalid-UTF-8
 * policy (default: an error naming the file and byte offset); `onNotice` hears what replace/skip did.
 */
export function* readChunks(path: string, chunkChars: number, invalidUtf8: InvalidUtf8Policy = 'error', onNotice?: (line: string) => void): Generator<{ text: string; bytes: number }> {
  const fd = openSync(path, 'r');
  const decoder = new Utf8LineDecoder(path, invalidUtf8);
  const buf = Buffer.alloc(1 << 22);
  let carry = '';
  let carryBytes = 0;
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      carry += n > 0 ? decoder.push(buf.subarray(0, n)) : decoder.end();
      carryBytes += n;
      while (carry.length > chunkChars) {
        // The last safe point before chunkChars, else the last one buffered; with none in 16 chunks' worth of text
        // (one enormous line), cut anyway — the only case where chunking can change the ids.
        let cut = safeCut(carry, chunkChars) || safeCut(carry, carry.length);
        if (cut === 0 && n > 0 && carry.length < 16 * chunkChars) break;
        if (cut === 0) cut = chunkChars;
        const text = carry.slice(0, cut);
        const bytes = Buffer.byteLength(text);
        yield { text, bytes };
        carry = carry.slice(cut);
        carryBytes -= bytes;
      }
      if (n === 0) break;
    }
    if (carry.length > 0) yield { text: carry, bytes: carryBytes };
    const notice = decoder.notice();
    if (notice !== '') onNotice?.(notice);
  } finally {
    closeSync(fd);
  }
}

/**
 * A chunk with its split; the chunk that straddles the train/val boundary is cut at the safe point just before
 * it, so that a single small file still gets a validation part.
 */
function splitAtVal(chunk: { text: string; bytes: number }, offset: number, valStart: number, valFraction: number): { text: string; bytes: number; split: 'train' | 'val' }[] {
  if (valFraction <= 0) return [{ ...chunk, split: 'train' }];
  if (offset >= valStart) return [{ ...chunk, split: 'val' }];
  if (offset + chunk.bytes <= valStart) return [{ ...chunk, split: 'train' }];
  const want = Buffer.from(chunk.text, 'utf8').subarray(0, valStart - offset).toString('utf8').length;
  const cut = safeCut(chunk.text, want);
  if (cut <= 0 || cut >= chunk.text.length) return [{ ...chunk, split: 'train' }];
  const head = chunk.text.slice(0, cut);
  const headBytes = Buffer.byteLength(head);
  return [{ text: head, bytes: headBytes, split: 'train' }, { text: chunk.text.slice(cut), bytes: chunk.bytes - headBytes, split: 'val' }];
}

export async function tokenizeFiles(options: TokenizeFilesOptions): Promise<TokenizeFilesResult> {
  const started = performance.now();
  const valFraction = options.valFraction ?? 0.005;
  if (!(valFraction >= 0 && valFraction < 1)) throw new UserError(`--val-fraction: expected a number in [0, 1), got ${valFraction}`);
  // Inputs and the output directory are checked before any work, so a typo fails at once.
  const total = options.inputs.reduce((a, f) => a + inputFileSize(f), 0);
  ensureDir(options.outDir);
  checkOutputsAreNotInputs(['train.bin', 'val.bin', 'meta.json', TOKENIZER_COPY].map((f) => join(options.outDir, f)), options.inputs);
  const tok = loadAnyTokenizer(options.tokenizerPath);
  const dropout = options.dropout ?? 0;
  const copies = options.dropoutCopies ?? 1;
  if (!(dropout >= 0 && dropout < 1)) throw new UserError(`--dropout: expected a probability in [0, 1), got ${dropout}`);
  if (!Number.isInteger(copies) || copies < 1) throw new UserError(`--dropout-copies: expected an integer ≥ 1, got ${copies}`);
  if (copies > 1 && dropout === 0) throw new UserError('--dropout-copies needs --dropout > 0 (identical copies would only repeat the data)');
  if (dropout > 0 && !(tok instanceof BpeTokenizer)) throw new UserError(`--dropout: ${options.tokenizerPath} is a unigram tokenizer; BPE-dropout needs a byte-level BPE`);
  const dropoutRandom = dropout > 0 ? mulberry32(options.dropoutSeed ?? 1) : undefined;
  const dtype = dtypeForVocab(tok.vocabSize);
  const valStart = Math.floor(total * (1 - valFraction));
  const sepName = options.separator ?? (tok.specialTokens.has('<|endoftext|>') ? '<|endoftext|>' : '');
  const sep = sepName === '' ? undefined : tok.specialTokens.get(sepName);
  if (sepName !== '' && sep === undefined) throw new Error(`tokenize: separator ${JSON.stringify(sepName)} is not a special token of ${options.tokenizerPath}`);
  const trainPath = join(options.outDir, 'train.bin');
  const valPath = join(options.outDir, 'val.bin');
  const writers = { train: new TokenFileWriter(trainPath, dtype), val: new TokenFileWriter(valPath, dtype) };
  // Dropout encodes in-process: one seeded random stream over the whole input keeps the output reproducible.
  const workers = dropout > 0 ? 0 : (options.workers ?? (total >= 4 << 20 ? availableParallelism() : 0));
  const pool = workers > 0 ? new EncoderPool(options.tokenizerPath, workers, options.allowSpecial ?? false) : undefined;
  const chunkChars = options.chunkChars ?? 1 << 20;
  const queue: Array<{ ids: Promise<Uint32Array> | Uint32Array; split: 'train' | 'val'; bytes: number }> = [];
  let offset = 0;
  let done = 0;
  let lastSplit: 'train' | 'val' = 'train'; // the separator after a file goes with the file's last chunk
  const drainOne = async (): Promise<void> => {
    const job = queue.shift();
    if (!job) return;
    writers[job.split].write(await job.ids);
    done += job.bytes;
    options.onProgress?.(done, total);
  };
  try {
    for (const file of options.inputs) {
      for (const chunk of readChunks(file, chunkChars, options.invalidUtf8 ?? 'error', options.onNotice)) for (const { text, bytes, split } of splitAtVal(chunk, offset, valStart, valFraction)) {
        lastSplit = split;
        offset += bytes;
        let ids: Promise<Uint32Array> | Uint32Array;
        if (pool) {
          const p = pool.encode(text);
          p.catch(() => undefined); // awaited in order by drainOne; this only keeps an early failure from going unhandled
          ids = p;
        } else if (dropoutRandom && split === 'train') {
          const allowedSpecial = options.allowSpecial ? 'all' : 'none';
          // Copies of a chunk follow each other; the separator (when there is one) marks where a copy restarts the text.
          const segs = Array.from({ length: copies }, () => (tok as BpeTokenizer).encode(text, { allowedSpecial, dropout, random: dropoutRandom }));
          ids = Uint32Array.from(segs.flatMap((seg, k) => (k > 0 && sep !== undefined ? [sep, ...seg] : seg)));
        } else ids = Uint32Array.from(encodeText(tok, text, options.allowSpecial ?? false));
        queue.push({ ids, split, bytes });
        while (queue.length > Math.max(2, 2 * (pool?.size ?? 0))) await drainOne();
      }
      if (sep !== undefined) queue.push({ ids: Uint32Array.of(sep), split: queue[queue.length - 1]?.split ?? lastSplit, bytes: 0 });
    }
    while (queue.length > 0) await drainOne();
    writers.train.close();
    writers.val.close();
  } catch (e) {
    writers.train.abort();
    writers.val.abort();
    throw e;
  } finally {
    await pool?.close();
  }
  // meta.json (what `lmforge train` reads) and a copy of the tokenizer, so the shards and a run trained on them
  // can always be decoded.
  saveTokenizer(tok, join(options.outDir, TOKENIZER_COPY));
  const meta = {
    vocab_size: tok.vocabSize, tokenizer: { type: 'file', file: TOKENIZER_COPY }, sources: options.inputs, val_fraction: valFraction,
    ...(dropout > 0 ? { bpe_dropout: { p: dropout, copies, seed: options.dropoutSeed ?? 1 } } : {}),
  };
  writeFileAtomic(join(options.outDir, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
  return {
    train: { path: trainPath, tokens: writers.train.count },
    val: { path: valPath, tokens: writers.val.count },
    bytes: total,
    dtype,
    seconds: (performance.now() - started) / 1000,
  };
}
