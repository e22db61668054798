// Passage readers for indexing (JSONL, plain text, SQuAD/XQuAD JSON, BoolQ JSONL; .gz accepted) and the XQuAD
// question set used to measure retrieval. Not an index: see bm25.ts and dense.ts. Bad input is a UserError naming
// the file, the line or field, and what was expected.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { UserError } from '../util/errors.js';

export interface Passage {
  /** Unique within an index; shown by `lmforge retrieve`. */
  id: string;
  text: string;
  title?: string;
}

export type CorpusFormat = 'jsonl' | 'text' | 'xquad' | 'boolq';
export const CORPUS_FORMATS: readonly CorpusFormat[] = ['jsonl', 'text', 'xquad', 'boolq'];

/** A question with the passage(s) that answer it (XQuAD: the one paragraph it was written on). */
export interface Question {
  id: string;
  question: string;
  answers: string[];
  passageId: string;
}

function readText(path: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new UserError(`cannot read '${path}': ${e instanceof Error ? e.message : String(e)}`);
  }
  if (path.endsWith('.gz')) {
    try {
      bytes = gunzipSync(bytes);
    } catch {
      throw new UserError(`'${path}': not a gzip file (the name ends in .gz)`);
    }
  }
  return bytes.toString('utf8');
}

/** The format a path most likely holds, from its name; 'jsonl' for .jsonl, 'xquad' for .json, else 'text'. */
export function guessFormat(path: string): CorpusFormat {
  const p = path.replace(/\.gz$/, '').toLowerCase();
  if (/boolq/.test(p) && p.endsWith('.jsonl')) return 'boolq';
  if (p.endsWith('.jsonl')) return 'jsonl';
  if (p.endsWith('.json')) return 'xquad';
  return 'text';
}

interface SquadJson {
  data: { title?: string; paragraphs: { context: string; qas?: { id: string; question: string; answers?: { text: string }[] }[] }[] }[];
}

function parseSquad(path: string): SquadJson {
  let doc: unknown;
  try {
    doc = JSON.parse(readText(path));
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`'${path}': not JSON (${e instanceof Error ? e.message : String(e)}); expected SQuAD v1.1 JSON`);
  }
  const data = (doc as { data?: unknown }).data;
  if (!Array.isArray(data)) throw new UserError(`'${path}': field 'data' missing; expected SQuAD v1.1 JSON {"data":[{"title","paragraphs":[…]}]}`);
  data.forEach((a: unknown, i) => {
    const ps = (a as { paragraphs?: unknown }).paragraphs;
    if (!Array.isArray(ps)) throw new UserError(`'${path}': data[${i}].paragraphs is not an array`);
    ps.forEach((p: unknown, j) => {
      if (typeof (p as { context?: unknown }).context !== 'string') throw new UserError(`'${path}': data[${i}].paragraphs[${j}].context is not a string`);
    });
  });
  return doc as SquadJson;
}

/** SQuAD-style paragraph ids: "<article index>-<paragraph index>" (stable across runs of the same file). */
function squadId(i: number, j: number): string {
  return `${i}-${j}`;
}

export function readSquadPassages(path: string): Passage[] {
  const out: Passage[] = [];
  parseSquad(path).data.forEach((a, i) => a.paragraphs.forEach((p, j) => out.push({ id: squadId(i, j), text: p.context, ...(a.title ? { title: a.title } : {}) })));
  return out;
}

export function readSquadQuestions(path: string): Question[] {
  const out: Question[] = [];
  parseSquad(path).data.forEach((a, i) =>
    a.paragraphs.forEach((p, j) => {
      for (const q of p.qas ?? []) {
        if (typeof q.question !== 'string') throw new UserError(`'${path}': a question of data[${i}].paragraphs[${j}] has no 'question' string`);
        out.push({ id: String(q.id), question: q.question, answers: (q.answers ?? []).map((x) => x.text), passageId: squadId(i, j) });
      }
    }),
  );
  return out;
}

function jsonLines(path: string, each: (obj: Record<string, unknown>, line: number) => void): void {
  const lines = readText(path).split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      throw new UserError(`${path}:${i + 1}: not a JSON object`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new UserError(`${path}:${i + 1}: expected a JSON object`);
    each(obj as Record<string, unknown>, i + 1);
  });
}

/** JSONL: {"id"?, "text" | "contents", "title"?} per line (Pyserini's "contents" is accepted); ids default to the line number. */
export function readJsonlPassages(path: string): Passage[] {
  const out: Passage[] = [];
  jsonLines(path, (o, line) => {
    const text = o.text ?? o.contents;
    if (typeof text !== 'string') throw new UserError(`${path}:${line}: field 'text' (or 'contents') missing or not a string`);
    const id = o.id ?? o.docid ?? o._id;
    if (id !== undefined && typeof id !== 'string' && typeof id !== 'number') throw new UserError(`${path}:${line}: field 'id' must be a string or number`);
    out.push({ id: id === undefined ? `${path}:${line}` : String(id), text, ...(typeof o.title === 'string' ? { title: o.title } : {}) });
  });
  return out;
}

/** The passage of a BoolQ record: the original {"passage"} or llm-foundry's {"query": "Passage: …\nQuestion: …"}. */
function boolqPassage(o: Record<string, unknown>): string | undefined {
  if (typeof o.passage === 'string') return o.passage;
  if (typeof o.query !== 'string') return undefined;
  const m = /^Passage: ([\s\S]*?)\nQuestion: /.exec(o.query);
  return m ? m[1] : undefined;
}

/** BoolQ JSONL: the distinct passages (original or llm-foundry layout); many questions share one. */
export function readBoolqPassages(path: string): Passage[] {
  const seen = new Map<string, Passage>();
  jsonLines(path, (o, line) => {
    const passage = boolqPassage(o);
    if (passage === undefined) throw new UserError(`${path}:${line}: expected BoolQ JSONL: a 'passage' string, or a 'query' "Passage: …\nQuestion: …"`);
    if (seen.has(passage)) return;
    seen.set(passage, { id: `boolq-${seen.size}`, text: passage, ...(typeof o.title === 'string' ? { title: o.title } : {}) });
  });
  return [...seen.values()];
}

/** Plain text: one passage per block of non-empty lines (blank lines separate passages). */
export function readTextPassages(path: string): Passage[] {
  const out: Passage[] = [];
  const blocks = readText(path).split(/\r?\n[ \t]*\r?\n/);
  for (const b of blocks) {
    const text = b.trim();
    if (text) out.push({ id: `${path}#${out.length}`, text });
  }
  return out;
}

export function readPassages(path: string, format: CorpusFormat = guessFormat(path)): Passage[] {
  switch (format) {
    case 'jsonl': return readJsonlPassages(path);
    case 'text': return readTextPassages(path);
    case 'xquad': return readSquadPassages(path);
    case 'boolq': return readBoolqPassages(path);
  }
}

/** The text a passage is indexed and encoded as: its title (when present) and its body. */
export function passageText(p: Passage): string {
  return p.title ? `${p.title}\n${p.text}` : p.text;
}
