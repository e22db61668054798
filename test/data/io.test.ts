import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { BadRecordError, BadRecordLog, expandPaths, formatFromPath, readDocuments, readShard } from '../../src/data/readers.js';
import type { ReadSpec } from '../../src/data/readers.js';
import { JsonlGzWriter, documentRecord, isDone, markDone } from '../../src/data/writers.js';
import type { Document } from '../../src/data/document.js';

const dir = mkdtempSync(join(tmpdir(), 'lmforge-io-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

function spec(path: string, extra: Partial<ReadSpec> = {}): ReadSpec {
  return { path, format: formatFromPath(path), source: 'src', textField: 'text', split: 'file', onBadRecord: 'skip', ...extra };
}

async function collect(s: ReadSpec, log = new BadRecordLog()): Promise<Document[]> {
  const out: Document[] = [];
  for await (const d of readDocuments(s, log)) out.push(d);
  return out;
}

test('JSONL.gz: text field, metadata kept, malformed lines reported with file:line and skipped', async () => {
  const path = join(dir, 'a.jsonl.gz');
  const body = ['{"text":"hello","lang":"en","id":7}', '{bad json', '', '{"body":"no text"}', '[1,2]', '{"text":"world"}'];
  writeFileSync(path, gzipSync(body.join('\n')));
  const log = new BadRecordLog();
  const docs = await collect(spec(path, { idField: 'id' }), log);
  assert.deepEqual(docs.map((d) => d.text), ['hello', 'world']);
  assert.equal(docs[0]!.id, '7');
  assert.equal(docs[0]!.metadata.lang, 'en');
  assert.equal(docs[0]!.metadata.lmforge_source, 'src');
  assert.equal(docs[1]!.id, 'src/a.jsonl.gz:6');
  assert.equal(log.count, 3);
  assert.deepEqual(log.samples.map((s) => s.line), [2, 4, 5]);
  assert.equal(log.samples[0]!.file, path);
  assert.match(log.samples[1]!.reason, /field "text" is missing/);
});

test('JSONL: onBadRecord=fail throws naming file and line', async () => {
  const path = join(dir, 'b.jsonl');
  writeFileSync(path, '{"text":"ok"}\n{"text":3}\n');
  await assert.rejects(collect(spec(path, { onBadRecord: 'fail' })), (e: unknown) => {
    assert.ok(e instanceof BadRecordError);
    assert.match(e.message, /b\.jsonl:2: field "text" is a number/);
    return true;
  });
});

test('CSV: header columns, quoted newlines, a malformed row is reported and skipped', async () => {
  const path = join(dir, 'c.csv');
  writeFileSync(path, 'text,score\n"multi\nline",1\nplain,2\nbroken,3,extra\nlast,4\n');
  const log = new BadRecordLog();
  const docs = await collect(spec(path), log);
  assert.deepEqual(docs.map((d) => d.text), ['multi\nline', 'plain', 'last']);
  assert.equal(docs[1]!.metadata.score, '2');
  assert.equal(log.count, 1);
  assert.equal(log.samples[0]!.line, 5);
});

test('Parquet: rows read group by group with other columns as metadata', async () => {
  const path = join(dir, 'd.parquet');
  const n = 2500;
  const texts = Array.from({ length: n }, (_, i) => `document number ${i}`);
  const buf = parquetWriteBuffer({
    columnData: [
      { name: 'content', data: texts, type: 'STRING' },
      { name: 'k', data: texts.map((_, i) => i), type: 'INT32' },
      { name: 'big', data: texts.map((_, i) => BigInt(i) * 10n ** 15n), type: 'INT64' },
    ],
    rowGroupSize: 1000,
  });
  writeFileSync(path, new Uint8Array(buf));
  const docs = await collect(spec(path, { textField: 'content' }));
  assert.equal(docs.length, n);
  assert.equal(docs[1234]!.text, 'document number 1234');
  assert.equal(docs[1234]!.metadata.k, 1234);
  // INT64 values come back as BigInt; metadata keeps them JSON-safe (exact numbers, else decimal strings).
  assert.equal(docs[0]!.metadata.big, 0);
  assert.equal(docs[1234]!.metadata.big, '1234000000000000000');
  assert.doesNotThrow(() => JSON.stringify(docs[1234]!.metadata));
  const limited = await collect(spec(path, { textField: 'content', limit: 10 }));
  assert.equal(limited.length, 10);
});

test('txt: file, paragraph and line splits; expandPaths filters by extension', async () => {
  const sub = join(dir, 'txt');
  const path = join(sub, 'e.txt');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(sub, { recursive: true });
  writeFileSync(path, 'p1 a\np1 b\n\n\np2\n');
  writeFileSync(join(sub, 'skip.bin'), 'x');
  assert.equal((await collect(spec(path))).length, 1);
  const paras = await collect(spec(path, { split: 'paragraph' }));
  assert.deepEqual(paras.map((d) => [d.text, d.metadata.line]), [['p1 a\np1 b', 1], ['p2', 5]]);
  assert.equal((await collect(spec(path, { split: 'line' }))).length, 3);
  assert.deepEqual(expandPaths([sub], ['.txt']), [path]);
  assert.throws(() => expandPaths([join(dir, 'nope')]), /does not exist/);
});

test('JsonlGzWriter is atomic: nothing at the path until close, abort leaves nothing', async () => {
  const path = join(dir, 'out', 'shard.jsonl.gz');
  const w = new JsonlGzWriter(path);
  for (let i = 0; i < 3000; i++) await w.write(documentRecord({ id: `d${i}`, text: 'x'.repeat(500), metadata: { i } }));
  assert.deepEqual(readdirSync(join(dir, 'out')).filter((f) => f === 'shard.jsonl.gz'), []);
  await w.close();
  const lines = gunzipSync(readFileSync(path)).toString().trim().split('\n');
  assert.equal(lines.length, 3000);
  const back: Document[] = [];
  for await (const d of readShard(path)) back.push(d);
  assert.equal(back[2999]!.metadata.i, 2999);
  assert.equal(back[0]!.id, 'd0');
  const w2 = new JsonlGzWriter(join(dir, 'out', 'aborted.jsonl.gz'));
  await w2.write({ text: 'a' });
  w2.abort();
  assert.deepEqual(readdirSync(join(dir, 'out')).sort(), ['shard.jsonl.gz']);
  assert.equal(isDone(path), false);
  markDone(path);
  assert.equal(isDone(path), true);
});
