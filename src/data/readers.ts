// Streaming readers: plain text, JSONL / JSONL.gz, CSV and Parquet files into Documents, one record at a time
// (memory stays bounded by the largest record or Parquet row group). Malformed records are counted and reported
// with file and line, then skipped or made fatal. Not a writer (writers.ts) and not a filter.
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { Readable, pipeline } from 'node:stream';
import { parse as parseCsv } from 'csv-parse';
import { Worker } from 'node:worker_threads';
import type { ParquetMessage } from './parquet-worker.js';
import { PIPELINE_ID_FIELD, PIPELINE_SOURCE_FIELD } from './document.js';
import type { Document } from './document.js';
import { isUtf8 } from 'node:buffer';
import { UserError, describeError } from '../util/errors.js';
import { errnoCode, fsUserError } from '../util/fs.js';
import { invalidUtf8Offset, loneSurrogateIndex, toWellFormed } from '../util/utf8.js';
import type { InvalidUtf8Policy } from '../util/utf8.js';

const NEWLINE = Buffer.from('\n');

export type InputFormat = 'txt' | 'jsonl' | 'csv' | 'parquet';
export type TextSplit = 'file' | 'paragraph' | 'line';
export type OnBadRecord = 'skip' | 'fail';

/** How to read one input file. */
export interface ReadSpec {
  path: string;
  format: InputFormat;
  /** Source name recorded in metadata.lmforge_source (used by mixing). */
  source: string;
  /** Field holding the text in JSONL / CSV / Parquet records. */
  textField: string;
  /** Optional field holding a stable id. */
  idField?: string;
  /** For txt: one document per file, per blank-line-separated paragraph, or per line. */
  split: TextSplit;
  onBadRecord: OnBadRecord;
  /**
   * Invalid UTF-8 bytes or lone surrogates in a record: `error` makes it a malformed record (counted, fatal when
   * onBadRecord is 'fail'), `skip` drops and counts it but is never fatal, `replace` keeps it with U+FFFD. Default error.
   */
  invalidUtf8?: InvalidUtf8Policy;
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

/** The file's bytes, gunzipped for .gz; an error of the file stream is passed on to the gunzip stream. */
function openBytes(path: string): Readable {
  const raw = createReadStream(path);
  if (!path.endsWith('.gz')) return raw;
  const gz = createGunzip();
  raw.on('error', (e) => gz.destroy(e));
  return raw.pipe(gz);
}

/** A read error as a UserError: a truncated or corrupt gzip stream, or a file-system error, with where it stopped. */
function readError(e: unknown, path: string, where: string): unknown {
  if (e instanceof UserError) return e;
  const code = errnoCode(e);
  if (code !== undefined && code.startsWith('Z_')) {
    const what = code === 'Z_BUF_ERROR' ? 'truncated (unexpected end of the gzip stream)' : `not valid gzip data (${describeError(e)})`;
    return new UserError(`${path}: ${what} ${where}`, { cause: e });
  }
  return fsUserError(e, path, 'read the input');
}

interface ByteLine {
  bytes: Buffer;
  /** 1-based line number. */
  lineNo: number;
  /** Byte offset of the line's first byte (in the uncompressed stream for .gz). */
  offset: number;
}

/** Lines as raw bytes (without "\n" or "\r\n"), so invalid UTF-8 can be found at its byte offset. */
async function* byteLines(path: string): AsyncGenerator<ByteLine> {
  let lineNo = 0;
  let offset = 0;
  let pending: Buffer = Buffer.alloc(0);
  const emit = (line: Buffer): ByteLine => {
    lineNo++;
    const out = { bytes: line.length > 0 && line[line.length - 1] === 13 ? line.subarray(0, -1) : line, lineNo, offset };
    offset += line.length + 1;
    return out;
  };
  const stream = openBytes(path);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let buf = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
      for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10)) {
        yield emit(buf.subarray(0, nl));
        buf = buf.subarray(nl + 1);
      }
      pending = Buffer.from(buf);
    }
  } catch (e) {
    throw readError(e, path, `after line ${lineNo} (byte offset ${offset + pending.length})`);
  } finally {
    stream.destroy();
  }
  if (pending.length > 0) yield emit(pending);
}

type Decoded = { text: string } | { bad: string; fatal: boolean };

/** A line's text under the spec's invalid-UTF-8 policy, or why it is a bad record. */
function decodeLine(spec: ReadSpec, line: ByteLine): Decoded {
  if (isUtf8(line.bytes)) return { text: line.bytes.toString('utf8') };
  const policy = spec.invalidUtf8 ?? 'error';
  if (policy === 'replace') return { text: line.bytes.toString('utf8') };
  return { bad: `invalid UTF-8 at byte offset ${line.offset + invalidUtf8Offset(line.bytes)}`, fatal: policy === 'error' };
}

/** A string field under the policy: lone surrogates (from JSON escapes) are bad like invalid UTF-8 bytes. */
function checkSurrogates(spec: ReadSpec, field: string, text: string): Decoded {
  const at = loneSurrogateIndex(text);
  if (at < 0) return { text };
  const policy = spec.invalidUtf8 ?? 'error';
  if (policy === 'replace') return { text: toWellFormed(text) };
  return { bad: `field "${field}" has a lone surrogate (U+${text.charCodeAt(at).toString(16).toUpperCase()}) at character ${at}`, fatal: policy === 'error' };
}

function fail(spec: ReadSpec, log: BadRecordLog, line: number, reason: string, fatal = true): void {
  const rec = { file: spec.path, line, reason };
  if (fatal && spec.onBadRecord === 'fail') throw new BadRecordError(rec);
  log.add(rec);
}

/** Builds a Document from a record: the text field becomes text, every other field metadata. */
function fromRecord(spec: ReadSpec, rec: Record<string, unknown>, where: number): Document | string {
  const text = rec[spec.textField];
  if (typeof text !== 'string') {
    return `field "${spec.textField}" is ${text === undefined ? 'missing' : `a ${typeof text}`}, expected a string`;
  }
  const metadata: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rec)) if (k !== spec.textField) metadata[k] = v;
  metadata[PIPELINE_SOURCE_FIELD] = spec.source; // the record's own fields (id, source, …) are kept as they are
  let id = `${spec.source}/${basename(spec.path)}:${where}`;
  if (spec.idField !== undefined) {
    const v = rec[spec.idField];
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint') id = String(v);
  }
  return { id, text, metadata };
}

async function* readJsonl(spec: ReadSpec, log: BadRecordLog): AsyncGenerator<Document> {
  for await (const raw of byteLines(spec.path)) {
    const lineNo = raw.lineNo;
    const decoded = decodeLine(spec, raw);
    if ('bad' in decoded) {
      fail(spec, log, lineNo, decoded.bad, decoded.fatal);
      continue;
    }
    const line = decoded.text;
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
    else {
      const checked = checkSurrogates(spec, spec.textField, doc.text);
      if ('bad' in checked) fail(spec, log, lineNo, checked.bad, checked.fatal);
      else yield { ...doc, text: checked.text };
    }
  }
}

async function* readTxt(spec: ReadSpec, log: BadRecordLog): AsyncGenerator<Document> {
  const make = (text: string, where: number): Document => ({
    id: `${spec.source}/${basename(spec.path)}:${where}`,
    text,
    metadata: { [PIPELINE_SOURCE_FIELD]: spec.source, file: spec.path, line: where },
  });
  let buf: string[] = [];
  let start = 1;
  for await (const raw of byteLines(spec.path)) {
    const lineNo = raw.lineNo;
    const decoded = decodeLine(spec, raw);
    if ('bad' in decoded) {
      fail(spec, log, lineNo, decoded.bad, decoded.fatal); // the line is left out of its document
      continue;
    }
    const line = decoded.text;
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
  // Lines with invalid UTF-8 (line → byte offset), found on the bytes before csv-parse decodes them.
  const badLines = new Map<number, number>();
  const policy = spec.invalidUtf8 ?? 'error';
  async function* bytes(): AsyncGenerator<Buffer> {
    for await (const l of byteLines(spec.path)) {
      if (policy !== 'replace' && !isUtf8(l.bytes)) badLines.set(l.lineNo, l.offset + invalidUtf8Offset(l.bytes));
      yield Buffer.concat([l.bytes, NEWLINE]);
    }
  }
  const parser = pipeline(
    Readable.from(bytes()),
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
        for (const l of badLines.keys()) if (l <= line) badLines.delete(l);
        return undefined;
      },
    }),
    () => undefined, // errors reach the loop below through the parser
  );
  const drain = (): void => {
    for (const e of pendingErrors.splice(0)) fail(spec, log, e.line, e.reason);
  };
  for await (const item of parser as AsyncIterable<{ record: Record<string, unknown>; info: { lines: number } }>) {
    drain();
    const end = item.info.lines;
    const bad = [...badLines].find(([l]) => l <= end);
    if (bad) {
      for (const l of badLines.keys()) if (l <= end) badLines.delete(l);
      fail(spec, log, end, `invalid UTF-8 at byte offset ${bad[1]} (line ${bad[0]})`, policy === 'error');
      continue;
    }
    const doc = fromRecord(spec, item.record, end);
    if (typeof doc === 'string') fail(spec, log, end, doc);
    else yield doc;
  }
  drain();
}

/** Limits on decoding one Parquet row group (a corrupt count in a page header can make the decoder spin or allocate). */
export const PARQUET_LIMITS = { timeoutMs: 120_000, memoryMb: 4096 };

/** Asks the worker for its next message, turning a timeout, a crash or an out-of-memory exit into a UserError. */
function nextMessage(worker: Worker, path: string, where: string, timeoutMs: number): Promise<ParquetMessage> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    const onMessage = (m: ParquetMessage): void => {
      done();
      if (m.type === 'error') reject(new UserError(`${path}: not a readable Parquet file${where} (${m.message}; truncated or corrupt?)`));
      else resolve(m);
    };
    const onError = (e: Error): void => {
      done();
      const oom = (e as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY';
      reject(new UserError(`${path}: not a readable Parquet file${where} (${oom ? 'decoding ran out of memory' : describeError(e)}; corrupt page header?)`, { cause: e }));
    };
    const onExit = (code: number): void => {
      done();
      reject(new UserError(`${path}: Parquet decoding stopped${where} (exit ${code})`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new UserError(`${path}: Parquet decoding${where} did not finish in ${(timeoutMs / 1000).toFixed(0)} s (a corrupt page header?)`));
    }, timeoutMs);
    worker.on('message', onMessage);
    worker.once('error', onError);
    worker.once('exit', onExit);
  });
}

async function* readParquet(spec: ReadSpec, log: BadRecordLog): AsyncGenerator<Document> {
  try {
    if (!statSync(spec.path).isFile()) throw new UserError(`${spec.path}: cannot read the input: not a file`);
  } catch (e) {
    throw fsUserError(e, spec.path, 'read the input');
  }
  // Decoded in a worker thread with a time and memory bound per row group (see parquet-worker.ts).
  const worker = new Worker(new URL('./parquet-worker.js', import.meta.url), {
    workerData: { parquetPath: spec.path },
    resourceLimits: { maxOldGenerationSizeMb: PARQUET_LIMITS.memoryMb },
  });
  worker.on('error', () => undefined); // reported by nextMessage; this only keeps an error between requests from crashing
  try {
    const meta = await nextMessage(worker, spec.path, '', PARQUET_LIMITS.timeoutMs);
    if (meta.type !== 'meta') throw new Error('parquet worker: expected the metadata first');
    let rowStart = 0;
    // One row group at a time keeps memory bounded by the row group size.
    for (const [g, numRows] of meta.groups.entries()) {
      worker.postMessage('next');
      const msg = await nextMessage(worker, spec.path, ` at row group ${g} (rows ${rowStart}..${rowStart + numRows - 1})`, PARQUET_LIMITS.timeoutMs);
      const rows = msg.type === 'rows' ? msg.rows : [];
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i];
        const doc = typeof row === 'object' && row !== null ? fromRecord(spec, row as Record<string, unknown>, rowStart + i) : 'not a record';
        if (typeof doc === 'string') {
          fail(spec, log, rowStart + i, `row ${rowStart + i}: ${doc}`);
          continue;
        }
        const checked = checkSurrogates(spec, spec.textField, doc.text);
        if ('bad' in checked) fail(spec, log, rowStart + i, `row ${rowStart + i}: ${checked.bad}`, checked.fatal);
        else yield { ...doc, text: checked.text };
      }
      rowStart += numRows;
    }
  } finally {
    await worker.terminate();
  }
}

/** Streams the documents of one file in order, honouring `spec.limit`. */
export async function* readDocuments(spec: ReadSpec, log: BadRecordLog): AsyncGenerator<Document> {
  let inner: AsyncGenerator<Document>;
  switch (spec.format) {
    case 'txt':
      inner = readTxt(spec, log);
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
  for await (const raw of byteLines(path)) {
    const lineNo = raw.lineNo;
    const line = raw.bytes.toString('utf8'); // written by JSON.stringify: always valid UTF-8
    if (line === '') continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new UserError(`${path}:${lineNo}: corrupt shard line (${(e as Error).message}); delete the shard and its .done marker to redo the stage`, { cause: e });
    }
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) throw new UserError(`${path}:${lineNo}: corrupt shard line (not a JSON object)`);
    const { [PIPELINE_ID_FIELD]: pipelineId, text, ...metadata } = rec as Record<string, unknown>;
    if (typeof text !== 'string') throw new UserError(`${path}:${lineNo}: shard record has no string "text"`);
    // Shards of older versions carried the pipeline's id in "id".
    const id = typeof pipelineId === 'string' ? pipelineId : typeof metadata.id === 'string' ? metadata.id : `${path}:${lineNo}`;
    yield { id, text, metadata };
  }
}
