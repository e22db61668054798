// Builds the curation benchmark corpus in a temp directory: every text in /work/shared/data and the Python
// standard library as base documents, then planted duplicates (exact copies with case/whitespace changes and
// near-duplicates at known word edit rates), shuffled into JSONL.gz shards. Not part of lmforge itself.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parse as parseCsv } from 'csv-parse/sync';
import { JsonlGzWriter, documentRecord } from '../src/data/writers.js';
import type { Document } from '../src/data/document.js';
import { editWords, exactVariant } from '../src/data/dedup/planted.js';
import { mulberry32 } from '../src/util/mulberry32.js';

export interface PlantedGroup {
  base: string;
  members: { id: string; kind: 'exact' | 'near'; rate: number }[];
}

export interface Corpus {
  shards: string[];
  docs: number;
  bytes: number;
  baseDocs: number;
  groups: PlantedGroup[];
  /** id -> [shard, index in shard] */
  where: Map<string, [number, number]>;
  texts: Map<string, string>;
}

function strings(v: unknown, out: string[]): void {
  if (typeof v === 'string') {
    if (v.trim() !== '') out.push(v);
  } else if (Array.isArray(v)) for (const x of v) strings(x, out);
  else if (typeof v === 'object' && v !== null) for (const x of Object.values(v)) strings(x, out);
}

/** One document per record (its string fields joined by newlines), per CSV row, per text paragraph, per .py file. */
export function baseTexts(sharedDir: string, pythonDir: string): { source: string; text: string }[] {
  const out: { source: string; text: string }[] = [];
  const walk = (dir: string, visit: (path: string) => void): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) {
        if (name !== '__pycache__' && name !== 'fashion-mnist' && name !== 'gpt2-tokenizer') walk(p, visit);
      } else visit(p);
    }
  };
  walk(sharedDir, (p) => {
    const source = p.slice(sharedDir.length + 1).split('/')[0]!;
    const raw = (): string => (p.endsWith('.gz') ? gunzipSync(readFileSync(p)).toString() : readFileSync(p, 'utf8'));
    const add = (rec: unknown): void => {
      const parts: string[] = [];
      strings(rec, parts);
      if (parts.length > 0) out.push({ source, text: parts.join('\n') });
    };
    if (/\.jsonl(\.gz)?$/.test(p)) {
      for (const line of raw().split('\n')) if (line.trim() !== '') add(JSON.parse(line));
    }
    else if (/\.json(\.gz)?$/.test(p)) {
      const j = JSON.parse(raw()) as unknown;
      const recs = Array.isArray(j) ? j : typeof j === 'object' && j !== null && 'data' in j ? ((j as { data: { paragraphs?: unknown[] }[] }).data.flatMap((a) => a.paragraphs ?? [a])) : [j];
      for (const r of recs) add(r);
    } else if (p.endsWith('.csv')) for (const row of parseCsv(raw(), { relax_column_count: true }) as string[][]) add(row);
    else if (p.endsWith('.txt')) {
      for (const para of raw().split(/\n\s*\n/)) if (para.trim() !== '') out.push({ source, text: para.trim() });
    }
  });
  walk(pythonDir, (p) => {
    if (p.endsWith('.py')) out.push({ source: 'python-stdlib', text: readFileSync(p, 'utf8') });
  });
  return out;
}

/**
 * Writes the corpus: base documents, an exact copy of `exactFraction` of them, and `variants` near-duplicates of
 * each base document of at least `minWords` words, with word edit rates drawn uniformly from [0, maxRate];
 * repeated until `targetBytes` is reached (extra rounds plant more variants). Shuffled over `numShards` shards.
 */
export async function buildCorpus(
  dir: string,
  o: { sharedDir: string; pythonDir: string; numShards: number; targetBytes: number; exactFraction: number; maxRate: number; minWords: number; seed: number },
): Promise<Corpus> {
  const rand = mulberry32(o.seed);
  const base = baseTexts(o.sharedDir, o.pythonDir);
  const docs: Document[] = base.map((b, i) => ({ id: `b${i}`, text: b.text, metadata: { source: b.source } }));
  let bytes = docs.reduce((a, d) => a + Buffer.byteLength(d.text), 0);
  const vocab = base.slice(0, 2000).flatMap((b) => b.text.split(/\s+/)).filter((w) => /^[a-z]{3,}$/.test(w));
  const groups = new Map<string, PlantedGroup>();
  const group = (id: string): PlantedGroup => {
    let g = groups.get(id);
    if (g === undefined) {
      g = { base: id, members: [] };
      groups.set(id, g);
    }
    return g;
  };
  const texts = new Map(docs.map((d) => [d.id, d.text]));
  let n = 0;
  for (const d of docs.slice(0, base.length)) {
    if (rand() < o.exactFraction) {
      const id = `x${n++}`;
      const text = exactVariant(d.text, rand);
      docs.push({ id, text, metadata: { ...d.metadata, planted: 'exact', of: d.id } });
      group(d.id).members.push({ id, kind: 'exact', rate: 0 });
      bytes += Buffer.byteLength(text);
    }
  }
  const eligible = docs.slice(0, base.length).filter((d) => d.text.split(/\s+/).length >= o.minWords);
  while (bytes < o.targetBytes) {
    for (const d of eligible) {
      if (bytes >= o.targetBytes) break;
      const rate = rand() * o.maxRate;
      const id = `n${n++}`;
      const text = editWords(d.text, rate, vocab, rand);
      docs.push({ id, text, metadata: { ...d.metadata, planted: 'near', of: d.id, rate } });
      group(d.id).members.push({ id, kind: 'near', rate });
      texts.set(id, text);
      bytes += Buffer.byteLength(text);
    }
  }
  for (let i = docs.length - 1; i > 0; i--) {
    const k = Math.floor(rand() * (i + 1));
    [docs[i], docs[k]] = [docs[k]!, docs[i]!];
  }
  const shards = Array.from({ length: o.numShards }, (_, s) => join(dir, 'corpus', `${String(s).padStart(5, '0')}.jsonl.gz`));
  const writers = shards.map((p) => new JsonlGzWriter(p, 1));
  const where = new Map<string, [number, number]>();
  const counts = new Array<number>(o.numShards).fill(0);
  for (let i = 0; i < docs.length; i++) {
    const s = i % o.numShards;
    const d = docs[i]!;
    where.set(d.id, [s, counts[s]!++]);
    await writers[s]!.write(documentRecord(d));
  }
  for (const w of writers) await w.close();
  return { shards, docs: docs.length, bytes, baseDocs: base.length, groups: [...groups.values()], where, texts };
}
