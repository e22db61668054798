// Curation benchmark: builds a >= 100 MB corpus (shared datasets + Python stdlib + planted duplicates) in a temp
// directory, then measures on `--workers` cores (default 2, one worker thread per rank):
//   - the full filter chain (clean, language, Gopher repetition + quality, C4, FineWeb, harmful, KN score, PII)
//   - MinHash + exact dedup (signature -> bucket -> cluster -> filter), docs/s and MB/s
//   - near-dup recall at J >= 0.8 and false-positive rate at J <= 0.5 on the planted pairs; exact-copy removal.
// Usage: npm run bench -- curation [--target-mb 100] [--workers 2] [--keep]
import { cpuName } from './_cpu.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { buildCorpus } from './_curation-corpus.js';
import type { Corpus } from './_curation-corpus.js';
import type { WorkerTask } from './_curation-worker.js';
import { DEFAULT_DEDUP, clusterStage, dedupPaths, readRemovals } from '../src/data/dedup/stages.js';
import type { DedupConfig } from '../src/data/dedup/stages.js';
import { MinHasher, candidateProbability } from '../src/data/dedup/minhash.js';
import { validateConfig } from '../src/data/config.js';
import { collectReports, runStages } from '../src/data/pipeline.js';
import { formatReport } from '../src/data/report.js';

const workerPath = fileURLToPath(new URL('./_curation-worker.js', import.meta.url));

function arg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name);
  return i === -1 ? dflt : Number(args[i + 1]);
}

async function parallel(tasks: WorkerTask[]): Promise<number> {
  const t0 = performance.now();
  await Promise.all(
    tasks.map(
      (t) =>
        new Promise<void>((resolve, reject) => {
          const w = new Worker(workerPath, { workerData: t });
          w.on('message', () => resolve());
          w.on('error', reject);
          w.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exited with ${code}`))));
        }),
    ),
  );
  return (performance.now() - t0) / 1000;
}

const ranks = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

function rate(docs: number, bytes: number, s: number): string {
  return `${(docs / s).toFixed(0)} docs/s, ${(bytes / 1e6 / s).toFixed(2)} MB/s (${docs} docs, ${(bytes / 1e6).toFixed(1)} MB in ${s.toFixed(1)} s)`;
}

/** Process CPU seconds (all threads) since `from`: a figure less sensitive than wall time to other load. */
function cpuSince(from: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(from);
  return (c.user + c.system) / 1e6;
}

function loadNote(): string {
  return `load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} on ${cpus().length} cores`;
}

interface PairStats {
  bins: Map<string, { pairs: number; detected: number }>;
  recall: { pairs: number; detected: number };
  fp: { pairs: number; detected: number };
  exactPairs: number;
  exactRemoved: number;
}

/** Same-cluster test for every planted pair, binned by true 5-gram Jaccard. */
function evaluate(c: Corpus, work: string, trueJ: Map<string, number>): PairStats {
  const removals = c.shards.map((_, i) => readRemovals(work, i));
  const keeper = (id: string): string => {
    const [s, d] = c.where.get(id)!;
    const r = removals[s]!.get(d);
    return r === undefined ? `${s}:${d}` : `${r[1]}:${r[2]}`;
  };
  const removedExact = (id: string): boolean => {
    const [s, d] = c.where.get(id)!;
    return removals[s]!.get(d)?.[0] === 'dedup_exact';
  };
  const st: PairStats = { bins: new Map(), recall: { pairs: 0, detected: 0 }, fp: { pairs: 0, detected: 0 }, exactPairs: 0, exactRemoved: 0 };
  for (const g of c.groups) {
    for (const m of g.members) {
      if (m.kind !== 'exact') continue;
      st.exactPairs++;
      if (keeper(m.id) === keeper(g.base) && (removedExact(m.id) || removedExact(g.base))) st.exactRemoved++;
    }
  }
  for (const [key, j] of trueJ) {
    const [a, b] = key.split('|') as [string, string];
    const det = keeper(a) === keeper(b);
    const bin = j >= 1 ? '1.0' : (Math.floor(j * 10) / 10).toFixed(1);
    const e = st.bins.get(bin) ?? { pairs: 0, detected: 0 };
    e.pairs++;
    e.detected += det ? 1 : 0;
    st.bins.set(bin, e);
    if (j >= 0.8) {
      st.recall.pairs++;
      st.recall.detected += det ? 1 : 0;
    }
    if (j <= 0.5) {
      st.fp.pairs++;
      st.fp.detected += det ? 1 : 0;
    }
  }
  return st;
}

function printPairStats(label: string, s: PairStats): void {
  console.log(`\n${label}`);
  console.log('  J bin   pairs  same cluster  rate    (LSH candidate probability at bin start, 14x8)');
  for (const [bin, e] of [...s.bins.entries()].sort()) {
    console.log(`  ${bin.padEnd(5)} ${String(e.pairs).padStart(7)} ${String(e.detected).padStart(13)}  ${(e.detected / e.pairs).toFixed(4)}  (${candidateProbability(Number(bin)).toFixed(4)})`);
  }
  console.log(`  recall at J >= 0.8: ${(s.recall.detected / s.recall.pairs).toFixed(4)} (${s.recall.detected}/${s.recall.pairs})   bar >= 0.95`);
  console.log(`  false-positive rate at J <= 0.5: ${(s.fp.detected / s.fp.pairs).toFixed(4)} (${s.fp.detected}/${s.fp.pairs})   bar <= 0.01`);
  console.log(`  planted exact copies removed as exact duplicates: ${s.exactRemoved}/${s.exactPairs}`);
}

export async function run(args: string[]): Promise<void> {
  const targetMb = arg(args, '--target-mb', 100);
  const workers = arg(args, '--workers', 2);
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-curation-bench-'));
  try {
    console.log(`curation benchmark in ${dir} (${workers} workers)`);
    let t0 = performance.now();
    const corpus = await buildCorpus(dir, {
      sharedDir: '/work/shared/data',
      pythonDir: '/usr/lib/python3.11',
      numShards: 16,
      targetBytes: targetMb * 1e6,
      exactFraction: 0.1,
      maxRate: 0.15,
      minWords: 50,
      seed: 1234,
    });
    const nearCount = corpus.groups.reduce((a, g) => a + g.members.filter((m) => m.kind === 'near').length, 0);
    const exactCount = corpus.groups.reduce((a, g) => a + g.members.filter((m) => m.kind === 'exact').length, 0);
    console.log(
      `corpus: ${corpus.docs} docs, ${(corpus.bytes / 1e6).toFixed(1)} MB (${corpus.baseDocs} base documents, ${exactCount} exact copies, ` +
        `${nearCount} near-duplicates at word edit rates U[0, 0.15]) built in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );

    // True Jaccard of every planted pair (base-variant and variant-variant), on hashed 5-gram sets.
    t0 = performance.now();
    const hasher = new MinHasher();
    const grams = (id: string): Set<number> => {
      const { hi, lo } = hasher.shingles(corpus.texts.get(id)!);
      const s = new Set<number>();
      for (let i = 0; i < hi.length; i++) s.add((hi[i]! & 0x1fffff) * 4294967296 + lo[i]!);
      return s;
    };
    const jac = (A: Set<number>, B: Set<number>): number => {
      let inter = 0;
      for (const g of A) if (B.has(g)) inter++;
      const u = A.size + B.size - inter;
      return u === 0 ? 1 : inter / u;
    };
    const trueJ = new Map<string, number>();
    for (const g of corpus.groups) {
      const near = g.members.filter((m) => m.kind === 'near').map((m) => m.id);
      if (near.length === 0) continue;
      const ids = [g.base, ...near];
      const sets = ids.map(grams);
      for (let a = 0; a < ids.length; a++) for (let b = a + 1; b < ids.length; b++) trueJ.set(`${ids[a]!}|${ids[b]!}`, jac(sets[a]!, sets[b]!));
    }
    console.log(`true Jaccard of ${trueJ.size} planted pairs computed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // 1. The full filter chain as a pipeline config over the corpus shards; the LM reference is Wikipedia (xquad-en).
    const xq = JSON.parse(gunzipSync(readFileSync('/work/shared/data/xquad-en/xquad.en.json.gz')).toString()) as { data: { paragraphs: { context: string }[] }[] };
    writeFileSync(join(dir, 'reference.jsonl'), xq.data.flatMap((a) => a.paragraphs.map((p) => JSON.stringify({ text: p.context }))).join('\n'));
    const raw = {
      output: join(dir, 'out'),
      sources: [{ name: 'corpus', paths: [join(dir, 'corpus')], text_field: 'text', id_field: 'id' }],
      filters: { harmful: { terms_file: fileURLToPath(new URL('../../configs/harmful-terms.example.txt', import.meta.url)), min_matches: 3 } },
      scorer: { model: join(dir, 'kn.json'), train: { paths: [join(dir, 'reference.jsonl')], order: 4 }, threshold: 3000 },
      dedup: false,
    };
    const cfg = validateConfig(raw, dir);
    t0 = performance.now();
    await runStages(cfg, ['train-scorer'], { rank: 0, worldSize: 1, limit: null, dryRun: false, log: () => {} });
    console.log(`\nscorer: 4-gram Kneser-Ney trained on xquad-en (Wikipedia) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    let cpu0 = process.cpuUsage();
    const filterWall = await parallel(ranks(workers).map((rank) => ({ kind: 'pipeline', config: raw, baseDir: dir, stage: 'filter', rank, worldSize: workers })));
    const filterCpu = cpuSince(cpu0);
    const fr = collectReports(cfg, 'filter')!;
    console.log(`\nFULL FILTER CHAIN on ${workers} cores: ${rate(fr.in.docs, fr.in.bytes, filterWall)}`);
    console.log(`  ${(fr.in.bytes / 1e6 / filterCpu).toFixed(2)} MB per CPU-second (${filterCpu.toFixed(1)} CPU s); ${loadNote()}`);
    console.log(`  (summed task time ${fr.seconds.toFixed(1)} s -> ${(fr.in.bytes / 1e6 / fr.seconds).toFixed(2)} MB/s per core)`);
    console.log(formatReport(fr));

    // 2. Dedup over the raw corpus shards (before filtering, so every planted pair is present).
    const work = join(dir, 'dedup');
    const dedup: DedupConfig = { ...DEFAULT_DEDUP };
    const base = { dedup, inputs: corpus.shards, work, outDir: join(dir, 'deduped') };
    cpu0 = process.cpuUsage();
    const sigWall = await parallel(ranks(workers).map((rank) => ({ kind: 'signature', ...base, rank, worldSize: workers })));
    const bucketWall = await parallel(ranks(workers).map((rank) => ({ kind: 'bucket', ...base, rank, worldSize: workers })));
    t0 = performance.now();
    const summary = clusterStage(dedup, corpus.shards.length, work, { rank: 0, worldSize: 1 })!;
    const clusterWall = (performance.now() - t0) / 1000;
    const filtWall = await parallel(ranks(workers).map((rank) => ({ kind: 'dedup-filter', ...base, rank, worldSize: workers })));
    const total = sigWall + bucketWall + clusterWall + filtWall;
    const dedupCpu = cpuSince(cpu0);
    console.log(`\nMINHASH + EXACT DEDUP on ${workers} cores: ${rate(corpus.docs, corpus.bytes, total)}`);
    console.log(`  ${(corpus.bytes / 1e6 / dedupCpu).toFixed(2)} MB per CPU-second (${dedupCpu.toFixed(1)} CPU s); ${loadNote()}`);
    console.log(`  signature ${sigWall.toFixed(1)} s, bucket ${bucketWall.toFixed(1)} s, cluster ${clusterWall.toFixed(1)} s (1 core), filter ${filtWall.toFixed(1)} s`);
    console.log(`  signature stage alone: ${rate(corpus.docs, corpus.bytes, sigWall)}`);
    console.log(`  cluster summary: ${JSON.stringify(summary)}`);
    const verified = evaluate(corpus, work, trueJ);
    printPairStats(`default settings (5-grams, 14x8, 64-bit; candidates verified at estimated J >= ${String(dedup.verifyThreshold)}):`, verified);

    // The same buckets clustered the datatrove way: every bucket collision is a duplicate.
    rmSync(join(work, 'remove'), { recursive: true, force: true });
    t0 = performance.now();
    const plain = clusterStage({ ...dedup, verifyThreshold: null }, corpus.shards.length, work, { rank: 0, worldSize: 1 })!;
    console.log(`\ncluster with verify_threshold null: ${((performance.now() - t0) / 1000).toFixed(1)} s, ${JSON.stringify(plain)}`);
    const unverified = evaluate(corpus, work, trueJ);
    printPairStats('datatrove behaviour (verify_threshold null: every LSH bucket collision is a duplicate):', unverified);
    void dedupPaths;
    const rates = (st: PairStats): { recall_j08: number; fp_rate_j05: number } => ({
      recall_j08: st.recall.detected / st.recall.pairs, fp_rate_j05: st.fp.detected / st.fp.pairs,
    });
    console.log(`RESULT ${JSON.stringify({
      cpu: cpuName(), workers, corpus_mb: corpus.bytes / 1e6,
      filter_mb_s: fr.in.bytes / 1e6 / filterWall, dedup_mb_s: corpus.bytes / 1e6 / total,
      dedup_verified: rates(verified), dedup_unverified: rates(unverified),
    })}`);
  } finally {
    if (!args.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  }
}
