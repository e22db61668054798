// Reading a task's rows from disk: CSV (with or without header), JSON lines, a JSON array, or plain text, gzip
// decompressed by extension, a `*` in the file name expanding to one subset per matching file. Every error names
// the file (and line). Not prompt building (tasks.ts).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import { UserError } from '../util/errors.js';
import type { DataFormat, DataSpec, Doc } from './task-spec.js';

export interface ResolvedFile {
  path: string;
  subset: string;
}

/** Expands the spec's path (relative to dataDir) into files; `*` in the file name matches a subset name. */
export function resolveFiles(spec: DataSpec, dataDir: string, source: string): ResolvedFile[] {
  const full = join(dataDir, spec.path);
  const name = basename(full);
  if (!name.includes('*')) {
    if (!existsSync(full)) throw new UserError(`${full}: file not found (data of ${source}; is --data-dir right?)`);
    return [{ path: full, subset: '' }];
  }
  const dir = dirname(full);
  if (!existsSync(dir)) throw new UserError(`${dir}: directory not found (data of ${source}; is --data-dir right?)`);
  const [pre, post] = name.split('*') as [string, string];
  const files = readdirSync(dir)
    .filter((f) => f.startsWith(pre) && f.endsWith(post) && f.length >= pre.length + post.length)
    .sort()
    .map((f) => ({ path: join(dir, f), subset: f.slice(pre.length, f.length - post.length) }));
  if (files.length === 0) throw new UserError(`${full}: no file matches (data of ${source})`);
  return files;
}

function formatOf(path: string, spec: DataSpec): DataFormat {
  if (spec.format) return spec.format;
  const p = path.replace(/\.gz$/, '');
  if (p.endsWith('.csv')) return 'csv';
  if (p.endsWith('.jsonl')) return 'jsonl';
  if (p.endsWith('.json')) return 'json';
  return 'text';
}

export function readText(path: string): string {
  if (!existsSync(path)) throw new UserError(`${path}: file not found`);
  const bytes = readFileSync(path);
  if (!path.endsWith('.gz')) return bytes.toString('utf8');
  try {
    return gunzipSync(bytes).toString('utf8');
  } catch (e) {
    throw new UserError(`${path}: not a valid gzip file (${(e as Error).message})`);
  }
}

/** Reads every row of one file (after `skip`). */
export function readRows(file: ResolvedFile, spec: DataSpec): Doc[] {
  const text = readText(file.path);
  const format = formatOf(file.path, spec);
  let docs: Doc[];
  switch (format) {
    case 'jsonl': {
      docs = [];
      text.split('\n').forEach((line, i) => {
        if (line.trim() === '') return;
        let v: unknown;
        try {
          v = JSON.parse(line);
        } catch (e) {
          throw new UserError(`${file.path}:${i + 1}: malformed JSON line (${(e as Error).message})`);
        }
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UserError(`${file.path}:${i + 1}: expected a JSON object per line`);
        docs.push({ fields: v as Record<string, unknown>, where: `${file.path}:${i + 1}`, subset: file.subset });
      });
      break;
    }
    case 'json': {
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch (e) {
        throw new UserError(`${file.path}: malformed JSON (${(e as Error).message})`);
      }
      if (!Array.isArray(v)) throw new UserError(`${file.path}: expected a JSON array of rows`);
      docs = v.map((row: unknown, i) => {
        if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new UserError(`${file.path}: row ${i} is not a JSON object`);
        return { fields: row as Record<string, unknown>, where: `${file.path} row ${i}`, subset: file.subset };
      });
      break;
    }
    case 'csv': {
      let records: { record: Record<string, unknown>; info: { lines: number } }[];
      try {
        records = parse(text, { columns: spec.columns ?? true, info: true, relax_column_count: false, skip_empty_lines: true, bom: true }) as typeof records;
      } catch (e) {
        throw new UserError(`${file.path}: malformed CSV (${(e as Error).message})`);
      }
      docs = records.map((r) => ({ fields: r.record, where: `${file.path}:${r.info.lines}`, subset: file.subset }));
      break;
    }
    case 'text':
      docs = [{ fields: { text }, where: file.path, subset: file.subset }];
      break;
    case 'squad':
      docs = squadRows(text, file, spec.paragraphs);
      break;
  }
  return docs.slice(spec.skip ?? 0);
}

/** SQuAD v1.1 JSON flattened to one row per question: {id, title, context, question, answers: [answer texts]}; optionally only paragraphs [from, to) of each article. */
function squadRows(text: string, file: ResolvedFile, paragraphs?: readonly [number, number]): Doc[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${file.path}: malformed JSON (${(e as Error).message})`);
  }
  const data = (v as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) throw new UserError(`${file.path}: expected SQuAD JSON {"data":[{"title","paragraphs":[{"context","qas":[…]}]}]}`);
  const docs: Doc[] = [];
  data.forEach((a: { title?: unknown; paragraphs?: unknown }, i) => {
    if (!Array.isArray(a.paragraphs)) throw new UserError(`${file.path}: data[${i}].paragraphs is not an array`);
    a.paragraphs.forEach((p: { context?: unknown; qas?: unknown }, j) => {
      if (typeof p.context !== 'string' || !Array.isArray(p.qas)) throw new UserError(`${file.path}: data[${i}].paragraphs[${j}] needs a 'context' string and a 'qas' array`);
      if (paragraphs && (j < paragraphs[0] || j >= paragraphs[1])) return;
      p.qas.forEach((q: { id?: unknown; question?: unknown; answers?: { text?: unknown }[] }, k) => {
        if (typeof q.question !== 'string') throw new UserError(`${file.path}: data[${i}].paragraphs[${j}].qas[${k}].question is not a string`);
        const answers = (q.answers ?? []).map((x) => String(x.text));
        docs.push({ fields: { id: String(q.id), title: String(a.title ?? ''), context: p.context, question: q.question, answers }, where: `${file.path} data[${i}].paragraphs[${j}].qas[${k}]`, subset: file.subset });
      });
    });
  });
  return docs;
}
