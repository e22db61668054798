// Token shards for the code model (issue 14): a BPE with the code-aware split pattern trained on the curated training
// files only (data/code-corpus/curated/deduped, written by `lmforge curate -c configs/curate-code.yaml`), then
// train.bin from those files and val.bin from the fixed held-out files (heldout.jsonl, never curated or trained on),
// one <|endoftext|> after each file. Not the corpus builder (code-corpus.ts) and not the trainer.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { countPreTokens, trainBpe } from '../tokenizers/bpe-trainer.js';
import { saveTokenizer } from '../tokenizers/format.js';
import { TokenFileWriter, dtypeForVocab } from '../tokenizers/token-file.js';
import { TOKENIZER_COPY } from '../tokenizers/tokenize-files.js';
import type { BpeTokenizer } from '../tokenizers/bpe.js';
import { UserError } from '../util/errors.js';
import { ensureDir } from '../util/fs.js';
import { readShard } from './readers.js';
import { writeJsonAtomic } from './writers.js';
import { CODE_HELDOUT_RULE } from './code-corpus.js';
import { loadConfig } from './config.js';
import { buildChain, runChain } from './pipeline.js';
import { newShardReport } from './report.js';
import { MinHasher, estimatedJaccard } from './dedup/minhash.js';

/** The curation config whose file filters the held-out files pass too (dedup, a cross-file decision, is not applied). */
export const CODE_CURATE_CONFIG = 'configs/curate-code.yaml';

export interface CodeFile {
  id: string;
  text: string;
  /** The file on this machine (held-out files; `lmforge eval --tasks stdlib-bpb --data split.json` reads them). */
  path?: string;
}

/** The curated training files, shard by shard in order: deduped/ when dedup ran, else filtered/. */
export async function readCuratedFiles(corpusDir: string): Promise<CodeFile[]> {
  const dir = ['deduped', 'filtered'].map((d) => join(corpusDir, 'curated', d)).find((d) => existsSync(d));
  if (!dir) throw new UserError(`${corpusDir}/curated: no deduped/ or filtered/ shards; run \`lmforge curate --config configs/curate-code.yaml\` first`);
  const shards = readdirSync(dir).filter((f) => f.endsWith('.jsonl.gz')).sort();
  if (shards.length === 0) throw new UserError(`${dir}: no .jsonl.gz shards`);
  const out: CodeFile[] = [];
  for (const s of shards) for await (const d of readShard(join(dir, s))) out.push({ id: d.id, text: d.text });
  return out;
}

/** The fixed held-out files (heldout.jsonl of scripts/code-corpus.sh); a malformed line names the file and line. */
export function readHeldoutFiles(corpusDir: string): CodeFile[] {
  const path = join(corpusDir, 'heldout.jsonl');
  if (!existsSync(path)) throw new UserError(`${path} does not exist; build the corpus with scripts/code-corpus.sh`);
  const out: CodeFile[] = [];
  readFileSync(path, 'utf8').split('\n').forEach((line, i) => {
    if (line === '') return;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new UserError(`${path}:${i + 1}: not JSON (${(e as Error).message})`, { cause: e });
    }
    const r = rec as { id?: unknown; text?: unknown; path?: unknown };
    if (typeof r.text !== 'string' || typeof r.id !== 'string' || typeof r.path !== 'string') throw new UserError(`${path}:${i + 1}: expected string fields "id", "text" and "path"`);
    out.push({ id: r.id, text: r.text, path: r.path });
  });
  return out;
}

/**
 * The held-out files that pass the curation config's filter chain (the same per-file rules as the training files:
 * generated files, line lengths, ...), so the held-out set measures code like the code trained on; the rest are
 * returned with the rule that excluded them. Deterministic: the set depends only on the path hash and the rules.
 */
export function filterHeldout(files: readonly CodeFile[], curateConfig: string): { kept: CodeFile[]; excluded: { id: string; reason: string }[] } {
  const chain = buildChain(loadConfig(curateConfig));
  const rep = newShardReport('heldout', 'heldout');
  const kept: CodeFile[] = [];
  const excluded: { id: string; reason: string }[] = [];
  for (const f of files) {
    const r = runChain(chain, { id: f.id, text: f.text, metadata: f.path === undefined ? {} : { path: f.path } }, rep);
    if ('doc' in r) kept.push({ ...f, text: r.doc.text });
    else excluded.push({ id: f.id, reason: String((r.excluded.metadata.excluded_by as { reason: string }).reason) });
  }
  return { kept, excluded };
}

/**
 * Decontamination: the training files whose MinHash Jaccard estimate (dedup's 112 hashes over word 5-grams) with
 * some held-out file is at least `threshold` — vendored copies such as setuptools/_vendor/packaging beside the
 * packaging package — are removed from training, so the held-out set stays fixed and unseen.
 */
export function decontaminate(train: readonly CodeFile[], heldout: readonly CodeFile[], threshold = 0.7): { train: CodeFile[]; removed: { id: string; heldout: string; jaccard: number }[] } {
  const hasher = new MinHasher();
  const held = heldout.map((f) => ({ id: f.id, sig: hasher.signature(f.text) }));
  const kept: CodeFile[] = [];
  const removed: { id: string; heldout: string; jaccard: number }[] = [];
  for (const f of train) {
    const sig = hasher.signature(f.text);
    let best = { id: '', jaccard: 0 };
    for (const h of held) {
      const j = estimatedJaccard(sig, h.sig);
      if (j > best.jaccard) best = { id: h.id, jaccard: j };
    }
    if (best.jaccard >= threshold) removed.push({ id: f.id, heldout: best.id, jaccard: best.jaccard });
    else kept.push(f);
  }
  return { train: kept, removed };
}

/** A BPE with the given split pattern trained on the files (one <|endoftext|> special token, min frequency 2). */
export function trainCodeBpe(files: readonly CodeFile[], vocabSize: number, pattern = 'code', onProgress?: (done: number, total: number) => void): BpeTokenizer {
  const counts = new Map<string, number>();
  for (const f of files) countPreTokens(f.text, counts, pattern);
  return trainBpe(counts, { vocabSize, minFrequency: 2, specialTokens: ['<|endoftext|>'], pattern, ...(onProgress ? { onProgress } : {}) });
}

function writeTokens(path: string, tok: BpeTokenizer, files: readonly CodeFile[]): { tokens: number; bytes: number } {
  const eot = tok.specialTokens.get('<|endoftext|>')!;
  const w = new TokenFileWriter(path, dtypeForVocab(tok.vocabSize));
  let bytes = 0;
  try {
    for (const f of files) {
      w.write(tok.encode(f.text, { allowedSpecial: 'none' }));
      w.write([eot]);
      bytes += Buffer.byteLength(f.text, 'utf8');
    }
    w.close();
  } catch (e) {
    w.abort();
    throw e;
  }
  return { tokens: w.count, bytes };
}

export interface CodeTokensResult {
  vocabSize: number;
  trainFiles: number;
  valFiles: number;
  trainTokens: number;
  valTokens: number;
  trainBytes: number;
  valBytes: number;
}

/**
 * Writes outDir/{train.bin, val.bin, meta.json, tokenizer.lmf.json} for `lmforge train` (task next-token), and
 * split.json (the held-out paths, and those the filters excluded with the reason) for
 * `lmforge eval --tasks stdlib-bpb --data outDir/split.json`. val.bin holds the held-out files that pass the
 * curation config's file filters (null: all of them).
 */
export async function prepareCodeTokens(
  corpusDir: string,
  outDir: string,
  vocabSize: number,
  log: (line: string) => void = () => undefined,
  curateConfig: string | null = CODE_CURATE_CONFIG,
): Promise<CodeTokensResult> {
  const curated = await readCuratedFiles(corpusDir);
  const all = readHeldoutFiles(corpusDir);
  const { kept: val, excluded } = curateConfig === null ? { kept: all, excluded: [] } : filterHeldout(all, curateConfig);
  if (val.length === 0) throw new UserError(`${corpusDir}/heldout.jsonl: no held-out file passes the filters of ${curateConfig}`);
  log(`code-tokens: ${val.length} of ${all.length} held-out files pass the file filters of ${curateConfig ?? '(none)'}`);
  const { train, removed } = decontaminate(curated, val);
  log(`code-tokens: ${removed.length} training files removed as (near-)copies of held-out files: ${removed.map((r) => r.id).join(', ') || 'none'}`);
  ensureDir(outDir);
  const t0 = performance.now();
  const tok = trainCodeBpe(train, vocabSize);
  saveTokenizer(tok, join(outDir, TOKENIZER_COPY));
  log(`code-tokens: BPE (pattern code) of ${tok.vocabSize} tokens on ${train.length} curated files in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  const t = writeTokens(join(outDir, 'train.bin'), tok, train);
  const v = writeTokens(join(outDir, 'val.bin'), tok, val);
  const meta = {
    vocab_size: tok.vocabSize, tokenizer: { type: 'file', file: TOKENIZER_COPY }, source: `${corpusDir} (curated train files; held-out files as val)`,
    split: CODE_HELDOUT_RULE, heldout_filters: curateConfig, heldout_excluded: excluded.length, decontaminated: removed.length, train_files: train.length, val_files: val.length, train_tokens: t.tokens, val_tokens: v.tokens,
    train_bytes: t.bytes, val_bytes: v.bytes, val_bytes_per_token: v.bytes / v.tokens,
  };
  writeJsonAtomic(join(outDir, 'meta.json'), meta);
  // The held-out files by path, in the split.json shape the bits-per-byte eval task reads (a `val` list).
  writeJsonAtomic(join(outDir, 'split.json'), { rule: CODE_HELDOUT_RULE, filters: curateConfig, val: val.map((f) => f.path), excluded, decontaminated: removed, train_ids: train.map((f) => f.id) });
  log(`code-tokens: ${t.tokens} train tokens (${(t.bytes / 1e6).toFixed(1)} MB, ${(t.bytes / t.tokens).toFixed(2)} bytes/token), ${v.tokens} val tokens (${val.length} held-out files) → ${outDir}`);
  return { vocabSize: tok.vocabSize, trainFiles: train.length, valFiles: val.length, trainTokens: t.tokens, valTokens: v.tokens, trainBytes: t.bytes, valBytes: v.bytes };
}
