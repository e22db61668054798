// Code tokenizer study (issue 14): bytes per token on the fixed held-out Python files (those that pass the
// curation's file filters, as in val.bin) for BPEs trained on the curated training files with the code-aware split
// pattern and, as the ablation, with GPT-2's pattern, at stated vocabulary sizes (by default GPT-2's 50257 and cl100k's 100277, and the recipe's 8192), beside GPT-2's own tokenizer
// (../shared/data/gpt2-tokenizer, encoded by lmforge) and cl100k_base (the tiktoken npm package). Higher is better.
// Each pattern is trained once to the largest size; a smaller size is the prefix of its merges, which is exactly
// what training to that size gives (BPE's merge sequence does not depend on the target size).
// Args: --corpus=data/code-corpus --vocab-sizes=8192,50257,100277 --curate-config=configs/curate-code.yaml
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { cpuName } from './_cpu.js';
import { stringFlag } from './_args.js';
import { CODE_CURATE_CONFIG, decontaminate, filterHeldout, readCuratedFiles, readHeldoutFiles, trainCodeBpe } from '../src/data/code-tokens.js';
import type { CodeFile } from '../src/data/code-tokens.js';
import { BpeTokenizer } from '../src/tokenizers/bpe.js';
import { loadAnyTokenizer } from '../src/tokenizers/load-any.js';

interface Encoding {
  encode_ordinary(text: string): Uint32Array;
  free(): void;
}

const require = createRequire(import.meta.url);
const dataDir = process.env.LMFORGE_DATA ?? resolve('..', 'shared', 'data');

/** The tokenizer made of the first k merges of a trained one, with <|endoftext|> after them: vocab 256 + k + 1. */
function prefix(tok: BpeTokenizer, vocabSize: number): BpeTokenizer {
  const k = Math.min(vocabSize - 257, tok.merges.length);
  return new BpeTokenizer({ pattern: tok.pattern, tokens: tok.tokens.slice(0, 256 + k), merges: tok.merges.slice(0, k), specialTokens: new Map([['<|endoftext|>', 256 + k]]) });
}

interface Case {
  vocab: number;
  bytes_per_token: number;
  /** Share of held-out tokens that are whitespace only (indentation, newlines). */
  whitespace_token_share: number;
}

function measure(files: readonly CodeFile[], encode: (text: string) => ArrayLike<number>, isSpace: (id: number) => boolean, vocab: number): Case {
  let bytes = 0;
  let tokens = 0;
  let space = 0;
  for (const f of files) {
    const ids = encode(f.text);
    bytes += Buffer.byteLength(f.text, 'utf8');
    tokens += ids.length;
    for (let i = 0; i < ids.length; i++) if (isSpace(ids[i]!)) space++;
  }
  return { vocab, bytes_per_token: bytes / tokens, whitespace_token_share: space / tokens };
}

const spaceOnly = (b: Uint8Array | undefined): boolean => b !== undefined && b.length > 0 && b.every((c) => c === 32 || c === 9 || c === 10 || c === 13);

export async function run(args: string[]): Promise<void> {
  const corpus = stringFlag(args, 'corpus') ?? 'data/code-corpus';
  const sizes = (stringFlag(args, 'vocab-sizes') ?? '8192,50257,100277').split(',').map(Number);
  if (sizes.some((v) => !Number.isInteger(v) || v < 258)) throw new Error(`bench/code-tokenizer: --vocab-sizes expects integers ≥ 258, got ${stringFlag(args, 'vocab-sizes')}`);
  // The held-out files that pass the curation's file filters: the set val.bin holds (src/data/code-tokens.ts).
  const heldout = filterHeldout(readHeldoutFiles(corpus), stringFlag(args, 'curate-config') ?? CODE_CURATE_CONFIG).kept;
  // The training files less the (near-)copies of held-out files: the set train.bin holds.
  const train = decontaminate(await readCuratedFiles(corpus), heldout).train;
  const mb = (fs: readonly CodeFile[]): number => fs.reduce((n, f) => n + Buffer.byteLength(f.text, 'utf8'), 0) / 1e6;
  console.log(`code-tokenizer: ${train.length} curated training files (${mb(train).toFixed(1)} MB), ${heldout.length} held-out files (${mb(heldout).toFixed(2)} MB); cpu ${cpuName()}, load ${loadavg()[0]!.toFixed(2)}`);

  const cases: Record<string, Case> = {};
  const trainSeconds: Record<string, number> = {};
  const largest = Math.max(...sizes);
  for (const pattern of ['code', 'gpt2']) {
    const t0 = performance.now();
    const full = trainCodeBpe(train, largest, pattern);
    trainSeconds[pattern] = (performance.now() - t0) / 1000;
    console.log(`  pattern ${pattern}: ${full.merges.length} merges in ${trainSeconds[pattern]!.toFixed(0)} s (load ${loadavg()[0]!.toFixed(2)})`);
    for (const v of sizes) {
      const tok = prefix(full, v);
      const c = measure(heldout, (t) => tok.encode(t), (id) => spaceOnly(tok.tokens[id]), tok.vocabSize);
      cases[`${pattern}-pattern@${v}`] = c;
    }
  }
  const gpt2 = loadAnyTokenizer(join(dataDir, 'gpt2-tokenizer')) as BpeTokenizer;
  cases['gpt2'] = measure(heldout, (t) => gpt2.encode(t), (id) => spaceOnly(gpt2.tokens[id]), gpt2.vocabSize);
  const { get_encoding } = require('tiktoken') as { get_encoding(name: string): Encoding & { decode_single_token_bytes(id: number): Uint8Array; n_vocab?: number } };
  const cl = get_encoding('cl100k_base');
  const clSpace = new Map<number, boolean>();
  const isClSpace = (id: number): boolean => {
    let s = clSpace.get(id);
    if (s === undefined) clSpace.set(id, (s = spaceOnly(cl.decode_single_token_bytes(id))));
    return s;
  };
  cases['cl100k_base'] = measure(heldout, (t) => cl.encode_ordinary(t), isClSpace, 100277);
  cl.free();

  console.log('\ntokenizer              vocab   bytes/token   whitespace-only tokens');
  for (const [name, c] of Object.entries(cases)) console.log(`${name.padEnd(22)} ${String(c.vocab).padStart(6)}   ${c.bytes_per_token.toFixed(3).padStart(11)}   ${(100 * c.whitespace_token_share).toFixed(1).padStart(6)}%`);
  const at = (p: string, v: number): number | null => cases[`${p}-pattern@${v}`]?.bytes_per_token ?? null;
  const ratio = (a: number | null, b: number | undefined): number | null => (a === null || b === undefined ? null : a / b);
  const result = {
    cpu: cpuName(),
    load_average: loadavg()[0],
    train_files: train.length,
    train_mb: mb(train),
    heldout_files: heldout.length,
    heldout_mb: mb(heldout),
    train_seconds: trainSeconds,
    cases,
    // Equal vocabulary sizes: ours over GPT-2's at 50257 and over cl100k's at 100277 (> 1: fewer tokens for the same code).
    code_vs_gpt2_at_50257: ratio(at('code', 50257), cases['gpt2']?.bytes_per_token),
    code_vs_cl100k_at_100277: ratio(at('code', 100277), cases['cl100k_base']?.bytes_per_token),
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
}
