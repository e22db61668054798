import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, validateConfig } from '../../src/data/config.js';

const base = { output: '/tmp/x', sources: [{ name: 'a', paths: ['/tmp/a.jsonl'] }] };

test('config: defaults are the published thresholds; sections can be tuned or turned off', () => {
  const c = validateConfig(base);
  assert.equal(c.filters.gopherQuality?.minDocWords, 50);
  assert.equal(c.filters.gopherRepetition?.dupLineFrac, 0.3);
  assert.equal(c.filters.fineweb?.linePunctThreshold, 0.12);
  assert.equal(c.filters.c4?.minNumSentences, 5);
  assert.deepEqual(c.filters.language?.languages, ['en']);
  assert.equal(c.filters.harmful, null);
  assert.equal(c.dedup?.minhash.bands, 14);
  assert.equal(c.dedup?.minhash.rows, 8);
  assert.equal(c.dedup?.minhash.ngram, 5);
  assert.equal(c.dedup?.verifyThreshold, 0.7);
  assert.equal(validateConfig({ ...base, dedup: { verify_threshold: null } }).dedup?.verifyThreshold, null);
  assert.deepEqual(c.stages, ['filter', 'dedup-signature', 'dedup-bucket', 'dedup-cluster', 'dedup-filter']);
  const t = validateConfig({ ...base, filters: { gopher_quality: { min_doc_words: 10, max_avg_word_length: null }, c4: false }, dedup: false, mix: { temperature: 3, sources: { a: { weight: 2 } } } });
  assert.equal(t.filters.gopherQuality?.minDocWords, 10);
  assert.equal(t.filters.gopherQuality?.maxAvgWordLength, null);
  assert.equal(t.filters.gopherQuality?.minAvgWordLength, 3);
  assert.equal(t.filters.c4, null);
  assert.equal(t.dedup, null);
  assert.equal(t.mix?.temperature, 3);
  assert.equal(t.mix?.sources.a?.weight, 2);
  assert.deepEqual(t.stages, ['filter', 'mix']);
});

test('config: a bad key or value is named with its path', () => {
  const bad = (raw: unknown, re: RegExp): void => assert.throws(() => validateConfig(raw), (e: unknown) => e instanceof ConfigError && re.test(e.message));
  bad({ ...base, filters: { gopher_quality: { min_doc_wordz: 3 } } }, /^filters\.gopher_quality\.min_doc_wordz: unknown key/);
  bad({ ...base, filters: { gopher_quality: { min_doc_words: 'ten' } } }, /^filters\.gopher_quality\.min_doc_words: expected a number/);
  bad({ ...base, filters: { c4: { filter_javascript: 1 } } }, /^filters\.c4\.filter_javascript: expected true or false/);
  bad({ ...base, filters: { gopher_repetition: { top_ngrams: [[2, 0.2], [3]] } } }, /^filters\.gopher_repetition\.top_ngrams\[1\]: expected \[n, threshold\]/);
  bad({ ...base, sources: [{ name: 'a' }] }, /^sources\[0\]\.paths: expected a string or a non-empty list/);
  bad({ ...base, sources: [{ name: 'a', paths: 'x', format: 'xml' }] }, /^sources\[0\]\.format: expected one of auto, txt, jsonl, csv, parquet/);
  bad({ ...base, mix: { sources: { b: {} } } }, /^mix\.sources\.b: no source named "b"/);
  bad({ ...base, mix: { temperature: 0 } }, /^mix\.temperature: expected a positive number/);
  bad({ ...base, dedup: { bandz: 3 } }, /^dedup\.bandz: unknown key/);
  bad({ ...base, stages: ['filter', 'shuffle'] }, /^stages\[1\]: expected one of/);
  bad({ ...base, scorer: { model: 'm', threshold: 5, keep_fraction: 0.5 } }, /^scorer\.keep_fraction: give either/);
  bad({ ...base, colour: 1 }, /^\(config\)\.colour: unknown key/);
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-cfg-'));
  writeFileSync(join(dir, 'c.yaml'), 'output: out\nsources:\n  - name: a\n    paths: data\nfilters:\n  fineweb: {short_line_length: "x"}\n');
  assert.throws(() => loadConfig(join(dir, 'c.yaml')), /c\.yaml: filters\.fineweb\.short_line_length: expected a number/);
  writeFileSync(join(dir, 'd.yaml'), 'output: out\nsources:\n  - name: a\n    paths: data\n');
  const c = loadConfig(join(dir, 'd.yaml'));
  assert.equal(c.output, join(dir, 'out'));
  assert.deepEqual(c.sources[0]!.paths, [join(dir, 'data')]);
  writeFileSync(join(dir, 'e.json'), '{"output": ');
  assert.throws(() => loadConfig(join(dir, 'e.json')), /e\.json: not valid JSON/);
  rmSync(dir, { recursive: true });
});

test('config: the example config in configs/ is valid', () => {
  const c = loadConfig('configs/curate-example.yaml');
  assert.equal(c.sources.length, 4);
  assert.equal(c.scorer?.keepFraction, 0.9);
  assert.deepEqual(c.stages, ['train-scorer', 'filter', 'dedup-signature', 'dedup-bucket', 'dedup-cluster', 'dedup-filter', 'mix']);
});
