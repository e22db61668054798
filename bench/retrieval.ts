// Retrieval benchmark. Default: BM25 indexing throughput (MB/s of passage text: analyze, invert, write the segment)
// and queries/s on the XQuAD + BoolQ passages, and exact dense search queries/s over 100k random unit vectors
// (D = 256; random, not encoded: search time does not depend on where the vectors came from) with the native kernel
// at batch 1 and 64 beside the TypeScript reference. `recall`: trains the dense encoder on XQuAD (held-out split)
// and prints BM25 / dense / hybrid recall@1/5/20 on the held-out questions. Each ends with a RESULT line.
// Args: --runs N (default 3); recall: --units terms|bpe (terms), --dim (4096; bpe 768), --steps (60; bpe 300), --lr
// (3e-5; bpe 1e-3), --lr-weights (3e-3; bpe = lr), --length-norm (0.7; bpe 1), --char-grams (3; bpe 0), --gram-weight
// (0.7), --bigrams=1, --batch (64), --hard (3), --spans (8), --tau, --term-weight log|bm25, --refresh N (re-mine hard
// negatives with the encoder every N steps, ANCE/REALM-style; default off).
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addPassages, BM25Index, createIndex } from '../src/retrieval/bm25.js';
import { readPassages, readSquadPassages, readSquadQuestions } from '../src/retrieval/corpus.js';
import { DEFAULT_ADAM } from '../src/retrieval/dense.js';
import { runDenseTraining } from '../src/retrieval/dense-train.js';
import { formatRecallTable } from '../src/retrieval/experiment.js';
import { hasNativeIpTopK, ipTopK, ipTopKReference } from '../src/retrieval/ip-search.js';
import { loadAnyTokenizer } from '../src/tokenizers/load-any.js';
import { mulberry32 } from '../src/util/mulberry32.js';
import { intFlag, median, stringFlag } from './_args.js';
import { cpuName } from './_cpu.js';

const here = dirname(fileURLToPath(import.meta.url));
const dataDir = process.env.LMFORGE_DATA ?? resolve(here, '..', '..', '..', 'shared', 'data');
const XQUAD = join(dataDir, 'xquad-en', 'xquad.en.json.gz');
const BOOLQ = join(dataDir, 'boolq', 'boolq.jsonl.gz');

/** CPU seconds (user + system, all threads) since c0. */
function cpuSeconds(c0: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
}

function unitRows(n: number, D: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(n * D);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let d = 0; d < D; d++) {
      const x = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
      out[i * D + d] = x;
      s += x * x;
    }
    const inv = 1 / Math.sqrt(s);
    for (let d = 0; d < D; d++) out[i * D + d]! *= inv;
  }
  return out;
}

async function speed(args: string[]): Promise<void> {
  const runs = intFlag('retrieval', args, 'runs', 3);
  const passages = [...readSquadPassages(XQUAD), ...readPassages(BOOLQ, 'boolq')];
  const bytes = passages.reduce((s, p) => s + Buffer.byteLength(p.text) + Buffer.byteLength(p.title ?? ''), 0);
  const tmp = mkdtempSync(join(tmpdir(), 'lmforge-bench-retrieval-'));
  const indexTimes: number[] = [];
  const indexCpu: number[] = [];
  try {
    for (let r = 0; r < runs; r++) {
      const dir = join(tmp, `idx${r}`);
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      createIndex(dir);
      addPassages(dir, passages);
      indexTimes.push((performance.now() - t0) / 1000);
      indexCpu.push(cpuSeconds(c0));
    }
    const index = new BM25Index(join(tmp, 'idx0'));
    const queries = readSquadQuestions(XQUAD).map((q) => q.question);
    const queryTimes: number[] = [];
    const queryCpu: number[] = [];
    for (let r = 0; r < runs; r++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (const q of queries) index.search(q, { k: 10 });
      queryTimes.push((performance.now() - t0) / 1000);
      queryCpu.push(cpuSeconds(c0));
    }
    const mbps = bytes / 1e6 / median(indexTimes);
    const mbpsCpu = bytes / 1e6 / median(indexCpu);
    const bm25Qps = queries.length / median(queryTimes);
    const bm25QpsCpu = queries.length / median(queryCpu);
    console.log(`BM25: ${passages.length} passages (XQuAD + BoolQ), ${(bytes / 1e6).toFixed(2)} MB of text: indexing ${mbps.toFixed(2)} MB/s wall, ${mbpsCpu.toFixed(2)} MB per CPU-second (median of ${runs}); ${queries.length} XQuAD questions, k = 10: ${bm25Qps.toFixed(0)} queries/s wall, ${bm25QpsCpu.toFixed(0)} per CPU-second (one thread)`);

    const N = 100_000;
    const D = 256;
    const k = 10;
    const P = unitRows(N, D, 1);
    const Qn = 256;
    const Q = unitRows(Qn, D, 2);
    // Wall seconds and CPU seconds (all threads) of f, medians over runs.
    const time = (f: () => void): { wall: number; cpu: number } => {
      const ts: number[] = [];
      const cs: number[] = [];
      for (let r = 0; r < runs; r++) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        f();
        ts.push((performance.now() - t0) / 1000);
        cs.push(cpuSeconds(c0));
      }
      return { wall: median(ts), cpu: median(cs) };
    };
    const refQ = 4;
    const tRef = time(() => ipTopKReference(P, N, D, Q, refQ, k));
    const refQps = refQ / tRef.wall;
    let nat1 = 0;
    let nat64 = 0;
    let nat1Cpu = 0;
    let nat64Cpu = 0;
    if (hasNativeIpTopK()) {
      const t1 = time(() => { for (let m = 0; m < 64; m++) ipTopK(P, N, D, Q.subarray(m * D, (m + 1) * D), 1, k); });
      nat1 = 64 / t1.wall;
      nat1Cpu = 64 / t1.cpu;
      const t64 = time(() => { for (let m = 0; m < Qn; m += 64) ipTopK(P, N, D, Q.subarray(m * D, (m + 64) * D), 64, k); });
      nat64 = Qn / t64.wall;
      nat64Cpu = Qn / t64.cpu;
      // The native result is the reference's on the first queries.
      const a = ipTopK(P, N, D, Q, refQ, k);
      const b = ipTopKReference(P, N, D, Q, refQ, k);
      const same = a.indices.every((x, i) => x === b.indices[i]);
      console.log(`dense exact search, ${N.toLocaleString('en')} random unit vectors × D = ${D} (${(N * D * 4 / 1e6).toFixed(0)} MB), k = ${k}: native batch 1 ${nat1.toFixed(1)} queries/s (${nat1Cpu.toFixed(1)} per CPU-second), batch 64 ${nat64.toFixed(1)} queries/s (${nat64Cpu.toFixed(1)} per CPU-second); TypeScript reference ${refQps.toFixed(2)} queries/s (${(refQ / tRef.cpu).toFixed(2)} per CPU-second; native/reference at batch 1 ${(nat1 / refQps).toFixed(1)}× wall); top-k equal to the reference: ${same}`);
    } else {
      console.log(`dense exact search: native addon not built; TypeScript reference ${refQps.toFixed(2)} queries/s`);
    }
    console.log(`CPU: ${cpuName()}; load average ${loadavg()[0]!.toFixed(1)} (a machine shared with other jobs: wall figures vary run to run, per-CPU-second ones less; ratios from one run hold)`);
    console.log(`RESULT ${JSON.stringify({ cpu: cpuName(), bm25: { passages: passages.length, mb: +(bytes / 1e6).toFixed(3), indexMBps: +mbps.toFixed(2), indexMBperCpuS: +mbpsCpu.toFixed(2), queriesPerS: +bm25Qps.toFixed(1), queriesPerCpuS: +bm25QpsCpu.toFixed(1) }, dense: { vectors: N, dim: D, k, source: 'random', nativeBatch1QueriesPerS: +nat1.toFixed(1), nativeBatch64QueriesPerS: +nat64.toFixed(1), nativeBatch1QueriesPerCpuS: +nat1Cpu.toFixed(1), nativeBatch64QueriesPerCpuS: +nat64Cpu.toFixed(1), referenceQueriesPerS: +refQps.toFixed(3) }, loadAverage: +loadavg()[0]!.toFixed(1) })}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function recall(args: string[]): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'lmforge-bench-recall-'));
  try {
    const indexDir = join(tmp, 'bm25');
    createIndex(indexDir);
    addPassages(indexDir, readSquadPassages(XQUAD));
    const termWeight = stringFlag(args, 'term-weight') ?? 'log';
    if (termWeight !== 'log' && termWeight !== 'bm25') throw new Error(`bench/retrieval: --term-weight expects log or bm25, got ${termWeight}`);
    const tau = Number(stringFlag(args, 'tau') ?? (termWeight === 'log' ? 0.05 : 1));
    // Default: the terms recipe (stemmed terms + character trigrams at 0.7, D = 4096, passages v/‖v‖^0.7, 60 steps
    // that move the per-unit weights (lr 3e-3) more than the projection (3e-5)); --units=bpe: the GPT-2 piece encoder.
    const units = stringFlag(args, 'units') ?? 'terms';
    if (units !== 'bpe' && units !== 'terms') throw new Error(`bench/retrieval: --units expects bpe or terms, got ${units}`);
    const bigrams = stringFlag(args, 'bigrams') === '1';
    const terms = units === 'terms';
    const charGrams = Number(stringFlag(args, 'char-grams') ?? (terms ? 3 : 0));
    const gramWeight = Number(stringFlag(args, 'gram-weight') ?? (terms ? 0.7 : 1));
    if (!(Number.isInteger(charGrams) && charGrams >= 0) || !(gramWeight > 0)) throw new Error('bench/retrieval: --char-grams expects an integer ≥ 0 and --gram-weight a number > 0');
    const lengthNorm = Number(stringFlag(args, 'length-norm') ?? (terms ? 0.7 : 1));
    if (!(lengthNorm >= 0 && lengthNorm <= 1)) throw new Error('bench/retrieval: --length-norm expects a number in [0, 1]');
    const lr = Number(stringFlag(args, 'lr') ?? (terms ? 3e-5 : 1e-3));
    const lrWeights = Number(stringFlag(args, 'lr-weights') ?? (terms ? 3e-3 : lr));
    if (!(lr >= 0) || !(lrWeights >= 0) || !(tau > 0)) throw new Error('bench/retrieval: --lr, --lr-weights expect numbers ≥ 0 and --tau one > 0');
    const report = runDenseTraining({
      indexDir,
      questionsPath: XQUAD,
      tokenizer: loadAnyTokenizer(join(dataDir, 'gpt2-tokenizer')),
      outDir: join(tmp, 'dense'),
      model: { dim: intFlag('retrieval', args, 'dim', terms ? 4096 : 768), tau, termWeight, units, bigrams, lengthNorm, charGrams, gramWeight },
      train: {
        steps: intFlag('retrieval', args, 'steps', terms ? 60 : 300),
        batch: intFlag('retrieval', args, 'batch', 64),
        hardPerQuery: intFlag('retrieval', args, 'hard', 3),
        adam: { ...DEFAULT_ADAM, lr, lrWeights },
        ...(stringFlag(args, 'refresh') ? { refreshEvery: intFlag('retrieval', args, 'refresh', 100) } : {}),
      },
      pairs: { spans: intFlag('retrieval', args, 'spans', 8) },
      log: (line) => console.log(`  ${line}`),
    });
    console.log(`held-out recall on XQuAD (${report.heldOutQuestions} questions never trained on; trained on ${report.trainQuestions} questions + ${report.ictPairs} ICT sentences; 240 paragraphs), ${cpuName()}:`);
    console.log(formatRecallTable(report.recall));
    const r = Object.fromEntries(report.recall.map((x) => [x.method, x.recall]));
    // Misses at each k: held-out questions whose paragraph is not in the top k.
    const misses = Object.fromEntries(report.recall.map((x) => [x.method, Object.fromEntries(Object.entries(x.recall).map(([k, v]) => [k, Math.round((1 - v) * report.heldOutQuestions)]))]));
    const load = loadavg()[0]!;
    console.log(`misses of ${report.heldOutQuestions}: ${JSON.stringify(misses)}; load average ${load.toFixed(1)}`);
    const config = { units, dim: intFlag('retrieval', args, 'dim', terms ? 4096 : 768), lengthNorm, charGrams, gramWeight, bigrams, lr, lrWeights, tau };
    console.log(`RESULT ${JSON.stringify({ cpu: cpuName(), heldOut: report.heldOutQuestions, trained: report.trainQuestions, ict: report.ictPairs, trainSeconds: +report.trainSeconds.toFixed(1), config, recall: r, misses, load_average: +load.toFixed(2) })}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export async function run(args: string[]): Promise<void> {
  if (args[0] === 'recall') await recall(args.slice(1));
  else await speed(args);
}
