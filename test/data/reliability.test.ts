// The readers' refusals and the text policy: invalid UTF-8 and lone surrogates are malformed records named by file,
// line and byte offset (or replaced / skipped on request); truncated .jsonl.gz and Parquet files are one UserError
// naming the file and where reading stopped; a record's own id and source fields survive the pipeline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { BadRecordError, BadRecordLog, formatFromPath, readDocuments, readShard } from '../../src/data/readers.js';
import type { ReadSpec } from '../../src/data/readers.js';
import { JsonlGzWriter, documentRecord } from '../../src/data/writers.js';
import type { Document } from '../../src/data/document.js';
import { UserError } from '../../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'lmforge-rel-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

function spec(path: string, extra: Partial<ReadSpec> = {}): ReadSpec {
  return { path, format: formatFromPath(path), source: 'src', textField: 'text', split: 'line', onBadRecord: 'skip', ...extra };
}

async function collect(s: ReadSpec, log = new BadRecordLog()): Promise<Document[]> {
  const out: Document[] = [];
  for await (const d of readDocuments(s, log)) out.push(d);
  return out;
}

const BAD = Buffer.from([0x62, 0x61, 0x64, 0x20, 0xc3, 0x28]); // "bad " then a cut two-byte sequence

test('invalid UTF-8 and lone surrogates: malformed records with file, line and byte offset; replace and skip on request', async () => {
  const jsonl = join(dir, 'u.jsonl');
  writeFileSync(jsonl, Buffer.concat([Buffer.from('{"text":"ok"}\n{"text":"'), BAD, Buffer.from('"}\n{"text":"lone \\ud800 x"}\n{"text":"fine"}\n')]));
  const log = new BadRecordLog();
  assert.deepEqual((await collect(spec(jsonl), log)).map((d) => d.text), ['ok', 'fine']);
  assert.equal(log.count, 2);
  assert.deepEqual(log.samples.map((s) => [s.line, s.reason]), [
    [2, 'invalid UTF-8 at byte offset 27'],
    [3, 'field "text" has a lone surrogate (U+D800) at character 5'],
  ]);
  await assert.rejects(collect(spec(jsonl, { onBadRecord: 'fail' })), (e: unknown) => e instanceof BadRecordError && /u\.jsonl:2: invalid UTF-8 at byte offset 27/.test(e.message));
  const skipLog = new BadRecordLog();
  assert.equal((await collect(spec(jsonl, { onBadRecord: 'fail', invalidUtf8: 'skip' }), skipLog)).length, 2, 'skip is never fatal');
  assert.equal(skipLog.count, 2, 'skipped records are counted as malformed');
  const replaced = await collect(spec(jsonl, { invalidUtf8: 'replace' }));
  assert.deepEqual(replaced.map((d) => d.text), ['ok', 'bad \ufffd(', 'lone \ufffd x', 'fine']);

  const txt = join(dir, 'u.txt');
  writeFileSync(txt, Buffer.concat([Buffer.from('first line\r\n'), BAD, Buffer.from('\nthird\n')]));
  const tlog = new BadRecordLog();
  assert.deepEqual((await collect(spec(txt), tlog)).map((d) => d.text), ['first line', 'third']);
  assert.deepEqual(tlog.samples.map((s) => [s.line, s.reason]), [[2, 'invalid UTF-8 at byte offset 16']]);

  const csv = join(dir, 'u.csv');
  writeFileSync(csv, Buffer.concat([Buffer.from('text,n\n"two\nlines",1\n'), BAD, Buffer.from(',2\nlast,3\n')]));
  const clog = new BadRecordLog();
  assert.deepEqual((await collect(spec(csv), clog)).map((d) => d.text), ['two\nlines', 'last']);
  assert.deepEqual(clog.samples.map((s) => s.reason), ['invalid UTF-8 at byte offset 25 (line 4)']);
});

test('truncated or corrupt .jsonl.gz and Parquet: one UserError naming the file and where reading stopped', async () => {
  const lines = Array.from({ length: 3000 }, (_, i) => JSON.stringify({ text: `record ${i} ${'x'.repeat(i % 50)}` })).join('\n');
  const gz = gzipSync(lines);
  const cut = join(dir, 'cut.jsonl.gz');
  writeFileSync(cut, gz.subarray(0, Math.floor(gz.length * 0.6)));
  await assert.rejects(collect(spec(cut)), (e: unknown) => e instanceof UserError && /cut\.jsonl\.gz: truncated \(unexpected end of the gzip stream\) after line \d+ \(byte offset \d+\)/.test(e.message));
  const junk = join(dir, 'junk.jsonl.gz');
  writeFileSync(junk, Buffer.from('this is not gzip at all'));
  await assert.rejects(collect(spec(junk)), (e: unknown) => e instanceof UserError && /junk\.jsonl\.gz: not valid gzip data/.test(e.message));

  const texts = Array.from({ length: 3000 }, (_, i) => `document ${i}`);
  const pq = new Uint8Array(parquetWriteBuffer({ columnData: [{ name: 'text', data: texts, type: 'STRING' }], rowGroupSize: 1000 }));
  for (const keep of [0.5, 0.97, 0.02]) {
    const p = join(dir, `cut-${keep}.parquet`);
    writeFileSync(p, pq.subarray(0, Math.floor(pq.length * keep)));
    await assert.rejects(collect(spec(p)), (e: unknown) => e instanceof UserError && e.message.startsWith(`${p}: `), `parquet cut at ${keep}`);
  }
  const flipped = Uint8Array.from(pq);
  flipped[Math.floor(flipped.length / 2)]! ^= 0xff;
  const fp = join(dir, 'flip.parquet');
  writeFileSync(fp, flipped);
  try {
    await collect(spec(fp)); // a flipped byte inside string data may still decode: a clean result is fine
  } catch (e) {
    assert.ok(e instanceof UserError, `flipped byte: ${String(e)}`);
  }
});

test('a record keeps its own id and source; the pipeline id goes to lmforge_id and the source name to lmforge_source', async () => {
  const path = join(dir, 'ids.jsonl');
  writeFileSync(path, '{"id":"user-1","source":"crawl-2024","text":"hello"}\n');
  const [doc] = await collect(spec(path));
  const rec = documentRecord(doc!);
  assert.equal(rec.id, 'user-1');
  assert.equal(rec.source, 'crawl-2024');
  assert.equal(rec.lmforge_id, 'src/ids.jsonl:1');
  assert.equal(rec.lmforge_source, 'src');
  const shard = join(dir, 'shard.jsonl.gz');
  const w = new JsonlGzWriter(shard);
  await w.write(rec);
  await w.close();
  const back: Document[] = [];
  for await (const d of readShard(shard)) back.push(d);
  assert.equal(back[0]!.id, 'src/ids.jsonl:1');
  assert.deepEqual(documentRecord(back[0]!), rec, 'a shard round-trips every field');
});

test('configs/curate-example.yaml resolves from the checkout (../../shared beside it) and runs on a small sample', async (t) => {
  const { existsSync } = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  const { loadConfig } = await import('../../src/data/config.js');
  const { runStages } = await import('../../src/data/pipeline.js');
  const file = fileURLToPath(new URL('../../../configs/curate-example.yaml', import.meta.url));
  const cfg = loadConfig(file);
  const inputs = [...cfg.sources.flatMap((s) => s.paths), ...(cfg.scorer?.train?.paths ?? [])];
  if (!inputs.every((p) => existsSync(p))) {
    t.skip(`the shared data is not beside this checkout (${inputs.find((p) => !existsSync(p))})`);
    return;
  }
  const out = mkdtempSync(join(tmpdir(), 'lmforge-example-'));
  try {
    cfg.output = out;
    cfg.scorer!.model = join(out, 'kn.json');
    cfg.scorer!.train!.maxDocs = 200;
    cfg.scorer!.calibrationDocs = 50;
    const reports = await runStages(cfg, cfg.stages, { rank: 0, worldSize: 1, limit: 20, dryRun: false, log: () => undefined });
    assert.ok(reports.filter && reports.mix, `stages run: ${Object.keys(reports).join(', ')}`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('a full disk while a shard is written: one UserError naming the shard, no hang, nothing left behind', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const { readdirSync } = await import('node:fs');
  const { randomBytes } = await import('node:crypto');
  const mnt = mkdtempSync(join(tmpdir(), 'lmf-full-'));
  const mounted = process.getuid?.() === 0 && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]).status === 0;
  try {
    if (!mounted) {
      t.skip('needs root to mount a tiny tmpfs');
      return;
    }
    const shard = join(mnt, 'filtered', '00000.jsonl.gz');
    const w = new JsonlGzWriter(shard);
    await assert.rejects(
      (async () => {
        for (let i = 0; i < 64; i++) await w.write({ text: randomBytes(48 << 10).toString('base64') }); // incompressible
        await w.close();
      })(),
      (e: unknown) => e instanceof UserError && e.message === `${shard}: cannot write the shard: no space left on device`,
    );
    w.abort();
    assert.deepEqual(readdirSync(join(mnt, 'filtered')), []);
  } finally {
    if (mounted) spawnSync('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
});
