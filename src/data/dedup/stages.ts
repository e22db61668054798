// Deduplication as four sharded stages over files, so each runs as independent tasks (--rank/--world-size):
//   signature (map over input shards) -> bucket (map over the 14 bands + the exact-hash table)
//   -> cluster (reduce: union-find over candidate pairs) -> filter (map over input shards).
// Intermediate files are sharded and sorted; each task writes atomically and leaves a completion marker, so a
// re-run skips finished work and a killed task leaves nothing half-written.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Document } from '../document.js';
import { sourceOf, utf8Length } from '../document.js';
import { readShard } from '../readers.js';
import { JsonlGzWriter, documentRecord, isDone, markDone, writeJsonAtomic } from '../writers.js';
import { addCount, addRemoved, newShardReport, step } from '../report.js';
import type { ShardReport } from '../report.js';
import { DEFAULT_MINHASH, MinHasher, estimatedJaccard, exactKeyOfNormalised } from './minhash.js';
import { normaliseForDedup } from '../text.js';
import { UserError } from '../../util/errors.js';
import type { MinHashConfig } from './minhash.js';
import { RecordAppender, RecordReader, mergeSorted, writeRecords } from './records.js';

export interface DedupConfig {
  exact: boolean;
  near: boolean;
  minhash: MinHashConfig;
  /**
   * Candidate pairs from LSH buckets are kept only when their estimated Jaccard (from all 112 hashes) reaches this;
   * null keeps every bucket collision (datatrove's behaviour). Without the check, clusters chain through
   * intermediate variants and pairs with J <= 0.5 share a cluster 1.7% of the time on the planted benchmark;
   * with 0.7 it is 0.05% at the same recall (bench/curation.ts).
   */
  verifyThreshold: number | null;
}

export const DEFAULT_DEDUP: DedupConfig = { exact: true, near: true, minhash: DEFAULT_MINHASH, verifyThreshold: 0.7 };

const REASON_EXACT = 1;
const REASON_NEAR = 2;

export const shardName = (i: number): string => String(i).padStart(5, '0');

/** Where each stage writes under the dedup work directory. */
export function dedupPaths(workDir: string) {
  return {
    sig: (i: number) => join(workDir, 'signatures', shardName(i)),
    band: (i: number, b: number, part: number) => join(workDir, 'signatures', `${shardName(i)}.band-${String(b).padStart(2, '0')}.p${part}.bin`),
    exact: (i: number, part: number) => join(workDir, 'signatures', `${shardName(i)}.exact.p${part}.bin`),
    /** {parts, docs} of a finished signature shard: band and exact records are written as sorted runs (parts). */
    meta: (i: number) => join(workDir, 'signatures', `${shardName(i)}.json`),
    full: (i: number) => join(workDir, 'signatures', `${shardName(i)}.minhash.bin`),
    pairs: (task: string) => join(workDir, 'buckets', `${task}.pairs.bin`),
    remove: (i: number) => join(workDir, 'remove', `${shardName(i)}.bin`),
    clusterDone: join(workDir, 'remove', 'clusters'),
    summary: join(workDir, 'remove', 'clusters.json'),
  };
}

/** The shard indices this rank owns: i % worldSize === rank. */
export function myShards(count: number, rank: number, worldSize: number): number[] {
  const out: number[] = [];
  for (let i = rank; i < count; i += worldSize) out.push(i);
  return out;
}

export interface StageOptions {
  rank: number;
  worldSize: number;
  onShardDone?: (report: ShardReport) => void;
}

export interface SignatureMeta {
  parts: number;
  docs: number;
}

export function readSignatureMeta(workDir: string, shard: number): SignatureMeta {
  return JSON.parse(readFileSync(dedupPaths(workDir).meta(shard), 'utf8')) as SignatureMeta;
}

/**
 * Stage 1 (map over input shards): exact keys, band keys and full signatures per document. Band and exact records
 * are sorted and written in runs of at most `runDocs` documents, and full signatures are appended as they are made,
 * so memory stays bounded whatever the shard size.
 */
export async function signatureStage(cfg: DedupConfig, inputs: string[], workDir: string, o: StageOptions, runDocs = 200_000): Promise<ShardReport[]> {
  const P = dedupPaths(workDir);
  const hasher = new MinHasher(cfg.minhash);
  const B = cfg.minhash.bands;
  const K2 = 2 * hasher.numHashes;
  const out: ShardReport[] = [];
  for (const i of myShards(inputs.length, o.rank, o.worldSize)) {
    if (isDone(P.sig(i))) continue;
    const t0 = performance.now();
    const rep = newShardReport('dedup-signature', shardName(i));
    let exact: number[] = [];
    let bands: number[][] = Array.from({ length: B }, () => []);
    let inRun = 0;
    let parts = 0;
    const flush = (): void => {
      if (cfg.exact) writeRecords(P.exact(i, parts), Uint32Array.from(exact), 6);
      if (cfg.near) for (let b = 0; b < B; b++) writeRecords(P.band(i, b, parts), Uint32Array.from(bands[b]!), 4);
      parts++;
      exact = [];
      bands = Array.from({ length: B }, () => []);
      inRun = 0;
    };
    const full = cfg.near ? new RecordAppender(P.full(i), K2) : undefined;
    const batch = new Uint32Array(256 * K2);
    let inBatch = 0;
    let d = 0;
    for await (const doc of readShard(inputs[i]!)) {
      addCount(rep.in, 1, utf8Length(doc.text));
      const norm = normaliseForDedup(doc.text);
      if (cfg.exact) {
        const k = exactKeyOfNormalised(norm);
        exact.push(k[0]!, k[1]!, k[2]!, k[3]!, i, d);
      }
      if (cfg.near) {
        const sig = hasher.signatureOfNormalised(norm);
        batch.set(sig, inBatch * K2);
        if (++inBatch === 256) {
          full!.append(batch);
          inBatch = 0;
        }
        // Texts with no words have an all-ones signature; bucketing them would cluster every empty document.
        if (sig[0] !== 0xffffffff || sig[1] !== 0xffffffff) {
          const keys = hasher.bandKeys(sig);
          for (let b = 0; b < B; b++) bands[b]!.push(keys[2 * b]!, keys[2 * b + 1]!, i, d);
        }
      }
      d++;
      if (++inRun >= runDocs) flush();
    }
    if (inRun > 0 || parts === 0) flush();
    if (full) {
      if (inBatch > 0) full.append(batch.subarray(0, inBatch * K2));
      full.close();
    }
    rep.out = { ...rep.in };
    rep.extra.sorted_runs = parts;
    writeJsonAtomic(P.meta(i), { parts, docs: d } satisfies SignatureMeta);
    rep.seconds = (performance.now() - t0) / 1000;
    markDone(P.sig(i));
    o.onShardDone?.(rep);
    out.push(rep);
  }
  return out;
}

function requireDone(path: string, what: string): void {
  if (!isDone(path)) throw new UserError(`${what} is not finished (no ${path}.done); run the earlier stage for every rank first`);
}

/** Stage 2 (map over bands + exact): merge the sorted shard files and pair each document with the first of its run. */
export function bucketStage(cfg: DedupConfig, numShards: number, workDir: string, o: StageOptions): ShardReport[] {
  const P = dedupPaths(workDir);
  for (let i = 0; i < numShards; i++) requireDone(P.sig(i), `dedup signature shard ${i}`);
  const parts = Array.from({ length: numShards }, (_, i) => readSignatureMeta(workDir, i).parts);
  const tasks: { name: string; files: (i: number, part: number) => string; keyWords: number }[] = [];
  if (cfg.exact) tasks.push({ name: 'exact', files: P.exact, keyWords: 4 });
  if (cfg.near) {
    for (let b = 0; b < cfg.minhash.bands; b++) tasks.push({ name: `band-${String(b).padStart(2, '0')}`, files: (i, p) => P.band(i, b, p), keyWords: 2 });
  }
  const out: ShardReport[] = [];
  for (const t of myShards(tasks.length, o.rank, o.worldSize).map((k) => tasks[k]!)) {
    const path = P.pairs(t.name);
    if (isDone(path)) continue;
    const t0 = performance.now();
    const rep = newShardReport('dedup-bucket', t.name);
    const readers = Array.from({ length: numShards }, (_, i) => Array.from({ length: parts[i]! }, (_, p) => new RecordReader(t.files(i, p)))).flat();
    const pairs: number[] = [];
    const first = new Uint32Array(6);
    let have = false;
    mergeSorted(readers, t.keyWords, (rec) => {
      rep.in.docs++;
      let same = have;
      for (let w = 0; same && w < t.keyWords; w++) same = rec[w] === first[w];
      const W = t.keyWords;
      if (same) pairs.push(first[W]!, first[W + 1]!, rec[W]!, rec[W + 1]!);
      else {
        first.set(rec.subarray(0, W + 2));
        have = true;
      }
    });
    for (const r of readers) r.close();
    writeRecords(path, Uint32Array.from(pairs), 4, false);
    // For a bucket task "in" counts signature records merged and "out" the duplicate pairs emitted.
    rep.out.docs = pairs.length / 4;
    rep.extra[`${t.name === 'exact' ? 'exact' : 'band'}_pairs`] = pairs.length / 4;
    rep.seconds = (performance.now() - t0) / 1000;
    markDone(path);
    o.onShardDone?.(rep);
    out.push(rep);
  }
  return out;
}

export interface ClusterSummary {
  documents: number;
  exactPairs: number;
  candidatePairs: number;
  rejectedByVerification: number;
  clusters: number;
  removedExact: number;
  removedNear: number;
}

/** Stage 3 (reduce, rank 0 only): union-find over all pairs; the lowest (shard, doc) of each cluster is kept. */
export function clusterStage(cfg: DedupConfig, numShards: number, workDir: string, o: StageOptions): ClusterSummary | undefined {
  const P = dedupPaths(workDir);
  if (o.rank !== 0 || isDone(P.clusterDone)) return undefined;
  const t0 = performance.now();
  const bandNames = cfg.near ? Array.from({ length: cfg.minhash.bands }, (_, b) => `band-${String(b).padStart(2, '0')}`) : [];
  const taskNames = [...(cfg.exact ? ['exact'] : []), ...bandNames];
  for (const t of taskNames) requireDone(P.pairs(t), `dedup bucket ${t}`);
  // Global ids: shards laid end to end.
  const offsets = new Int32Array(numShards + 1);
  const sigReaders: (RecordReader | undefined)[] = [];
  for (let i = 0; i < numShards; i++) {
    if (cfg.near) sigReaders.push(new RecordReader(P.full(i)));
    offsets[i + 1] = offsets[i]! + readSignatureMeta(workDir, i).docs;
  }
  const N = offsets[numShards]!;
  const parent = new Int32Array(N).map((_, k) => k);
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  };
  // The smaller root wins, so every root is the minimum id of its cluster.
  const union = (a: number, b: number): void => {
    const ra = find(a);
    const rb = find(b);
    if (ra < rb) parent[rb] = ra;
    else if (rb < ra) parent[ra] = rb;
  };
  // A separate forest over exact pairs only: a document with a lower exact twin is an exact duplicate.
  const exactParent = new Int32Array(N).map((_, k) => k);
  const findExact = (x: number): number => {
    while (exactParent[x] !== x) {
      exactParent[x] = exactParent[exactParent[x]!]!;
      x = exactParent[x]!;
    }
    return x;
  };
  const summary: ClusterSummary = { documents: N, exactPairs: 0, candidatePairs: 0, rejectedByVerification: 0, clusters: 0, removedExact: 0, removedNear: 0 };
  const gid = (shard: number, doc: number): number => offsets[shard]! + doc;
  // Pairs recur across bands; remember each verification (key exact below 2^53, i.e. up to ~94M documents).
  const verified = new Map<number, boolean>();
  for (const t of taskNames) {
    const r = new RecordReader(P.pairs(t));
    for (let rec = r.current(); rec !== undefined; r.advance(), rec = r.current()) {
      const a = gid(rec[0]!, rec[1]!);
      const b = gid(rec[2]!, rec[3]!);
      if (t === 'exact') {
        summary.exactPairs++;
        const ea = findExact(a);
        const eb = findExact(b);
        if (ea < eb) exactParent[eb] = ea;
        else if (eb < ea) exactParent[ea] = eb;
        union(a, b);
        continue;
      }
      summary.candidatePairs++;
      if (cfg.verifyThreshold !== null) {
        const key = a * N + b;
        let ok = verified.get(key);
        if (ok === undefined) {
          ok = estimatedJaccard(sigReaders[rec[0]!]!.at(rec[1]!), sigReaders[rec[2]!]!.at(rec[3]!)) >= cfg.verifyThreshold;
          verified.set(key, ok);
        }
        if (!ok) {
          summary.rejectedByVerification++;
          continue;
        }
      }
      union(a, b);
    }
    r.close();
  }
  for (const r of sigReaders) r?.close();
  const isRoot = new Uint8Array(N);
  for (let i = 0; i < numShards; i++) {
    const rows: number[] = [];
    for (let d = 0; d < offsets[i + 1]! - offsets[i]!; d++) {
      const g = offsets[i]! + d;
      const root = find(g);
      if (root === g) continue;
      if (!isRoot[root]) {
        isRoot[root] = 1;
        summary.clusters++;
      }
      let ks = 0;
      while (offsets[ks + 1]! <= root) ks++;
      const reason = findExact(g) !== g ? REASON_EXACT : REASON_NEAR;
      if (reason === REASON_EXACT) summary.removedExact++;
      else summary.removedNear++;
      rows.push(d, reason, ks, root - offsets[ks]!);
    }
    writeRecords(P.remove(i), Uint32Array.from(rows), 4, false);
  }
  writeJsonAtomic(P.summary, { ...summary, seconds: (performance.now() - t0) / 1000 });
  markDone(P.clusterDone);
  return summary;
}

export function readClusterSummary(workDir: string): ClusterSummary | undefined {
  const p = dedupPaths(workDir).summary;
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as ClusterSummary) : undefined;
}

/** Removal list of one shard: doc index -> [reason, keeper shard, keeper doc]. */
export function readRemovals(workDir: string, shard: number): Map<number, [string, number, number]> {
  const r = new RecordReader(dedupPaths(workDir).remove(shard));
  const m = new Map<number, [string, number, number]>();
  for (let rec = r.current(); rec !== undefined; r.advance(), rec = r.current()) {
    m.set(rec[0]!, [rec[1] === REASON_EXACT ? 'dedup_exact' : 'dedup_minhash', rec[2]!, rec[3]!]);
  }
  r.close();
  return m;
}

/** Stage 4 (map over input shards): write the kept documents; removed ones go to the exclusion sink. */
export async function dedupFilterStage(
  inputs: string[],
  workDir: string,
  outPath: (i: number) => string,
  excludedPath: (i: number) => string,
  o: StageOptions,
): Promise<ShardReport[]> {
  const P = dedupPaths(workDir);
  requireDone(P.clusterDone, 'dedup cluster stage');
  const out: ShardReport[] = [];
  for (const i of myShards(inputs.length, o.rank, o.worldSize)) {
    if (isDone(outPath(i))) continue;
    const t0 = performance.now();
    const rep = newShardReport('dedup-filter', shardName(i));
    const st = step(rep, 'dedup');
    const removals = readRemovals(workDir, i);
    const kept = new JsonlGzWriter(outPath(i));
    const excluded = new JsonlGzWriter(excludedPath(i));
    try {
      let d = 0;
      for await (const doc of readShard(inputs[i]!)) {
        const bytes = utf8Length(doc.text);
        addCount(rep.in, 1, bytes);
        addCount(st.in, 1, bytes);
        const rm = removals.get(d);
        if (rm === undefined) {
          await kept.write(documentRecord(doc));
          addCount(rep.out, 1, bytes);
          addCount(st.out, 1, bytes);
          const src = sourceOf(doc);
          const c = rep.sources[src] ?? { docs: 0, bytes: 0 };
          addCount(c, 1, bytes);
          rep.sources[src] = c;
        } else {
          addRemoved(st, rm[0], bytes);
          const ex: Document = { ...doc, metadata: { ...doc.metadata, excluded_by: { stage: 'dedup', filter: rm[0], reason: rm[0], duplicate_of: `${shardName(rm[1])}:${rm[2]}` } } };
          await excluded.write(documentRecord(ex));
        }
        d++;
      }
      await excluded.close();
      await kept.close();
    } catch (e) {
      kept.abort();
      excluded.abort();
      throw e;
    }
    rep.seconds = (performance.now() - t0) / 1000;
    markDone(outPath(i));
    o.onShardDone?.(rep);
    out.push(rep);
  }
  return out;
}
