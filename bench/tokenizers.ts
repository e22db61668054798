// Tokenizer benchmark: encode throughput (single thread and all cores) against the tiktoken npm package (Rust →
// wasm) on Tiny Shakespeare and the Python standard library, and BPE / unigram training against sentencepiece's
// spm_train (time, tokens per byte on held-out text). Prints both sides and the ratio.
// Args: --runs N (default 3), --skip-encode, --skip-train, --train-corpus shakespeare|stdlib.
import { cpuName } from './_cpu.js';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { BpeTokenizer } from '../src/tokenizers/bpe.js';
import type { BpeSpec } from '../src/tokenizers/bpe.js';
import { countPreTokens, trainBpe } from '../src/tokenizers/bpe-trainer.js';
import { saveTokenizer } from '../src/tokenizers/format.js';
import { parseGpt2Files, parseTiktokenNpmJson } from '../src/tokenizers/loaders.js';
import { EncoderPool, safeCut } from '../src/tokenizers/parallel.js';
import { countUnigramWords, trainUnigram } from '../src/tokenizers/unigram-trainer.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const dataDir = process.env.LMFORGE_DATA ?? resolve(root, '..', 'shared', 'data');
const require = createRequire(import.meta.url);

interface Encoding {
  encode_ordinary(text: string): Uint32Array;
  free(): void;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const fmt = (x: number, d = 2): string => x.toFixed(d);

function pythonFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const s = statSync(p, { throwIfNoEntry: false });
      if (s?.isDirectory()) walk(p);
      else if (s && n.endsWith('.py')) out.push(p);
    }
  };
  walk(dir);
  return out;
}

function chunk(texts: string[], size: number): string[] {
  const out: string[] = [];
  for (let t of texts) {
    while (t.length > size) {
      const cut = safeCut(t, size) || size;
      out.push(t.slice(0, cut));
      t = t.slice(cut);
    }
    if (t.length > 0) out.push(t);
  }
  return out;
}

/** The figures every table row prints, for the closing RESULT line. */
const result: { encode: Record<string, unknown>[]; train: Record<string, unknown>[] } = { encode: [], train: [] };

/** Runs jobs on a set of workers (least-loaded first) and resolves when all are done; returns seconds. */
async function runPool(encode: (text: string) => Promise<Uint32Array>, chunks: string[]): Promise<{ seconds: number; tokens: number }> {
  const t0 = performance.now();
  const results = await Promise.all(chunks.map((c) => encode(c)));
  return { seconds: (performance.now() - t0) / 1000, tokens: results.reduce((a, r) => a + r.length, 0) };
}

class TiktokenPool {
  private workers: Worker[] = [];
  private load: number[] = [];
  private pending = new Map<number, (ids: Uint32Array) => void>();
  private next = 0;
  constructor(encoding: string, n: number) {
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL('./_tiktoken-worker.js', import.meta.url), { workerData: { encoding } });
      w.on('message', (m: { id: number; ids: Uint32Array }) => {
        const r = this.pending.get(m.id);
        this.pending.delete(m.id);
        this.load[i] = (this.load[i] as number) - 1;
        r?.(m.ids);
      });
      this.workers.push(w);
      this.load.push(0);
    }
  }
  encode(text: string): Promise<Uint32Array> {
    let best = 0;
    for (let i = 1; i < this.load.length; i++) if ((this.load[i] as number) < (this.load[best] as number)) best = i;
    this.load[best] = (this.load[best] as number) + 1;
    const id = this.next++;
    return new Promise((res) => {
      this.pending.set(id, res);
      (this.workers[best] as Worker).postMessage({ id, text });
    });
  }
  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

async function encodeBench(runs: number): Promise<void> {
  const { get_encoding } = require('tiktoken') as { get_encoding(n: string): Encoding };
  const shakespeare = [readFileSync(join(dataDir, 'tinyshakespeare', 'input.txt'), 'utf8')];
  const stdlib = pythonFiles('/usr/lib/python3.11').map((f) => readFileSync(f, 'utf8'));
  const corpora: Array<[string, string[]]> = [['Tiny Shakespeare', shakespeare], ['Python 3.11 stdlib', stdlib]];
  const specs: Array<[string, string, BpeSpec]> = [
    ['GPT-2', 'gpt2', parseGpt2Files(readFileSync(join(dataDir, 'gpt2-tokenizer', 'encoder.json'), 'utf8'), readFileSync(join(dataDir, 'gpt2-tokenizer', 'vocab.bpe'), 'utf8'))],
    ['cl100k_base', 'cl100k_base', parseTiktokenNpmJson(readFileSync(join(root, 'node_modules', 'tiktoken', 'encoders', 'cl100k_base.json'), 'utf8'))],
  ];
  const cores = availableParallelism();
  const tmp = mkdtempSync(join(tmpdir(), 'lmforge-bench-'));
  console.log(`\n== encode throughput (MB/s, median of ${runs}; lmforge starts each run with an empty cache) ==`);
  console.log('vocab        corpus               MB     threads  lmforge  tiktoken  ratio  ids equal');
  for (const [name, encName, spec] of specs) {
    const enc = get_encoding(encName);
    const path = join(tmp, `${encName}.json`);
    saveTokenizer(new BpeTokenizer(spec), path);
    for (const [corpusName, texts] of corpora) {
      const mb = texts.reduce((a, t) => a + Buffer.byteLength(t), 0) / 1e6;
      const ours: number[] = [];
      const ref: number[] = [];
      let equal = true;
      for (let r = 0; r < runs; r++) {
        const tok = new BpeTokenizer(spec); // fresh: no cached pieces from the previous run
        let t0 = performance.now();
        const a = texts.map((t) => tok.encodeOrdinary(t));
        ours.push(mb / ((performance.now() - t0) / 1000));
        t0 = performance.now();
        const b = texts.map((t) => enc.encode_ordinary(t));
        ref.push(mb / ((performance.now() - t0) / 1000));
        if (r === 0) equal = a.every((ids, i) => ids.length === (b[i] as Uint32Array).length && ids.every((v, k) => v === (b[i] as Uint32Array)[k]));
      }
      console.log(`${name.padEnd(12)} ${corpusName.padEnd(20)} ${fmt(mb, 1).padStart(5)}  ${'1'.padStart(7)}  ${fmt(median(ours)).padStart(7)}  ${fmt(median(ref)).padStart(8)}  ${fmt(median(ours) / median(ref)).padStart(5)}x  ${equal ? 'yes' : 'NO'}`);
      result.encode.push({ vocab: name, corpus: corpusName, threads: 1, lmforge_mb_s: median(ours), tiktoken_mb_s: median(ref), ids_equal: equal });
      // All cores: 256 KiB chunks cut where splitting cannot change the ids, on worker pools of both libraries.
      const chunks = chunk(texts, 1 << 18);
      const pool = new EncoderPool(path, cores);
      const tpool = new TiktokenPool(encName, cores);
      await Promise.all([...Array(cores)].map(() => pool.encode('warm up')));
      await Promise.all([...Array(cores)].map(() => tpool.encode('warm up')));
      const po: number[] = [];
      const pr: number[] = [];
      for (let r = 0; r < runs; r++) {
        po.push(mb / (await runPool((t) => pool.encode(t), chunks)).seconds);
        pr.push(mb / (await runPool((t) => tpool.encode(t), chunks)).seconds);
      }
      await pool.close();
      await tpool.close();
      console.log(`${name.padEnd(12)} ${corpusName.padEnd(20)} ${fmt(mb, 1).padStart(5)}  ${String(cores).padStart(7)}  ${fmt(median(po)).padStart(7)}  ${fmt(median(pr)).padStart(8)}  ${fmt(median(po) / median(pr)).padStart(5)}x`);
      result.encode.push({ vocab: name, corpus: corpusName, threads: cores, lmforge_mb_s: median(po), tiktoken_mb_s: median(pr) });
    }
    enc.free();
  }
}

function trainBench(runs: number, corpusName: string): void {
  const spmTrain = spawnSync('spm_train', ['--help'], { encoding: 'utf8' });
  if (spmTrain.error) {
    console.log('\n== training: spm_train not found (apt-get install -y sentencepiece); skipped ==');
    return;
  }
  const text =
    corpusName === 'stdlib'
      ? pythonFiles('/usr/lib/python3.11').map((f) => readFileSync(f, 'utf8')).join('\n')
      : readFileSync(join(dataDir, 'tinyshakespeare', 'input.txt'), 'utf8');
  const cut = text.lastIndexOf('\n', Math.floor(text.length * 0.9)) + 1;
  const tmp = mkdtempSync(join(tmpdir(), 'lmforge-bench-spm-'));
  const trainPath = join(tmp, 'train.txt');
  const heldPath = join(tmp, 'held.txt');
  writeFileSync(trainPath, text.slice(0, cut));
  writeFileSync(heldPath, text.slice(cut));
  const heldLines = text.slice(cut).split('\n');
  const heldBytes = Buffer.byteLength(text.slice(cut));
  const threads = availableParallelism();
  const vocab = 8192;
  const label = corpusName === 'stdlib' ? 'Python 3.11 stdlib' : 'Tiny Shakespeare';
  console.log(`\n== training: vocabulary ${vocab}, ${label} first 90% (${fmt(cut / 1e6)} MB); held-out last 10% encoded line by line ==`);
  console.log(`(lmforge: one thread, time includes reading and counting; spm_train --num_threads=${threads}, process wall time; median of ${runs})`);
  console.log('model    lmforge s  spm_train s  time ratio  spm 1-thread s  ratio  lmforge tok/B  spm tok/B  tok/B ratio  lmforge tok/B *  ratio');
  console.log('(* lmforge on the lines as spm_encode sees them: whitespace runs collapsed, trimmed; spm drops indentation)');
  for (const type of ['bpe', 'unigram'] as const) {
    const ours: number[] = [];
    const theirs: number[] = [];
    const theirs1: number[] = [];
    let encodeOurs: (line: string) => number = () => 0;
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      const corpus = readFileSync(trainPath, 'utf8');
      const counts = new Map<string, number>();
      if (type === 'bpe') {
        countPreTokens(corpus, counts);
        const tok = trainBpe(counts, { vocabSize: vocab });
        encodeOurs = (l) => tok.encode(l).length;
      } else {
        countUnigramWords(corpus, counts);
        const tok = trainUnigram(counts, { vocabSize: vocab });
        encodeOurs = (l) => tok.encode(l).length;
      }
      ours.push((performance.now() - t0) / 1000);
      const t1 = performance.now();
      const res = spawnSync('spm_train', [`--input=${trainPath}`, `--model_prefix=${join(tmp, type)}`, `--vocab_size=${vocab}`, `--model_type=${type}`, '--byte_fallback=true', `--num_threads=${threads}`, '--minloglevel=2'], { encoding: 'utf8' });
      theirs.push((performance.now() - t1) / 1000);
      if (res.status !== 0) throw new Error(`spm_train failed: ${res.stderr}`);
      const t2 = performance.now();
      spawnSync('spm_train', [`--input=${trainPath}`, `--model_prefix=${join(tmp, type + '1')}`, `--vocab_size=${vocab}`, `--model_type=${type}`, '--byte_fallback=true', '--num_threads=1', '--minloglevel=2'], { encoding: 'utf8' });
      theirs1.push((performance.now() - t2) / 1000);
    }
    let oursTokens = 0;
    let oursNormTokens = 0;
    for (const line of heldLines) {
      oursTokens += encodeOurs(line);
      // spm_encode drops runs of whitespace (indentation) and leading/trailing spaces; byte-level BPE keeps them. This
      // second count encodes the line with whitespace collapsed as spm does, for a like-for-like figure.
      const norm = line.replace(/\s+/gu, ' ').trim();
      oursNormTokens += norm === '' ? 0 : encodeOurs(norm);
    }
    const enc = spawnSync('spm_encode', [`--model=${join(tmp, type)}.model`, '--output_format=id', `--input=${heldPath}`], { encoding: 'utf8', maxBuffer: 1 << 28 });
    const spmTokens = enc.stdout.split(/\s+/).filter((s) => s !== '').length;
    const a = oursTokens / heldBytes;
    const b = spmTokens / heldBytes;
    const c = oursNormTokens / heldBytes;
    console.log(`${type.padEnd(8)} ${fmt(median(ours)).padStart(9)}  ${fmt(median(theirs)).padStart(11)}  ${fmt(median(ours) / median(theirs)).padStart(9)}x  ${fmt(median(theirs1)).padStart(14)}  ${fmt(median(ours) / median(theirs1)).padStart(4)}x  ${fmt(a, 4).padStart(13)}  ${fmt(b, 4).padStart(9)}  ${fmt(a / b, 3).padStart(10)}x  ${fmt(c, 4).padStart(16)}  ${fmt(c / b, 3).padStart(5)}x`);
    result.train.push({ model: type, lmforge_s: median(ours), spm_train_s: median(theirs), lmforge_tokens_per_byte: a, spm_tokens_per_byte: b });
  }
}

export async function run(args: string[]): Promise<void> {
  const runsAt = args.indexOf('--runs');
  const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 3;
  console.log(`tokenizers bench: node ${process.version}, ${availableParallelism()} cores`);
  if (!args.includes('--skip-encode')) await encodeBench(runs);
  const corpusAt = args.indexOf('--train-corpus');
  if (!args.includes('--skip-train')) trainBench(runs, corpusAt >= 0 ? (args[corpusAt + 1] ?? 'shakespeare') : 'shakespeare');
  console.log(`RESULT ${JSON.stringify({ cpu: cpuName(), ...result })}`);
}
