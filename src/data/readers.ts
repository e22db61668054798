// Streaming readers: plain text, JSONL / JSONL.gz, CSV and Parquet files into Documents, one record at a time
// (memory stays bounded by the largest record or Parquet row group). Malformed records are counted and reported
// with file and line, then skipped or made fatal. Not a writer (writers.ts) and not a filter.
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { parse as parseCsv } from 'csv-parse';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import type { Document } from './document.js';
import { UserError } from '../util/errors.js';

export type InputFormat = 'txt' | 'jsonl' | 'csv' | 'parquet';
export type TextSplit = 'file' | 'paragraph' | 'line';
export type OnBadRecord = 'skip' | 'fail';

/** How to read one input file. */
export interface ReadSpec {
  path: string;
  format: InputFormat;
  /** Source name recorded in metadata.source (used by mixing). */
  source: string;
  /** Field holding the text in JSONL / CSV / Parquet records. */
  textField: string;
  /** Optional field holding a stable id. */
  idField?: string;
  /** For txt: one document per file, per blank-line-separated paragraph, or per line. */
  split: TextSplit;
  onBadRecord: OnBadRecord;
  /** Stop after this many documents from this file (for trying a config on a sample). */
  limit?: number;
}

export interface BadRecord {
  file: string;
  line: number;
  reason: string;
}

/** Counts malformed records and keeps the first few for the report. */
export class BadRecordLog {
  count = 0;
  readonly samples: BadRecord[] = [];
  constructor(private readonly keep = 20) {}
  add(rec: BadRecord): void {
    this.count++;
    if (this.samples.length < this.keep) this.samples.push(rec);
  }
}

export class BadRecordError extends UserError {
  constructor(readonly record: BadRecord) {
    super(`${record.file}:${record.line}: ${record.reason}`);
  }
}

/** Infers the format from the file name: .txt/.md/.py (text), .jsonl/.json/.jsonl.gz, .csv, .parquet. */
export function formatFromPath(path: string): InputFormat {
  const p = path.toLowerCase().replace(/\.gz$/, '');
  if (p.endsWith('.jsonl') || p.endsWith('.ndjson')) return 'jsonl';
  if (p.endsWith('.csv')) return 'csv';
  if (p.endsWith('.parquet')) return 'parquet';
  return 'txt';
}

/** Expands files and directories (recursively, sorted) into a sorted list of files; `extensions` filters by suffix. */
export function expandPaths(paths: string[], extensions?: string[]): string[] {
  const out: string[] = [];
  const visit = (p: string, top: boolean): void => {
    let st;
    try {
      st = statSync(p);
    } catch {
      if (top) throw new UserError(`input path ${p} does not exist`);
      return;
    }
    if (st.isDirectory()) {
      for (const name of readdirSync(p).sort()) visit(join(p, name), false);
    } else if (st.isFile()) {
      if (top || !extensions || extensions.some((e) => p.endsWith(e))) out.push(p);
    }
  };
  for (const p of paths) visit(p, true);
  return out;
}

function openText(path: string): Readable {
  const raw = createReadStream(path);
  return path.endsWith('.gz') ? raw.pipe(createGunzip()) : raw;
}

async function* lines(path: string): AsyncGenerator<string> {
  const rl = createInterface({ input: openText(path), crlfDelay: Infinity });
  for await (const line of rl) yield line;
}

function fail(spec: ReadSpec, log: BadRecordLog, line: number, reason: string): void {
  const rec = { file: spec.path, line, reason };
  if (spec.onBadRecord === 'fail') throw new BadRecordError(rec);
  log.add(rec);
}

/** Makes a Parquet value JSON-safe: INT64 (BigInt) as a number when exact else a string, dates as ISO strings. */
function jsonSafe(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonSafe(x)]));
  return v;
}

/** Builds a Document from a record: the text field becomes text, every other field metadata. */
function fromRecord(spec: ReadSpec, rec: Record<string, unknown>, where: number): Document | string {
  const text = rec[spec.textField];
  if (typeof text !== 'string') {
    return `field "${spec.textField}" is ${text === undefined ? 'missing' : `a ${typeof text}`}, expected a string`;
  }
  const metadata: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rec)) if (k !== spec.textField) metadata[k] = v;
  metadata.source = spec.source;
  let id = `${spec.source}/${basename(spec.path)}:${where}`;
  if (spec.idField !== undefined) {
    const v = rec[spec.idField];
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint') id = String(v);
  }
  return { id, text, metadata };
}

async function* readJsonl(spec: ReadSpec, log: BadRecordLog): AsyncGenerator<Document> {
  let lineNo = 0;
  for await (const line of lines(spec.path)) {
    lineNo++;
    if (line.trim() === '') continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      fail(spec, log, lineNo, `invalid JSON (${(e as Error).message})`);
      continue;
    }
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) {
      fail(spec, log, lineNo, 'expected a JSON object');
      continue;
    }
    const doc = fromRecord(spec, rec as Record<string, unknown>, lineNo);
    if (typeof doc === 'string') fail(spec, log, lineNo, doc);
    else yield doc;
  }
}

async function* readTxt(spec: ReadSpec): AsyncGenerator<Document> {
  const make = (text: string, where: number): Document => ({
    id: `${spec.source}/${basename(spec.path)}:${where}`,
    text,
    metadata: { source: spec.source, file: spec.path, line: where },
  });
  let lineNo = 0;
  let buf: string[] = [];
  let start = 1;
  for await (const line of lines(spec.path)) {
    lineNo++;
    if (spec.split === 'line') {
      if (line.trim() !== '') yield make(line, lineNo);
    } else if (spec.split === 'paragraph' && line.trim() === '') {
      if (buf.length > 0) yield make(buf.join('\n'), start);
      buf = [];
    } else {
      if (buf.length === 0) start = lineNo;
      buf.push(line);
    }
  }
  if (buf.length > 0) yield make(buf.join('\n'), spec.split === 'file' ? 1 : start);
}

async function* readCsv(spec: ReadSpec, log: BadRecordLog): AsyncGenerator<Document> {
  const pendingErrors: { file: string; line: number; reason: string }[] = [];
  const parser = openText(spec.path).pipe(
    parseCsv({
      columns: true,
      info: true,
      bom: true,
      skip_empty_lines: true,
      skip_records_with_error: true,
      on_skip: (err) => {
        // csv-parse reports the line where the bad record ended; it is the closest line we can name.
        const line = err && 'lines' in err && typeof err.lines === 'number' ? err.lines : 0;
        // Throwing inside the callback would be swallowed by the stream, so fatal errors are raised below.
        pendingErrors.push({ file: spec.path, line, reason: err ? err.message : 'malformed record' });
        return undefined;
      },
    }),
  );
  const drain = (): void => {
    for (const e of pendingErrors.splice(0)) fail(spec, log, e.line, e.reason);
  };
  for await (const item of parser as AsyncIterable<{ record: Record<string, unknown>; info: { lines: number } }>) {
    drain();
    const doc = fromRecord(spec, item.record, item.info.lines);
    if (typeof doc === 'string') fail(spec, log, item.info.lines, doc);
    else yield doc;
  }
  drain();
}

async function* readParquet(spec: ReadSpec, log: BadRecordLog): AsyncGenerator<Document> {
  const file = await asyncBufferFromFile(spec.path);
  const metadata = await parquetMetadataAsync(file);
  let rowStart = 0;
  // One row group at a time keeps memory bounded by the row group size.
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    const rows = await parquetReadObjects({ file, metadata, rowStart, rowEnd });
    for (let i = 0; i < rows.length; i++) {
      const row = jsonSafe(rows[i]) as Record<string, unknown>;
      const doc = fromRecord(spec, row, rowStart + i);
      if (typeof doc === 'string') fail(spec, log, rowStart + i, `row ${rowStart + i}: ${doc}`);
      else yield doc;
    }
    rowStart = rowEnd;
  }
}

/** Streams the documents of one file in order, honouring `spec.limit`. */
export async function* readDocuments(spec: ReadSpec, log: BadRecordLog): AsyncGenerator<Document> {
  let inner: AsyncGenerator<Document>;
  switch (spec.format) {
    case 'txt':
      inner = readTxt(spec);
      break;
    case 'jsonl':
      inner = readJsonl(spec, log);
      break;
    case 'csv':
      inner = readCsv(spec, log);
      break;
    case 'parquet':
      inner = readParquet(spec, log);
      break;
    default: {
      const never: never = spec.format;
      throw new Error(`unknown input format ${String(never)}`);
    }
  }
  let n = 0;
  for await (const doc of inner) {
    if (spec.limit !== undefined && n >= spec.limit) {
      await inner.return(undefined);
      return;
    }
    n++;
    yield doc;
  }
}

/** Reads a pipeline-internal JSONL.gz shard written by JsonlGzWriter (records from documentRecord). */
export async function* readShard(path: string): AsyncGenerator<Document> {
  let lineNo = 0;
  for await (const line of lines(path)) {
    lineNo++;
    if (line === '') continue;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`${path}:${lineNo}: corrupt shard line (${(e as Error).message})`, { cause: e });
    }
    const { id, text, ...metadata } = rec;
    if (typeof text !== 'string') throw new Error(`${path}:${lineNo}: shard record has no string "text"`);
    yield { id: typeof id === 'string' ? id : `${path}:${lineNo}`, text, metadata };
  }
}
