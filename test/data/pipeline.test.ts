// End to end: a small multi-format corpus through train-scorer, filter, the dedup stages and mix, run as two ranks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { validateConfig } from '../../src/data/config.js';
import { collectReports, runStages } from '../../src/data/pipeline.js';
import { readShard } from '../../src/data/readers.js';
import type { Document } from '../../src/data/document.js';
import { editWords } from '../../src/data/dedup/planted.js';
import { mulberry32 } from '../../src/util/mulberry32.js';

function wiki(): string[] {
  const j = JSON.parse(gunzipSync(readFileSync('/work/shared/data/xquad-en/xquad.en.json.gz')).toString()) as {
    data: { paragraphs: { context: string }[] }[];
  };
  return j.data.flatMap((a) => a.paragraphs.map((p) => p.context));
}

async function readAll(dir: string): Promise<Document[]> {
  const out: Document[] = [];
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.jsonl.gz')).sort()) for await (const d of readShard(join(dir, f))) out.push(d);
  return out;
}

test('pipeline: filter -> dedup -> mix over 3 formats and 2 ranks, with exclusions, reports, re-run skipping', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-pipe-'));
  const paras = wiki();
  const rand = mulberry32(3);
  const vocab = paras.join(' ').split(' ').slice(0, 3000);
  mkdirSync(join(dir, 'in'));
  // Reference corpus for the LM: the first 120 paragraphs.
  writeFileSync(join(dir, 'ref.jsonl'), paras.slice(0, 120).map((t) => JSON.stringify({ text: t })).join('\n'));
  // Source "web" (JSONL.gz): 60 good paragraphs, an exact copy, a near copy, a short doc, German text, PII, a bad line.
  const good = paras.slice(120, 180);
  const web = good.map((t, i) => ({ text: t, url: `https://example.org/${i}` }));
  web.push({ text: good[0]!.toUpperCase(), url: 'copy' });
  web.push({ text: editWords(good[1]!, 0.01, vocab, rand), url: 'near' });
  web.push({ text: 'Too short to keep.', url: 'short' });
  web.push({ text: 'Die Ergebnisse werden nach der Anhörung veröffentlicht, und die Öffentlichkeit kann bis zum Monatsende Stellung nehmen. '.repeat(8), url: 'de' });
  web.push({ text: paras[119]! + ' Contact jane@example.com or 555-123-4567.', url: 'pii' });
  const lines = web.map((r) => JSON.stringify(r));
  lines.splice(5, 0, '{"text": broken');
  writeFileSync(join(dir, 'in', 'web.jsonl.gz'), gzipSync(lines.join('\n')));
  // Source "qa" (CSV) and "books" (txt by paragraph).
  const csvRows = paras.slice(180, 200).map((t) => `"${t.replace(/"/g, '""')}",x`);
  writeFileSync(join(dir, 'in', 'qa.csv'), 'body,tag\n' + csvRows.join('\n') + '\n');
  writeFileSync(join(dir, 'in', 'books.txt'), paras.slice(200, 240).join('\n\n'));
  const raw = {
      output: 'out',
      sources: [
        { name: 'web', paths: ['in/web.jsonl.gz'] },
        { name: 'qa', paths: ['in/qa.csv'], text_field: 'body' },
        { name: 'books', paths: ['in/books.txt'], split: 'paragraph' },
      ],
      filters: { c4: { min_num_sentences: 2 } },
      scorer: { model: 'kn.json', train: { paths: ['ref.jsonl'], order: 3 }, keep_fraction: 0.95, calibration_docs: 200 },
      dedup: { verify_threshold: 0.7 },
      mix: { temperature: 2, sources: { books: { max_epochs: 1 } } },
  };
  const cfg = validateConfig(raw, dir);
  const logs: string[] = [];
  const o = (rank: number) => ({ rank, worldSize: 2, limit: null, dryRun: false, log: (l: string) => logs.push(l) });
  // Dry run first: prints a report, writes nothing but the trained model is needed -> error names the stage.
  await assert.rejects(runStages(cfg, ['filter'], { ...o(0), dryRun: true }), /run the train-scorer stage first/);
  for (const stage of cfg.stages) for (const rank of [0, 1]) await runStages(cfg, [stage], o(rank));
  const out = join(dir, 'out');
  const filtered = await readAll(join(out, 'filtered'));
  const excluded = await readAll(join(out, 'excluded'));
  const reason = (url: string): string | undefined =>
    (excluded.find((d) => d.metadata.url === url)?.metadata.excluded_by as { reason?: string } | undefined)?.reason;
  assert.match(reason('short') ?? '', /^(gopher_short_doc|language_low_score|c4_too_few_sentences)$/);
  assert.equal(reason('de'), 'language_de');
  assert.equal(reason('copy'), 'dedup_exact');
  assert.equal(reason('near'), 'dedup_minhash');
  const pii = filtered.find((d) => d.metadata.url === 'pii')!;
  assert.match(pii.text, /Contact <EMAIL> or <PHONE>\.$/);
  assert.equal(pii.metadata.language, 'en');
  assert.equal(typeof pii.metadata.ccnet_perplexity, 'number');
  assert.ok(filtered.some((d) => d.metadata.lmforge_source === 'qa' && d.metadata.tag === 'x'));
  const fr = collectReports(cfg, 'filter')!;
  assert.equal(fr.badRecords.count, 1);
  assert.equal(fr.badRecords.samples[0]!.line, 6);
  assert.match(fr.badRecords.samples[0]!.file, /web\.jsonl\.gz$/);
  assert.equal(fr.in.docs, 65 + 20 + 40);
  assert.ok(fr.steps.scorer!.removed['ccnet_perplexity_above_threshold']!.docs >= 1);
  assert.equal(fr.extra.pii_email, 1);
  const deduped = await readAll(join(out, 'deduped'));
  assert.equal(deduped.length, filtered.length - 2);
  // Mix: books capped at 1 epoch, the plan and realised shares printed.
  const mixed = await readAll(join(out, 'mixed'));
  const books = deduped.filter((d) => d.metadata.lmforge_source === 'books').length;
  assert.ok(mixed.filter((d) => d.metadata.lmforge_source === 'books').length <= books);
  assert.ok(logs.some((l) => l.startsWith('mixing plan (temperature 2)')));
  assert.ok(logs.some((l) => l.startsWith('realised mixture (2 shards')), 'realised shares after the last rank');
  assert.ok(existsSync(join(out, 'reports', 'filter.json')));
  // Counts for the plan come from the dedup-filter reports; with quality weighting they are read from the shards.
  const counts = JSON.parse(readFileSync(join(out, 'mix', 'counts.json'), 'utf8')) as { docs: Record<string, number> };
  const cfgQ = validateConfig({ ...raw, output: 'out', mix: { ...raw.mix, quality: { field: 'ccnet_perplexity', alpha: 1 } } }, dir);
  for (const sub of ['mix', 'mixed', join('reports', 'mix')]) rmSync(join(out, sub), { recursive: true, force: true });
  for (const rank of [0, 1]) await runStages(cfgQ, ['mix'], o(rank));
  const countsQ = JSON.parse(readFileSync(join(out, 'mix', 'counts.json'), 'utf8')) as { docs: Record<string, number>; weightSum: Record<string, number> };
  assert.deepEqual(countsQ.docs, counts.docs);
  assert.ok(countsQ.weightSum.books! < countsQ.docs.books!, 'perplexity weights are below 1');
  const mixedQ = await readAll(join(out, 'mixed'));
  assert.ok(mixedQ.length > 0);
  // Re-running every stage finds the markers and writes nothing new.
  const before = readdirSync(join(out, 'filtered')).length;
  const again = { ...o(0), worldSize: 1 };
  for (const stage of cfg.stages) await runStages(cfg, [stage], again);
  assert.equal(readdirSync(join(out, 'filtered')).length, before);
  assert.equal((await readAll(join(out, 'mixed'))).length, mixedQ.length);
  // No temp files anywhere.
  const walk = (p: string): string[] => readdirSync(p, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(p, e.name)) : [e.name]));
  assert.deepEqual(walk(out).filter((f) => f.includes('.tmp-')), []);
  rmSync(dir, { recursive: true });
});

test('pipeline: --dry-run with --limit writes nothing; a --limit sample is redone by a full run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-dry-'));
  writeFileSync(join(dir, 'a.jsonl'), wiki().slice(0, 30).map((t) => JSON.stringify({ text: t })).join('\n'));
  const cfg = validateConfig({ output: 'out', sources: [{ name: 'a', paths: ['a.jsonl'] }] }, dir);
  const logs: string[] = [];
  const rep = await runStages(cfg, ['filter'], { rank: 0, worldSize: 1, limit: 10, dryRun: true, log: (l) => logs.push(l) });
  assert.equal(rep.filter!.in.docs, 10);
  assert.ok(logs.some((l) => l.includes('gopher_quality')));
  assert.equal(existsSync(join(dir, 'out')), false);
  // A --limit run writes a sample; a later full run does not mistake it for finished work.
  const o = { rank: 0, worldSize: 1, dryRun: false, log: () => {} };
  await runStages(cfg, ['filter'], { ...o, limit: 5 });
  assert.equal(collectReports(cfg, 'filter')!.in.docs, 5);
  await runStages(cfg, ['filter'], { ...o, limit: 5 });
  await runStages(cfg, ['filter'], { ...o, limit: null });
  assert.equal(collectReports(cfg, 'filter')!.in.docs, 30);
  const again: string[] = [];
  await runStages(cfg, ['filter'], { ...o, limit: null, log: (l) => again.push(l) });
  assert.ok(!again.some((l) => l.startsWith('filter 00000 done')), 'finished full shard skipped');
  rmSync(dir, { recursive: true });
});

test('pipeline: a stage that fails mid-run leaves finished shards and no partial output; the re-run completes it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-fail-'));
  const paras = wiki();
  mkdirSync(join(dir, 'in'));
  writeFileSync(join(dir, 'in', 'a.jsonl'), paras.slice(0, 20).map((t) => JSON.stringify({ text: t })).join('\n'));
  const good = paras.slice(20, 40).map((t) => JSON.stringify({ text: t }));
  writeFileSync(join(dir, 'in', 'b.jsonl'), [...good.slice(0, 10), '{"text": oops', ...good.slice(10)].join('\n'));
  const cfg = validateConfig({ output: 'out', sources: [{ name: 's', paths: ['in'] }], on_bad_record: 'fail', dedup: false }, dir);
  const o = { rank: 0, worldSize: 1, limit: null, dryRun: false, log: () => {} };
  await assert.rejects(runStages(cfg, ['filter'], o), /b\.jsonl:11: invalid JSON/);
  const files = readdirSync(join(dir, 'out', 'filtered')).sort();
  assert.deepEqual(files, ['00000.jsonl.gz', '00000.jsonl.gz.done']);
  assert.deepEqual(readdirSync(join(dir, 'out', 'excluded')).sort(), ['filter-00000.jsonl.gz']);
  const { statSync } = await import('node:fs');
  const before = statSync(join(dir, 'out', 'filtered', '00000.jsonl.gz')).mtimeMs;
  writeFileSync(join(dir, 'in', 'b.jsonl'), good.join('\n'));
  await runStages(cfg, ['filter'], o);
  assert.equal(statSync(join(dir, 'out', 'filtered', '00000.jsonl.gz')).mtimeMs, before, 'finished shard not redone');
  assert.ok(existsSync(join(dir, 'out', 'filtered', '00001.jsonl.gz.done')));
  assert.equal(collectReports(cfg, 'filter')!.in.docs, 40);
  rmSync(dir, { recursive: true });
});
