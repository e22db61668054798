// The BM25 index: an index directory holds manifest.json (format, version, analyzer, k1/b defaults, segment list)
// and immutable segment files, each a magic + version header followed by 8-byte-aligned sections (document lengths,
// stored passages, a sorted term dictionary, postings of (doc, tf)), read through mmap (src/core/native/mmap.ts).
// Adding passages writes a new segment; searches run over all segments with collection-wide statistics (N, avgdl,
// df summed over segments), so results do not depend on how the index was split; merge() rewrites them as one.
// Not the analyzer (analyzer.ts) nor the dense index (dense.ts).
//
// Scoring is Lucene's BM25 (as Pyserini): idf(t) = ln(1 + (N − df + 0.5)/(df + 0.5)),
// w(t, d) = idf · tf·(k1 + 1) / (tf + k1·(1 − b + b·|d|/avgdl)), summed over query terms (a repeated query term
// counts again). Unlike Lucene, document lengths are exact, not rounded to one byte, so scores can differ from
// Pyserini's in the third digit.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { mapFile } from '../core/native/mmap.js';
import { writeFileAtomic, writeFileAtomicParts } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { Analyzer, type AnalyzerOptions } from './analyzer.js';
import type { Passage } from './corpus.js';
import { TopK, type Hit } from './topk.js';

export const SEGMENT_MAGIC = 'LMFBM25\0';
export const SEGMENT_VERSION = 1;
export const MANIFEST_FORMAT = 'lmforge-bm25-index';
export const MANIFEST_VERSION = 1;
/** Pyserini's defaults (tuned on MS MARCO); Lucene's own are k1 = 1.2, b = 0.75. */
export const DEFAULT_K1 = 0.9;
export const DEFAULT_B = 0.4;

const HEADER_BYTES = 128;
const N_SECTIONS = 9;
// Section order in the file (offsets in the header, each 8-byte aligned).
const enum Sec { DocLen, DocOff, DocBytes, TermOff, TermBytes, PostOff, PostDoc, PostTf, Df }

export interface SegmentInfo {
  file: string;
  docs: number;
  tokens: number;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  analyzer: AnalyzerOptions;
  k1: number;
  b: number;
  segments: SegmentInfo[];
  /** Next segment number (names are never reused, so a reader of the old manifest keeps valid files). */
  next: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function align8(n: number): number {
  return (n + 7) & ~7;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

// ---- writing ----

/** One term's postings while a segment is built: doc numbers ascending, with term frequencies. */
interface Postings {
  docs: number[];
  tfs: number[];
}

/** Encodes a segment from analyzed passages (terms per passage) into the file's parts. */
function encodeSegment(passages: Passage[], terms: Map<string, Postings>, docLens: number[]): Uint8Array[] {
  const D = passages.length;
  const sortedTerms = [...terms.keys()].map((t) => ({ t, b: enc.encode(t) })).sort((x, y) => compareBytes(x.b, y.b));
  const T = sortedTerms.length;
  const docBlobs = passages.map((p) => enc.encode(JSON.stringify(p.title ? [p.id, p.text, p.title] : [p.id, p.text])));
  const docBytes = docBlobs.reduce((s, b) => s + b.length, 0);
  const termBytes = sortedTerms.reduce((s, x) => s + x.b.length, 0);
  let P = 0;
  for (const x of sortedTerms) P += terms.get(x.t)!.docs.length;
  const sizes = [4 * D, 8 * (D + 1), docBytes, 4 * (T + 1), termBytes, 8 * (T + 1), 4 * P, 4 * P, 4 * T];
  const offs: number[] = [];
  let at = HEADER_BYTES;
  for (const s of sizes) {
    offs.push(at);
    at = align8(at + s);
  }
  const buf = new Uint8Array(at);
  const dv = new DataView(buf.buffer);
  buf.set(enc.encode(SEGMENT_MAGIC), 0);
  dv.setUint32(8, SEGMENT_VERSION, true);
  dv.setUint32(12, D, true);
  dv.setUint32(16, T, true);
  dv.setFloat64(24, docLens.reduce((s, l) => s + l, 0), true);
  dv.setFloat64(32, P, true);
  offs.forEach((o, i) => dv.setFloat64(40 + 8 * i, o, true));
  new Uint32Array(buf.buffer, offs[Sec.DocLen]!, D).set(docLens);
  const docOff = new Float64Array(buf.buffer, offs[Sec.DocOff]!, D + 1);
  let p = 0;
  docBlobs.forEach((b, i) => {
    docOff[i] = p;
    buf.set(b, offs[Sec.DocBytes]! + p);
    p += b.length;
  });
  docOff[D] = p;
  const termOff = new Uint32Array(buf.buffer, offs[Sec.TermOff]!, T + 1);
  const postOff = new Float64Array(buf.buffer, offs[Sec.PostOff]!, T + 1);
  const postDoc = new Uint32Array(buf.buffer, offs[Sec.PostDoc]!, P);
  const postTf = new Uint32Array(buf.buffer, offs[Sec.PostTf]!, P);
  const df = new Uint32Array(buf.buffer, offs[Sec.Df]!, T);
  let tb = 0;
  let pp = 0;
  sortedTerms.forEach((x, i) => {
    termOff[i] = tb;
    buf.set(x.b, offs[Sec.TermBytes]! + tb);
    tb += x.b.length;
    const post = terms.get(x.t)!;
    postOff[i] = pp;
    postDoc.set(post.docs, pp);
    postTf.set(post.tfs, pp);
    df[i] = post.docs.length;
    pp += post.docs.length;
  });
  termOff[T] = tb;
  postOff[T] = pp;
  return [buf];
}

function invert(passages: Passage[], analyze: (p: Passage) => string[]): { terms: Map<string, Postings>; docLens: number[] } {
  const terms = new Map<string, Postings>();
  const docLens: number[] = [];
  const tf = new Map<string, number>();
  passages.forEach((p, d) => {
    const toks = analyze(p);
    docLens.push(toks.length);
    tf.clear();
    for (const t of toks) tf.set(t, (tf.get(t) ?? 0) + 1);
    for (const [t, n] of tf) {
      let post = terms.get(t);
      if (!post) terms.set(t, (post = { docs: [], tfs: [] }));
      post.docs.push(d);
      post.tfs.push(n);
    }
  });
  return { terms, docLens };
}

// ---- reading ----

/** One mapped segment file. */
export class Segment {
  readonly path: string;
  readonly docs: number;
  readonly termCount: number;
  readonly tokens: number;
  readonly docLen: Uint32Array;
  private readonly bytes: Uint8Array;
  private readonly docOff: Float64Array;
  private readonly docBase: number;
  private readonly termOff: Uint32Array;
  private readonly termBase: number;
  private readonly postOff: Float64Array;
  readonly postDoc: Uint32Array;
  readonly postTf: Uint32Array;
  readonly df: Uint32Array;

  constructor(path: string) {
    this.path = path;
    let { bytes } = mapFile(path);
    // Typed views need aligned offsets: a mapping is page-aligned, a plain read (no addon) may not be.
    if (bytes.byteOffset % 8 !== 0) bytes = Uint8Array.from(bytes);
    this.bytes = bytes;
    const fix = `rebuild the index with \`lmforge index\``;
    if (bytes.length < HEADER_BYTES || dec.decode(bytes.subarray(0, 8)) !== SEGMENT_MAGIC) {
      throw new UserError(`'${path}': not an lmforge BM25 segment (magic ${JSON.stringify(SEGMENT_MAGIC)} expected); ${fix}`);
    }
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const version = dv.getUint32(8, true);
    if (version !== SEGMENT_VERSION) throw new UserError(`'${path}': BM25 segment version ${version}, this lmforge reads ${SEGMENT_VERSION}; ${fix}`);
    const D = dv.getUint32(12, true);
    const T = dv.getUint32(16, true);
    const P = dv.getFloat64(32, true);
    this.docs = D;
    this.termCount = T;
    this.tokens = dv.getFloat64(24, true);
    const off = (s: Sec): number => dv.getFloat64(40 + 8 * s, true);
    const counts = [D, D + 1, 0, T + 1, 0, T + 1, P, P, T];
    const widths = [4, 8, 1, 4, 1, 8, 4, 4, 4];
    for (let s = 0; s < N_SECTIONS; s++) {
      const o = off(s as Sec);
      if (!(o >= HEADER_BYTES && o % 8 === 0 && o + counts[s]! * widths[s]! <= bytes.length)) {
        throw new UserError(`'${path}': section ${s} lies outside the file (truncated or corrupt segment); ${fix}`);
      }
    }
    const view = <A>(C: new (b: ArrayBufferLike, o: number, n: number) => A, s: Sec, n: number): A => new C(bytes.buffer, bytes.byteOffset + off(s), n);
    this.docLen = view(Uint32Array, Sec.DocLen, D);
    this.docOff = view(Float64Array, Sec.DocOff, D + 1);
    this.docBase = off(Sec.DocBytes);
    this.termOff = view(Uint32Array, Sec.TermOff, T + 1);
    this.termBase = off(Sec.TermBytes);
    this.postOff = view(Float64Array, Sec.PostOff, T + 1);
    this.postDoc = view(Uint32Array, Sec.PostDoc, P);
    this.postTf = view(Uint32Array, Sec.PostTf, P);
    this.df = view(Uint32Array, Sec.Df, T);
  }

  /** The term's number in the sorted dictionary, or −1 (binary search over the mapped UTF-8 bytes). */
  findTerm(term: Uint8Array): number {
    let lo = 0;
    let hi = this.termCount - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = compareBytes(this.termBytes(mid), term);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  termBytes(t: number): Uint8Array {
    return this.bytes.subarray(this.termBase + this.termOff[t]!, this.termBase + this.termOff[t + 1]!);
  }

  term(t: number): string {
    return dec.decode(this.termBytes(t));
  }

  /** [start, end) of term t's postings. */
  postings(t: number): [number, number] {
    return [this.postOff[t]!, this.postOff[t + 1]!];
  }

  passage(d: number): Passage {
    const [id, text, title] = JSON.parse(dec.decode(this.bytes.subarray(this.docBase + this.docOff[d]!, this.docBase + this.docOff[d + 1]!))) as [string, string, string?];
    return title === undefined ? { id, text } : { id, text, title };
  }
}

export interface SearchOptions {
  k?: number;
  k1?: number;
  b?: number;
}

export interface BM25Hit extends Hit {
  /** The passage's number over the whole index (segments in manifest order). */
  index: number;
}

/** An open index directory: manifest + mapped segments, searched together. */
export class BM25Index {
  readonly dir: string;
  readonly manifest: Manifest;
  readonly analyzer: Analyzer;
  readonly segments: Segment[];
  /** First global document number of each segment. */
  readonly bases: number[];
  readonly docs: number;
  readonly avgdl: number;

  constructor(dir: string) {
    this.dir = dir;
    this.manifest = readManifest(dir);
    this.analyzer = new Analyzer(this.manifest.analyzer);
    this.segments = this.manifest.segments.map((s) => new Segment(join(dir, s.file)));
    this.bases = [];
    let n = 0;
    let tokens = 0;
    for (const s of this.segments) {
      this.bases.push(n);
      n += s.docs;
      tokens += s.tokens;
    }
    this.docs = n;
    this.avgdl = n > 0 ? tokens / n : 0;
  }

  passage(index: number): Passage {
    for (let s = this.segments.length - 1; s >= 0; s--) if (index >= this.bases[s]!) return this.segments[s]!.passage(index - this.bases[s]!);
    throw new RangeError(`BM25Index.passage: ${index} out of range`);
  }

  /** The k best passages for a query (text), best first; ties go to the lower passage number. */
  search(query: string, options: SearchOptions = {}): BM25Hit[] {
    return this.searchTerms(this.analyzer.analyze(query), options);
  }

  searchTerms(queryTerms: string[], options: SearchOptions = {}): BM25Hit[] {
    const k = options.k ?? 10;
    const k1 = options.k1 ?? this.manifest.k1;
    const b = options.b ?? this.manifest.b;
    const qtf = new Map<string, number>();
    for (const t of queryTerms) qtf.set(t, (qtf.get(t) ?? 0) + 1);
    // Collection-wide df per query term: the sum over segments.
    const found: { qf: number; perSeg: number[]; df: number }[] = [];
    for (const [t, qf] of qtf) {
      const bytes = enc.encode(t);
      const perSeg = this.segments.map((s) => s.findTerm(bytes));
      let df = 0;
      perSeg.forEach((ti, s) => { if (ti >= 0) df += this.segments[s]!.df[ti]!; });
      if (df > 0) found.push({ qf, perSeg, df });
    }
    const N = this.docs;
    const heap = new TopK(k);
    this.segments.forEach((seg, s) => {
      // Term-at-a-time accumulation into this segment's score array.
      const acc = new Float64Array(seg.docs);
      const touched: number[] = [];
      for (const f of found) {
        const ti = f.perSeg[s]!;
        if (ti < 0) continue;
        const idf = Math.log(1 + (N - f.df + 0.5) / (f.df + 0.5));
        const w = f.qf * idf * (k1 + 1);
        const [lo, hi] = seg.postings(ti);
        for (let p = lo; p < hi; p++) {
          const d = seg.postDoc[p]!;
          const tf = seg.postTf[p]!;
          if (acc[d] === 0) touched.push(d);
          acc[d]! += (w * tf) / (tf + k1 * (1 - b + (b * seg.docLen[d]!) / this.avgdl));
        }
      }
      const base = this.bases[s]!;
      for (const d of touched) heap.push(base + d, acc[d]!);
    });
    return heap.sorted();
  }
}

// ---- the index directory ----

export function manifestPath(dir: string): string {
  return join(dir, 'manifest.json');
}

export function readManifest(dir: string): Manifest {
  const path = manifestPath(dir);
  if (!existsSync(path)) throw new UserError(`'${dir}' is not a BM25 index (no manifest.json); build one with \`lmforge index --input … --out ${dir}\``);
  let m: Partial<Manifest>;
  try {
    m = JSON.parse(readFileSync(path, 'utf8')) as Partial<Manifest>;
  } catch (e) {
    throw new UserError(`'${path}': not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (m.format !== MANIFEST_FORMAT) throw new UserError(`'${path}': field 'format' is ${JSON.stringify(m.format)}, expected "${MANIFEST_FORMAT}"`);
  if (m.version !== MANIFEST_VERSION) throw new UserError(`'${path}': manifest version ${m.version}, this lmforge reads ${MANIFEST_VERSION}; rebuild the index`);
  if (!Array.isArray(m.segments) || typeof m.k1 !== 'number' || typeof m.b !== 'number' || typeof m.analyzer !== 'object' || typeof m.next !== 'number') {
    throw new UserError(`'${path}': fields 'segments', 'k1', 'b', 'analyzer' and 'next' expected`);
  }
  return m as Manifest;
}

export interface CreateOptions {
  analyzer?: AnalyzerOptions;
  k1?: number;
  b?: number;
}

/** Creates an empty index directory (an existing index there is an error unless `overwrite`). */
export function createIndex(dir: string, options: CreateOptions = {}, overwrite = false): Manifest {
  if (existsSync(manifestPath(dir))) {
    if (!overwrite) throw new UserError(`'${dir}' already holds an index; pass --append to add to it or --overwrite to replace it`);
    for (const s of readManifest(dir).segments) rmSync(join(dir, s.file), { force: true });
  }
  mkdirSync(dir, { recursive: true });
  const m: Manifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    analyzer: options.analyzer ?? { stopwords: true, stem: true },
    k1: options.k1 ?? DEFAULT_K1,
    b: options.b ?? DEFAULT_B,
    segments: [],
    next: 1,
  };
  writeFileAtomic(manifestPath(dir), JSON.stringify(m, null, 2) + '\n');
  return m;
}

/** Passages per segment written by addPassages: bounds the memory of the in-memory inversion. */
export const SEGMENT_DOCS = 100_000;

/**
 * Appends passages to the index as new segment(s) (the manifest is replaced atomically after the segment files are
 * written, so a reader sees the old or the new index, never half). Ids already in the index are an error.
 */
export function addPassages(dir: string, passages: Passage[], options: { segmentDocs?: number } = {}): Manifest {
  const m = readManifest(dir);
  const analyzer = new Analyzer(m.analyzer);
  const ids = new Set<string>();
  for (const s of m.segments) {
    const seg = new Segment(join(dir, s.file));
    for (let d = 0; d < seg.docs; d++) ids.add(seg.passage(d).id);
  }
  for (const p of passages) {
    if (ids.has(p.id)) throw new UserError(`passage id '${p.id}' is already in the index '${dir}' (ids must be unique)`);
    ids.add(p.id);
  }
  const per = options.segmentDocs ?? SEGMENT_DOCS;
  for (let i = 0; i < passages.length; i += per) {
    const chunk = passages.slice(i, i + per);
    const { terms, docLens } = invert(chunk, (p) => analyzer.analyze(p.title ? `${p.title}\n${p.text}` : p.text));
    const file = `seg-${String(m.next).padStart(6, '0')}.bm25`;
    writeFileAtomicParts(join(dir, file), encodeSegment(chunk, terms, docLens));
    m.segments.push({ file, docs: chunk.length, tokens: docLens.reduce((s, l) => s + l, 0) });
    m.next++;
  }
  writeFileAtomic(manifestPath(dir), JSON.stringify(m, null, 2) + '\n');
  return m;
}

/** Rewrites all segments as one (postings concatenated with document offsets); old files are removed afterwards. */
export function mergeSegments(dir: string): Manifest {
  const m = readManifest(dir);
  if (m.segments.length <= 1) return m;
  const segs = m.segments.map((s) => new Segment(join(dir, s.file)));
  const passages: Passage[] = [];
  const docLens: number[] = [];
  const terms = new Map<string, Postings>();
  for (const seg of segs) {
    const base = passages.length;
    for (let d = 0; d < seg.docs; d++) {
      passages.push(seg.passage(d));
      docLens.push(seg.docLen[d]!);
    }
    for (let t = 0; t < seg.termCount; t++) {
      const term = seg.term(t);
      let post = terms.get(term);
      if (!post) terms.set(term, (post = { docs: [], tfs: [] }));
      const [lo, hi] = seg.postings(t);
      for (let p = lo; p < hi; p++) {
        post.docs.push(base + seg.postDoc[p]!);
        post.tfs.push(seg.postTf[p]!);
      }
    }
  }
  const file = `seg-${String(m.next).padStart(6, '0')}.bm25`;
  writeFileAtomicParts(join(dir, file), encodeSegment(passages, terms, docLens));
  const old = m.segments.map((s) => s.file);
  m.segments = [{ file, docs: passages.length, tokens: docLens.reduce((s, l) => s + l, 0) }];
  m.next++;
  writeFileAtomic(manifestPath(dir), JSON.stringify(m, null, 2) + '\n');
  for (const f of old) rmSync(join(dir, f), { force: true });
  return m;
}
