// Runs the curation stages of a validated config over input shards: train-scorer (reduce), filter (map over input
// files), the four dedup stages, and mix (map). Each map task owns shards i with i % worldSize === rank, skips
// shards whose completion marker exists, writes atomically, and leaves a JSON report per shard.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Document, DocumentFilter, DocumentTransform } from './document.js';
import { sourceOf, utf8Length } from './document.js';
import { BadRecordLog, expandPaths, formatFromPath, readDocuments, readShard } from './readers.js';
import type { InputFormat, ReadSpec } from './readers.js';
import { JsonlGzWriter, documentRecord, doneWith, isDone, markDone, writeJsonAtomic } from './writers.js';
import { Cleaner } from './clean.js';
import { PiiScrubber } from './pii.js';
import { GopherQualityFilter, GopherRepetitionFilter } from './filters/gopher.js';
import { C4Filter } from './filters/c4.js';
import { FineWebFilter } from './filters/fineweb.js';
import { CodeAlnumFilter, CodeCommentOnlyFilter, CodeGeneratedFilter, CodeLineLengthFilter } from './filters/code.js';
import { LanguageFilter } from './langid.js';
import { HarmfulContentFilter } from './harmful.js';
import { CounterfactualAugmenter } from './cda.js';
import { KneserNeyLM } from './scoring/kneser-ney.js';
import { ScoreFilter, createScorer, quantile } from './scoring/scorer.js';
import type { DocumentScorer } from './scoring/scorer.js';
import { bucketStage, clusterStage, dedupFilterStage, myShards, shardName, signatureStage } from './dedup/stages.js';
import { copiesOf, formatPlan, planMix, qualityWeight } from './mix.js';
import type { PlanRow } from './mix.js';
import { addCount, addRemoved, formatReport, mergeReports, newShardReport, step } from './report.js';
import type { ShardReport } from './report.js';
import type { CurateConfig, SourceConfig, StageName } from './config.js';
import { UserError } from '../util/errors.js';
import { ensureDir } from '../util/fs.js';

export interface RunOptions {
  rank: number;
  worldSize: number;
  /** Documents per input file (trying a config on a sample). */
  limit: number | null;
  /** Run the filter chain on a sample and print the report without writing anything. */
  dryRun: boolean;
  log: (line: string) => void;
}

export interface InputFile {
  index: number;
  source: SourceConfig;
  path: string;
  format: InputFormat;
}

/** All input files, sources in config order, files sorted within a source; the index is the shard number. */
export function listInputs(cfg: CurateConfig): InputFile[] {
  const out: InputFile[] = [];
  for (const s of cfg.sources) {
    const files = expandPaths(s.paths, s.extensions);
    if (files.length === 0) throw new UserError(`sources.${s.name}: no input files under ${s.paths.join(', ')}`);
    for (const path of files) out.push({ index: out.length, source: s, path, format: s.format === 'auto' ? formatFromPath(path) : s.format });
  }
  return out;
}

export function outPaths(cfg: CurateConfig) {
  const o = cfg.output;
  return {
    filtered: (i: number) => join(o, 'filtered', `${shardName(i)}.jsonl.gz`),
    excludedFilter: (i: number) => join(o, 'excluded', `filter-${shardName(i)}.jsonl.gz`),
    dedupWork: join(o, 'dedup'),
    deduped: (i: number) => join(o, 'deduped', `${shardName(i)}.jsonl.gz`),
    excludedDedup: (i: number) => join(o, 'excluded', `dedup-${shardName(i)}.jsonl.gz`),
    mixed: (i: number) => join(o, 'mixed', `${shardName(i)}.jsonl.gz`),
    mixCounts: join(o, 'mix', 'counts.json'),
    scoreThreshold: join(o, 'scorer', 'threshold.json'),
    reports: (stage: string) => join(o, 'reports', stage),
    report: (stage: string, shard: string) => join(o, 'reports', stage, `${shard}.json`),
  };
}

type ChainStep = { name: string; transform: DocumentTransform } | { name: string; filter: DocumentFilter };

export interface Chain {
  steps: ChainStep[];
  cleaner: Cleaner | undefined;
  pii: PiiScrubber | undefined;
}

/** The FineWeb-style order: clean, code rules, language, repetition, quality, C4, FineWeb, harmful, model score, PII. */
export function buildChain(cfg: CurateConfig, scorer?: { scorer: DocumentScorer; threshold: number | null; field: string }): Chain {
  const steps: ChainStep[] = [];
  const cleaner = cfg.clean ? new Cleaner(cfg.clean) : undefined;
  if (cleaner) steps.push({ name: 'clean', transform: cleaner });
  const f = cfg.filters;
  // Code rules first: they are cheap, and a generated or data-only file needs no prose statistics.
  if (f.codeGenerated) steps.push({ name: 'code_generated', filter: new CodeGeneratedFilter(f.codeGenerated) });
  if (f.codeLineLength) steps.push({ name: 'code_line_length', filter: new CodeLineLengthFilter(f.codeLineLength) });
  if (f.codeAlnum) steps.push({ name: 'code_alnum', filter: new CodeAlnumFilter(f.codeAlnum) });
  if (f.codeCommentOnly) steps.push({ name: 'code_comment_only', filter: new CodeCommentOnlyFilter(f.codeCommentOnly) });
  if (f.language) steps.push({ name: 'language', filter: new LanguageFilter(f.language) });
  if (f.gopherRepetition) steps.push({ name: 'gopher_repetition', filter: new GopherRepetitionFilter(f.gopherRepetition) });
  if (f.gopherQuality) steps.push({ name: 'gopher_quality', filter: new GopherQualityFilter(f.gopherQuality) });
  if (f.c4) steps.push({ name: 'c4', filter: new C4Filter(f.c4) });
  if (f.fineweb) steps.push({ name: 'fineweb', filter: new FineWebFilter(f.fineweb) });
  if (f.harmful) steps.push({ name: 'harmful', filter: new HarmfulContentFilter(f.harmful) });
  if (scorer) steps.push({ name: 'scorer', filter: new ScoreFilter(scorer.scorer, scorer.threshold, scorer.field) });
  const pii = cfg.pii ? new PiiScrubber(cfg.pii) : undefined;
  if (pii) steps.push({ name: 'pii', transform: pii });
  return { steps, cleaner, pii };
}

/** Runs one document through the chain, recording per-step counts; returns the kept document or the exclusion. */
export function runChain(chain: Chain, doc: Document, rep: ShardReport): { doc: Document } | { excluded: Document } {
  let d = doc;
  for (const s of chain.steps) {
    const st = step(rep, s.name);
    const bytes = utf8Length(d.text);
    addCount(st.in, 1, bytes);
    const t0 = performance.now();
    if ('transform' in s) {
      d = s.transform.apply(d);
      st.seconds += (performance.now() - t0) / 1000;
      addCount(st.out, 1, utf8Length(d.text));
      continue;
    }
    const r = s.filter.apply(d);
    st.seconds += (performance.now() - t0) / 1000;
    if (!r.keep) {
      addRemoved(st, r.reason, bytes);
      const excludedBy = { stage: 'filter', filter: s.name, reason: r.reason, ...(r.value === undefined ? {} : { value: r.value }) };
      return { excluded: { ...d, metadata: { ...d.metadata, excluded_by: excludedBy } } };
    }
    addCount(st.out, 1, utf8Length(d.text));
  }
  return { doc: d };
}

function readSpec(cfg: CurateConfig, f: InputFile, limit: number | null): ReadSpec {
  const spec: ReadSpec = { path: f.path, format: f.format, source: f.source.name, textField: f.source.textField, split: f.source.split, onBadRecord: cfg.onBadRecord, invalidUtf8: cfg.invalidUtf8 };
  if (f.source.idField !== undefined) spec.idField = f.source.idField;
  if (limit !== null) spec.limit = limit;
  return spec;
}

/** Trains the Kneser-Ney model on the reference corpus (rank 0; skipped when the model file exists). */
export async function trainScorerStage(cfg: CurateConfig, o: RunOptions): Promise<void> {
  const s = cfg.scorer;
  if (!s || !s.train) throw new UserError('train-scorer: scorer.train is not configured');
  if (s.kind !== 'kneser-ney') throw new UserError(`train-scorer: only scorer.kind "kneser-ney" can be trained here, got "${s.kind}"`);
  if (o.rank !== 0 || existsSync(s.model)) {
    o.log(`train-scorer: ${existsSync(s.model) ? `model ${s.model} exists, skipping` : 'runs on rank 0 only'}`);
    return;
  }
  const t0 = performance.now();
  const lines: string[] = [];
  const log = new BadRecordLog();
  let docs = 0;
  for (const path of expandPaths(s.train.paths)) {
    const spec: ReadSpec = { path, format: s.train.format === 'auto' ? formatFromPath(path) : s.train.format, source: 'reference', textField: s.train.textField, split: 'paragraph', onBadRecord: cfg.onBadRecord };
    for await (const d of readDocuments(spec, log)) {
      if (s.train.maxDocs !== null && docs >= s.train.maxDocs) break;
      docs++;
      const text = cfg.clean ? new Cleaner(cfg.clean).cleanText(d.text) : d.text;
      for (const l of text.split('\n')) if (l.trim() !== '') lines.push(l);
    }
  }
  if (lines.length === 0) throw new UserError(`train-scorer: no text found under ${s.train.paths.join(', ')}`);
  const lm = KneserNeyLM.train(lines, s.train.order);
  lm.save(s.model);
  o.log(`train-scorer: ${s.train.order}-gram Kneser-Ney on ${docs} documents / ${lines.length} lines in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${s.model}`);
}

/** The score cut: the configured threshold, or the keep_fraction quantile over a calibration sample (cached). */
async function scoreCut(cfg: CurateConfig, scorer: DocumentScorer, inputs: InputFile[], o: RunOptions): Promise<number | null> {
  const s = cfg.scorer!;
  if (s.keepFraction === null) return s.threshold;
  const P = outPaths(cfg);
  if (existsSync(P.scoreThreshold)) return (JSON.parse(readFileSync(P.scoreThreshold, 'utf8')) as { threshold: number }).threshold;
  // Every rank reads the same documents (the first calibrationDocs / files of every input file), so every rank
  // computes the same cut and the sample covers every source.
  // As in CCNet, the cut is a quantile among documents that pass the other filters (the chain before the scorer).
  const scores: number[] = [];
  const pre = buildChain({ ...cfg, pii: null });
  const scratch = newShardReport('calibration', 'sample');
  const log = new BadRecordLog();
  const perFile = Math.max(1, Math.ceil(s.calibrationDocs / inputs.length));
  for (const f of inputs) {
    for await (const d of readDocuments(readSpec(cfg, f, perFile), log)) {
      const r = runChain(pre, d, scratch);
      if ('doc' in r) scores.push(scorer.score(r.doc.text));
    }
  }
  const q = scorer.lowerIsBetter ? s.keepFraction : 1 - s.keepFraction;
  const threshold = quantile(scores, q);
  if (!o.dryRun) writeJsonAtomic(P.scoreThreshold, { threshold, keepFraction: s.keepFraction, calibrationDocs: scores.length });
  o.log(`scorer: keep_fraction ${s.keepFraction} over ${scores.length} calibration documents that pass the other filters -> ${scorer.name} cut ${threshold.toFixed(2)}`);
  return threshold;
}

async function makeScorer(cfg: CurateConfig): Promise<DocumentScorer | undefined> {
  const s = cfg.scorer;
  if (!s) return undefined;
  if (s.kind === 'kneser-ney' && !existsSync(s.model)) {
    throw new UserError(`scorer.model: ${s.model} does not exist; run the train-scorer stage first (needs scorer.train)`);
  }
  return createScorer(s.kind, { ...s.options, model: s.model });
}

function saveReport(cfg: CurateConfig, rep: ShardReport): void {
  writeJsonAtomic(outPaths(cfg).report(rep.stage, rep.shard), rep);
}

/** Stage filter: clean, filter, score and scrub every input file this rank owns. */
export async function filterStage(cfg: CurateConfig, o: RunOptions): Promise<ShardReport[]> {
  const inputs = listInputs(cfg);
  const P = outPaths(cfg);
  const scorer = await makeScorer(cfg);
  const cut = scorer ? await scoreCut(cfg, scorer, inputs, o) : null;
  const chain = buildChain(cfg, scorer ? { scorer, threshold: cut, field: cfg.scorer!.field } : undefined);
  const limit = o.limit ?? (o.dryRun ? 1000 : null);
  const cda = cfg.cda ? new CounterfactualAugmenter(cfg.cda) : undefined;
  const out: ShardReport[] = [];
  for (const i of myShards(inputs.length, o.rank, o.worldSize)) {
    const f = inputs[i]!;
    const cdaBefore = cda ? { ...cda.counts } : undefined;
    // A shard made from a --limit sample is redone by a full run (and vice versa).
    const note = limit === null ? '' : `limit=${limit}`;
    if (!o.dryRun && doneWith(P.filtered(i), note)) continue;
    const t0 = performance.now();
    const rep = newShardReport('filter', shardName(i));
    const log = new BadRecordLog();
    const kept = o.dryRun ? undefined : new JsonlGzWriter(P.filtered(i));
    const excluded = o.dryRun ? undefined : new JsonlGzWriter(P.excludedFilter(i));
    const before = chain.pii ? { ...chain.pii.counts } : undefined;
    const boiler = chain.cleaner?.removedLines ?? 0;
    try {
      let lastLog = t0;
      for await (const doc of readDocuments(readSpec(cfg, f, limit), log)) {
        const bytes = utf8Length(doc.text);
        addCount(rep.in, 1, bytes);
        if ((rep.in.docs & 255) === 0 && performance.now() - lastLog > 10_000) {
          lastLog = performance.now();
          const s = (lastLog - t0) / 1000;
          o.log(`filter ${shardName(i)} (${f.path}): ${rep.in.docs} docs, ${(rep.in.bytes / 1e6).toFixed(1)} MB, ${(rep.in.bytes / 1e6 / s).toFixed(2)} MB/s, kept ${rep.out.docs}`);
        }
        const r = runChain(chain, doc, rep);
        if ('doc' in r) {
          const b = utf8Length(r.doc.text);
          addCount(rep.out, 1, b);
          const c = rep.sources[f.source.name] ?? { docs: 0, bytes: 0 };
          addCount(c, 1, b);
          rep.sources[f.source.name] = c;
          // Counterfactual augmentation: the kept document, swapped in place or followed by its swapped copy.
          const docs = cda ? cda.augment(r.doc) : [r.doc];
          for (const d of docs.slice(1)) addCount(rep.out, 1, utf8Length(d.text));
          for (const d of docs) await kept?.write(documentRecord(d));
        } else {
          await excluded?.write(documentRecord(r.excluded));
        }
      }
      await kept?.close();
      await excluded?.close();
    } catch (e) {
      kept?.abort();
      excluded?.abort();
      throw e;
    }
    rep.badRecords = { count: log.count, samples: log.samples };
    if (chain.pii && before) {
      rep.extra.pii_email = chain.pii.counts.email - before.email;
      rep.extra.pii_phone = chain.pii.counts.phone - before.phone;
      rep.extra.pii_ip = chain.pii.counts.ip - before.ip;
    }
    if (chain.cleaner) rep.extra.boilerplate_lines = chain.cleaner.removedLines - boiler;
    if (cda && cdaBefore) {
      rep.extra.cda_augmented = cda.counts.augmented - cdaBefore.augmented;
      rep.extra.cda_swapped_words = cda.counts.swaps - cdaBefore.swaps;
    }
    if (limit !== null) rep.extra.files_read_with_limit = 1;
    rep.seconds = (performance.now() - t0) / 1000;
    if (!o.dryRun) {
      saveReport(cfg, rep);
      markDone(P.filtered(i), note);
    }
    o.log(`filter ${shardName(i)} done: ${rep.in.docs} -> ${rep.out.docs} docs in ${rep.seconds.toFixed(1)} s`);
    out.push(rep);
  }
  return out;
}

/** The shards a stage after filtering reads: deduped ones when dedup ran, else filtered. */
function stageInputs(cfg: CurateConfig, after: 'filter' | 'dedup'): string[] {
  const n = listInputs(cfg).length;
  const P = outPaths(cfg);
  const path = after === 'dedup' ? P.deduped : P.filtered;
  const paths = Array.from({ length: n }, (_, i) => path(i));
  for (const p of paths) {
    if (!isDone(p)) throw new UserError(`${p} is not finished (no ${p}.done); run the ${after === 'dedup' ? 'dedup-filter' : 'filter'} stage for every rank first`);
  }
  return paths;
}

interface MixCounts {
  available: Record<string, number>;
  weightSum: Record<string, number>;
  docs: Record<string, number>;
}

async function mixCounts(cfg: CurateConfig, inputs: string[], o: RunOptions): Promise<MixCounts> {
  const P = outPaths(cfg);
  if (existsSync(P.mixCounts)) return JSON.parse(readFileSync(P.mixCounts, 'utf8')) as MixCounts;
  const m = cfg.mix!;
  const c: MixCounts = { available: {}, weightSum: {}, docs: {} };
  // Without quality weighting the per-source totals are already in the previous stage's shard reports, which
  // saves every rank a full read of the data.
  const prev = cfg.dedup ? 'dedup-filter' : 'filter';
  const dir = P.reports(prev);
  const reportCount = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')).length : 0;
  if (m.quality === null && reportCount === inputs.length) {
    const merged = collectReports(cfg, prev)!;
    for (const [s, cnt] of Object.entries(merged.sources)) {
      c.available[s] = m.unit === 'bytes' ? cnt.bytes : cnt.docs;
      c.weightSum[s] = cnt.docs;
      c.docs[s] = cnt.docs;
    }
    if (!o.dryRun) writeJsonAtomic(P.mixCounts, c);
    return c;
  }
  for (const path of inputs) {
    for await (const d of readShard(path)) {
      const s = sourceOf(d);
      c.available[s] = (c.available[s] ?? 0) + (m.unit === 'bytes' ? utf8Length(d.text) : 1);
      c.weightSum[s] = (c.weightSum[s] ?? 0) + qualityWeight(m.quality, d.metadata);
      c.docs[s] = (c.docs[s] ?? 0) + 1;
    }
  }
  if (!o.dryRun) writeJsonAtomic(P.mixCounts, c);
  return c;
}

/** Stage mix: plan from global counts, then write each owned shard's documents with their sampled copy counts. */
export async function mixStage(cfg: CurateConfig, o: RunOptions): Promise<{ plan: PlanRow[]; reports: ShardReport[] }> {
  const m = cfg.mix!;
  const inputs = stageInputs(cfg, cfg.dedup ? 'dedup' : 'filter');
  const counts = await mixCounts(cfg, inputs, o);
  const plan = planMix(counts.available, m);
  o.log(formatPlan(plan, m.unit, m.temperature));
  const byName = new Map(plan.map((r) => [r.source, r]));
  const P = outPaths(cfg);
  const reports: ShardReport[] = [];
  if (o.dryRun) return { plan, reports };
  for (const i of myShards(inputs.length, o.rank, o.worldSize)) {
    if (isDone(P.mixed(i))) continue;
    const t0 = performance.now();
    const rep = newShardReport('mix', shardName(i));
    const w = new JsonlGzWriter(P.mixed(i));
    try {
      for await (const d of readShard(inputs[i]!)) {
        const bytes = utf8Length(d.text);
        addCount(rep.in, 1, bytes);
        const s = sourceOf(d);
        const row = byName.get(s);
        if (row === undefined) continue;
        const mean = counts.weightSum[s]! / counts.docs[s]!;
        const rel = qualityWeight(m.quality, d.metadata) / mean;
        const cap = m.sources[s]?.maxEpochs ?? m.maxEpochs;
        const k = copiesOf(d.id, row.epochs, rel, cap, m.seed);
        for (let c = 0; c < k; c++) {
          await w.write(documentRecord(c === 0 ? d : { ...d, id: `${d.id}#${c}`, metadata: { ...d.metadata, epoch_copy: c } }));
          addCount(rep.out, 1, bytes);
          const sc = rep.sources[s] ?? { docs: 0, bytes: 0 };
          addCount(sc, 1, bytes);
          rep.sources[s] = sc;
        }
      }
      await w.close();
    } catch (e) {
      w.abort();
      throw e;
    }
    rep.seconds = (performance.now() - t0) / 1000;
    saveReport(cfg, rep);
    markDone(P.mixed(i));
    reports.push(rep);
  }
  return { plan, reports };
}

/** Realised shares of the finished mix shards next to the plan. */
export function formatRealised(plan: PlanRow[], merged: ShardReport, unit: 'documents' | 'bytes'): string {
  const val = (s: string): number => {
    const c = merged.sources[s];
    return c === undefined ? 0 : unit === 'bytes' ? c.bytes : c.docs;
  };
  const total = plan.reduce((a, r) => a + val(r.source), 0);
  const lines = plan.map((r) => {
    const v = val(r.source);
    return `${r.source.padEnd(16)} planned ${(100 * r.share).toFixed(1).padStart(5)}%  realised ${(total ? (100 * v) / total : 0).toFixed(1).padStart(5)}%  epochs ${(v / r.available).toFixed(2)} (planned ${r.epochs.toFixed(2)})`;
  });
  return `realised mixture (${merged.shard}, ${unit}):\n${lines.join('\n')}`;
}

/** Merges every shard report written so far for a stage. */
export function collectReports(cfg: CurateConfig, stage: string): ShardReport | undefined {
  const dir = outPaths(cfg).reports(stage);
  if (!existsSync(dir)) return undefined;
  const reps = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as ShardReport);
  return reps.length === 0 ? undefined : mergeReports(stage, reps);
}

function saveReports(cfg: CurateConfig, reps: ShardReport[]): void {
  for (const r of reps) saveReport(cfg, r);
}

/** Runs the selected stages in order for this rank and returns the merged report of each stage it touched. */
export async function runStages(cfg: CurateConfig, stages: StageName[], o: RunOptions): Promise<Record<string, ShardReport>> {
  const result: Record<string, ShardReport> = {};
  const P = outPaths(cfg);
  const so = { rank: o.rank, worldSize: o.worldSize };
  if (!o.dryRun) ensureDir(cfg.output, 'output directory (config key "output")'); // before any stage reads its inputs
  for (const stage of stages) {
    const t0 = performance.now();
    if (o.dryRun && stage !== 'filter') {
      o.log(`== stage ${stage}: skipped in a dry run (only the filter chain runs on the sample)`);
      continue;
    }
    o.log(`== stage ${stage} (rank ${o.rank}/${o.worldSize})${o.dryRun ? ' [dry run]' : ''}`);
    switch (stage) {
      case 'train-scorer':
        if (!o.dryRun) await trainScorerStage(cfg, o);
        break;
      case 'filter': {
        const reps = await filterStage(cfg, o);
        if (o.dryRun) result[stage] = mergeReports(stage, reps);
        break;
      }
      case 'dedup-signature':
        if (!o.dryRun) saveReports(cfg, await signatureStage(cfg.dedup!, stageInputs(cfg, 'filter'), P.dedupWork, so));
        break;
      case 'dedup-bucket':
        if (!o.dryRun) saveReports(cfg, bucketStage(cfg.dedup!, listInputs(cfg).length, P.dedupWork, so));
        break;
      case 'dedup-cluster':
        if (!o.dryRun) {
          const s = clusterStage(cfg.dedup!, listInputs(cfg).length, P.dedupWork, so);
          if (s) o.log(`dedup-cluster: ${JSON.stringify(s)}`);
        }
        break;
      case 'dedup-filter':
        if (!o.dryRun) saveReports(cfg, await dedupFilterStage(stageInputs(cfg, 'filter'), P.dedupWork, P.deduped, P.excludedDedup, so));
        break;
      case 'mix': {
        const { plan } = await mixStage(cfg, o);
        const merged = collectReports(cfg, 'mix');
        if (merged) o.log(formatRealised(plan, merged, cfg.mix!.unit));
        break;
      }
      default: {
        const never: never = stage;
        throw new Error(`unknown stage ${String(never)}`);
      }
    }
    if (!o.dryRun) {
      const merged = collectReports(cfg, stage);
      if (merged) {
        result[stage] = merged;
        writeJsonAtomic(join(cfg.output, 'reports', `${stage}.json`), merged);
      }
    }
    const r = result[stage];
    if (r) o.log(formatReport(r));
    o.log(`stage ${stage} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  return result;
}
